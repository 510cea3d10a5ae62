"""A refactor with `moved` blocks: a plan whose only changes are moved addresses is a change to
apply (it destroys nothing), audited as a move; afterwards the plan is a no-op, and deleting the
moved blocks later destroys nothing."""

from __future__ import annotations

import json

from conftest import TfSetup, realistic_module, under

from setpoint.api import SyncStatus
from setpoint.state import TargetStatus

MOVED = '''
moved {
  from = setpointtest_security_group.sg
  to   = setpointtest_security_group.group
}

moved {
  from = module.files
  to   = module.config_files
}
'''


def _state_addresses(tfs: TfSetup, engine: object) -> set[str]:
    state = json.loads(engine.runner("net").driver.workdir.state_file.read_text())  # type: ignore[attr-defined]
    out = set()
    for res in state["resources"]:
        prefix = f"{res['module']}." if res.get("module") else ""
        for inst in res["instances"]:
            key = inst.get("index_key")
            out.add(f"{prefix}{res['type']}.{res['name']}" + (f"[{json.dumps(key)}]" if key is not None else ""))
    return out


def test_moved_blocks_are_applied_as_moves_and_destroy_nothing(tfs: TfSetup) -> None:
    tfs.repo.commit(under("infra/net", realistic_module(tfs.provider, tfs.world, sg_name="sg", files_name="files")),
                    "net: groups and config files")
    engine = tfs.engine()  # prune is off (the default): a destroy would be held, never applied
    assert engine.reconcile("net").sync == SyncStatus.SYNCED
    made = {p.name: p.stat().st_mtime_ns for p in tfs.world.iterdir()}
    assert set(made) == {"prod-net-web.json", "prod-net-admin.json", "cfg-0.conf", "cfg-1.conf"}

    # the refactor: rename the resource and the module, with moved blocks
    tfs.repo.commit(under("infra/net", realistic_module(tfs.provider, tfs.world, extra=MOVED)), "net: rename")
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and out.error is None and not out.held_plan_id
    assert [a["action"] for a in out.actions] == ["apply"]
    assert _state_addresses(tfs, engine) == {
        'setpointtest_security_group.group["web"]', 'setpointtest_security_group.group["admin"]',
        "module.config_files.setpointtest_file.cfg[0]", "module.config_files.setpointtest_file.cfg[1]"}
    record = engine.store.audit_entries(actions=("apply",))[-1]
    moves = {c["key"]: c["fields"] for c in record.details["changes"]}
    assert moves['setpointtest_security_group.group["web"]'] == [
        {"path": "(moved from)", "before": 'setpointtest_security_group.sg["web"]',
         "after": 'setpointtest_security_group.group["web"]'}]
    assert all(c["action"] == "update" for c in record.details["changes"])
    assert {p.name: p.stat().st_mtime_ns for p in tfs.world.iterdir()} == made  # nothing re-created or touched

    # the next plan is a no-op: terraform's own detailed exit code says so
    driver = engine.runner("net").driver
    env = {**tfs.env, "TF_DATA_DIR": str(driver.workdir.data_dir)}
    proc = tfs.terraform(driver.workdir._module_dir, "plan", "-input=false", "-detailed-exitcode", check=False, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    before = len(engine.store.audit_entries())
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and not out.actions and len(engine.store.audit_entries()) == before

    # the moved blocks are deleted later (as the Terraform docs suggest once applied): nothing is destroyed
    tfs.repo.commit(under("infra/net", realistic_module(tfs.provider, tfs.world)), "net: drop moved blocks")
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and out.error is None and not out.held_plan_id and not out.actions
    assert "kept because prune is off" not in (engine.store.status("net") or TargetStatus("net")).message
    assert {p.name: p.stat().st_mtime_ns for p in tfs.world.iterdir()} == made
    engine.close()
