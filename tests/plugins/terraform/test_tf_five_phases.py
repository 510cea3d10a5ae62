"""The five phases against the real binary: create; no-op (no apply); drift reverted; a new commit
changes a resource; git revert rolls it back."""

from __future__ import annotations

from conftest import TfSetup, sg_module

from setpoint.api import HealthStatus, SyncStatus


def test_five_phases(tfs: TfSetup) -> None:
    v1 = tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443])}, "net: https only",
                         author="Alice <alice@example.com>")
    engine = tfs.engine()

    # 1. create
    out = engine.reconcile("net")
    assert (out.sync, out.health, out.error) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, None)
    assert tfs.sg()["ingress_ports"] == [443]
    applies = engine.store.audit_entries(actions=("apply",))
    assert len(applies) == 1 and applies[0].revision == v1
    assert {c["key"] for c in applies[0].details["changes"]} == {"setpointtest_security_group.web", "outputs"}
    assert engine.outputs["net"]["sg_path"] == str(tfs.world / "web.json")

    # 2. no-op: terraform plan exits 0, nothing applied, nothing audited
    before = len(engine.store.audit_entries())
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and not out.actions and not out.drift
    assert len(engine.store.audit_entries()) == before

    # 3. drift: the document is edited outside Terraform; refresh sees it (resource_drift), it is reverted
    doc = tfs.sg()
    doc["ingress_ports"] = [22, 443]
    (tfs.world / "web.json").write_text(__import__("json").dumps(doc))
    out = engine.reconcile("net")
    assert [c.key for c in out.drift] == ["setpointtest_security_group.web"]
    assert tfs.sg()["ingress_ports"] == [443]
    revert = engine.store.audit_entries(actions=("revert-drift",))[-1]
    assert revert.details["changes"][0]["fields"] == [{"path": "ingress_ports", "before": [22, 443], "after": [443]}]

    # 4. a new commit changes the resource: a deployment, not drift
    v2 = tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443, 8443])}, "net: 8443",
                         author="Bob <bob@example.com>")
    out = engine.reconcile("net")
    assert out.revision.sha == v2 and not out.drift and out.sync == SyncStatus.SYNCED
    assert tfs.sg()["ingress_ports"] == [443, 8443]

    # 5. git revert rolls back
    v3 = tfs.repo.revert(v2)
    out = engine.reconcile("net")
    assert out.revision.sha == v3 and out.sync == SyncStatus.SYNCED and not out.drift
    assert tfs.sg()["ingress_ports"] == [443]
    assert [e.revision for e in engine.store.audit_entries(actions=("apply",))] == [v1, v2, v3]
    engine.close()
