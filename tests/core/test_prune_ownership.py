"""Issue 14 item 10: a crash mid-prune leaves inventory keys for files already deleted; a file made
by hand later under such a name is never pruned: the stale key is forgotten once the object is seen
gone, and (for drivers whose live digest is the applied digest, like ``files``) an object that is
no longer what setpoint wrote is reported, never deleted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_audit_wal import CRASH

from setpoint.testing import GitRepo, make_engine, write_config


@pytest.mark.parametrize("run_between", [True, False], ids=["reconciled-before-the-hand-edit", "hand-edit-first"])
def test_a_file_made_by_hand_under_a_stale_inventory_name_is_never_pruned(tmp_path: Path, git_repo: GitRepo,
                                                                          run_between: bool) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/keep.conf": "keep\n", **{f"etc/old{i}.conf": f"old {i}\n" for i in range(3)}})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "prune": True,
         "deletion_budget": {"max_count": 10, "max_percent": 100}, "files": {"destination": str(live)}}])
    engine = make_engine(config)
    assert engine.reconcile("host").error is None
    engine.close()
    git_repo.commit({f"etc/old{i}.conf": None for i in range(3)}, "drop the old files")
    crashed = subprocess.run([sys.executable, "-c", CRASH, str(config)], capture_output=True, text=True)
    assert crashed.returncode == 9, crashed.stderr
    assert not (live / "old0.conf").exists(), "the prune happened, its result was lost"

    engine = make_engine(config)
    assert set(engine.store.inventory("host")) >= {"old0.conf"}, "the crash left stale inventory keys"
    if run_between:
        assert engine.reconcile("host").error is None
        assert set(engine.store.inventory("host")) == {"keep.conf"}, "stale keys are forgotten"
    (live / "old0.conf").write_text("made by hand, not by setpoint\n")
    out = engine.reconcile("host")
    assert (live / "old0.conf").read_text() == "made by hand, not by setpoint\n", "a file setpoint did not write was pruned"
    assert out.error is None and "old0.conf" in [c.key for c in out.drift]
    engine.close()


def test_an_unchanged_file_removed_from_git_is_still_pruned(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/keep.conf": "keep\n", "etc/old.conf": "old\n"})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "prune": True,
         "deletion_budget": {"max_count": 10, "max_percent": 100}, "files": {"destination": str(live)}}])
    engine = make_engine(config)
    engine.reconcile("host")
    git_repo.commit({"etc/old.conf": None}, "drop old")
    assert engine.reconcile("host").error is None and not (live / "old.conf").exists()
    engine.close()
