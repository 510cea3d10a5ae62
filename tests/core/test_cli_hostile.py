"""The CLI against a bad day and hostile input: a corrupt or truncated state DB, out-of-range
durations, control characters and markup in Git data, a settings-block error during sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import cli

from setpoint.testing import GitRepo, write_config


def files_config(tmp_path: Path, repo: GitRepo, **files: object) -> Path:
    return write_config(tmp_path, repo.path, [
        {"name": "web", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live"), **files}}])


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_state_db_names_the_path_and_the_remedy_and_is_never_recreated(
        tmp_path: Path, git_repo: GitRepo, damage: str) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    config = files_config(tmp_path, git_repo)
    assert cli(config, "sync").returncode == 0
    db = tmp_path / "state" / "state.db"
    for leftover in db.parent.glob("state.db-*"):  # the WAL would otherwise restore the data
        leftover.unlink()
    db.write_bytes(b"" if damage == "truncate" else b"this is not sqlite" * 300)
    for command in (["sync"], ["status"], ["audit"]):
        out = cli(config, *command)
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert str(db) in out.stderr and "backup" in out.stderr, out.stderr
    assert db.stat().st_size == (0 if damage == "truncate" else 18 * 300), "the damaged DB was replaced"


@pytest.mark.parametrize("duration", ["9" * 400 + "s", "99999999999w"])
def test_pause_for_an_out_of_range_duration_is_refused(tmp_path: Path, git_repo: GitRepo, duration: str) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    config = files_config(tmp_path, git_repo)
    out = cli(config, "pause", "web", "--reason", "r", "--for", duration)
    assert out.returncode != 0 and "out of range" in out.stderr and "Traceback" not in out.stderr, out.stderr
    status = cli(config, "status")
    assert status.returncode == 0 and "paused" not in status.stdout.lower(), status.stdout
