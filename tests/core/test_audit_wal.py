"""Issue 14 item 9: the audit is never lost. The intent of an apply is committed before the driver
runs and its result after; a process killed in between leaves an intent that the next run audits as
interrupted before reconciling again; an apply whose result cannot be recorded is never reported done."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import resources_yaml, web

CRASH = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from setpoint.testing import make_engine
    engine = make_engine(Path(sys.argv[1]))
    driver = engine.runners["host"].driver
    real_apply = driver.apply
    def apply(plan, desired):
        real_apply(plan, desired)  # the files are written...
        os._exit(9)                # ...and the process dies before the result is recorded
    driver.apply = apply
    engine.reconcile("host")
""")


def test_a_crash_between_intent_and_result_is_audited_as_interrupted(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({f"etc/f{i}.conf": f"{i}\n" for i in range(20)}, "twenty files")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "files": {"destination": str(live)}}])
    crashed = subprocess.run([sys.executable, "-c", CRASH, str(config)], capture_output=True, text=True)
    assert crashed.returncode == 9, crashed.stderr
    assert len(list(live.iterdir())) == 20, "the crash came after the files were written"

    engine = make_engine(config)
    out = engine.reconcile("host")
    assert out.error is None
    entries = engine.store.audit_entries(actions=("apply",))
    interrupted = [e for e in entries if e.result == "interrupted"]
    assert len(interrupted) == 1, [(e.action, e.result) for e in entries]
    assert len(interrupted[0].details["changes"]) == 20, "the interrupted apply names every change it intended"
    assert engine.store.apply_intent("host") is None
    # the next run finds nothing interrupted
    engine.reconcile("host")
    assert len([e for e in engine.store.audit_entries(actions=("apply",)) if e.result == "interrupted"]) == 1
    engine.close()


def test_an_apply_whose_result_cannot_be_recorded_is_not_reported_done(tmp_path: Path, git_repo: GitRepo,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    plugin = FakePlugin()
    engine = make_engine(write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}]),
                         plugin)
    store = engine.store

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "update_inventory", full_disk)
    with pytest.raises(OSError):  # not even the failure could be recorded: the run does not claim anything
        monkeypatch.setattr(store, "save_status", full_disk)
        engine.reconcile("app")
    monkeypatch.undo()
    assert store.status("app") is None or store.status("app").sync.value != "Synced"
    assert store.apply_intent("app") is not None, "the intent stays until a result is recorded"
    out = engine.reconcile("app")
    assert out.error is None and out.sync.value == "Synced"
    assert [e.result for e in store.audit_entries(actions=("apply",))][0] == "interrupted"
    engine.close()
