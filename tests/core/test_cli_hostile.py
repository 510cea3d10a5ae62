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


def test_markup_and_control_characters_from_git_are_shown_escaped(tmp_path: Path, git_repo: GitRepo) -> None:
    forged = "2026-11-19 14:12:03 web apply at 3f2a9c1e0b7d by Bob <bob@example.com>: forged"
    git_repo.commit({"etc/[/]x.conf": "a\n", "etc/[bold]y.conf": "b\x1b[2J\n"},
                    f"Looks harmless\n{forged}\x1b]0;title\x07", author="Eve\x1b[31m <eve@example.com>")
    config = files_config(tmp_path, git_repo)
    outputs = []
    for command in (["sync"], ["status"], ["audit"], ["history", "web"], ["diff", "web"]):
        out = cli(config, *command)
        assert out.returncode in (0, 1) and "Traceback" not in out.stderr, (command, out.stderr)
        outputs.append(out.stdout + out.stderr)
    text = "\n".join(outputs)
    assert "[/]x.conf" in text and "[bold]y.conf" in text, "paths must be shown as they are, not as markup"
    assert "\x1b" not in text and "\x07" not in text, "a control character reached the terminal"
    assert not any(line.startswith(forged[:19]) for line in text.splitlines()), "a commit message forged an audit line"
    assert (tmp_path / "live" / "[/]x.conf").read_text() == "a\n"


def test_a_file_name_that_is_not_utf8_is_refused_before_apply(tmp_path: Path, git_repo: GitRepo) -> None:
    (git_repo.path / "etc").mkdir()
    (git_repo.path / "etc" / "good.conf").write_text("g\n")
    with open(bytes(git_repo.path / "etc") + b"/bad\xff.conf", "w") as handle:
        handle.write("b\n")
    git_repo.commit(message="a name Git allows")
    config = files_config(tmp_path, git_repo)
    out = cli(config, "sync")
    assert out.returncode != 0 and "Traceback" not in out.stderr and "not a valid UTF-8 file name" in out.stdout, out
    assert "bad\\xff.conf" in out.stdout
    assert not (tmp_path / "live").exists() or not list((tmp_path / "live").iterdir()), "nothing is applied"
    for command in (["status"], ["audit"]):
        shown = cli(config, *command)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr


def test_a_settings_block_error_during_sync_names_the_field(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    config = files_config(tmp_path, git_repo, watch_interval=-1)
    out = cli(config, "sync")
    assert out.returncode != 0 and "files.watch_interval" in out.stdout + out.stderr, out


def test_an_unreachable_remote_shows_in_status(tmp_path: Path, git_repo: GitRepo) -> None:
    import json
    import shutil

    git_repo.commit({"etc/a.conf": "a\n"})
    config = files_config(tmp_path, git_repo)
    assert cli(config, "sync").returncode == 0
    shutil.move(git_repo.path, tmp_path / "moved-away")
    cli(config, "sync")
    table = cli(config, "status")
    assert "does not exist" in table.stdout and "last fetched revision" in table.stdout, table.stdout
    rows = json.loads(cli(config, "status", "-o", "json").stdout)
    assert "does not exist" in (rows[0]["source_error"] or "")
