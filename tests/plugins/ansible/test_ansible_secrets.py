"""SOPS-encrypted vars reach the hosts and nothing else: not the audit database, the logs, the CLI's
output or the state directory. Module diffs holding a decrypted value become secret fingerprints
(both sides, also a hand-edited live value), and a ``no_log`` task shows no diff at all. The
inventory comes from Git here (the other tests list hosts in the settings)."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import AnsibleSetup

from setpoint.api import SyncStatus

PLAYBOOK = """\
- name: database clients
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: app directory
      ansible.builtin.file:
        path: "/srv/{{ test_id }}"
        state: directory
        mode: "0755"
    - name: database config
      ansible.builtin.copy:
        dest: "/srv/{{ test_id }}/db.conf"
        content: "user=app\\npassword={{ db_password }}\\n"
        mode: "0600"
    - name: api token
      ansible.builtin.copy:
        dest: "/srv/{{ test_id }}/token"
        content: "{{ api_token }}\\n"
        mode: "0600"
      no_log: true
"""

# Real ansible-playbook runs over SSH: minutes on a busy 2-core machine, beyond pytest's default 600 s.
pytestmark = pytest.mark.timeout(1800)


def encrypt(sops_env: Any, tmp: Path, password: str, token: str) -> bytes:
    plain = tmp / "secrets.sops.yml"
    plain.write_text(f"db_password: {password}\napi_token: {token}\n")
    out = sops_env.run("--encrypt", "--age", sops_env.age_recipient, str(plain)).stdout
    plain.unlink()
    return out if isinstance(out, bytes) else out.encode()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=600)


def test_sops_vars_reach_the_hosts_and_nothing_else(ans: AnsibleSetup, sops_env: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password, token = "S3cret-" + secrets.token_hex(8), "tok-" + secrets.token_hex(8)
    rotated, hacked = "R0tated-" + secrets.token_hex(8), "hacked-" + secrets.token_hex(8)
    inventory = {"all": {"hosts": ans.hosts.inventory()}}
    ans.repo.commit({f"{ans.path}/site.yml": PLAYBOOK,
                     f"{ans.path}/inventory.yml": yaml.safe_dump(inventory),
                     f"{ans.path}/vars/secrets.sops.yml": encrypt(sops_env, ans.tmp, password, token)},
                    "db clients with SOPS vars")
    settings = ans.settings(hosts=None, inventory="inventory.yml", vars_files=["vars/secrets.sops.yml"])
    top = {"secrets": {"sops": {"age_key_file": str(sops_env.age_key_file)}}}
    engine = ans.engine(settings, top)
    config = ans.config(settings, top)

    out = engine.reconcile("web")
    assert out.sync == SyncStatus.SYNCED, out.error
    for index in range(3):
        assert ans.read(index, "db.conf") == f"user=app\npassword={password}\n"
        assert ans.read(index, "token") == f"{token}\n"
    changes = [c for e in engine.store.audit_entries(actions=("apply",)) for c in e.details["changes"]]
    db = next(c for c in changes if c["key"] == "web1: database config")
    assert set(db["fields"][0]["after"]) == {"secret"}
    hidden = next(c for c in changes if c["key"] == "web1: api token")
    assert [f["path"] for f in hidden["fields"]] == ["(no_log)"]

    # a hand edit puts a value setpoint does not know in the file: the drift record hides both sides
    ans.hosts.exec(0, "sh", "-c", f"printf 'user=app\\npassword={hacked}\\n' > /srv/{ans.test_id}/db.conf")
    out = engine.reconcile("web")
    assert [c.key for c in out.drift] == ["web1: database config"]
    [field] = engine.store.audit_entries(actions=("drift-detected",))[-1].details["changes"][0]["fields"]
    assert set(field["before"]) == {"secret"} and set(field["after"]) == {"secret"}
    assert ans.read(0, "db.conf") == f"user=app\npassword={password}\n"
    engine.close()

    # rotate through the CLI: the diff, the sync, the audit and status show no value either
    ans.repo.commit({f"{ans.path}/vars/secrets.sops.yml": encrypt(sops_env, ans.tmp, rotated, token)}, "rotate")
    shown = [cli(config, "diff", "web"), cli(config, "sync", "web"), cli(config, "audit"),
             cli(config, "status", "-o", "json"), cli(config, "audit", "-o", "json")]
    assert "<secret sha256:" in shown[0].stdout, shown[0].stdout + shown[0].stderr
    assert shown[1].returncode == 0, shown[1].stdout + shown[1].stderr
    assert ans.read(2, "db.conf") == f"user=app\npassword={rotated}\n"

    texts = [p.stdout + p.stderr for p in shown] + [r.getMessage() for r in caplog.records]
    stored = [p.read_bytes() for p in (ans.tmp / "state").rglob("*") if p.is_file()]
    assert stored
    for value in (password, token, rotated, hacked):
        assert not [text for text in texts if value in text], value
        assert not any(value.encode() in blob for blob in stored), value
