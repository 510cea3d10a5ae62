"""A SOPS-encrypted Secret (real sops, age) is applied through the core's decrypt stage; its values
appear nowhere (audit, status, state store, logs, inventory, driver state), and the diff of a changed
Secret says "changed" with fingerprints, never the value."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Kube, configmap, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for

pytestmark = [pytest.mark.kubernetes, pytest.mark.sops]


def encrypt(sops_env: Any, tmp_path: Path, doc: dict[str, Any]) -> str:
    plain = tmp_path / f"plain-{uuid.uuid4().hex[:6]}.yaml"
    plain.write_text(manifests(doc))
    proc = sops_env.run("encrypt", "--age", sops_env.age_recipient, "--encrypted-regex", "^(data|stringData)$",
                        "--input-type", "yaml", "--output-type", "yaml", str(plain))
    plain.unlink()
    return proc.stdout.decode()


def secret(password: str, token: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "Opaque",
            "stringData": {"password": password},
            "data": {"token": base64.b64encode(token.encode()).decode()}}


def everything_written(engine: Any, tmp_path: Path, ns: str, caplog: Any, kube: Kube) -> str:
    """Every place a value could leak to, as one text."""
    parts = [json.dumps([e.__dict__ for e in engine.store.audit_entries()], default=str),
             json.dumps(engine.store.status(ns), default=str), caplog.text]
    for path in tmp_path.rglob("*"):
        if path.is_file() and "repo" not in path.parts:
            parts.append(path.read_bytes().decode(errors="replace"))
    parts.append(json.dumps(kube.obj("api/v1/configmaps", f"setpoint-inventory-{ns}")))
    live = kube.obj("api/v1/secrets", "db")
    parts.append(json.dumps(live["metadata"]))
    return "\n".join(parts)


def test_sops_secret_applied_without_leaking(kube: Kube, git_repo: GitRepo, engine_for, sops_env: Any,
                                             tmp_path: Path, caplog: Any) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    ns = kube.namespace
    password, token = f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    encrypted = encrypt(sops_env, tmp_path, secret(password, token))
    assert password not in encrypted and "ENC[AES256_GCM" in encrypted
    git_repo.commit({"app/secret.yaml": encrypted, "app/cm.yaml": manifests(configmap("plain", {"a": "1"}))})
    secrets = {"sops": {"age_key_file": str(sops_env.age_key_file), "use_environment": False}}
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)], secrets=secrets)

    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    live = kube.obj("api/v1/secrets", "db")
    assert base64.b64decode(live["data"]["password"]).decode() == password
    assert base64.b64decode(live["data"]["token"]).decode() == token
    assert "stringData" not in live
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED, "the secret compares equal to its live copy"

    # a new value from Git: the audit says "changed", with fingerprints only
    new_password = f"pw2-{uuid.uuid4().hex}"
    git_repo.commit({"app/secret.yaml": encrypt(sops_env, tmp_path, secret(new_password, token))}, "rotate")
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    assert base64.b64decode(kube.obj("api/v1/secrets", "db")["data"]["password"]).decode() == new_password
    change = engine.store.audit_entries(actions=("apply",))[-1].details["changes"][0]
    assert change["key"] == f"Secret/{ns}/db"
    [field] = change["fields"]
    assert field["path"] == "data.password" and field["secret"] is True
    assert field["before"]["secret"].startswith("sha256:") and field["before"] != field["after"]

    # drift by hand is reverted; its record shows fingerprints too
    hand = base64.b64encode(b"typed-by-hand-1234").decode()
    kube.kubectl("patch", "secret", "db", "--type=merge", "-p", json.dumps({"data": {"password": hand}}))
    driver = engine.runners[ns].driver
    wait_for(lambda: driver.cache.find("", "Secret").snapshot()[f"Secret/{ns}/db"]["data"]["password"] == hand, 5)
    out = engine.reconcile(ns)
    assert out.error is None and [c.key for c in out.drift] == [f"Secret/{ns}/db"]
    assert base64.b64decode(kube.obj("api/v1/secrets", "db")["data"]["password"]).decode() == new_password

    text = everything_written(engine, tmp_path, ns, caplog, kube)
    for value in (password, new_password, token, "typed-by-hand-1234"):
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text
