"""`import` blocks and `removed` blocks as users write them: an import is an apply that creates
nothing (audited as an import); a `removed` block with `destroy = false` forgets the resource
without destroying it, even with prune off and apply_policy no-destroy."""

from __future__ import annotations

import json

from conftest import TfSetup, realistic_module, under

from setpoint.api import SyncStatus


def _state_addresses(engine: object) -> set[str]:
    state = json.loads(engine.runner("net").driver.workdir.state_file.read_text())  # type: ignore[attr-defined]
    return {f"{r.get('module') + '.' if r.get('module') else ''}{r['type']}.{r['name']}" for r in state["resources"]}


def test_import_block_adopts_an_existing_object_and_creates_nothing(tfs: TfSetup) -> None:
    legacy = tfs.world / "legacy.json"
    legacy.write_text(json.dumps({"name": "legacy", "description": "made by hand", "ingress_ports": [8080]}))
    made = legacy.stat().st_mtime_ns
    extra = f'''
import {{
  to = setpointtest_security_group.legacy
  id = "{legacy}"
}}

resource "setpointtest_security_group" "legacy" {{
  path          = "{legacy}"
  name          = "legacy"
  description   = "made by hand"
  ingress_ports = [8080]
}}
'''
    tfs.repo.commit(under("infra/net", realistic_module(tfs.provider, tfs.world)), "net")
    engine = tfs.engine({"apply_policy": "no-destroy", "binary": tfs.terraform_bin})
    assert engine.reconcile("net").sync == SyncStatus.SYNCED

    tfs.repo.commit(under("infra/net", realistic_module(tfs.provider, tfs.world, extra=extra)), "net: adopt legacy")
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and out.error is None and not out.held_plan_id
    assert "setpointtest_security_group.legacy" in _state_addresses(engine)
    assert legacy.stat().st_mtime_ns == made  # imported, not created or rewritten
    record = engine.store.audit_entries(actions=("apply",))[-1]
    change = next(c for c in record.details["changes"] if c["key"] == "setpointtest_security_group.legacy")
    assert change["action"] == "update"
    assert change["fields"] == [{"path": "(imported)", "before": None, "after": f"import id {legacy}"}]
    # afterwards the import block is a no-op
    before = len(engine.store.audit_entries())
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and not out.actions and len(engine.store.audit_entries()) == before
    engine.close()


def test_removed_block_forgets_without_destroying(tfs: TfSetup) -> None:
    tfs.repo.commit(under("infra/net", realistic_module(tfs.provider, tfs.world)), "net")
    # prune off (default) and no-destroy: a destroy would never run, a forget is not one
    engine = tfs.engine({"apply_policy": "no-destroy", "binary": tfs.terraform_bin})
    assert engine.reconcile("net").sync == SyncStatus.SYNCED
    files = realistic_module(tfs.provider, tfs.world)
    # the team hands the config files over to another tool: drop the module, keep the files
    main = files["main.tf"]
    start = main.index('module "config_files"')
    main = main[:start] + main[main.index("}\n", start) + 2:]
    main += '''
removed {
  from = module.config_files
  lifecycle {
    destroy = false
  }
}
'''
    tfs.repo.commit({"infra/net/main.tf": main}, "net: stop managing the config files")
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and out.error is None and not out.held_plan_id
    assert _state_addresses(engine) == {"setpointtest_security_group.group"}
    assert (tfs.world / "cfg-0.conf").read_text().startswith("# prod-net") and (tfs.world / "cfg-1.conf").exists()
    record = engine.store.audit_entries(actions=("apply",))[-1]
    assert {c["key"]: (c["action"], c["fields"][0]["path"]) for c in record.details["changes"]} == {
        "module.config_files.setpointtest_file.cfg[0]": ("update", "(forgotten)"),
        "module.config_files.setpointtest_file.cfg[1]": ("update", "(forgotten)")}
    out = engine.reconcile("net")
    assert out.sync == SyncStatus.SYNCED and not out.actions
    engine.close()
