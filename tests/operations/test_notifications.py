"""Notifications over real HTTP to a local receiver: a target failing three times alerts once
(threshold 3), stays quiet while failing, sends one recovery message; one digest per commit across
targets; drift and pause messages once; a canary secret and the webhook URLs never appear in any
message or metric. The policy's rules are also checked directly, without I/O."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opshelpers import CANARY, CanaryPlugin, FakeLoops, Receiver, notify_plugin, serving, wait_for

from setpoint import hookimpl
from setpoint.api import HealthStatus, Notification, Notifier, Outcome, Revision, SyncStatus, TargetInfo
from setpoint.builtin.notify.policy import NoisePolicy
from setpoint.errors import TemporaryError
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

SIGNING = "notify-signing-key-77"


def manifests(image: str, config: str | None = None) -> str:
    item: dict[str, Any] = {"kind": "Deployment", "name": "web", "replicas": 2, "image": image}
    if config is None:
        return yaml.safe_dump([item])
    return "CANARY-ENC\n" + yaml.safe_dump([{**item, "config": config}])


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.close()


def events(receiver: Receiver) -> list[str]:
    return [r.json["event"] for r in receiver.at("/json/hook-T0KEN")]


def test_threshold_recovery_digest_drift_and_no_secret(tmp_path: Path, git_repo: GitRepo, receiver: Receiver,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    slack_url = receiver.url("/slack/services/T000/B000/XXXX-sl4ck-t0ken")
    (tmp_path / "slack.url").write_text(slack_url + "\n")
    monkeypatch.setenv("TEST_JSON_HOOK_URL", receiver.url("/json/hook-T0KEN"))
    monkeypatch.setenv("TEST_SIGNING", SIGNING)
    git_repo.commit({"app/web.yaml": manifests("web:1", CANARY), "db/db.yaml": yaml.safe_dump(
        [{"kind": "StatefulSet", "name": "db", "replicas": 1}])}, "Initial deploy", author="Alice <alice@example.com>")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "app", "kind": "fake", "path": "app"}, {"name": "db", "kind": "fake", "path": "db"}],
        server={"listen": "127.0.0.1:0"},
        notifications={"failure_threshold": 3, "digest": {"window": "0.3s"}, "notifiers": [
            {"name": "chat", "kind": "slack", "url_file": "slack.url", "slack": {"username": "setpoint"}},
            {"name": "ops-hook", "kind": "webhook", "url_env": "TEST_JSON_HOOK_URL",
             "webhook": {"signing_secret_env": "TEST_SIGNING"}}]})
    plugin = FakePlugin()
    engine = make_engine(config, plugin, CanaryPlugin())
    cluster = plugin.cluster("app")
    with serving(engine, FakeLoops()) as base:
        dispatcher = notify_plugin(engine).dispatcher

        def settle() -> None:
            assert dispatcher.drain(10)

        # one commit deployed to two targets: one digest naming both
        engine.sync()
        wait_for(lambda: "digest" in events(receiver))
        digest = receiver.at("/json/hook-T0KEN")[0].json
        assert digest["targets"] == {"app": "deployed", "db": "deployed"}
        assert "Initial deploy" in digest["text"] and "Alice" in digest["text"]

        # three failures in a row at a new revision: one alert, on the third
        git_repo.commit({"app/web.yaml": manifests("web:2", CANARY)}, "Web 2")
        for attempt in range(1, 6):
            cluster.fail_next("apply", TemporaryError(f"backend refused password {CANARY} (attempt {attempt})"))
            assert engine.reconcile("app").failed
            settle()
            assert events(receiver).count("failed") == (0 if attempt < 3 else 1), attempt
        alert = next(r.json for r in receiver.at("/json/hook-T0KEN") if r.json["event"] == "failed")
        assert alert["target"] == "app" and alert["fields"]["stage"] == "apply" and alert["fields"]["failures"] == "3"
        assert "<secret>" in alert["text"], "the error is shown, with the secret value scrubbed"

        # it heals: one recovery message, and the commit's digest
        assert not engine.reconcile("app").failed
        wait_for(lambda: events(receiver).count("digest") == 2)
        engine.reconcile("app")
        settle()
        assert events(receiver).count("recovered") == 1 and events(receiver).count("failed") == 1

        # drift repaired: one message per (target, revision, event), however often it happens
        for replicas in (5, 7):
            cluster.manual_change("Deployment/web", replicas=replicas)
            engine.reconcile("app")
            settle()
        assert events(receiver).count("drift_repaired") == 1

        # pause and resume are announced
        engine.pause("app", "database migration", "alice@ops", None)
        engine.resume("app", "alice@ops")
        settle()
        assert events(receiver) == ["digest", "failed", "recovered", "digest", "drift_repaired", "paused", "resumed"]

        metrics = httpx.get(f"{base}/metrics").text

    # every JSON message was signed; every message also went to the chat webhook
    json_messages = receiver.at("/json/hook-T0KEN")
    for r in json_messages:
        expected = "sha256=" + hmac.new(SIGNING.encode(), r.headers["x-setpoint-timestamp"].encode() + b"." + r.body,
                                        hashlib.sha256).hexdigest()
        assert hmac.compare_digest(r.headers["x-setpoint-signature"], expected)
    slack = receiver.at("/slack/services/T000/B000/XXXX-sl4ck-t0ken")
    assert len(slack) == len(json_messages) == 7
    assert all(set(r.json) == {"text", "username"} for r in slack)
    assert "sl4ck-t0ken" not in metrics and 'kind="slack",result="sent"} 7.0' in metrics

    # the canary and the credentials appear in no message and no metric
    for text in [r.body.decode() for r in receiver.requests] + [metrics]:
        assert CANARY not in text
        assert "T0KEN" not in text and "sl4ck" not in text and SIGNING not in text
    engine.close()


def test_a_failing_receiver_is_retried(tmp_path: Path, git_repo: GitRepo, receiver: Receiver,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK", receiver.url("/hook"))
    git_repo.commit({"app/web.yaml": manifests("web:1")}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"enabled": False},
                          notifications={"digest": {"window": 0}, "notifiers": [
                              {"name": "hook", "kind": "webhook", "url_env": "TEST_HOOK"}]})
    engine = make_engine(config, FakePlugin())
    from setpoint.server.runtime import start_operations

    ops = start_operations(engine, None)
    notify_plugin(engine).dispatcher.backoff = 0.01
    receiver.fail_next = 2
    engine.reconcile("app")
    wait_for(lambda: receiver.at("/hook"))
    ops.stop()
    assert [r.json["event"] for r in receiver.at("/hook")] == ["digest"]
    engine.close()


def test_github_commit_statuses(tmp_path: Path, git_repo: GitRepo, receiver: Receiver,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each target's result as a commit status: success from the digest, failure after the
    threshold, success again on recovery, pending while a plan is held; the token never leaks."""
    token = "ghp_T0KEN-for-statuses-1234"
    monkeypatch.setenv("TEST_GH_TOKEN", token)
    git_repo.commit({"app/web.yaml": manifests("web:1"), "db/db.yaml": yaml.safe_dump(
        [{"kind": "StatefulSet", "name": "db", "replicas": 1}])}, "v1")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "app", "kind": "fake", "path": "app", "prune": True, "hold_deletions": True},
        {"name": "db", "kind": "fake", "path": "db"}],
        server={"enabled": False},
        # a digest window both targets' deploys fit in, even on a loaded machine (with 0 the second
        # target could finish after the first digest was sent, and have no status from it)
        notifications={"failure_threshold": 2, "digest": {"window": 2}, "notifiers": [
            {"name": "commits", "kind": "github_status", "github_status": {
                "repository": "acme/platform-config", "token_env": "TEST_GH_TOKEN",
                "api_url": receiver.url("/api/v3"), "target_url": "https://setpoint.example.com/status"}}]})
    plugin = FakePlugin()
    engine = make_engine(config, plugin)
    from setpoint.server.runtime import start_operations

    ops = start_operations(engine, None)
    dispatcher = notify_plugin(engine).dispatcher

    def statuses(sha: str) -> list[tuple[str, str, str]]:
        assert dispatcher.drain(10)
        return [(r.json["context"], r.json["state"], r.json["description"])
                for r in receiver.at(f"/api/v3/repos/acme/platform-config/statuses/{sha}")]

    v1 = git_repo.head()
    engine.sync()
    wait_for(lambda: len(statuses(v1)) == 2, 30)
    assert sorted(statuses(v1)) == [("setpoint/app", "success", "deployed"), ("setpoint/db", "success", "deployed")]
    sent = receiver.at(f"/api/v3/repos/acme/platform-config/statuses/{v1}")[0]
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert sent.json["target_url"] == "https://setpoint.example.com/status"

    git_repo.commit({"app/web.yaml": manifests("web:2")}, "v2")
    v2 = git_repo.head()
    cluster = plugin.cluster("app")
    for _ in range(2):
        cluster.fail_next("apply", TemporaryError("backend unavailable"))
        assert engine.reconcile("app").failed
    assert statuses(v2) == [("setpoint/app", "failure", "reconcile failing at the apply stage")]
    assert not engine.reconcile("app").failed
    wait_for(lambda: len(statuses(v2)) == 3, 30)
    assert [s[1] for s in statuses(v2)] == ["failure", "success", "success"]  # recovered, then the digest

    git_repo.commit({"app/web.yaml": None, "app/other.yaml": manifests("web:2").replace("web", "api")}, "v3")
    v3 = git_repo.head()
    out = engine.reconcile("app")
    assert out.held_plan_id
    assert statuses(v3) == [("setpoint/app", "pending", f"plan {out.held_plan_id} waits for approval")]
    ops.stop()
    engine.close()
    for r in receiver.requests:
        assert token not in r.body.decode()


