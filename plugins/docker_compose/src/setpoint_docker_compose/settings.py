"""The ``docker_compose:`` block of a target in setpoint.yaml, validated by pydantic (unknown keys rejected)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Compose's own rule for project names (lower-case letters, digits, dashes, underscores).
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
LOCAL_SOCKET = "unix:///var/run/docker.sock"


class TlsSettings(BaseModel):
    """TLS for a ``tcp://`` Docker host, in Docker's own layout: a directory with ca.pem, cert.pem, key.pem."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_path: Path = Field(description="directory holding ca.pem, cert.pem and key.pem (like DOCKER_CERT_PATH)")
    verify: bool = Field(True, description="verify the daemon's certificate against ca.pem (DOCKER_TLS_VERIFY)")


class SshSettings(BaseModel):
    """Credentials for an ``ssh://`` Docker host, as files (never inline in setpoint.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity_file: Path = Field(description="private key file for the host's user (ssh -i)")
    known_hosts_file: Path = Field(description="known_hosts file holding the host's key; checked strictly")


class ComposeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The Compose project's directory, relative to the target's path in Git.
    project_directory: str = "."
    #: Compose files (and overrides) relative to project_directory; default: Compose's own lookup.
    files: tuple[str, ...] = ()
    #: Project name; default: the target's name, lower-cased with invalid characters replaced by '-'.
    project_name: str | None = None
    #: Docker host: unix:///path, ssh://user@host or tcp://host:2376; default $DOCKER_HOST or the local socket.
    host: str | None = None
    tls: TlsSettings | None = None
    #: For ssh:// hosts: the key and known_hosts files (default: the system ssh's own configuration).
    ssh: SshSettings | None = None
    #: The Compose v2 executable (`docker-compose`, or "docker compose"); default: docker-compose on PATH,
    #: else the docker CLI plugin.
    compose_binary: str | None = None
    profiles: tuple[str, ...] = ()
    #: Interpolation env files (`--env-file`), relative to project_directory; default: Compose's `.env`.
    env_files: tuple[str, ...] = ()
    #: `up --wait`: wait until services are running/healthy; fails the apply after wait_timeout.
    wait: bool = False
    wait_timeout: float = Field(120.0, gt=0)
    #: `up --pull`; `never` or `missing` on hosts that must not reach a registry.
    pull_policy: Literal["always", "missing", "never"] | None = None
    #: When the target's folder leaves Git (prune on, approved): also remove named volumes (`down -v`).
    remove_volumes: bool = False
    #: Crash-loop guard: at most restart_limit restarts of a stopped service per restart_window seconds.
    restart_limit: int = Field(3, ge=1)
    restart_window: float = Field(300.0, gt=0)
    #: Limit for one compose command (`up` may pull or wait).
    command_timeout: float = Field(600.0, gt=0)
    #: Watch the Docker events stream for the project (setpoint run only).
    watch_events: bool = True

    @field_validator("project_name")
    @classmethod
    def _project_name(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_NAME.match(value):
            raise ValueError("project_name must be lower-case letters, digits, '-' or '_', starting with a letter or digit")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(unix|tcp|ssh|npipe)://", value):
            raise ValueError("host must start with unix://, tcp://, ssh:// (or npipe://)")
        return value

    @field_validator("project_directory", "files", "env_files")
    @classmethod
    def _relative(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for item in [value] if isinstance(value, str) else value:
            if os.path.isabs(item) or ".." in Path(item).parts:
                raise ValueError(f"{item!r} must be a relative path inside the target's folder")
        return value

    # ------------------------------------------------------------------ derived

    def project(self, target_name: str) -> str:
        if self.project_name:
            return self.project_name
        name = re.sub(r"[^a-z0-9_-]", "-", target_name.lower()).lstrip("-_")
        return name or "setpoint"

    def docker_host(self) -> str:
        """The host as configured (for messages)."""
        return self.host or os.environ.get("DOCKER_HOST") or LOCAL_SOCKET

    def connect_host(self) -> str:
        """The host to hand to Docker's client and Compose: an ssh:// host with ``ssh:`` files goes
        through its alias (sshhost.py)."""
        host = self.docker_host()
        if self.ssh is not None and host.startswith("ssh://"):
            from setpoint_docker_compose.sshhost import aliased_host

            return aliased_host(host, self.ssh.identity_file, self.ssh.known_hosts_file)
        return host

    def compose_command(self) -> list[str]:
        if self.compose_binary:
            return shlex.split(self.compose_binary)
        found = shutil.which("docker-compose")
        return [found] if found else ["docker", "compose"]
