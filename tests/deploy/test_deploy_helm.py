"""The Helm chart (deploy/chart/setpoint) through the real helm binary (dev/services up helm):
`helm lint --strict` passes; the chart's appVersion and default image tag are setpoint's own version and
its kubeVersion admits the Kubernetes the suite runs against while refusing clusters without the Pod
Security Admission the pod is built for; and the plain manifests committed in deploy/kubernetes are
exactly what deploy/render-manifests makes from the chart today, so the two cannot drift apart."""

from __future__ import annotations

import difflib
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import setpoint

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "chart" / "setpoint"
MANIFESTS = ROOT / "deploy" / "kubernetes"
RENDER = ROOT / "deploy" / "render-manifests"
RENDERED = ("setpoint.yaml", "cluster-wide-rbac.yaml")
pytestmark = pytest.mark.helm


def helm(helm_bin: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_bin, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc


def core_version() -> str:
    text = (ROOT / "core" / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert match, "core/pyproject.toml has no version line"
    return match.group(1)


def suite_kube_version() -> str:
    """The Kubernetes version dev/services builds (the default of SETPOINT_K8S_VERSION)."""
    text = (ROOT / "dev" / "services.d" / "common.sh").read_text()
    match = re.search(r"^K8S_VERSION=\$\{SETPOINT_K8S_VERSION:-([0-9.]+)\}$", text, re.MULTILINE)
    assert match, "dev/services.d/common.sh no longer sets K8S_VERSION"
    return match.group(1)


def test_helm_lint_strict(helm_bin: str) -> None:
    out = helm(helm_bin, "lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout
    # the opt-in paths render and lint too
    helm(helm_bin, "lint", "--strict", str(CHART), "--set", "rbac.clusterWide=true", "--set",
         "serviceMonitor.enabled=true", "--set", "persistence.enabled=false", "--set", "secrets.data.age\\.key=x")


def test_versions_agree_with_core(helm_bin: str) -> None:
    chart = yaml.safe_load(helm(helm_bin, "show", "chart", str(CHART)).stdout)
    assert str(chart["appVersion"]) == core_version() == setpoint.__version__, (
        f"Chart.yaml appVersion {chart['appVersion']} is not setpoint's version {core_version()}: "
        "set appVersion (and image.tag in values.yaml) to core/pyproject.toml's version")
    values = yaml.safe_load(helm(helm_bin, "show", "values", str(CHART)).stdout)
    assert str(values["image"]["tag"]) == core_version()
    rendered = [d for d in yaml.safe_load_all(helm(helm_bin, "template", "setpoint", str(CHART)).stdout) if d]
    assert {d["metadata"]["labels"]["app.kubernetes.io/version"] for d in rendered} == {core_version()}

    # kubeVersion: declared, admits the cluster the suite tests on, refuses one without Pod Security Admission
    assert chart.get("kubeVersion"), "Chart.yaml declares no kubeVersion"
    helm(helm_bin, "template", "setpoint", str(CHART), "--kube-version", f"v{suite_kube_version()}")
    helm(helm_bin, "template", "setpoint", str(CHART), "--kube-version", "v1.25.0")
    old = helm(helm_bin, "template", "setpoint", str(CHART), "--kube-version", "v1.24.17", check=False)
    assert old.returncode != 0 and "chart requires kubeVersion" in old.stderr, old.stderr


def test_committed_manifests_are_the_rendered_chart(helm_bin: str, tmp_path: Path) -> None:
    proc = subprocess.run([str(RENDER), "--out", str(tmp_path), helm_bin], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    stale = []
    for name in RENDERED:
        fresh, committed = (tmp_path / name).read_text(), (MANIFESTS / name).read_text()
        if fresh != committed:
            stale.append("".join(difflib.unified_diff(committed.splitlines(keepends=True),
                                                      fresh.splitlines(keepends=True),
                                                      f"deploy/kubernetes/{name} (committed)",
                                                      f"{name} (rendered from deploy/chart/setpoint)", n=2)))
    assert not stale, ("deploy/kubernetes is out of date with deploy/chart/setpoint: run deploy/render-manifests "
                       "and commit the result\n" + "\n".join(stale))
    # every rendered document is a manifest kubectl can read, none empty
    for name in RENDERED:
        docs = [d for d in yaml.safe_load_all((tmp_path / name).read_text()) if d]
        assert docs and all({"apiVersion", "kind", "metadata"} <= set(d) for d in docs), name
