"""Smoke test: the helm CLI built by dev/services renders a chart offline (dev/services up helm)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.helm


def test_helm_renders_a_chart_with_the_given_capabilities(helm_bin: str, tmp_path: Path) -> None:
    version = subprocess.run([helm_bin, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v4."), version
    chart = tmp_path / "c"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
        'data: {kube: "{{ .Capabilities.KubeVersion }}", has: "{{ .Capabilities.APIVersions.Has "x.example.com/v1/X" }}"}\n')
    out = subprocess.run([helm_bin, "template", "r", str(chart), "--kube-version", "v1.36.3",
                          "--api-versions", "x.example.com/v1,x.example.com/v1/X"],
                         capture_output=True, text=True, check=True).stdout
    assert 'kube: "v1.36.3"' in out and 'has: "true"' in out
