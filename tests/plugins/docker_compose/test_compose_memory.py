"""The driver's restart counts and stable-tree file list live in ``context.memory``; the files an
older version kept (restarts.json, tree.json) are adopted once. No Docker needed: the client is lazy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from setpoint.api import TargetContext, TargetMemory, TargetSpec
from setpoint_docker_compose.apply import TREE_FILES_MEMORY
from setpoint_docker_compose.target import RESTARTS_MEMORY, DockerComposeTarget


def context(state_dir: Path, memory: TargetMemory) -> TargetContext:
    spec = TargetSpec("app", "docker_compose", "repo", "app", True, False, 60.0)
    return TargetContext(spec, None, state_dir, logging.getLogger("test"), lambda reason: None, memory=memory)


def test_old_memory_files_move_into_memory(tmp_path: Path) -> None:
    (tmp_path / "restarts.json").write_text(json.dumps({"web": [1000.0, 1001.5]}))
    (tmp_path / "tree.json").write_text(json.dumps(["app.conf", "nginx/site.conf"]))
    memory = TargetMemory()
    driver = DockerComposeTarget(context(tmp_path, memory))
    assert driver._restarts == {"web": [1000.0, 1001.5]}
    assert memory.get(RESTARTS_MEMORY) == {"web": [1000.0, 1001.5]}
    assert memory.get(TREE_FILES_MEMORY) == ["app.conf", "nginx/site.conf"]
    assert not (tmp_path / "restarts.json").exists() and not (tmp_path / "tree.json").exists()
