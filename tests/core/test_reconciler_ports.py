"""The reconciler needs only its ports (a Protocol the Engine implements), so a test can stand in
for the engine; what a run decides comes back in its RunResult, not on shared objects."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from setpoint.api import HealthStatus, SyncStatus
from setpoint.engine.reconcile import Reconciler
from setpoint.errors import SourceError, TemporaryError
from setpoint.testing import FakePlugin, GitRepo

from helpers import fake_engine, resources_yaml, web


class StandIn:
    """The engine's ports with two answers replaced."""

    def __init__(self, engine: Any, *, head_error: Exception | None = None, waiting: dict[str, str] | None = None) -> None:
        self._engine, self._head_error, self._waiting = engine, head_error, waiting or {}
        self.config, self.registry, self.store = engine.config, engine.registry, engine.store
        self.outputs, self.sources = engine.outputs, engine.sources

    def current_head(self, source_name: str, *, poll: bool) -> str:
        if self._head_error is not None:
            raise self._head_error
        return self._engine.current_head(source_name, poll=poll)

    def unmet_dependencies(self, runner: Any, head: str) -> dict[str, str]:
        return self._waiting

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def test_a_failed_source_stage_comes_back_in_the_result(tmp_path: Path, git_repo: GitRepo,
                                                        fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    ports = StandIn(engine, head_error=TemporaryError("git host busy", delay=7))
    result = Reconciler(ports, engine.runners["app"]).run("test")
    assert result.outcome.error_stage == "source" and result.plan is None
    assert result.retry_after == 7 and not result.give_up
    assert engine.store.status("app").last_error, "the failure is recorded like any other"
    result = Reconciler(StandIn(engine, head_error=SourceError("no such branch")), engine.runners["app"]).run("test")
    assert result.retry_after is None and not result.give_up
    engine.close()


def test_waiting_for_a_dependency_asks_to_run_again_soon(tmp_path: Path, git_repo: GitRepo,
                                                          fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    before = time.time()
    result = Reconciler(StandIn(engine, waiting={"db": "not yet Synced and Healthy"}), engine.runners["app"]).run("test")
    assert result.outcome.health == HealthStatus.PROGRESSING and result.plan is None
    assert result.outcome.sync == SyncStatus.OUT_OF_SYNC
    assert [a["action"] for a in result.outcome.actions] == ["wait"]
    assert "db: not yet Synced and Healthy" in result.outcome.actions[0]["reason"]
    assert result.next_run_at is not None and before < result.next_run_at <= time.time() + 5
    assert fake_plugin.cluster("app").writes == 0
    engine.close()
