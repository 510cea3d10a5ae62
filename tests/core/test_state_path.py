"""Issue 15 item 10: how a state path is written decides where the database goes; `status` and
`setpoint run` say where it is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from setpoint.testing import GitRepo, write_config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True, text=True)


def test_three_slashes_are_relative_to_the_config_four_are_absolute(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    (tmp_path / "conf").mkdir()
    config = write_config(tmp_path / "conf", git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}],
        state="sqlite:///var/lib/setpoint/state.db")
    status = cli(config, "status")
    assert status.returncode == 0
    assert status.stdout.endswith(f"\nstate: {tmp_path / 'conf' / 'var/lib/setpoint/state.db'}\n"), status.stdout
    assert isinstance(json.loads(cli(config, "status", "-o", "json").stdout), list), "the JSON shape is unchanged"
    absolute = tmp_path / "abs" / "state.db"
    data = yaml.safe_load(config.read_text())
    data["state"] = f"sqlite:///{absolute}"  # sqlite:////tmp/...: four slashes
    assert data["state"].startswith("sqlite:////")
    config.write_text(yaml.safe_dump(data))
    assert cli(config, "status").stdout.endswith(f"\nstate: {absolute}\n")