def test_unknown_notifier_kind_and_missing_url_are_config_errors(tmp_path: Path, git_repo: GitRepo) -> None:
    from setpoint.errors import ConfigError
    from setpoint.server.runtime import start_operations

    git_repo.commit({"app/web.yaml": manifests("web:1")}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"enabled": False}, notifications={"notifiers": [
                              {"name": "pager", "kind": "carrier_pigeon", "url_env": "NOPE"},
                              {"name": "chat", "kind": "slack", "url_env": "SETPOINT_TEST_UNSET_VARIABLE"},
                              {"name": "commits", "kind": "github_status",
                               "github_status": {"repository": "acme/cfg"}}]})
    engine = make_engine(config, FakePlugin())
    with pytest.raises(ConfigError) as info:
        start_operations(engine, None)
    assert "no notifier kind 'carrier_pigeon'" in str(info.value) and "SETPOINT_TEST_UNSET_VARIABLE is not set" in str(info.value)
    assert "give exactly one of token_file or token_env" in str(info.value)
    engine.close()


# --------------------------------------------------------------------------- the policy alone


INFO = TargetInfo("app", "fake", "repo", "app")
REV1 = Revision("a" * 40, "Alice", "alice@example.com", message="First")
REV2 = Revision("b" * 40, "Bob", "bob@example.com", message="Second")


