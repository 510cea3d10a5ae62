"""Helpers for the docker_compose target tests: a repo with a Compose project, an engine, Docker look-ups."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from docker.errors import APIError, NotFound

from setpoint.testing import GitRepo, make_engine, write_config


def two_services(image: str, greeting: str = "hello", web_replicas: int = 1, **extra_web: Any) -> str:
    """A web server and a worker with a named volume; web reads GREETING from app.env."""
    web = {"image": image, "command": ["httpd", "-f", "-p", "8080"], "env_file": ["app.env"],
           "environment": {"GREETING": greeting}, "restart": "unless-stopped", "stop_grace_period": "1s", "init": True,
           "scale": web_replicas, **extra_web}
    worker = {"image": image, "command": ["sleep", "86400"], "volumes": ["data:/data"], "stop_grace_period": "1s",
              "init": True}
    return yaml.safe_dump({"services": {"web": web, "worker": worker}, "volumes": {"data": {}}}, sort_keys=False)


@dataclass
class ComposeEnv:
    tmp_path: Path
    repo: GitRepo
    docker: Any
    compose_bin: str
    project: str = field(default_factory=lambda: "spdc-" + uuid.uuid4().hex[:8])

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {"project_name": self.project, "compose_binary": self.compose_bin, "pull_policy": "never", **extra}

    def target(self, name: str = "app", path: str = "app", **extra: Any) -> dict[str, Any]:
        settings = extra.pop("docker_compose", {})
        return {"name": name, "kind": "docker_compose", "path": path, "interval": "1h",
                "docker_compose": self.settings(**settings), **extra}

    def engine(self, *targets: dict[str, Any], **top: Any) -> Any:
        config = write_config(self.tmp_path, self.repo.path, list(targets) or [self.target()], **top)
        return make_engine(config, load_entrypoints=True)

    def containers(self, service: str | None = None, project: str | None = None) -> list[Any]:
        labels = [f"com.docker.compose.project={project or self.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        # ignore_removed: a container setpoint replaces while we list must not fail the listing
        containers = self.docker.containers.list(all=True, filters={"label": labels}, ignore_removed=True)
        return sorted(containers, key=lambda c: c.name)

    def ids(self) -> dict[str, str]:
        return {c.name: c.id for c in self.containers()}

    def env_of(self, container: Any) -> dict[str, str]:
        container.reload()
        return dict(item.partition("=")[::2] for item in container.attrs["Config"]["Env"])

    def running(self, service: str) -> list[Any]:
        return [c for c in self.containers(service) if c.status == "running"]

    def cleanup(self, project: str | None = None) -> None:
        name = project or self.project
        # ignore_removed and NotFound: a container a failed `up` is still creating or removing may vanish
        # between the listing and the removal (a CI teardown failed on exactly that)
        for container in self.docker.containers.list(all=True, ignore_removed=True,
                                                     filters={"label": f"com.docker.compose.project={name}"}):
            _remove_container(container)
        for network in self.docker.networks.list(filters={"label": f"com.docker.compose.project={name}"}):
            network.remove()
        for volume in self.docker.volumes.list(filters={"label": f"com.docker.compose.project={name}"}):
            try:
                volume.remove(force=True)
            except APIError:  # a container a failed `up` was still creating: remove it and retry once
                time.sleep(1)
                for container in self.docker.containers.list(all=True, ignore_removed=True,
                                                             filters={"volume": volume.name}):
                    _remove_container(container)
                volume.remove(force=True)


def _remove_container(container: Any) -> None:
    try:
        container.remove(force=True)
    except NotFound:  # already gone: what cleanup wanted
        pass
