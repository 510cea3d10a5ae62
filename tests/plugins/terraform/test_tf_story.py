"""The user's incident, end to end with `setpoint run`: Git closed port 22; an engineer's laptop
with a stale copy of the module applies against the same state and opens it again. setpoint sees
the drift within one interval, reverts it, and `setpoint audit` shows what was seen and done."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from conftest import TfSetup, sg_module

from setpoint.testing import wait_for

INTERVAL = 3.0


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=120)




def test_stale_laptop_apply_is_seen_and_reverted_within_one_interval(tfs: TfSetup) -> None:
    shared = tfs.tmp / "shared-state"
    shared.mkdir()
    backend = f'  backend "local" {{\n    path = "{shared / "net.tfstate"}"\n  }}\n'
    stale = sg_module(tfs.provider, tfs.world, [22, 443], backend=backend)
    tfs.repo.commit({"infra/net/main.tf": stale}, "net: ssh and https", author="Alice <alice@example.com>")
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443], backend=backend)},
                    "net: close port 22", author="Bob <bob@example.com>")
    config = tfs.config({"binary": tfs.terraform_bin}, interval=f"{INTERVAL:g}s")
    log = open(tfs.tmp / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (tfs.world / "web.json").exists() and tfs.sg()["ingress_ports"] == [443], 60)
        wait_for(lambda: '"sync": "Synced"' in cli(config, "status", "-o", "json").stdout, 30)

        # the laptop: a stale checkout of the module, same backend, plain `terraform apply`
        laptop = tfs.tmp / "laptop"
        laptop.mkdir()
        (laptop / "main.tf").write_text(stale)
        tfs.terraform(laptop, "init", "-input=false", "-no-color")
        started_wall = time.time() - 1
        tfs.terraform(laptop, "apply", "-auto-approve", "-input=false", "-no-color", "-lock-timeout=60s")
        opened_at = time.monotonic()
        assert tfs.sg()["ingress_ports"] == [22, 443]

        latency = wait_for(lambda: tfs.sg()["ingress_ports"] == [443], INTERVAL + 30, step=0.1)
        assert time.monotonic() - opened_at < INTERVAL + 30
        print(f"stale apply reverted {latency:.1f}s after it finished (interval {INTERVAL:g}s)")
        wait_for(lambda: cli(config, "audit", "--action", "revert-drift", "-o", "json").stdout.count('"revert-drift"') >= 1, 30)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()

    since = datetime.fromtimestamp(started_wall).isoformat(timespec="seconds")
    until = datetime.fromtimestamp(time.time() + 1).isoformat(timespec="seconds")
    text = cli(config, "audit", "--since", since, "--until", until).stdout
    print(text)
    assert "drift-detected" in text and "revert-drift" in text, text
    assert "update setpointtest_security_group.web (drift)" in text, text
    assert "ingress_ports: [22, 443] -> [443]" in text, text
    assert "written outside setpoint" in text, text      # the state itself moved away from Git
    assert "close port 22" in text and "Bob" in text, text  # the revision Git wants, and who made it
    entries = json.loads(cli(config, "audit", "--since", since, "--until", until, "-o", "json").stdout)
    actions = [e["action"] for e in entries if e["target"] == "net"]
    assert actions.index("drift-detected") < actions.index("revert-drift")
    shutil.rmtree(tfs.tmp / "laptop", ignore_errors=True)
