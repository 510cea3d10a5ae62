"""Shared test configuration. The core's helpers (GitRepo, FakePlugin, fixtures) come from
setpoint.testing, which is also a pytest plugin for plugin authors."""

import sys
from pathlib import Path

# tests/core/helpers.py and friends import as plain modules
sys.path.insert(0, str(Path(__file__).parent / "core"))

# real services (Docker, Kubernetes, Terraform, sops) as fixtures: tests/service_fixtures.py
pytest_plugins = ["service_fixtures"]
