"""Fixtures for the docker_compose target tests (real Docker engine and Compose v2, dev/services up docker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compose_helpers import ComposeEnv

from setpoint.testing import GitRepo


@pytest.fixture
def compose_env(tmp_path: Path, git_repo: GitRepo, docker_client: Any, compose_bin: str,
                test_image: str) -> Iterator[ComposeEnv]:
    env = ComposeEnv(tmp_path, git_repo, docker_client, compose_bin)
    yield env
    env.cleanup()
