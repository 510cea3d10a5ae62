"""The settings model, the env_file hash workaround on the Compose versions at hand, and health rules."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from compose_helpers import ComposeEnv, two_services
from pydantic import ValidationError

from setpoint.api import HealthStatus, SyncStatus
from setpoint_docker_compose.compose import Version
from setpoint_docker_compose.health import service_health
from setpoint_docker_compose.observe import ContainerState
from setpoint_docker_compose.settings import ComposeSettings


def test_settings_reject_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError):
        ComposeSettings.model_validate({"projekt_name": "x"})
    with pytest.raises(ValidationError):
        ComposeSettings.model_validate({"project_name": "Bad Name"})
    with pytest.raises(ValidationError):
        ComposeSettings.model_validate({"host": "http://example"})
    with pytest.raises(ValidationError):
        ComposeSettings.model_validate({"project_directory": "../elsewhere"})
    settings = ComposeSettings.model_validate({"host": "ssh://deploy@db1", "tls": None, "wait": True})
    assert settings.project("Web.Frontend") == "web-frontend" and settings.remove_volumes is False
    assert ComposeSettings(compose_binary="docker compose").compose_command() == ["docker", "compose"]


def test_version_parsing() -> None:
    assert Version.parse("v2.40.3\n").tuple == (2, 40, 3)
    assert Version.parse("Docker Compose version 5.5.0").tuple == (5, 5, 0)


def _state(status: str, health: str | None = None, exit_code: int = 0) -> ContainerState:
    return ContainerState("p-web-1", "id", status, exit_code, health, 0)


@pytest.mark.parametrize(("containers", "expected"), [
    ([_state("running", "healthy")], HealthStatus.HEALTHY),
    ([_state("running")], HealthStatus.HEALTHY),
    ([_state("running", "starting")], HealthStatus.PROGRESSING),
    ([_state("running", "unhealthy")], HealthStatus.DEGRADED),
    ([_state("exited", exit_code=1)], HealthStatus.DEGRADED),
    ([_state("restarting")], HealthStatus.DEGRADED),
    ([], HealthStatus.MISSING),
])
def test_health_rules(containers: list[ContainerState], expected: HealthStatus) -> None:
    assert service_health(1, False, containers, crash_looping=False)[0] == expected


def test_completed_one_shot_is_healthy_a_stopped_service_is_not() -> None:
    assert service_health(1, True, [_state("exited", exit_code=0)], False)[0] == HealthStatus.HEALTHY
    assert service_health(1, False, [_state("exited", exit_code=0)], False)[0] == HealthStatus.DEGRADED


def _naive_hash(compose: str, project: str, directory: Any) -> str:
    out = subprocess.run([compose, "-p", project, "--project-directory", str(directory), "config", "--hash", "web"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def _check_env_file_hash(env: ComposeEnv, compose: str, test_image: str) -> None:
    env.compose_bin = compose
    files = {"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}
    env.repo.commit(files, "v1")
    engine = env.engine(env.target())
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    version = Version.parse(subprocess.run([compose, "version", "--short"], capture_output=True, text=True).stdout)
    label = env.containers("web")[0].labels["com.docker.compose.config-hash"]
    naive = _naive_hash(compose, env.project, env.repo.path / "app")
    if (2, 22, 0) <= version.tuple < (5, 5, 0):
        assert naive != label, f"Compose {version} should show docker/compose#14001"
    # setpoint's comparison never sees drift, whatever the naive hash says
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and not out.actions and not out.drift
    engine.close()


@pytest.mark.docker
def test_env_file_hash_workaround_pinned_compose(compose_env: ComposeEnv, compose_bin: str, test_image: str) -> None:
    _check_env_file_hash(compose_env, compose_bin, test_image)


@pytest.mark.docker
def test_env_file_hash_workaround_newer_compose(compose_env: ComposeEnv, compose_v5_bin: str, test_image: str) -> None:
    _check_env_file_hash(compose_env, compose_v5_bin, test_image)


def test_fingerprint_counts_the_executable_bit(tmp_path: Any) -> None:
    """A commit that only runs `chmod +x` on a mounted script changes the fingerprint (it is deployed);
    files without the bit keep the fingerprint they always had."""
    from setpoint_docker_compose.hashing import fingerprint

    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    plain = fingerprint(b"k", tmp_path, ["check.sh"])
    script.chmod(0o755)
    assert fingerprint(b"k", tmp_path, ["check.sh"]) != plain
    script.chmod(0o444)
    assert fingerprint(b"k", tmp_path, ["check.sh"]) == plain


def test_one_shot_jobs_are_declared_not_guessed() -> None:
    from setpoint_docker_compose.render import one_shot_jobs

    model = {"services": {
        "seed": {"restart": "no"},
        "migrate": {"labels": {"io.setpoint.one-shot": "true"}},
        "redis": {},  # no restart policy: still long-running
        "forever": {"restart": "always", "labels": {"io.setpoint.one-shot": "true"}},
        "web": {"depends_on": {"seed": {"condition": "service_completed_successfully"},
                               "redis": {"condition": "service_started"},
                               "forever": {"condition": "service_completed_successfully"}}},
    }}
    assert one_shot_jobs(model) == {"seed", "migrate"}
