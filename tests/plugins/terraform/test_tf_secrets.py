"""A SOPS-encrypted var file: its value reaches the resource and appears nowhere else (logs, the
audit database, CLI output, the plan summary); sensitive outputs are redacted."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TfSetup

from setpoint.api import SyncStatus
from setpoint.secrets import Secret


def module(tfs: TfSetup) -> str:
    return tfs.provider.required_providers_block() + f'''
variable "db_password" {{
  type = string
}}

variable "api_token" {{
  type      = string
  default   = "tok-sensitive-default-7d1e"
  sensitive = true
}}

resource "setpointtest_file" "db" {{
  path    = "{tfs.world / 'db.conf'}"
  content = "password=${{var.db_password}}\\n"
}}

output "dsn" {{
  value = "postgres://app:${{var.db_password}}@db:5432/app"
}}

output "api_token" {{
  value     = var.api_token
  sensitive = true
}}

output "db_path" {{
  value = setpointtest_file.db.id
}}
'''


def encrypt(sops_env: Any, tmp: Path, password: str) -> bytes:
    plain = tmp / "secrets.tfvars"
    plain.write_text(f'db_password = "{password}"\n')
    out = sops_env.run("--encrypt", "--age", sops_env.age_recipient, str(plain)).stdout
    plain.unlink()
    return out


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=300)


def test_sops_tfvars_reach_the_resource_and_nothing_else(tfs: TfSetup, sops_env: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = "S3cret-" + secrets.token_hex(8), "R0tated-" + secrets.token_hex(8)
    token = "tok-sensitive-default-7d1e"
    tfs.repo.commit({"infra/net/main.tf": module(tfs),
                     "infra/net/secrets.tfvars": encrypt(sops_env, tfs.tmp, first)}, "db with a SOPS password")
    top = {"secrets": {"sops": {"age_key_file": str(sops_env.age_key_file)}}}
    settings = {"var_files": ["secrets.tfvars"], "binary": tfs.terraform_bin}
    engine = tfs.engine(settings, top)
    config = tfs.config(settings, top)

    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED, out.error
    assert (tfs.world / "db.conf").read_text() == f"password={first}\n"
    outputs = engine.outputs["net"]
    assert isinstance(outputs["api_token"], Secret) and outputs["api_token"].reveal() == token
    assert isinstance(outputs["dsn"], Secret)  # holds a decrypted value although not marked sensitive
    assert outputs["dsn"].reveal() == f"postgres://app:{first}@db:5432/app"
    assert outputs["db_path"] == str(tfs.world / "db.conf")
    applied = engine.store.audit_entries(actions=("apply",))[-1].details["changes"]
    content = next(f for c in applied for f in c["fields"] if f["path"] == "content")
    assert set(content["after"]) == {"secret"}
    engine.close()

    # rotate it: the plan summary (setpoint diff) and the sync through the CLI show no value either
    tfs.repo.commit({"infra/net/secrets.tfvars": encrypt(sops_env, tfs.tmp, second)}, "rotate the password")
    shown = [cli(config, "diff", "net"), cli(config, "sync", "net"), cli(config, "audit"),
             cli(config, "status", "-o", "json"), cli(config, "audit", "-o", "json")]
    assert "content" in shown[0].stdout and "<secret sha256:" in shown[0].stdout, shown[0].stdout + shown[0].stderr
    assert shown[1].returncode == 0, shown[1].stdout + shown[1].stderr
    assert (tfs.world / "db.conf").read_text() == f"password={second}\n"

    texts = [p.stdout + p.stderr for p in shown] + [r.getMessage() for r in caplog.records]
    databases = [p.read_bytes() for p in (tfs.tmp / "state").glob("*.db*")]
    assert databases
    for value in (first, second, token):
        assert not [text for text in texts if value in text], value
        assert not any(value.encode() in blob for blob in databases), value
