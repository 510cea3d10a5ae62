"""Apply policies: no-destroy holds a replacement, manual holds everything, approve applies the
reviewed saved plan, and a plan made stale by another write is refused by terraform, re-planned
and held again under a new id."""

from __future__ import annotations

import json

from conftest import TfSetup, sg_module

from setpoint.api import HealthStatus, SyncStatus


def test_no_destroy_holds_a_replacement_until_approved(tfs: TfSetup) -> None:
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443])}, "net")
    # a budget that allows the replacement: the kind's own policy decides here
    engine = tfs.engine({"apply_policy": "no-destroy"}, deletion_budget={"max_count": 10, "max_percent": 100})
    assert engine.reconcile("net").sync == SyncStatus.SYNCED

    # an in-place update is not a destroy: applied
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443, 8443])}, "8443")
    assert engine.reconcile("net").sync == SyncStatus.SYNCED and tfs.sg()["ingress_ports"] == [443, 8443]

    # changing `path` forces a replacement: held
    moved = sg_module(tfs.provider, tfs.world, [443, 8443]).replace("web.json", "web-v2.json")
    tfs.repo.commit({"infra/net/main.tf": moved}, "move the document")
    out = engine.reconcile("net")
    assert out.held_plan_id and (out.sync, out.health) == (SyncStatus.OUT_OF_SYNC, HealthStatus.PROGRESSING)
    status = engine.store.status("net")
    assert "no-destroy" in status["message"] and "replaces setpointtest_security_group.web" in status["message"]
    assert (tfs.world / "web.json").exists() and not (tfs.world / "web-v2.json").exists()
    held = engine.store.audit_entries(actions=("held",))[-1]
    assert held.details["changes"][0]["action"] == "replace"

    engine.approve("net", out.held_plan_id, "carol")
    out = engine.reconcile("net", trigger="approve")
    assert out.sync == SyncStatus.SYNCED and out.error is None
    assert any(a.get("action") == "approved-plan" for a in out.actions)
    assert not (tfs.world / "web.json").exists() and (tfs.world / "web-v2.json").exists()
    engine.close()


def test_manual_holds_everything_and_a_stale_plan_is_replanned(tfs: TfSetup) -> None:
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443])}, "net")
    engine = tfs.engine({"apply_policy": "manual"})
    out = engine.reconcile("net")
    assert out.held_plan_id and not (tfs.world / "web.json").exists()
    engine.approve("net", out.held_plan_id, "carol")
    assert engine.reconcile("net").sync == SyncStatus.SYNCED and tfs.sg()["ingress_ports"] == [443]

    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443, 8443])}, "8443")
    first = engine.reconcile("net")
    assert first.held_plan_id and tfs.sg()["ingress_ports"] == [443]
    # the same plan again keeps the same id (an approval matches a re-plan with the same content)
    assert engine.reconcile("net").held_plan_id == first.held_plan_id

    # someone else writes the state (same content, new serial) after the plan was reviewed
    driver = engine.runner("net").driver
    state_file = driver.workdir.state_file
    state = json.loads(state_file.read_text())
    state["serial"] += 1
    state_file.write_text(json.dumps(state))

    engine.approve("net", first.held_plan_id, "carol")
    refused = engine.reconcile("net", trigger="approve")
    assert refused.error_stage == "apply" and "stale" in refused.error
    assert tfs.sg()["ingress_ports"] == [443]

    again = engine.reconcile("net")
    assert again.held_plan_id and again.held_plan_id != first.held_plan_id
    assert "refused the previously approved plan as stale" in engine.store.status("net")["message"]
    assert tfs.sg()["ingress_ports"] == [443]
    engine.approve("net", again.held_plan_id, "carol")
    out = engine.reconcile("net", trigger="approve")
    assert out.sync == SyncStatus.SYNCED and tfs.sg()["ingress_ports"] == [443, 8443]
    engine.close()
