"""Outputs for dependants: a second target reads `prod-network`'s outputs through the core's
`${setpoint:TARGET.OUTPUT}` substitution; a sensitive output reaches its resource and stays
redacted everywhere else."""

from __future__ import annotations

from conftest import TfSetup, sg_module

from setpoint.api import SyncStatus
from setpoint.secrets import Secret
from setpoint.testing import make_engine, write_config

TOKEN = "tok-network-3f9a1c77"


def test_dependant_reads_outputs_and_sensitive_ones_stay_secret(tfs: TfSetup) -> None:
    token_output = f'''
variable "token" {{
  type      = string
  default   = "{TOKEN}"
  sensitive = true
}}

output "token" {{
  value     = var.token
  sensitive = true
}}
'''
    app = tfs.provider.required_providers_block() + f'''
resource "setpointtest_file" "cfg" {{
  path    = "{tfs.world / 'app.conf'}"
  content = "sg=${{setpoint:prod-network.sg_path}} token=${{setpoint:prod-network.token}}\\n"
}}
'''
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443], extra=token_output),
                     "apps/web/main.tf": app}, "network and app")
    block = {"cli_config": tfs.cli_config, "plugin_cache_dir": str(tfs.cache), "binary": tfs.terraform_bin}
    config = write_config(tfs.tmp, tfs.repo.path, [
        {"name": "prod-network", "kind": "terraform", "path": "infra/net", "terraform": block},
        {"name": "web", "kind": "terraform", "path": "apps/web", "depends_on": ["prod-network"], "terraform": block}])
    engine = make_engine(config, load_entrypoints=True)
    outcomes = engine.sync()
    assert [(o.target.name, o.sync, o.error) for o in outcomes] == [
        ("prod-network", SyncStatus.SYNCED, None), ("web", SyncStatus.SYNCED, None)]
    published = engine.outputs["prod-network"]
    assert published["sg_path"] == str(tfs.world / "web.json") and isinstance(published["token"], Secret)
    assert (tfs.world / "app.conf").read_text() == f"sg={tfs.world / 'web.json'} token={TOKEN}\n"
    records = repr([e.details for e in engine.store.audit_entries()])
    assert TOKEN not in records
    assert not any(TOKEN.encode() in p.read_bytes() for p in (tfs.tmp / "state").glob("*.db*"))
    engine.close()
