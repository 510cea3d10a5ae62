"""``context.memory``: a driver's durable key-value memory in the state store, written in the same
transaction as what the core records, migrated from the files drivers kept before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from setpoint.api import TargetMemory
from setpoint.engine import record
from setpoint.secrets import Secret
from setpoint.testing import FakePlugin, GitRepo

from helpers import fake_engine, resources_yaml, web


def remember_in(engine: Any, method: str, key: str) -> None:
    """Make the driver remember ``key`` whenever ``method`` runs."""
    driver = engine.runners["app"].driver
    original = getattr(driver, method)

    def wrapped(*args: Any) -> Any:
        driver.context.memory.set(key, {"at": method})
        return original(*args)

    setattr(driver, method, wrapped)


def test_memory_survives_a_restart(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    remember_in(engine, "apply", "applied")
    remember_in(engine, "health", "checked")
    assert engine.reconcile("app").error is None
    engine.close()
    memory = fake_engine(tmp_path, git_repo, fake_plugin).runners["app"].driver.context.memory
    assert memory.get("applied") == {"at": "apply"} and memory.get("checked") == {"at": "health"}
    assert memory.get("never", "default") == "default"


def test_memory_is_durable_only_with_the_status_write(tmp_path: Path, git_repo: GitRepo,
                                                      fake_plugin: FakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    engine.reconcile("app")
    remember_in(engine, "health", "checked")  # remembered after the apply, before the status write

    def crash(*args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine.store, "save_status", crash)
    monkeypatch.setattr(record, "STATUS_REFRESH", 0.0)  # the status must be written this run
    with pytest.raises(RuntimeError):
        engine.reconcile("app")
    assert "checked" not in engine.store.memory("app"), "the memory write rolled back with the status write"
    monkeypatch.undo()
    engine.reconcile("app")
    assert json.loads(engine.store.memory("app")["checked"]) == {"at": "health"}
    engine.close()


def test_memory_after_an_apply_commits_with_the_inventory(tmp_path: Path, git_repo: GitRepo,
                                                          fake_plugin: FakePlugin,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    remember_in(engine, "apply", "applied")

    def crash(*args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine.store, "update_inventory", crash)
    # a result that cannot be recorded fails the run at the record stage (issue 14 item 9), never "done"
    out = engine.reconcile("app")
    assert out.error_stage == "record" and "disk full" in (out.error or "")
    assert engine.store.memory("app") == {} and engine.store.inventory("app") == {}
    engine.close()
    assert fake_engine(tmp_path, git_repo, fake_plugin).store.memory("app") == {}, "not written at shutdown either"


def test_memory_refuses_secrets_and_non_json() -> None:
    memory = TargetMemory()
    with pytest.raises(TypeError, match="only JSON"):
        memory.set("token", Secret("hunter2"))
    with pytest.raises(TypeError, match="only JSON"):
        memory.set("when", {1, 2})
    value = {"a": [1]}
    memory.set("k", value)
    memory.get("k")["a"].append(2)
    assert memory.get("k") == {"a": [1]}, "get returns a copy"
    memory.delete("k")
    assert "k" not in memory


def test_an_old_json_file_is_adopted_once(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    context = engine.runners["app"].driver.context
    old = context.state_dir / "applied.json"
    old.write_text(json.dumps({"Deployment/web": "abc"}))
    assert context.memory.adopt_file("applied", old)
    assert not old.exists() and json.loads(engine.store.memory("app")["applied"]) == {"Deployment/web": "abc"}
    # a file that reappears (a crash between store and unlink) never overwrites the stored value
    old.write_text(json.dumps({"stale": "x"}))
    context.memory.adopt_file("applied", old)
    assert not old.exists() and context.memory.get("applied") == {"Deployment/web": "abc"}
    broken = context.state_dir / "broken.json"
    broken.write_text("{not json")
    assert not context.memory.adopt_file("broken", broken) and broken.exists()
    engine.close()
