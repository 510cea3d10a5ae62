"""context.shared: what the drivers of one engine share lives exactly as long as that engine;
context.instance: one stable id per state store."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from setpoint.api import SharedScope
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import resources_yaml


class Watch:
    """Stands for a shared watch: a thread that runs until closed."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.stop.wait, name="test-shared-watch", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)


def _engine(tmp_path: Path, git_repo: GitRepo, plugin: FakePlugin):  # type: ignore[no-untyped-def]
    git_repo.commit({"a/r.yaml": resources_yaml({"kind": "Thing", "name": "a"}),
                     "b/r.yaml": resources_yaml({"kind": "Thing", "name": "b"})})
    config = write_config(tmp_path, git_repo.path, [{"name": "a", "kind": "fake", "path": "a"},
                                                    {"name": "b", "kind": "fake", "path": "b"}])
    return make_engine(config, plugin)


def test_the_drivers_of_one_engine_share_one_scope_closed_with_it(tmp_path: Path, git_repo: GitRepo,
                                                                   fake_plugin: FakePlugin) -> None:
    engine = _engine(tmp_path, git_repo, fake_plugin)
    a, b = (engine.runners[n].driver.context for n in ("a", "b"))
    assert a.shared is b.shared is engine.shared
    watch = a.shared.get(("fake", "watch"), Watch)
    assert b.shared.get(("fake", "watch"), Watch) is watch, "the second driver finds the first one's entry"
    engine.close()
    assert not watch.thread.is_alive(), "closing the engine closed what its drivers shared"
    assert not [t for t in threading.enumerate() if t.name == "test-shared-watch"]
    with pytest.raises(RuntimeError, match="closed"):
        a.shared.get(("fake", "watch"), Watch)  # a driver of a closed engine cannot start one again

    again = _engine(tmp_path, git_repo, fake_plugin)
    assert again.shared is not engine.shared and len(again.shared) == 0, "a new engine starts fresh"
    fresh = again.shared.get(("fake", "watch"), Watch)
    assert fresh is not watch and fresh.thread.is_alive()
    again.close()
    assert not fresh.thread.is_alive()


def test_close_goes_on_past_an_entry_that_fails() -> None:
    scope = SharedScope()

    class Broken:
        def close(self) -> None:
            raise OSError("boom")

    watch = scope.get("w", Watch)
    scope.get("b", Broken)
    scope.get("plain", object)  # no close(): just forgotten
    scope.close()
    assert not watch.thread.is_alive() and len(scope) == 0 and scope.closed


def test_discard_forgets_only_the_entry_it_names() -> None:
    scope = SharedScope()
    first = scope.get("k", object)
    scope.discard("k", object())  # another object: kept
    assert scope.get("k", object) is first
    scope.discard("k", first)
    assert scope.get("k", object) is not first


def test_the_instance_id_is_kept_by_the_state_store(tmp_path: Path, git_repo: GitRepo,
                                                    fake_plugin: FakePlugin) -> None:
    engine = _engine(tmp_path, git_repo, fake_plugin)
    instance = engine.runners["a"].driver.context.instance
    assert len(instance) == 12 and int(instance, 16) >= 0, "short and a valid label value"
    assert engine.runners["b"].driver.context.instance == instance
    engine.close()
    again = _engine(tmp_path, git_repo, fake_plugin)
    assert again.instance_id == instance, "a restart reads the same id"
    again.close()
    (tmp_path / "other").mkdir()
    other = make_engine(write_config(tmp_path / "other", git_repo.path, [{"name": "a", "kind": "fake", "path": "a"}]),
                        fake_plugin)
    assert other.instance_id != instance, "another state store, another installation"
    other.close()
