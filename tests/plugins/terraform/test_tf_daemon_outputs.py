"""Daemon start with a dependant that reads a sensitive output of another Terraform target: the
sensitive value exists only in the process that reconciled the dependency (it is stored as a
fingerprint), so the dependant waits for it -- no render error, no `error`/`recovered` audit
entries -- and is deployed once the dependency has been reconciled by the daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import TfSetup, sg_module

from setpoint.testing import wait_for, write_config

TOKEN = "tok-daemon-7c1e55aa"


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=300)


def test_daemon_start_waits_for_a_sensitive_dependency_output(tfs: TfSetup) -> None:
    token = f'''
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
  content = "token=${{setpoint:prod-network.token}}\\n"
}}
'''
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443], extra=token),
                     "apps/web/main.tf": app}, "network and app")
    block = {"cli_config": tfs.cli_config, "plugin_cache_dir": str(tfs.cache), "binary": tfs.terraform_bin}
    # the dependant first in the file: the daemon may well start it before its dependency
    config = write_config(tfs.tmp, tfs.repo.path, [
        {"name": "web", "kind": "terraform", "path": "apps/web", "depends_on": ["prod-network"], "interval": "1h",
         "terraform": block},
        {"name": "prod-network", "kind": "terraform", "path": "infra/net", "interval": "1h", "terraform": block}])
    assert cli(config, "sync").returncode == 0
    (tfs.world / "app.conf").unlink()  # something for the daemon's reconcile of web to do

    started = time.time()
    log = open(tfs.tmp / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (tfs.world / "app.conf").exists(), 180)
        wait_for(lambda: all(t["sync"] == "Synced" for t in json.loads(cli(config, "status", "-o", "json").stdout)),
                 60)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
    assert (tfs.world / "app.conf").read_text() == f"token={TOKEN}\n"
    audit = json.loads(cli(config, "audit", "-o", "json").stdout)
    since_start = [e for e in audit if e["time"] >= started] if audit and "time" in audit[0] else audit
    assert not [e for e in since_start if e["action"] in ("error", "recovered")], since_start
    text = (tfs.tmp / "daemon.log").read_text()
    assert "only available after" not in text and "reconcile failed" not in text, text[-3000:]
    assert TOKEN not in text
