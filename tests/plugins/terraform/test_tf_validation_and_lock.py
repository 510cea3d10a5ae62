"""A commit with broken HCL stops at render (file and line in status, nothing run past validation,
the previous state untouched); a state lock held by someone else is reported and retried, never
broken."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TfSetup, sg_module

from setpoint.api import SyncStatus


def terraform_commands(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split(":")[0] for r in caplog.records if r.name == "setpoint.terraform"]


def test_broken_hcl_stops_before_terraform_runs(tfs: TfSetup, caplog: pytest.LogCaptureFixture) -> None:
    good = sg_module(tfs.provider, tfs.world, [443])
    tfs.repo.commit({"infra/net/main.tf": good, "infra/net/vars.tf": 'variable "x" {\n  default = 1\n}\n'}, "net")
    engine = tfs.engine()
    assert engine.reconcile("net").sync == SyncStatus.SYNCED

    broken = 'variable "x" {\n  default = 1\n}\n\nvariable "y" {\n  default = [1, 2\n}\n'
    tfs.repo.commit({"infra/net/vars.tf": broken,
                     "infra/net/main.tf": good.replace("[443]", "[22, 443]")}, "open 22 and break vars.tf")
    caplog.set_level(logging.DEBUG, logger="setpoint.terraform")
    caplog.clear()
    out = engine.reconcile("net")
    assert out.error_stage == "render"
    assert "infra/net/vars.tf:7:1" in out.error and "syntax error" in out.error
    status = engine.store.status("net")
    assert "infra/net/vars.tf:7" in status["last_error"] and status["error_stage"] == "render"
    # only the syntax check may run (terraform fmt on stdin): no init, plan or apply
    # (the log names the binary: terraform or tofu)
    assert {c.split()[-1] for c in terraform_commands(caplog)} <= {"fmt", "version"}, terraform_commands(caplog)
    assert tfs.sg()["ingress_ports"] == [443]

    # the next commit fixes it and deploys
    tfs.repo.commit({"infra/net/vars.tf": 'variable "x" {\n  default = 1\n}\n'}, "fix vars.tf")
    out = engine.reconcile("net")
    assert out.error is None and tfs.sg()["ingress_ports"] == [22, 443]
    engine.close()


def test_held_state_lock_is_reported_and_retried_not_broken(tfs: TfSetup) -> None:
    tfs.repo.commit({"infra/net/main.tf": sg_module(tfs.provider, tfs.world, [443])}, "net")
    engine = tfs.engine()
    assert engine.reconcile("net").sync == SyncStatus.SYNCED
    state_file: Path = engine.runner("net").driver.workdir.state_file

    # a colleague runs `terraform console` next to the state file (local backend, default path):
    # terraform holds the state lock for as long as the console is open
    env = {**tfs.env, "TF_DATA_DIR": str(tfs.tmp / "colleague-data")}
    console = subprocess.Popen([tfs.terraform_bin, "console"], cwd=state_file.parent, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock_info = state_file.parent / f".{state_file.name}.lock.info"
    try:
        deadline = time.monotonic() + 30
        while not lock_info.exists():
            assert time.monotonic() < deadline, "terraform console did not take the lock"
            time.sleep(0.1)
        (tfs.world / "web.json").write_text('{"name": "web", "ingress_ports": [22]}')
        for _ in range(2):  # retried at every reconcile, each time reported the same way
            out = engine.reconcile("net")
            assert out.error_stage == "observe" and "locked by" in out.error and "force-unlock" in out.error
            assert "never force-unlocks" in out.error
        assert lock_info.exists() and console.poll() is None, "the lock was broken"
        assert len(engine.store.audit_entries(actions=("error",))) == 1  # audited once, not at every retry
    finally:
        console.communicate(input=b"exit\n", timeout=60)
    out = engine.reconcile("net")
    assert out.error is None and out.sync == SyncStatus.SYNCED and tfs.sg()["ingress_ports"] == [443]
    assert engine.store.audit_entries(actions=("recovered",))
    engine.close()
