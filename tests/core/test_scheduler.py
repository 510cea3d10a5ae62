"""The scheduler schedules from what a reconcile returns: ``TemporaryError(delay)`` retries after
its delay, ``PermanentError`` waits for a new revision or a manual sync, other errors back off."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from setpoint.engine.scheduler import Scheduler
from setpoint.errors import PermanentError, TemporaryError
from setpoint.testing import FakePlugin, GitRepo, make_engine, wait_for, write_config

from helpers import resources_yaml, web


def engine_failing_with(tmp_path: Path, repo: GitRepo, plugin: FakePlugin, error: Exception,
                        backoff: float) -> tuple[Any, list[float]]:
    """An engine whose one target fails at render with ``error`` every time; returns the call times."""
    repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    config = write_config(tmp_path, repo.path, [{"name": "app", "kind": "fake", "path": "app", "interval": "1h"}],
                          defaults={"backoff": backoff, "max_backoff": backoff, "jitter": 0})
    engine = make_engine(config, plugin)
    calls: list[float] = []

    def render(tree: Any) -> Any:
        calls.append(time.monotonic())
        raise error

    engine.runners["app"].driver.render = render
    return engine, calls


@contextmanager
def running(engine: Any, calls: list[float]) -> Iterator[Scheduler]:
    """A running scheduler, past its start: the first pass and the pollers' first look at Git (which
    wakes the target once more) are over, and ``calls`` is emptied."""
    scheduler = Scheduler(engine, concurrency=1)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        scheduler.first_pass_done.wait(30)
        time.sleep(0.5)
        calls.clear()
        yield scheduler
    finally:
        scheduler.stop()
        thread.join(30)
        engine.close()


def test_temporary_error_retries_after_its_own_delay(tmp_path: Path, git_repo: GitRepo,
                                                     fake_plugin: FakePlugin) -> None:
    # the configured backoff is an hour: only the error's own delay explains quick retries
    engine, calls = engine_failing_with(tmp_path, git_repo, fake_plugin,
                                        TemporaryError("rate limited by the API", delay=0.2), backoff=3600)
    with running(engine, calls):
        wait_for(lambda: len(calls) >= 3, 20)
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), gaps


def test_permanent_error_waits_for_a_new_revision_or_a_manual_sync(tmp_path: Path, git_repo: GitRepo,
                                                                   fake_plugin: FakePlugin) -> None:
    # a backoff of 0.1 s would retry about ten times a second: a permanent error must not retry at all
    engine, calls = engine_failing_with(tmp_path, git_repo, fake_plugin,
                                        PermanentError("the manifest names an API that does not exist"), backoff=0.1)
    with running(engine, calls) as scheduler:
        time.sleep(1.5)
        assert calls == [], "a permanent error is not retried on a timer"
        scheduler.wake("app", "manual")
        wait_for(lambda: len(calls) >= 1, 20)
        git_repo.commit({"app/web.yaml": resources_yaml(web(replicas=3))}, "v2")
        wait_for(lambda: len(calls) >= 2, 20)  # the poller saw the new revision
        time.sleep(1.0)
        assert len(calls) == 2
        status = engine.store.status("app")
        assert status.last_error and status.error_stage == "render"


def test_other_errors_still_back_off_as_configured(tmp_path: Path, git_repo: GitRepo,
                                                   fake_plugin: FakePlugin) -> None:
    engine, calls = engine_failing_with(tmp_path, git_repo, fake_plugin, RuntimeError("boom"), backoff=0.1)
    with running(engine, calls):
        wait_for(lambda: len(calls) >= 3, 20)
