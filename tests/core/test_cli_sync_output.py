"""`sync --dry-run` shows the plan it computed, and MESSAGE says why a target was left alone (issue 15 item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from setpoint.testing import GitRepo, write_config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args],
                          capture_output=True, text=True, check=False)


def test_dry_run_shows_the_plan_and_paused_says_so(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    sha = git_repo.commit({"etc/a.conf": "port=1", "etc/b.conf": "x\ny\n"}, "a and b")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(live)}}])
    run = cli(config, "sync", "--dry-run")
    assert run.returncode == 0, run.stderr
    assert not live.exists() or not any(live.iterdir())
    lines = [line.rstrip() for line in run.stdout.splitlines()]
    assert lines[0].split() == ["TARGET", "SYNC", "HEALTH", "REVISION", "ACTIONS", "MESSAGE"]
    assert lines[1].split(maxsplit=5)[5] == "dry run: 2 change(s) not applied"
    assert lines[2:] == [
        "",
        "edge would change:",
        "create a.conf",
        "    content: null -> port=1",
        "    mode: null -> 0644",
        "create b.conf",
        "    content:",
        "      @@ -0,0 +1,2 @@",
        "      +x",
        "      +y",
        "    mode: null -> 0644",
    ], run.stdout
    [row] = json.loads(cli(config, "sync", "--dry-run", "-o", "json").stdout)
    assert row["message"] == "dry run: 2 change(s) not applied" and row["revision"] == sha
    assert [c["key"] for c in row["changes"]] == ["a.conf", "b.conf"]

    assert cli(config, "pause", "edge", "--reason", "freeze", "--by", "dave").returncode == 0
    run = cli(config, "sync", "edge")
    assert run.stdout.splitlines()[1].split(maxsplit=4)[4].rstrip().endswith("paused by dave: freeze"), run.stdout
