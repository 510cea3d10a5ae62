"""The docker_compose target passes the driver conformance suite against the real Docker engine:
one service per resource, its value in the container's environment (VALUE)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_helpers import ComposeEnv

from setpoint.testing import GitRepo
from setpoint.testing.conformance import ConformanceAdapter, Encrypt, TargetConformance

pytestmark = pytest.mark.docker


class ComposeAdapter(ConformanceAdapter):
    kind = "docker_compose"

    def __init__(self, env: ComposeEnv, image: str) -> None:
        self.env = env
        self.image = image

    def settings(self) -> dict[str, Any]:
        return self.env.settings()

    def _service(self, env_files: list[str] | None = None, value: str | None = None) -> dict[str, Any]:
        service: dict[str, Any] = {"image": self.image, "command": ["sleep", "86400"], "init": True,
                                   "stop_grace_period": "1s", "restart": "unless-stopped"}
        if value is not None:
            service["environment"] = {"VALUE": value}
        if env_files:
            service["env_file"] = env_files
        return service

    def _compose(self, services: dict[str, Any]) -> str:
        if not services:  # the only service sits behind a profile nobody enables: an empty project
            services = {"placeholder": {**self._service(value="unused"), "profiles": ["never"]}}
        return yaml.safe_dump({"services": services}, sort_keys=True)

    def files(self, values: Mapping[str, str]) -> dict[str, str | bytes]:
        return {"compose.yaml": self._compose({name: self._service(value=v) for name, v in values.items()})}

    def secret_files(self, values: Mapping[str, str], secret_name: str, encrypt: Encrypt) -> dict[str, str | bytes]:
        services = {name: self._service(value=v) for name, v in values.items() if name != secret_name}
        services[secret_name] = self._service(env_files=["secret.env"])
        return {"compose.yaml": self._compose(services), "secret.env": encrypt(f"VALUE={values[secret_name]}\n")}

    def broken_files(self) -> dict[str, str | bytes]:
        return {"compose.yaml": "services:\n  web: [unclosed\n"}

    def read_live(self) -> dict[str, str]:
        live = {}
        for container in self.env.containers():
            container.reload()
            if container.status != "running":
                continue
            service = container.attrs["Config"]["Labels"]["com.docker.compose.service"]
            live[service] = self.env.env_of(container).get("VALUE", "")
        return live

    def _container(self, name: str) -> Any:
        [container] = self.env.containers(name)
        return container

    def change_by_hand(self, name: str, value: str) -> None:
        """`docker inspect` + `docker run` with the same labels and another environment."""
        container = self._container(name)
        config = container.attrs["Config"]
        environment = [e for e in config["Env"] if not e.startswith("VALUE=")] + [f"VALUE={value}"]
        container.remove(force=True)
        self.env.docker.containers.run(config["Image"], config["Cmd"], name=container.name, labels=config["Labels"],
                                       detach=True, environment=environment, network=f"{self.env.project}_default")

    def delete_by_hand(self, name: str) -> None:
        self._container(name).remove(force=True)

    def create_by_hand(self, name: str, value: str) -> None:
        """A container someone started with the project's labels, for a service that is not in Git."""
        labels = {"com.docker.compose.project": self.env.project, "com.docker.compose.service": name,
                  "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False"}
        self.env.docker.containers.run(self.image, ["sleep", "86400"], name=f"{self.env.project}-{name}-1",
                                       labels=labels, detach=True, environment={"VALUE": value})

    def cleanup(self) -> None:
        self.env.cleanup()


class TestComposeConformance(TargetConformance):
    @pytest.fixture
    def adapter(self, tmp_path: Path, docker_client: Any, compose_bin: str, test_image: str) -> ComposeAdapter:
        return ComposeAdapter(ComposeEnv(tmp_path, GitRepo(tmp_path / "unused"), docker_client, compose_bin), test_image)