def outcome(target: TargetInfo = INFO, revision: Revision = REV1, error: str | None = None,
            actions: tuple[dict[str, Any], ...] = ()) -> Outcome:
    return Outcome(target, "poll", revision, SyncStatus.SYNCED if error is None else SyncStatus.OUT_OF_SYNC,
                   HealthStatus.HEALTHY, actions, error_stage="apply" if error else None, error=error)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_policy_alerts_again_for_a_new_streak_and_a_new_revision() -> None:
    policy = NoisePolicy(threshold=2, digest=False)
    sent = [n.event for _ in range(4) for n in policy.outcome(outcome(error="boom"))]
    assert sent == ["failed"]
    sent = [n.event for n in policy.outcome(outcome(revision=REV2, error="boom"))]
    assert sent == ["failed"], "the streak goes on at a new revision: that is news"
    assert [n.event for n in policy.outcome(outcome(revision=REV2))] == ["recovered"]
    assert [n.event for n in policy.outcome(outcome(revision=REV2))] == []
    sent = [n.event for _ in range(2) for n in policy.outcome(outcome(revision=REV2, error="again"))]
    assert sent == ["failed"], "a new failure streak after recovery alerts again, even at the same revision"


def test_policy_quiet_failures_never_send_a_recovery() -> None:
    policy = NoisePolicy(threshold=3, digest=False)
    assert policy.outcome(outcome(error="blip")) == []
    assert policy.outcome(outcome()) == []


