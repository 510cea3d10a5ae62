"""Shared test configuration. The core's helpers (GitRepo, FakePlugin, fixtures) come from
setpoint.testing, an opt-in pytest plugin for plugin authors (loaded here with pytest_plugins)."""

import sys
from pathlib import Path

# tests/core/helpers.py and friends import as plain modules
sys.path.insert(0, str(Path(__file__).parent / "core"))

# real services (Docker, Kubernetes, Terraform, sops) as fixtures: tests/service_fixtures.py
pytest_plugins = ["service_fixtures", "setpoint.testing"]
