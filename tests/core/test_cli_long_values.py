"""`diff` and `audit` show a change in a long single-line value (issue 15 item 3): never cut so that
before and after print the same; an inline diff, no colour codes in a pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setpoint.testing import GitRepo, write_config

PREFIX = "allow=" + ",".join(f"10.0.{i}.0/24" for i in range(20))  # 255 characters


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args],
                          capture_output=True, text=True, check=False)


def test_a_change_past_the_first_120_characters_is_visible(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/acl.conf": PREFIX + ",10.9.0.0/16"}, "acl")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(live)}}])
    assert cli(config, "sync").returncode == 0
    git_repo.commit({"etc/acl.conf": PREFIX + ",10.8.0.0/16"}, "acl: 10.8 instead of 10.9")
    run = cli(config, "diff", "edge")
    assert run.returncode == 1, run.stderr
    assert "\x1b[" not in run.stdout, "no colour codes in a pipe"
    unchanged = f"allow=10.0.0.0/24,10.0.1.0/24,…({len(PREFIX) + 4 - 60} unchanged)…,10.0.18.0/24,10.0.19.0/24,10."
    assert run.stdout.splitlines() == [
        "update acl.conf",
        f"    content: ({len(PREFIX) + 12} -> {len(PREFIX) + 12} characters)",
        f"      {unchanged}[-9-]{{+8+}}.0.0/16",
    ]
    assert cli(config, "sync").returncode == 0
    audit = cli(config, "audit", "--action", "apply").stdout
    assert f"          {unchanged}[-9-]{{+8+}}.0.0/16" in audit.splitlines()


def test_short_values_keep_the_one_line_form(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/a.conf": "port=1"}, "a")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(live)}}])
    assert cli(config, "sync").returncode == 0
    git_repo.commit({"etc/a.conf": "port=[2]"}, "b")
    assert cli(config, "diff", "edge").stdout.splitlines() == ["update a.conf", "    content: port=1 -> port=[2]"]
