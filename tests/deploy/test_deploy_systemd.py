"""deploy/systemd/setpoint.service: `systemd-analyze verify` accepts it without a single warning (an
unknown or misspelt directive is only a warning to systemd, so it would otherwise go unnoticed and the
hardening silently missing), `systemd-analyze security` rates it at most 2.0 ("OK"), and the directives
docs/deploy.md promises are there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "setpoint.service"


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    """Installed from Debian by dev/deploy-tools when missing."""
    proc = subprocess.run([str(ROOT / "dev" / "deploy-tools"), "systemd-analyze"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def installed_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit as installed: verify checks that ExecStart exists, so it points at this checkout's
    `setpoint` (the unit's /opt/setpoint/bin/setpoint is where docs/deploy.md installs it)."""
    text = UNIT.read_text() if text is None else text
    setpoint = Path(sys.executable).parent / "setpoint"
    assert setpoint.exists()
    path = tmp_path / "setpoint.service"
    path.write_text(text.replace("/opt/setpoint/bin/setpoint", str(setpoint)))
    return path


def verify(systemd_analyze: str, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_verify_passes_without_warnings(systemd_analyze: str, tmp_path: Path) -> None:
    proc = verify(systemd_analyze, installed_unit(tmp_path))
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_verify_catches_a_misspelt_directive(systemd_analyze: str, tmp_path: Path) -> None:
    """The check above can fail: the same unit with one typo is reported."""
    unit = installed_unit(tmp_path, UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    assert "Unknown key 'NoNewPrivilege'" in verify(systemd_analyze, unit).stderr


def test_security_exposure_is_low(systemd_analyze: str, tmp_path: Path) -> None:
    proc = subprocess.run([systemd_analyze, "security", "--offline=yes", str(installed_unit(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    level = float(re.search(r"Overall exposure level for setpoint\.service: ([0-9.]+)", proc.stdout).group(1))
    assert level <= 2.0, proc.stdout


def test_promised_directives() -> None:
    service: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#") and section == "Service":
            key, value = line.split("=", 1)
            service.setdefault(key, []).append(value)
    expected = {"User": "setpoint", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                "StateDirectory": "setpoint", "ExecReload": "/bin/kill -HUP $MAINPID", "KillMode": "mixed",
                "ProtectHome": "yes", "CapabilityBoundingSet": ""}
    for key, value in expected.items():
        assert service.get(key) == [value], key
    # systemd must not SIGKILL before setpoint's own shutdown grace (default 120 s) has run out
    assert int(service["TimeoutStopSec"][0]) > 120
