"""setpoint.testing is an opt-in pytest plugin: installing setpoint adds nothing to a foreign test suite."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

SETPOINT_FIXTURES = ("git_repo", "fake_plugin", "setpoint_registry", "_fresh_secret_scrubber")


def _fixtures(project: Path, *args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-v", "-p", "no:cacheprovider", *args],
                         cwd=project, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_no_pytest11_entry_point() -> None:
    assert not [ep for ep in entry_points(group="pytest11") if ep.value.startswith("setpoint")]


def test_foreign_suite_sees_no_setpoint_fixture(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_unrelated.py").write_text("def test_nothing():\n    pass\n")
    listed = _fixtures(tmp_path)
    assert not [name for name in SETPOINT_FIXTURES if name in listed]
    # the positive control: opting in brings them
    opted_in = _fixtures(tmp_path, "-p", "setpoint.testing")
    assert all(name in opted_in for name in SETPOINT_FIXTURES)
