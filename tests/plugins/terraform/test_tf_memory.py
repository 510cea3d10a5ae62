"""The driver's memory (synced digest, state serial, stale plan ids) lives in ``context.memory``; a
setpoint.json kept by an older version in the working directory is adopted once. No terraform run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from setpoint.api import TargetContext, TargetMemory, TargetSpec
from setpoint_terraform.memory import MEMORY_KEY
from setpoint_terraform.target import TerraformTarget


def context(state_dir: Path, memory: TargetMemory) -> TargetContext:
    spec = TargetSpec("net", "terraform", "repo", "infra", True, False, 60.0)
    return TargetContext(spec, None, state_dir, logging.getLogger("test"), lambda reason: None, memory=memory)


def test_an_old_setpoint_json_moves_into_memory(tmp_path: Path) -> None:
    state_dir = tmp_path / "targets" / "net"
    state_dir.mkdir(parents=True)
    base = TerraformTarget(context(state_dir, TargetMemory())).workdir.base
    old = {"synced_digest": "abc", "serial": 7, "lineage": "L-1", "stale_ids": ["p1"]}
    (base / "setpoint.json").write_text(json.dumps(old))
    memory = TargetMemory()
    driver = TerraformTarget(context(state_dir, memory))
    assert (driver.memory.synced_digest, driver.memory.serial, driver.memory.lineage) == ("abc", 7, "L-1")
    assert memory.get(MEMORY_KEY) == old and not (base / "setpoint.json").exists()
    driver.memory.stale_ids.append("p2")
    driver.memory.save(memory)
    assert TerraformTarget(context(state_dir, memory)).memory.stale_ids == ["p1", "p2"]