def test_policy_digest_per_commit_across_targets() -> None:
    clock = Clock()
    policy = NoisePolicy(threshold=3, digest=True, digest_window=30, clock=clock)
    other = TargetInfo("db", "fake", "repo", "db")
    apply_ok = ({"action": "apply", "count": 1, "result": "ok"},)
    assert policy.outcome(outcome(actions=apply_ok)) == []
    assert policy.outcome(outcome(target=other, actions=apply_ok)) == []
    assert policy.due_digests() == []
    clock.now += 31
    (digest,) = policy.due_digests()
    assert digest.event == "digest" and digest.targets == {"app": "deployed", "db": "deployed"}
    assert "First" in digest.text and digest.revision == REV1.sha
    assert policy.due_digests(force=True) == []


def test_policy_repeat_after() -> None:
    clock = Clock()
    policy = NoisePolicy(threshold=1, repeat_after=3600, digest=False, clock=clock)
    drift = ({"action": "drift-detected", "key": "Deployment/web"},)
    assert [n.event for n in policy.outcome(outcome(actions=drift))] == ["drift_detected"]
    assert policy.outcome(outcome(actions=drift)) == []
    clock.now += 3601
    assert [n.event for n in policy.outcome(outcome(actions=drift))] == ["drift_detected"]


class Pager(Notifier):
    """A notifier kind from an external plugin: no URL, keeps what it is sent."""

    kind = "pager"
    needs_url = False
    sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        Pager.sent.append(notification)


class PagerPlugin:
    __name__ = "pager"

    @hookimpl
    def setpoint_register_notifiers(self, register: Callable[[type[Notifier]], None]) -> None:
        register(Pager)


def test_hook_setpoint_register_notifiers(tmp_path: Path, git_repo: GitRepo) -> None:
    from setpoint.server.runtime import start_operations

    git_repo.commit({"app/web.yaml": manifests("web:1")}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"enabled": False},
                          notifications={"failure_threshold": 1, "notifiers": [
                              {"name": "oncall", "kind": "pager", "events": ["failed", "recovered"]}]})
    plugin = FakePlugin()
    engine = make_engine(config, plugin, PagerPlugin())
    ops = start_operations(engine, None)
    plugin.cluster("app").fail_next("render", TemporaryError("render backend down"))
    engine.reconcile("app")
    engine.reconcile("app")
    assert notify_plugin(engine).dispatcher.drain(10)
    ops.stop()
    assert [(n.event, n.target) for n in Pager.sent] == [("failed", "app"), ("recovered", "app")]
    assert Pager.sent[0].fields["stage"] == "render"
    engine.close()


def test_policy_carries_a_failure_streak_over_a_restart() -> None:
    # the previous process alerted at three failures; the new one neither repeats it nor forgets to recover
    policy = NoisePolicy(threshold=3, digest=False)
    policy.resume_from("app", 4, REV1.sha)
    assert policy.outcome(outcome(error="still broken")) == []
    assert [n.event for n in policy.outcome(outcome())] == ["recovered"]
    quiet = NoisePolicy(threshold=3, digest=False)
    quiet.resume_from("app", 1, REV1.sha)
    assert quiet.outcome(outcome(error="x")) == []
    assert [n.event for n in quiet.outcome(outcome(error="x"))] == ["failed"]


