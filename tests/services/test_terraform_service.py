"""Smoke tests: terraform/tofu with the repository's test provider shows real drift (dev/services up terraform)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.terraform


def tf(bin_: str, workdir: Path, env: dict[str, str], *args: str, ok=(0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([bin_, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode not in ok:
        raise AssertionError(f"terraform {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_config(workdir: Path, provider, sg_path: Path, ports: list[int]) -> None:
    (workdir / "main.tf").write_text(
        provider.required_providers_block()
        + f"""
resource "setpointtest_security_group" "web" {{
  path          = "{sg_path}"
  name          = "web"
  description   = "managed by setpoint tests"
  ingress_ports = {json.dumps(ports)}
}}

resource "terraform_data" "marker" {{
  input = "built-in, no provider needed"
}}
"""
    )


def test_apply_drift_and_stale_plan(terraform_bin, terraform_env, tf_provider, tf_workdir, tmp_path):
    sg = tmp_path / "world" / "sg-web.json"
    write_config(tf_workdir, tf_provider, sg, [80, 443])
    run = lambda *a, ok=(0,): tf(terraform_bin, tf_workdir, terraform_env, *a, ok=ok)  # noqa: E731

    run("init", "-input=false", "-no-color")
    run("apply", "-auto-approve", "-input=false", "-no-color")
    assert json.loads(sg.read_text())["ingress_ports"] == [80, 443]
    assert run("plan", "-detailed-exitcode", "-input=false", "-no-color").returncode == 0

    # a change made outside Terraform, through the provider's "world"
    doc = json.loads(sg.read_text())
    doc["ingress_ports"].append(22)
    sg.write_text(json.dumps(doc))

    proc = run("plan", "-refresh-only", "-detailed-exitcode", "-input=false", "-no-color", "-out=drift.plan", ok=(2,))
    assert proc.returncode == 2
    shown = json.loads(run("show", "-json", "drift.plan").stdout)
    drift = {d["address"]: d for d in shown.get("resource_drift", [])}
    assert set(drift) == {"setpointtest_security_group.web"}, shown.get("resource_drift")
    change = drift["setpointtest_security_group.web"]["change"]
    assert change["actions"] == ["update"]
    assert change["before"]["ingress_ports"] == [80, 443]
    assert change["after"]["ingress_ports"] == [80, 443, 22]
    assert not [c for c in shown.get("resource_changes", []) if c["change"]["actions"] != ["no-op"]]

    # a normal plan wants to put it back; save it, let another apply change the state first: the plan is stale
    run("plan", "-input=false", "-no-color", "-out=heal.plan", "-detailed-exitcode", ok=(2,))
    write_config(tf_workdir, tf_provider, sg, [80, 443, 8443])
    run("apply", "-auto-approve", "-input=false", "-no-color")
    stale = run("apply", "-input=false", "-no-color", "heal.plan", ok=(1,))
    assert "Saved plan is stale" in stale.stderr + stale.stdout
    assert json.loads(sg.read_text())["ingress_ports"] == [80, 443, 8443]


def test_out_of_band_delete_is_recreated(terraform_bin, terraform_env, tf_provider, tf_workdir, tmp_path):
    sg = tmp_path / "sg.json"
    write_config(tf_workdir, tf_provider, sg, [80])
    run = lambda *a, ok=(0,): tf(terraform_bin, tf_workdir, terraform_env, *a, ok=ok)  # noqa: E731
    run("init", "-input=false", "-no-color")
    run("apply", "-auto-approve", "-input=false", "-no-color")
    sg.unlink()
    run("plan", "-input=false", "-no-color", "-out=p", "-detailed-exitcode", ok=(2,))
    shown = json.loads(run("show", "-json", "p").stdout)
    drift = {d["address"]: d["change"]["actions"] for d in shown.get("resource_drift", [])}
    changes = {c["address"]: c["change"]["actions"] for c in shown["resource_changes"]}
    assert drift == {"setpointtest_security_group.web": ["delete"]}
    assert changes["setpointtest_security_group.web"] == ["create"]
    run("apply", "-input=false", "-no-color", "p")
    assert json.loads(sg.read_text())["ingress_ports"] == [80]
