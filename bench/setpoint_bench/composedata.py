"""Docker Compose fixtures for the benchmarks: a project of N services from the local test image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml


def compose_bin() -> str:
    return os.environ["SETPOINT_COMPOSE_BIN"]


def project(services: int) -> str:
    image = os.environ.get("SETPOINT_TEST_IMAGE", "setpoint-test/busybox:1")
    body = {"services": {f"svc{i:02d}": {"image": image, "command": ["sleep", "86400"], "init": True,
                                         "pull_policy": "never", "environment": {"INDEX": str(i)}}
                         for i in range(services)}}
    return yaml.safe_dump(body, sort_keys=False)


def target(name: str, path: str, project_name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "docker_compose", "path": path, "interval": "1h",
            "docker_compose": {"project_name": project_name, "compose_binary": compose_bin(), "pull_policy": "never",
                               # the drift case stops containers 20 times: keep the crash-loop guard out of it
                               "restart_limit": 1000, "restart_window": 60, **extra}}


def ssh_settings() -> dict[str, Any]:
    """The docker_compose settings of the ssh Docker host of dev/services up docker-hosts."""
    return {"host": os.environ["SETPOINT_DHOSTS_SSH_HOST"],
            "ssh": {"identity_file": os.environ["SETPOINT_DHOSTS_SSH_KEY"],
                    "known_hosts_file": os.environ["SETPOINT_DHOSTS_SSH_KNOWN_HOSTS"]}}


def ssh_compose_env() -> dict[str, str]:
    """The environment in which `docker compose` reaches the ssh host through the very same ssh
    set-up setpoint uses (its host alias: key, known_hosts, BatchMode), for a fair anchor."""
    from setpoint_docker_compose.settings import ComposeSettings

    host = ComposeSettings.model_validate(ssh_settings()).connect_host()  # also puts the ssh wrapper on PATH
    return {**os.environ, "DOCKER_HOST": host}


def compose(name: str, directory: Path, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [compose_bin(), "-p", name, "--project-directory", str(directory), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"compose {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[:400]}")
    return proc


def down(name: str, env: dict[str, str] | None = None) -> None:
    """Remove a project's containers and networks by its label (works without its compose file)."""
    subprocess.run([compose_bin(), "-p", name, "down", "-v", "--remove-orphans", "-t", "0"], capture_output=True,
                   timeout=600, env=env)


def docker_client(base_url: str | None = None) -> Any:
    import docker

    return docker.DockerClient(base_url=base_url or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                               timeout=120)
