"""`Engine.sync` over many targets: several at a time (defaults.concurrency), dependencies first,
one target's failure never stopping the others; and a pass that changed nothing writes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest

from setpoint import hookimpl
from setpoint.api import Desired, Live, SyncStatus, TargetDriver
from setpoint.errors import SetpointError
from setpoint.testing import FakePlugin, FakeTarget, GitRepo, make_engine, write_config

from helpers import resources_yaml


class SlowPlugin(FakePlugin):
    """The fake kind, whose observe takes ``delay`` seconds and records when each target ran;
    ``local_work``: the kind says its reconciles only touch local files."""

    def __init__(self, delay: float, local_work: bool = False) -> None:
        super().__init__()
        self.delay = delay
        self.local_work = local_work
        self.events: list[tuple[str, str, float]] = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    @hookimpl
    def setpoint_register_target_kinds(self, register: Callable[[type[TargetDriver]], None]) -> None:
        plugin = self

        class SlowTarget(FakeTarget):
            def observe(self, desired: Desired, managed: Collection[str]) -> Live:
                with plugin.lock:
                    plugin.running += 1
                    plugin.most = max(plugin.most, plugin.running)
                    plugin.events.append((self.spec.name, "start", time.monotonic()))
                try:
                    time.sleep(plugin.delay)
                    return super().observe(desired, managed)
                finally:
                    with plugin.lock:
                        plugin.running -= 1
                        plugin.events.append((self.spec.name, "end", time.monotonic()))

        register(type("BoundSlowTarget", (SlowTarget,), {"plugin": self, "local_work": self.local_work}))

    def first(self, name: str, what: str) -> float:
        return min(t for n, w, t in self.events if n == name and w == what)

    def last(self, name: str, what: str) -> float:
        return max(t for n, w, t in self.events if n == name and w == what)


def _targets(git_repo: GitRepo, names: list[str], **deps: list[str]) -> list[dict[str, Any]]:
    git_repo.commit({f"{n}/r.yaml": resources_yaml({"kind": "Thing", "name": n}) for n in names})
    return [{"name": n, "kind": "fake", "path": n, **({"depends_on": deps[n]} if n in deps else {})} for n in names]


def test_sync_runs_targets_concurrently_up_to_the_setting(tmp_path: Path, git_repo: GitRepo) -> None:
    names = [f"t{i}" for i in range(8)]
    plugin = SlowPlugin(0.2)
    config = write_config(tmp_path, git_repo.path, _targets(git_repo, names), defaults={"concurrency": 4})
    engine = make_engine(config, plugin)
    started = time.monotonic()
    outcomes = engine.sync()
    took = time.monotonic() - started
    engine.close()
    assert [o.target.name for o in outcomes] == names, "outcomes in configuration order, whatever finished first"
    assert all(o.sync == SyncStatus.SYNCED for o in outcomes), [o.error for o in outcomes]
    assert plugin.most == 4, "never more than defaults.concurrency at a time, and that many"
    # 8 targets x 2 observes x 0.2 s = 3.2 s one by one; 4 at a time about 0.8 s
    assert took < 2.4, took


def test_concurrency_one_runs_them_one_by_one(tmp_path: Path, git_repo: GitRepo) -> None:
    plugin = SlowPlugin(0.01)
    config = write_config(tmp_path, git_repo.path, _targets(git_repo, ["a", "b", "c"]), defaults={"concurrency": 1})
    engine = make_engine(config, plugin)
    assert all(o.sync == SyncStatus.SYNCED for o in engine.sync())
    engine.close()
    assert plugin.most == 1


@pytest.mark.parametrize("state", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_a_no_op_pass_of_local_work_kinds_runs_one_by_one(tmp_path: Path, git_repo: GitRepo, state: str,
                                                       request: pytest.FixtureRequest) -> None:
    """Kinds whose reconciles only touch local files (files) gain nothing from threads once there is
    nothing to apply, on either state backend: a no-op pass runs them one by one. A pass that applies
    (the first) waits on fsyncs and commits and runs side by side, and so does one with a target not
    yet at the head."""
    names = [f"t{i}" for i in range(6)]
    plugin = SlowPlugin(0.2, local_work=True)  # long enough to overlap
    extra = {"state": request.getfixturevalue("pg_state_url")} if state == "postgresql" else {}
    config = write_config(tmp_path, git_repo.path, _targets(git_repo, names), defaults={"concurrency": 4}, **extra)
    engine = make_engine(config, plugin)
    assert all(o.sync == SyncStatus.SYNCED for o in engine.sync())
    assert plugin.most == 4, "the first pass applies: side by side"
    plugin.most = 0
    assert all(o.sync == SyncStatus.SYNCED for o in engine.sync())
    assert plugin.most == 1, "a no-op pass"
    git_repo.commit({"t0/r.yaml": resources_yaml({"kind": "Thing", "name": "t0", "v": 2})})
    plugin.most = 0
    assert all(o.sync == SyncStatus.SYNCED for o in engine.sync())
    assert plugin.most == 4, "a new head: the targets may have something to apply"
    engine.close()


def test_a_target_starts_only_after_its_dependencies_finished(tmp_path: Path, git_repo: GitRepo) -> None:
    # app -> db -> net, and a free-standing target that may run beside them
    names = ["app", "db", "net", "free"]
    plugin = SlowPlugin(0.15)
    config = write_config(tmp_path, git_repo.path, _targets(git_repo, names, app=["db"], db=["net"]),
                          defaults={"concurrency": 4})
    engine = make_engine(config, plugin)
    outcomes = engine.sync()
    engine.close()
    assert [o.target.name for o in outcomes] == ["net", "db", "app", "free"]
    assert all(o.sync == SyncStatus.SYNCED for o in outcomes), [o.error for o in outcomes]
    assert plugin.first("db", "start") >= plugin.last("net", "end")
    assert plugin.first("app", "start") >= plugin.last("db", "end")
    assert plugin.first("free", "start") < plugin.last("net", "end"), "an independent target does not wait"


def test_a_failing_target_does_not_stop_the_others(tmp_path: Path, git_repo: GitRepo) -> None:
    names = ["a", "b", "c", "d"]
    plugin = SlowPlugin(0.05)
    config = write_config(tmp_path, git_repo.path, _targets(git_repo, names, c=["b"]), defaults={"concurrency": 3})
    engine = make_engine(config, plugin)
    plugin.cluster("b").fail_next("render")
    outcomes = {o.target.name: o for o in engine.sync()}
    assert outcomes["b"].error_stage == "render"
    assert outcomes["a"].sync == outcomes["d"].sync == SyncStatus.SYNCED
    # c depends on b: it ran after b and found it not ready, so it waits and applies nothing
    assert plugin.first("c", "start") >= plugin.last("b", "end") if any(n == "c" for n, _, _ in plugin.events) else True
    assert outcomes["c"].sync != SyncStatus.SYNCED and "waiting for" in outcomes["c"].message
    assert "Thing/c" not in plugin.cluster("c").resources

    # an exception out of one reconcile (not a failed outcome): the others still run, then it is raised
    real = engine.run_target

    def run_target(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "a":
            raise SetpointError("target a is busy: another setpoint process is reconciling it")
        return real(name, *args, **kwargs)

    engine.run_target = run_target  # type: ignore[method-assign]
    before = len(plugin.events)
    with pytest.raises(SetpointError, match="target a is busy"):
        engine.sync()
    engine.close()
    ran = {n for n, _, _ in plugin.events[before:]}
    assert {"b", "c", "d"} <= ran


def _count_commits(engine: Any) -> list[int]:
    count = [0]
    db = engine.store.db
    real = db.commit

    def commit() -> None:
        count[0] += 1
        real()

    db.commit = commit
    return count


def test_a_pass_that_changes_nothing_commits_nothing(tmp_path: Path, git_repo: GitRepo,
                                                     fake_plugin: FakePlugin) -> None:
    names = ["a", "b", "c"]
    config = write_config(tmp_path, git_repo.path, _targets(git_repo, names))
    engine = make_engine(config, fake_plugin)
    commits = _count_commits(engine)
    assert all(o.sync == SyncStatus.SYNCED for o in engine.sync())
    assert commits[0] >= 3, "the first pass records its applies"
    commits[0] = 0
    outcomes = engine.sync()
    assert all(o.sync == SyncStatus.SYNCED and not o.actions for o in outcomes)
    assert commits[0] == 0, "a no-op pass writes no transaction"
    engine.close()

    # a new process (a one-shot `setpoint sync`) right after: the stored status is this one, nothing to write
    again = make_engine(config, fake_plugin)
    commits = _count_commits(again)
    assert all(o.sync == SyncStatus.SYNCED for o in again.sync())
    assert commits[0] == 0

    # something changed (drift reverted): that pass writes, and its status says so
    fake_plugin.cluster("b").manual_change("Thing/b", replicas=9)
    outcomes = {o.target.name: o for o in again.sync()}
    assert outcomes["b"].actions and commits[0] > 0
    commits[0] = 0
    assert all(not o.actions for o in again.sync()) and commits[0] == 0
    status = again.store.status("b")
    assert status is not None and status.last_trigger == "manual" and status.sync == SyncStatus.SYNCED
    again.close()


def test_a_quiet_target_still_refreshes_its_last_run_once_a_minute(tmp_path: Path, git_repo: GitRepo,
                                                                  fake_plugin: FakePlugin,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from setpoint.engine import record

    config = write_config(tmp_path, git_repo.path, _targets(git_repo, ["a"]))
    engine = make_engine(config, fake_plugin)
    engine.sync()
    first = engine.store.status("a").last_run
    monkeypatch.setattr(record, "STATUS_REFRESH", 0.0)
    engine.sync()
    assert engine.store.status("a").last_run > first, "the volatile fields are written again after the refresh time"
    engine.close()
