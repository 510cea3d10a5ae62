"""Small helpers shared by the core tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config


def resources_yaml(*items: dict[str, Any]) -> str:
    return yaml.safe_dump(list(items), sort_keys=False)


def web(replicas: int = 2, image: str = "web:1", **extra: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "name": "web", "replicas": replicas, "image": image, **extra}


def fake_engine(tmp_path: Path, repo: GitRepo, plugin: FakePlugin, **target: Any) -> Any:
    spec = {"name": "app", "kind": "fake", "path": "app", **target}
    return make_engine(write_config(tmp_path, repo.path, [spec]), plugin)
