"""The driver's applied-digest memory lives in ``context.memory``; a file kept by an older version
(applied-digests.json) is adopted once. No cluster needed: the driver connects lazily."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from setpoint.api import TargetContext, TargetMemory, TargetSpec
from setpoint_kubernetes.target import APPLIED_MEMORY, KubernetesTarget


def context(state_dir: Path, memory: TargetMemory) -> TargetContext:
    spec = TargetSpec("app", "kubernetes", "repo", "app", True, False, 60.0)
    return TargetContext(spec, None, state_dir, logging.getLogger("test"), lambda reason: None, memory=memory)


def test_an_old_applied_digests_file_moves_into_memory(tmp_path: Path) -> None:
    old = {"ConfigMap/default/a": "d1", "Deployment/default/web": "d2"}
    (tmp_path / "applied-digests.json").write_text(json.dumps(old))
    memory = TargetMemory()
    driver = KubernetesTarget(context(tmp_path, memory))
    assert driver._applied == old and memory.get(APPLIED_MEMORY) == old
    assert not (tmp_path / "applied-digests.json").exists()
    driver._applied["Secret/default/s"] = "d3"
    driver._save_applied()
    assert KubernetesTarget(context(tmp_path, memory))._applied == {**old, "Secret/default/s": "d3"}