def test_policy_memory_survives_a_restart_including_what_it_forgot() -> None:
    stored: list[list[tuple[str, str, str]]] = [[]]

    def remember(keys: list[tuple[str, str, str]]) -> None:
        stored[0] = keys

    first = NoisePolicy(threshold=1, digest=False, remember=remember)
    drifted = ({"action": "drift-detected", "key": "Deployment/web"},)
    assert [n.event for n in first.outcome(outcome(actions=drifted))] == ["drift_detected"]
    assert [n.event for n in first.outcome(outcome(error="down"))] == ["failed"]
    assert [n.event for n in first.outcome(outcome())] == ["recovered"]  # forgets "failed" for app

    second = NoisePolicy(threshold=1, digest=False)
    second.restore(stored[0])
    assert second.outcome(outcome(actions=drifted)) == [], "sent before the restart"
    assert [n.event for n in second.outcome(outcome(error="down again"))] == ["failed"], "a new streak alerts"


def test_a_restarted_process_does_not_resend(tmp_path: Path, git_repo: GitRepo, receiver: Receiver,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from setpoint.server.runtime import start_operations

    monkeypatch.setenv("TEST_HOOK", receiver.url("/hook"))
    git_repo.commit({"app/web.yaml": manifests("web:1")}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app",
                                                      "self_heal": True}],
                          server={"enabled": False},
                          notifications={"digest": {"window": 0}, "notifiers": [
                              {"name": "hook", "kind": "webhook", "url_env": "TEST_HOOK"}]})
    plugin = FakePlugin()
    for _process in range(2):
        engine = make_engine(config, plugin)
        ops = start_operations(engine, None)
        engine.reconcile("app")
        plugin.cluster("app").manual_change("Deployment/web", replicas=9)
        engine.reconcile("app")
        assert notify_plugin(engine).dispatcher.drain(10)
        ops.stop()
        engine.close()
    # each process reverted a drift at the same revision: one message in all
    assert sorted(r.json["event"] for r in receiver.at("/hook")) == ["digest", "drift_repaired"]


def test_policies_sharing_one_state_behave_as_one(tmp_path: Path) -> None:
    """Two processes on one state (a takeover between replicas, in small): the memory in the state store
    is theirs together, so an alert is not repeated, a recovery is sent once, and a commit's digest
    names both processes' targets and is sent once."""
    from setpoint.builtin.notify.shared import DUTY, SharedMemory
    from setpoint.state import StateStore

    stores = [StateStore(tmp_path / "state.db") for _ in range(2)]
    a, b = (NoisePolicy(threshold=1, digest_window=0, memory=SharedMemory(s, poll=0)) for s in stores)
    assert [n.event for n in a.outcome(outcome(error="down"))] == ["failed"]
    assert b.outcome(outcome(error="still down")) == [], "b took the target over: a already alerted"
    assert [n.event for n in b.outcome(outcome())] == ["recovered"], "b announces the recovery a's alert asked for"
    assert a.outcome(outcome()) == [], "once"
    other = TargetInfo("db", "fake", "repo", "db")
    apply_ok = ({"action": "apply", "count": 1, "result": "ok"},)
    assert a.outcome(outcome(revision=REV2, actions=apply_ok)) == []
    assert b.outcome(outcome(target=other, revision=REV2, actions=apply_ok)) == []
    (digest,) = a.due_digests() + b.due_digests()
    assert digest.targets == {"app": "deployed", "db": "deployed"} and "Second" in digest.text and "Bob" in digest.text

    class NotHolding:
        def holds(self, name: str) -> bool:
            assert name == DUTY
            return False

        def check_fence(self, db: Any, target: str) -> dict[str, Any]:
            raise AssertionError("never asked without the duty")
    c = NoisePolicy(threshold=1, digest_window=0, memory=SharedMemory(stores[0], NotHolding(), poll=0))
    assert c.outcome(outcome(revision=REV1, actions=apply_ok)) == []
    assert c.due_digests() == [] and c.due_digests(force=True) == [], "only the duty's holder sends digests"
    assert [d.revision for d in a.due_digests()] == [REV1.sha]
    for s in stores:
        s.close()
