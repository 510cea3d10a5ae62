"""The five phases against three real SSH hosts: create (a config file and a package on every
host); no-op (nothing applied, nothing audited); a hand edit and a removed package reverted as
drift; a new commit deployed; git revert rolls it back."""

from __future__ import annotations

import pytest
from conftest import AnsibleSetup

from setpoint.api import HealthStatus, SyncStatus

# Real ansible-playbook runs over SSH: minutes on a busy 2-core machine, beyond pytest's default 600 s.
pytestmark = pytest.mark.timeout(1800)


def test_five_phases(ans: AnsibleSetup) -> None:
    v1 = ans.repo.commit(ans.project(pool_size=5), "web: pool 5", author="Alice <alice@example.com>")
    engine = ans.engine()

    # 1. create: every host gets the directory, the config, the package (and the handler ran)
    out = engine.reconcile("web")
    assert (out.sync, out.health, out.error) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, None), out.error
    for index in range(3):
        assert ans.read(index, "app.conf") == "# managed by setpoint\npool_size=5\n"
        assert ans.read(index, "reloaded") == "pool_size=5\n"
        assert ans.installed(index)
    applies = engine.store.audit_entries(actions=("apply",))
    assert applies and applies[0].revision == v1
    changed = {(c["namespace"], c["name"]) for a in applies for c in a.details["changes"]}
    for host in ("web1", "web2", "web3"):
        assert (host, "app config") in changed and (host, "app package") in changed
    status = engine.store.status("web")
    assert status["health_message"].startswith("3 host(s) match")

    # 2. no-op: the check run finds nothing, nothing is applied or audited
    before = len(engine.store.audit_entries())
    out = engine.reconcile("web")
    assert out.sync == SyncStatus.SYNCED and not out.actions and not out.drift, out
    assert len(engine.store.audit_entries()) == before

    # 3. by hand: the config edited on web1, the package removed on web2 -> drift, reverted
    ans.hosts.exec(0, "sh", "-c", f"echo 'pool_size=50' > /srv/{ans.test_id}/app.conf")
    ans.hosts.exec(1, "dpkg", "--purge", ans.pkg)
    out = engine.reconcile("web")
    assert sorted(c.key for c in out.drift) == ["web1: app config", "web2: app package"], out.drift
    assert out.sync == SyncStatus.SYNCED and out.error is None
    assert ans.read(0, "app.conf") == "# managed by setpoint\npool_size=5\n"
    assert ans.installed(1)
    revert = engine.store.audit_entries(actions=("revert-drift",))[-1]
    config_change = next(c for c in revert.details["changes"] if c["key"] == "web1: app config")
    [field] = config_change["fields"]
    assert field["path"] == f"/srv/{ans.test_id}/app.conf"
    assert field["before"] == "pool_size=50\n" and field["after"] == "# managed by setpoint\npool_size=5\n"
    # the handler the revert notified ran on web1 (it is in the audit with the run), not elsewhere
    assert any(c["key"] == "web1: reload app" for c in revert.details["changes"])

    # 4. a new commit: a deployment on every host, not drift
    v2 = ans.repo.commit(ans.project(pool_size=10), "web: pool 10", author="Bob <bob@example.com>")
    out = engine.reconcile("web")
    assert out.revision.sha == v2 and not out.drift and out.sync == SyncStatus.SYNCED, out
    for index in range(3):
        assert ans.read(index, "app.conf") == "# managed by setpoint\npool_size=10\n"
        assert ans.read(index, "reloaded") == "pool_size=10\n"

    # 5. git revert rolls back
    v3 = ans.repo.revert(v2)
    out = engine.reconcile("web")
    assert out.revision.sha == v3 and out.sync == SyncStatus.SYNCED and not out.drift
    for index in range(3):
        assert ans.read(index, "app.conf") == "# managed by setpoint\npool_size=5\n"
    assert [e.revision for e in engine.store.audit_entries(actions=("apply",))][-2:] == [v2, v3]
    engine.close()
