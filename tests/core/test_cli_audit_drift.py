"""`audit` never names a commit's author as the one who made a hand edit (issue 15 item 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from setpoint.testing import GitRepo, write_config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args],
                          capture_output=True, text=True, check=False)


def test_drift_detected_says_changed_outside_setpoint_and_labels_the_revision(tmp_path: Path,
                                                                              git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    sha = git_repo.commit({"etc/sg.conf": "open_ports = 443\n"}, "Open 443", author="Bob <bob@example.com>")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(live)}}])
    assert cli(config, "sync").returncode == 0
    (live / "sg.conf").write_text("open_ports = 22, 443\n")
    assert cli(config, "sync").returncode == 0
    [head] = [line for line in cli(config, "audit", "--action", "drift-detected").stdout.splitlines()
              if not line.startswith(" ")]
    assert head.split(" ", 2)[2] == (f"edge drift-detected changed outside setpoint; Git revision {sha[:12]} "
                                     "(committed by Bob <bob@example.com>: Open 443) trigger=manual")
    [revert] = [line for line in cli(config, "audit", "--action", "revert-drift").stdout.splitlines()
                if not line.startswith(" ")]
    assert revert.split(" ", 2)[2] == (f"edge revert-drift; Git revision {sha[:12]} "
                                       "(committed by Bob <bob@example.com>: Open 443) trigger=manual")
    [entry] = json.loads(cli(config, "audit", "--action", "drift-detected", "-o", "json").stdout)
    assert entry["actor"] is None and entry["details"]["changed_by"] == "outside setpoint (who is not known)"
