"""Every hook is documented with its arguments in docs/writing-plugins.md and exercised here."""

from __future__ import annotations

import inspect
from pathlib import Path

from setpoint import hookimpl, hookspecs
from setpoint.api import Outcome, SyncStatus
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import fake_engine, resources_yaml, web

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "writing-plugins.md").read_text()
SPECS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("setpoint_")]


def test_every_hook_is_documented_with_its_signature() -> None:
    assert len(SPECS) >= 5
    for name in SPECS:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"### `{name}({args})`" in DOCS, f"{name}({args}) is not documented in docs/writing-plugins.md"


def test_every_hook_has_a_test() -> None:
    here = Path(__file__).parent
    tests = "".join(p.read_text() for p in here.parent.rglob("test_*.py"))
    for name in SPECS:
        assert f"def {name}" in tests or f"def test_hook_{name}" in tests, f"no test implements {name}"


class Recorder:
    __name__ = "recorder"

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.events: list[tuple[str, str | None, dict]] = []

    @hookimpl
    def setpoint_reconcile_finished(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    @hookimpl
    def setpoint_event(self, name, target, details):  # type: ignore[no-untyped-def]
        self.events.append((name, target.name if target else None, details))


def test_hook_setpoint_reconcile_finished_and_setpoint_event(tmp_path: Path, git_repo: GitRepo,
                                                            fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    recorder = Recorder()
    engine = make_engine(write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}]),
                         fake_plugin, recorder)
    engine.reconcile("app")
    engine.reconcile("app", dry_run=True)
    fake_plugin.cluster("app").fail_next("observe")
    engine.reconcile("app")
    assert [(o.sync, o.error_stage) for o in recorder.outcomes] == [(SyncStatus.SYNCED, None),
                                                                  (SyncStatus.SYNCED, "observe")], "dry runs are silent"
    assert recorder.outcomes[0].actions[0]["action"] == "apply"
    engine.pause("app", "maintenance", "ops", 60)
    engine.resume("app", "ops")
    names = [e[0] for e in recorder.events]
    assert "source_fetched" in names and names[-2:] == ["paused", "resumed"]
    assert recorder.events[-2][2]["reason"] == "maintenance"


def test_a_failing_observer_never_breaks_the_loop(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    class Broken:
        __name__ = "broken-observer"

        @hookimpl
        def setpoint_reconcile_finished(self, outcome: Outcome) -> None:
            raise RuntimeError("observer bug")

    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    engine = make_engine(write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}]),
                         fake_plugin, Broken())
    assert engine.reconcile("app").sync == SyncStatus.SYNCED


def test_hook_setpoint_register_target_kinds_and_decryptors_shape(tmp_path: Path, git_repo: GitRepo) -> None:
    """Registration hooks: built-ins use them too (files), plugins' kinds are keyed by `kind`."""
    plugin = FakePlugin()
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    engine = fake_engine(tmp_path, git_repo, plugin)
    assert {"files", "fake"} <= set(engine.registry.kinds)
    files = next(p for p in engine.registry.plugins if p.name == "files")
    assert files.builtin and "setpoint_register_target_kinds" in files.hooks


def test_hook_setpoint_check_health(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    from setpoint.api import Health, HealthStatus

    class DatabaseHealth:
        __name__ = "db-health"

        @hookimpl
        def setpoint_check_health(self, target, resource):  # type: ignore[no-untyped-def]
            if resource.kind == "Database":
                return Health(HealthStatus.DEGRADED, "replication lag")
            return None

    git_repo.commit({"app/web.yaml": resources_yaml(web(), {"kind": "Database", "name": "main"})})
    engine = make_engine(write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}]),
                         fake_plugin, DatabaseHealth())
    assert engine.reconcile("app").health == HealthStatus.DEGRADED
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "drop the database")
    engine.close()
    engine = make_engine(write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}]),
                         fake_plugin, DatabaseHealth())
    assert engine.reconcile("app").health == HealthStatus.HEALTHY
