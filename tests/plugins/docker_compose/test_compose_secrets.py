"""A SOPS-encrypted env file (real sops, age keys): its value reaches the container's environment
and never appears in logs, the audit database, status or any CLI output."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_helpers import ComposeEnv, two_services

from setpoint.api import SyncStatus
from setpoint.testing import make_engine, write_config

pytestmark = [pytest.mark.docker, pytest.mark.sops]

CANARY = "canary-Zq8v-7c41-compose-pw"
CANARY_2 = "canary-Lm3x-9d02-rotated-pw"


def _encrypt(sops_env: Any, text: str, tmp: Path) -> bytes:
    plain = tmp / "secret.env"
    plain.write_text(text)
    out = sops_env.run("encrypt", "--input-type", "dotenv", "--output-type", "dotenv",
                       "--age", sops_env.age_recipient, str(plain))
    plain.unlink()
    return out.stdout


def test_sops_env_file_reaches_container_never_the_logs(compose_env: ComposeEnv, sops_env: Any, test_image: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    env = compose_env
    caplog.set_level(logging.DEBUG)
    doc = yaml.safe_load(two_services(test_image))
    doc["services"]["web"]["env_file"] = ["app.env", "secret.env"]
    env.repo.commit({"app/compose.yaml": yaml.safe_dump(doc), "app/app.env": "MODE=blue\n",
                     "app/secret.env": _encrypt(sops_env, f"DB_PASSWORD={CANARY}\n", env.tmp_path)}, "v1")
    config = write_config(env.tmp_path, env.repo.path, [env.target(self_heal=True)],
                          secrets={"sops": {"age_key_file": str(sops_env.age_key_file)}})
    engine = make_engine(config, load_entrypoints=True)
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED, out.error
    web = env.containers("web")[0]
    assert env.env_of(web)["DB_PASSWORD"] == CANARY

    # no perpetual drift on a service whose env comes from an encrypted env file
    ids = env.ids()
    assert not engine.reconcile("app").actions and env.ids() == ids

    # drift on the secret variable: reported with fingerprints, reverted
    from test_compose_five_phases import _replace_by_hand

    _replace_by_hand(env, web, {"DB_PASSWORD": "typed-by-hand-pw"})
    out = engine.reconcile("app")
    secret_field = next(f for f in out.drift[0].fields if f.path == "environment.DB_PASSWORD")
    assert secret_field.to_record()["secret"] is True
    assert env.env_of(env.containers("web")[0])["DB_PASSWORD"] == CANARY

    # a rotated secret rolls out
    env.repo.commit({"app/secret.env": _encrypt(sops_env, f"DB_PASSWORD={CANARY_2}\n", env.tmp_path)}, "rotate")
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    assert env.env_of(env.containers("web")[0])["DB_PASSWORD"] == CANARY_2
    engine.close()

    cli_output = ""
    for args in (["status"], ["status", "-o", "json"], ["audit", "-o", "json"], ["diff", "app"], ["history", "app"],
                 ["sync", "app"]):
        run = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                             text=True, timeout=300)
        cli_output += run.stdout + run.stderr
    assert "DB_PASSWORD" in cli_output, "the audit names the field"
    database = (env.tmp_path / "state" / "state.db").read_bytes()
    state_files = b"".join(p.read_bytes() for p in (env.tmp_path / "state").rglob("*") if p.is_file())
    for canary in (CANARY, CANARY_2):
        assert canary not in caplog.text
        assert canary not in cli_output
        assert canary.encode() not in database and canary.encode() not in state_files
