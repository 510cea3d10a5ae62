"""Notifications with several `setpoint run` replicas on one PostgreSQL state (issue 19 item 5), counted
by a real HTTP receiver: a commit's digest is sent once, by the replica holding the ``duty:notify`` lease,
and names every target whichever replica deployed it; a failing target's alert is not repeated by the
replica that takes it over after its owner is SIGKILLed, and its recovery is announced once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opshelpers import Receiver
from test_replicas_chaos import TTL, Replica, at_version, replica_config, wait_until

from setpoint.state import StateStore
from setpoint.testing import GitRepo

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

HOOK = "/hook"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Any:
    r = Receiver()
    monkeypatch.setenv("SETPOINT_TEST_NOTIFY_URL", r.url(HOOK))  # the replicas inherit it
    yield r
    r.close()


def notified(receiver: Receiver, event: str, target: str | None = None) -> list[dict[str, Any]]:
    return [r.json for r in receiver.at(HOOK) if r.json["event"] == event and (target is None or r.json["target"] == target)]


def with_notifications(config: dict[str, Any], **settings: Any) -> dict[str, Any]:
    config["notifications"] = {**settings, "notifiers": [
        {"name": "hook", "kind": "webhook", "url_env": "SETPOINT_TEST_NOTIFY_URL"}]}
    return config


def owners(pg_state_url: str) -> dict[str, str]:
    """Lease -> owner, targets' and duties' (``duty:notify``) alike."""
    store = StateStore(pg_state_url)
    try:
        return {r["target"]: r["owner"] for r in store._query("SELECT target, owner FROM leases WHERE expires_at > 0")}
    finally:
        store.close()


def test_a_commits_digest_is_sent_once_for_every_replicas_targets(tmp_path: Path, git_repo: GitRepo,
                                                                  pg_state_url: str, receiver: Receiver) -> None:
    names = [f"t{i:03d}" for i in range(12)]
    live = tmp_path / "live"

    def commit(version: int) -> str:
        return git_repo.commit({f"t/{n}/value.txt": f"{n} v{version}\n" for n in names}, message=f"v{version}")

    first = commit(0)
    config = with_notifications(replica_config(git_repo, names, live, pg_state_url), digest={"window": "2s"})
    replicas = [Replica(tmp_path / f"replica-{i}", config) for i in range(3)]
    try:
        for r in replicas:
            r.start()
        wait_until(lambda: at_version(live, names, 0), 60, "the first pass")
        wait_until(lambda: len({o for t, o in owners(pg_state_url).items() if t in names}) == 3, 30,
                   "the targets divided among the three replicas")
        holders = [o for t, o in owners(pg_state_url).items() if t == "duty:notify"]
        assert len(holders) == 1, holders
        second = commit(1)
        wait_until(lambda: at_version(live, names, 1), 60, "the second commit everywhere")
        wait_until(lambda: notified(receiver, "digest") and any(d["revision"] == second for d in notified(receiver, "digest")),
                   30, "the second commit's digest")
        time.sleep(2 * TTL)  # a second digest, from another replica, would arrive within this
    finally:
        for r in replicas:
            r.finish()

    digests = Counter(d["revision"] for d in notified(receiver, "digest"))
    assert digests[first] == 1 and digests[second] == 1, digests
    (digest,) = [d for d in notified(receiver, "digest") if d["revision"] == second]
    assert digest["targets"] == {n: "deployed" for n in names}, "one digest names every target"
    store = StateStore(pg_state_url)
    try:
        writers = {e.details["writer"]["replica"] for e in store.audit_entries(actions=("apply",))
                   if e.revision == second}
    finally:
        store.close()
    assert len(writers) == 3, f"the commit was applied by each replica to its own targets: {writers}"


def test_a_takeover_does_not_repeat_the_alert_and_the_recovery_is_sent_once(
        tmp_path: Path, git_repo: GitRepo, pg_state_url: str, receiver: Receiver) -> None:
    names = [f"t{i:03d}" for i in range(6)]
    live = tmp_path / "live"
    git_repo.commit({**{f"t/{n}/value.txt": f"{n} v0\n" for n in names}, "t/broken/value.txt": "broken v0\n"})
    config = with_notifications(replica_config(git_repo, names, live, pg_state_url), failure_threshold=1,
                                digest={"enabled": False})
    blocker = live / "blocker"
    live.mkdir()
    blocker.write_text("a file where the target's destination folder should be\n")
    config["targets"].append({"name": "broken", "kind": "files", "source": "repo", "path": "t/broken",
                              "files": {"destination": str(blocker / "dest")}})
    config["defaults"].update({"backoff": "0.5s", "max_backoff": "1s"})  # it retries often while failing
    a, b = Replica(tmp_path / "a", config), Replica(tmp_path / "b", config)
    try:
        a.start()
        b.start()
        wait_until(lambda: at_version(live, names, 0), 60, "the first pass")
        wait_until(lambda: notified(receiver, "failed", "broken"), 30, "the alert of the failing target")
        wait_until(lambda: len({o for t, o in owners(pg_state_url).items() if not t.startswith("duty:")}) == 2, 30,
                   "both replicas holding targets")
        owner = owners(pg_state_url)["broken"]
        victim, survivor = (a, b) if a.proc is not None and f"/{a.proc.pid}/" in owner else (b, a)
        assert survivor.proc is not None and f"/{survivor.proc.pid}/" not in owner
        log = survivor.dir / f"run-{survivor.starts}.log"
        failures_before = log.read_text(errors="replace").count("reconcile failed")
        victim.kill()
        wait_until(lambda: f"/{survivor.proc.pid}/" in owners(pg_state_url).get("broken", ""), 4 * TTL,  # type: ignore[union-attr]
                   "the survivor taking the failing target over")
        # the survivor reconciles it, still failing, several times (retries every second or less)
        wait_until(lambda: log.read_text(errors="replace").count("reconcile failed") >= failures_before + 3, 30,
                   "the survivor's own failed reconciles")
        time.sleep(1.0)  # a repeated alert would be on its way
        assert len(notified(receiver, "failed", "broken")) == 1, "the takeover repeated the alert"
        blocker.unlink()  # the target heals
        wait_until(lambda: notified(receiver, "recovered", "broken"), 30, "the recovery message")
        wait_until(lambda: (live / "blocker" / "dest" / "value.txt").is_file(), 10, "the healed target applied")
        time.sleep(2.0)
    finally:
        a.finish()
        b.finish()
    assert len(notified(receiver, "failed", "broken")) == 1
    assert len(notified(receiver, "recovered", "broken")) == 1
