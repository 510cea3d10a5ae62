"""`setpoint sync app` with a Terraform dependency: it never exits 0 "Synced" without deploying.
When the dependency is not yet at the head, `sync app` reconciles it first (and says so); when the
dependency cannot get there (its plan is held), app waits: OutOfSync/Progressing with the reason,
and the command exits non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import TfSetup, realistic_module, under

from setpoint.testing import write_config

WEB_GROUP = '''
output "web_group" {
  value = setpointtest_security_group.group["web"].id
}
'''


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=300)


def _commit(tfs: TfSetup, web_ports: str, release: str) -> None:
    network = realistic_module(tfs.provider, tfs.world, extra=WEB_GROUP)
    network["main.tf"] = network["main.tf"].replace("web   = [443]", f"web   = {web_ports}")
    app = tfs.provider.required_providers_block() + f'''
resource "setpointtest_file" "app" {{
  path    = "{tfs.world / 'app.conf'}"
  content = "release={release} group=${{setpoint:prod-network.web_group}} db=${{setpoint:prod-network.db_password}}\\n"
}}
'''
    tfs.repo.commit({**under("infra/net", network), "apps/web/main.tf": app}, f"release {release}")


def _config(tfs: TfSetup, network_policy: str) -> Path:
    block = {"cli_config": tfs.cli_config, "plugin_cache_dir": str(tfs.cache), "binary": tfs.terraform_bin}
    return write_config(tfs.tmp, tfs.repo.path, [
        {"name": "prod-network", "kind": "terraform", "path": "infra/net",
         "terraform": {**block, "apply_policy": network_policy}},
        {"name": "web", "kind": "terraform", "path": "apps/web", "depends_on": ["prod-network"], "terraform": block}])


def _sync(config: Path, *names: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    proc = cli(config, "sync", *names, "-o", "json")
    return proc.returncode, {o["target"]: o for o in json.loads(proc.stdout)}, proc.stderr


def test_sync_app_deploys_its_dependency_first_or_reports_the_wait(tfs: TfSetup) -> None:
    _commit(tfs, "[443]", "v1")
    config = _config(tfs, "auto")
    rc, outcomes, _ = _sync(config)
    assert rc == 0 and {o["sync"] for o in outcomes.values()} == {"Synced"}
    assert (tfs.world / "app.conf").read_text().startswith("release=v1 ")

    # one commit changes the network and the app; the user syncs only the app
    _commit(tfs, "[443, 8443]", "v2")
    rc, outcomes, log = _sync(config, "web")
    assert rc == 0, outcomes
    assert list(outcomes) == ["prod-network", "web"]
    assert outcomes["prod-network"]["trigger"] == "dependency of web" and outcomes["prod-network"]["sync"] == "Synced"
    assert "reconciling prod-network first" in log
    assert (tfs.world / "app.conf").read_text().startswith("release=v2 ")
    assert json.loads((tfs.world / "prod-net-web.json").read_text())["ingress_ports"] == [443, 8443]

    # the network's next plan waits for approval: the app cannot be deployed, and says so
    config = _config(tfs, "manual")
    _commit(tfs, "[443, 8443, 9443]", "v3")
    rc, outcomes, _ = _sync(config, "web")
    assert rc != 0
    assert outcomes["prod-network"]["held_plan"]
    web = outcomes["web"]
    assert (web["sync"], web["health"]) == ("OutOfSync", "Progressing")
    wait = next(a for a in web["actions"] if a["action"] == "wait")
    assert wait["dependencies"] == ["prod-network"] and "waiting for dependencies: prod-network" in wait["reason"]
    assert (tfs.world / "app.conf").read_text().startswith("release=v2 ")
    table = cli(config, "sync", "web")
    assert table.returncode != 0 and "waiting for dependencies: prod-network" in table.stdout.replace("\n", " ")
