"""The six distributions build as wheels with only their prefixed packages and one entry point each."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTS = {
    "core": ("setpoint", None),
    "plugins/kubernetes": ("setpoint_kubernetes", "kubernetes = setpoint_kubernetes.plugin"),
    "plugins/terraform": ("setpoint_terraform", "terraform = setpoint_terraform.plugin"),
    "plugins/docker_compose": ("setpoint_docker_compose", "docker_compose = setpoint_docker_compose.plugin"),
    "plugins/sops_secrets": ("setpoint_sops_secrets", "sops_secrets = setpoint_sops_secrets.plugin"),
    "plugins/ansible": ("setpoint_ansible", "ansible = setpoint_ansible.plugin"),
}


@pytest.mark.parametrize("folder", sorted(DISTS))
def test_wheel_contents(folder: str, tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH (dev/test installs it)")
    run = subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT / folder)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    [wheel] = tmp_path.glob("*.whl")
    package, entry_point = DISTS[folder]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert tops == {package}, f"{wheel.name} ships {tops}"
        entry_points = next((archive.read(n).decode() for n in names if n.endswith("entry_points.txt")), "")
    if folder == "core":  # the dashboard's templates and static files are package data (no Node build, no CDN)
        for data in ("templates/base.html", "templates/overview.html", "static/dashboard.js", "static/dashboard.css"):
            assert f"setpoint/server/dashboard/{data}" in names, data
    if entry_point:
        assert "[setpoint]" in entry_points and entry_point in entry_points
        assert entry_points.count(" = ") == 1, "one entry point per plugin"
    else:
        assert "setpoint = setpoint.quick:main" in entry_points
