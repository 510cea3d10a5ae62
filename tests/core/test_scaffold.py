"""`setpoint plugin new NAME` writes a distribution that installs, registers its kind through a real
entry point, and passes its own conformance tests out of the box."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from setpoint.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_checked(tmp_path: Path) -> None:
    for bad in ("Bad", "1abc", "with-dash", "class", "a__b", ""):
        result = CliRunner().invoke(main, ["plugin", "new", bad, "--directory", str(tmp_path)])
        assert result.exit_code == 2, (bad, result.output)
        assert "not a usable kind name" in result.output
    assert not list(tmp_path.iterdir())


def test_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "setpoint-dns-records").mkdir()
    (tmp_path / "setpoint-dns-records" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(main, ["plugin", "new", "dns_records", "--directory", str(tmp_path)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert [p.name for p in (tmp_path / "setpoint-dns-records").iterdir()] == ["mine.txt"]


@pytest.mark.slow
def test_skeleton_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plugin", "new", "dns_records", "--directory", str(tmp_path)])
    assert result.exit_code == 0, result.output
    project = tmp_path / "setpoint-dns-records"
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "setpoint-dns-records"
    assert meta["entry-points"]["setpoint"] == {"dns_records": "setpoint_dns_records.plugin"}

    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (dev/test installs it)"
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    install = subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), f"{ROOT / 'core'}[testing]",
                              "-e", f"{project}[test]"], capture_output=True, text=True, env=env)
    assert install.returncode == 0, install.stderr

    listed = subprocess.run([str(venv / "bin" / "setpoint"), "plugins", "--output", "json"],
                            capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    assert '"dns_records"' in listed.stdout

    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=project,
                           capture_output=True, text=True, env=env)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and " failed" not in tests.stdout
