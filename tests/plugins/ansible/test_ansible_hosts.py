"""Per-host behaviour: an unreachable host fails only itself and catches up by itself; a task that
changes on every run is reported as not idempotent instead of being re-applied at every reconcile;
a task check mode cannot run is applied with the real run and audited with it."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import AnsibleSetup

from setpoint.api import HealthStatus, SyncStatus

# Real ansible-playbook runs over SSH: minutes on a busy 2-core machine, beyond pytest's default 600 s.
pytestmark = pytest.mark.timeout(1800)


def wait_for_ssh(address: tuple[str, int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(address, timeout=2) as conn:
                if conn.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{address} does not answer SSH after {timeout}s")


def test_unreachable_host_fails_only_itself_and_recovers(ans: AnsibleSetup) -> None:
    ans.repo.commit(ans.project(pool_size=5), "web: pool 5")
    engine = ans.engine()
    out = engine.reconcile("web")
    assert out.sync == SyncStatus.SYNCED, out.error

    ans.hosts.docker("stop", "-t", "1", ans.hosts.containers[2])
    try:
        v2 = ans.repo.commit(ans.project(pool_size=10), "web: pool 10")
        out = engine.reconcile("web")
        # web1 and web2 got the commit; the reconcile fails at apply naming web3 only
        assert out.error_stage == "apply" and "web3" in out.error and "unreachable" in out.error, out.error
        assert "web1" not in out.error and "web2" not in out.error
        assert out.health == HealthStatus.DEGRADED
        for index in (0, 1):
            assert ans.read(index, "app.conf") == "# managed by setpoint\npool_size=10\n"
        apply = engine.store.audit_entries(actions=("apply",))[-1]
        assert apply.revision == v2 and apply.result == "failed"
        assert set(apply.details["failed"]) == {"web3"}
        assert {c["namespace"] for c in apply.details["changes"]} == {"web1", "web2", "web3"}

        # still down: the hosts that are in sync stay quiet, web3 alone is retried
        errors = len(engine.store.audit_entries(actions=("error",)))
        out = engine.reconcile("web")
        assert out.error_stage == "apply" and "web3" in out.error
        retried = engine.store.audit_entries(actions=("apply",))[-1]
        assert [c["key"] for c in retried.details["changes"]] == ["web3"]
        assert len(engine.store.audit_entries(actions=("error",))) == errors  # same error: audited once
    finally:
        ans.hosts.docker("start", ans.hosts.containers[2])
    wait_for_ssh(ans.hosts.addresses[2])

    out = engine.reconcile("web")
    assert (out.sync, out.health, out.error) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, None), out.error
    assert not out.drift  # web3 never had the commit: a deployment, not drift
    assert ans.read(2, "app.conf") == "# managed by setpoint\npool_size=10\n"
    assert engine.store.audit_entries(actions=("recovered",))
    engine.close()


STAMP = """\
- name: motd
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: app directory
      ansible.builtin.file:
        path: "/srv/{{ test_id }}"
        state: directory
        mode: "0755"
    - name: motd stamp
      ansible.builtin.lineinfile:
        path: "/srv/{{ test_id }}/motd"
        line: "Managed by Ansible, last run {{ now(utc=true).isoformat() }}"
        create: true
        mode: "0644"
    - name: refresh motd cache
      ansible.builtin.command: /bin/true
"""

FIXED = STAMP.replace('line: "Managed by Ansible, last run {{ now(utc=true).isoformat() }}"',
                      'regexp: "^Managed by Ansible"\n        line: "Managed by Ansible"')


def test_a_task_that_changes_on_every_run_is_reported_not_flapped(ans: AnsibleSetup) -> None:
    ans.repo.commit({f"{ans.path}/site.yml": STAMP, f"{ans.path}/vars/app.yml": "{}\n"}, "motd with a time stamp")
    engine = ans.engine(ans.settings(hosts=ans.hosts.inventory(("web1",))))

    out = engine.reconcile("web")
    assert out.sync == SyncStatus.SYNCED and out.health == HealthStatus.DEGRADED, (out.error, out)
    message = engine.store.status("web")["health_message"]
    assert "not idempotent" in message and "web1: motd stamp" in message
    [apply] = engine.store.audit_entries(actions=("apply",))
    # the command check mode skips ran with the real run and is audited with it
    command = next(c for c in apply.details["changes"] if c["key"] == "web1: refresh motd cache")
    assert command["fields"][0] == {"path": "(check mode)", "before": "skipped in check mode", "after": "changed"}

    # two more reconciles: the stamp still "changes" in check mode, but nothing is applied again
    for _ in range(2):
        out = engine.reconcile("web")
        assert not out.actions and out.sync == SyncStatus.SYNCED and out.health == HealthStatus.DEGRADED
    assert len(engine.store.audit_entries(actions=("apply", "revert-drift"))) == 1
    assert len((ans.read(0, "motd") or "").splitlines()) == 1

    # the fix is a new commit: the verdict is forgotten, the target converges and is healthy
    ans.repo.commit({f"{ans.path}/site.yml": FIXED}, "motd: no time stamp")
    out = engine.reconcile("web")
    assert (out.sync, out.health, out.error) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, None), out
    assert ans.read(0, "motd") == "Managed by Ansible\n"
    engine.close()
