"""Issue 15 items 8 and 9: an unknown target is exit 2 with a suggestion in every command, and no
error names a Python class."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from setpoint.testing import GitRepo, write_config

UNKNOWN = ("error: no target named 'edg' in the configuration (did you mean 'edge'?); "
           "configured targets: edge, web\n")


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True, text=True)


@pytest.fixture
def config(tmp_path: Path, git_repo: GitRepo) -> Path:
    git_repo.commit({"etc/a.conf": "a\n"})
    return write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}},
        {"name": "web", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live2")}}])


@pytest.mark.parametrize("args", [
    ("history", "edg"), ("audit", "--target", "edg"), ("pause", "edg", "--reason", "x"), ("diff", "edg"),
    ("sync", "edg"), ("sync", "web", "edg"), ("approve", "edg", "abc123"), ("resume", "edg"),
])
def test_unknown_target_is_exit_2_with_a_suggestion(config: Path, args: tuple[str, ...]) -> None:
    run = cli(config, *args)
    assert (run.returncode, run.stdout, run.stderr) == (2, "", UNKNOWN)


def test_unknown_target_without_a_close_name(config: Path) -> None:
    run = cli(config, "history", "database")
    assert (run.returncode, run.stderr) == (2, "error: no target named 'database' in the configuration; "
                                              "configured targets: edge, web\n")


def test_errors_name_no_python_class(config: Path, tmp_path: Path) -> None:
    bad_duration = cli(config, "pause", "edge", "--reason", "x", "--for", "3x")
    assert (bad_duration.returncode, bad_duration.stderr) == (
        2, "error: --for: '3x' is not a duration; write e.g. 30s, 5m, 1h30m, 2d\n")
    bad_state = tmp_path / "bad-state.yaml"
    bad_state.write_text(config.read_text().replace("state: sqlite:///", "state: mysql://"))
    run = cli(bad_state, "status")
    assert run.returncode == 2 and "state: use sqlite:///PATH or postgresql://" in run.stderr, run.stderr
    assert "bad-state.yaml:" in run.stderr, "a configuration problem with its line"
    bad_state.write_text(config.read_text().replace("state: sqlite:///", "state: postgres://"))
    run = cli(bad_state, "status")
    assert run.returncode == 2 and "the PostgreSQL URL names no host" in run.stderr, run.stderr
    for text in (bad_duration.stderr, run.stderr):
        assert "Error" not in text, text


def test_a_run_error_names_no_class(config: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(config.read_text().replace("branch: main", "branch: nosuch"))
    run = cli(broken, "sync", "edge")
    assert run.returncode == 1 and "branch 'nosuch' not found" in run.stdout, run.stdout
    assert "SourceError" not in run.stdout + run.stderr
    status = cli(broken, "status")
    assert "branch 'nosuch' not found" in status.stdout and "SourceError" not in status.stdout


def test_unexpected_errors_are_named_as_such() -> None:
    from setpoint.errors import RenderError
    from setpoint.secrets import safe_error

    assert safe_error(RenderError("bad manifest: line 3")) == "bad manifest: line 3"
    assert safe_error(KeyError("x")).startswith("'x' (unexpected KeyError; run with --log-level DEBUG")
