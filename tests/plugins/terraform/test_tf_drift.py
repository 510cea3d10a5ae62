"""Drift made outside Terraform through the provider (the document edited or deleted by hand)
appears as resource_drift, and is reported (self_heal: false) or reverted (self_heal: true)."""

from __future__ import annotations

import json

from conftest import TfSetup, sg_module

from setpoint.api import HealthStatus, SyncStatus


def test_out_of_band_drift_reported_then_reverted(tfs: TfSetup) -> None:
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443])}, "net")
    engine = tfs.engine(self_heal=False)
    assert engine.reconcile("net").sync == SyncStatus.SYNCED

    # edited by hand: reported with the live value, not reverted, and the target is not Healthy
    (tfs.world / "web.json").write_text(json.dumps({"name": "web", "ingress_ports": [22, 443]}))
    out = engine.reconcile("net")
    assert [c.key for c in out.drift] == ["setpointtest_security_group.web"]
    assert (out.sync, out.health) == (SyncStatus.OUT_OF_SYNC, HealthStatus.DEGRADED)
    assert tfs.sg()["ingress_ports"] == [22, 443]
    seen = engine.store.audit_entries(actions=("drift-detected",))
    assert len(seen) == 1 and seen[0].details["policy"] == "report only"
    assert seen[0].details["changes"][0]["fields"] == [{"path": "ingress_ports", "before": [22, 443], "after": [443]}]
    assert not engine.store.audit_entries(actions=("revert-drift", "apply"))[1:]
    # the same drift seen again is not audited again
    engine.reconcile("net")
    assert len(engine.store.audit_entries(actions=("drift-detected",))) == 1
    engine.close()

    # self_heal: true reverts it
    engine = tfs.engine(self_heal=True)
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and tfs.sg()["ingress_ports"] == [443]
    assert engine.store.audit_entries(actions=("revert-drift",))

    # deleted by hand: refresh drops it from the state (drift "delete"), the plan creates it again
    (tfs.world / "web.json").unlink()
    out = engine.reconcile("net")
    drift = {c.key: str(c.action) for c in out.drift}
    assert drift["setpointtest_security_group.web"] == "create"   # (its output follows it)
    assert tfs.sg()["ingress_ports"] == [443] and out.sync == SyncStatus.SYNCED
    engine.close()
