"""A long-running daemon keeps disk bounded: exported per-commit trees that no target needs are
removed (the applied and held revisions' trees stay)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from setpoint.testing import GitRepo, make_engine, wait_for, write_config


def test_300_commits_under_setpoint_run_leave_a_handful_of_trees(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/app.conf": "version = 0\n"}, "v0")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "interval": "1h", "files": {"destination": str(live)}}])
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    trees = tmp_path / "state" / "cache" / "trees" / "repo"
    try:
        seen = set()
        for version in range(1, 301):
            git_repo.commit({"etc/app.conf": f"version = {version}\n"}, f"v{version}")
            if version % 20 == 0:  # let the daemon deploy every twentieth commit: 15+ revisions exported
                wait_for(lambda v=version: (live / "app.conf").exists()
                         and (live / "app.conf").read_text() == f"version = {v}\n", 60, step=0.1)
                seen.update(p.name for p in trees.iterdir() if not p.name.startswith("."))
        assert len(seen) >= 12, "the daemon exported a tree for each revision it deployed"
        # the next poll prunes what the last deploys left behind
        wait_for(lambda: len([p for p in trees.iterdir() if not p.name.startswith(".")]) <= 3, 30, step=0.2)
        assert (trees / git_repo.head()).is_dir(), "the applied revision's tree stays"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_pruning_keeps_needed_trees_waits_for_busy_targets_and_goes_in_batches(
        tmp_path: Path, git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    old = [git_repo.commit({"etc/app.conf": f"version = {v}\n"}, f"v{v}") for v in range(3)]
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    engine = make_engine(config)
    source = engine.sources["repo"]
    source.poll()
    for sha in old:
        source.checkout(sha)
    assert engine.reconcile("host").error is None  # applies old[-1]: its tree is needed
    runner = engine.runners["host"]
    with runner.exclusive(tmp_path / "state" / "locks", 1.0):
        assert engine.prune_trees("repo") is None, "never while a target may be reading a tree"
    monkeypatch.setattr("setpoint.engine.engine.PRUNE_BATCH", 1)
    assert engine.prune_trees("repo") == 1
    assert engine.prune_trees("repo") == 1
    assert engine.prune_trees("repo") == 0
    assert sorted(p.name for p in source.trees.iterdir()) == [old[-1]]
    engine.close()
