"""A long apply streams its progress: terraform's `-json` UI stream is read while apply runs, each
resource event is logged as it happens, and the target's status message says what is being applied
(seen from another connection to the state store, as `setpoint status` would)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from conftest import TfSetup

from setpoint.api import SyncStatus
from setpoint.state import StateStore, TargetStatus

SLOW = 4


def test_long_apply_streams_resource_progress_to_log_and_status(tfs: TfSetup, caplog: pytest.LogCaptureFixture) -> None:
    module = tfs.provider.required_providers_block() + f'''
variable "schema_version" {{
  type    = number
  default = 7
}}

resource "terraform_data" "migrate" {{
  input = var.schema_version
  provisioner "local-exec" {{
    command = "sleep {SLOW}"
  }}
}}

resource "setpointtest_file" "app" {{
  path    = "{tfs.world / 'app.conf'}"
  content = "schema=${{terraform_data.migrate.output}}\\n"
}}
'''
    tfs.repo.commit({"infra/net/main.tf": module}, "app with a slow migration")
    engine = tfs.engine()
    caplog.set_level(logging.INFO, logger="setpoint.target.net")
    done: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: done.update(out=engine.reconcile("net")))
    worker.start()
    observer = StateStore(tfs.tmp / "state" / "state.db")
    seen = ""
    deadline = time.monotonic() + 300
    while worker.is_alive() and time.monotonic() < deadline:
        message = (observer.status("net") or TargetStatus("net")).message
        if "creating terraform_data.migrate" in message:
            seen = message
            break
        time.sleep(0.1)
    still_running = worker.is_alive()
    worker.join(300)
    observer.close()
    assert seen.startswith("applying plan ") and "of 2 done" in seen, seen
    assert still_running
    assert done["out"].sync == SyncStatus.SYNCED and (tfs.world / "app.conf").read_text() == "schema=7\n"
    assert "applying plan" not in (engine.store.status("net") or TargetStatus("net")).message  # replaced at the end

    records = [r for r in caplog.records if r.name == "setpoint.target.net" and r.getMessage().startswith("apply: ")]
    started = next(r for r in records if "terraform_data.migrate: Creating..." in r.getMessage())
    finished = next(r for r in records if "terraform_data.migrate: Creation complete" in r.getMessage())
    assert finished.created - started.created >= SLOW - 1  # logged as it happened, not all at the end
    engine.close()
