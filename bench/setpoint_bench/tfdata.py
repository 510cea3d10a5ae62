"""Terraform fixtures: a module of N resources of the repository's test provider, which keeps each
"security group" as a JSON document in a directory (the "world") so drift is a file edit."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from setpoint_bench import services


def module(world: Path, count: int) -> str:
    source = os.environ.get("SETPOINT_TF_PROVIDER_SOURCE", "local.test/setpoint/setpointtest")
    version = os.environ.get("SETPOINT_TF_PROVIDER_VERSION", "0.1.0")
    text = (f'terraform {{\n  required_providers {{\n    setpointtest = {{ source = "{source}", '
            f'version = "{version}" }}\n  }}\n}}\n')
    for i in range(count):
        text += (f'\nresource "setpointtest_security_group" "sg{i:02d}" {{\n'
                 f'  path          = "{world / f"sg{i:02d}.json"}"\n  name          = "sg{i:02d}"\n'
                 f'  ingress_ports = [443, {8000 + i}]\n}}\n')
    return text


def target(name: str, path: str, cache: Path, interval: str = "1h", **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "terraform", "path": path, "interval": interval,
            "terraform": {"cli_config": os.environ["SETPOINT_TF_CLI_CONFIG"], "plugin_cache_dir": str(cache),
                          "binary": os.environ["SETPOINT_TERRAFORM_BIN"], "lock_timeout": "5s"}, **extra}


def terraform(cwd: Path, *args: str, cache: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**services.tf_env(), "TF_PLUGIN_CACHE_DIR": str(cache)}
    proc = subprocess.run([os.environ["SETPOINT_TERRAFORM_BIN"], *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    ok = (0, 2) if args[0] == "plan" else (0,)  # plan -detailed-exitcode: 2 = changes present
    if check and proc.returncode not in ok:
        raise RuntimeError(f"terraform {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[:400]}")
    return proc


def sg(world: Path, index: int) -> dict[str, Any] | None:
    try:
        return json.loads((world / f"sg{index:02d}.json").read_text())
    except (OSError, ValueError):
        return None
