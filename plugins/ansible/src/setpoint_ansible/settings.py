"""The ``ansible:`` block of a target in setpoint.yaml."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: Any) -> float:
    """``30``, ``"30s"``, ``"5m"`` -> seconds (plugins cannot import the core's parser)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


Seconds = Annotated[float, BeforeValidator(_seconds)]

#: Variables always passed to ansible-playbook: it needs them to run, and they hold no credentials.
BASE_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR")


def _inside(value: str, what: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{what} must be a path inside the target's folder in Git (no '..', not absolute)")
    return str(path)


class AnsibleSettings(BaseModel):
    """Settings of one Ansible target. Paths to files in Git are relative to the target's folder;
    paths to files on the machine running setpoint (keys) are relative to setpoint.yaml."""

    model_config = ConfigDict(extra="forbid")

    #: The playbook, in the target's folder in Git.
    playbook: str = "site.yml"
    #: An inventory file or directory in the target's folder in Git ...
    inventory: str | None = None
    #: ... or the hosts, listed here: ``{name: {ansible_host: ..., ansible_port: ..., other vars}}``.
    hosts: dict[str, dict[str, Any]] | None = None
    #: Extra variables (highest precedence), written to a private file, never on the command line.
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    #: Vars files in the target's folder, passed as extra vars in order; SOPS-encrypted ones are decrypted.
    vars_files: list[str] = Field(default_factory=list)
    #: SSH private key (``--private-key``), a file on the machine running setpoint.
    private_key_file: str | None = None
    #: A known_hosts file; host keys are always checked (StrictHostKeyChecking=yes).
    known_hosts_file: str | None = None
    #: The SSH user (``-u``); default: the inventory's ``ansible_user`` or ansible's default.
    user: str | None = None
    become: bool = False
    become_user: str | None = None
    forks: int = Field(5, ge=1, le=200)
    tags: list[str] = Field(default_factory=list)
    skip_tags: list[str] = Field(default_factory=list)
    #: A host pattern (``--limit``) applied to every run.
    limit: str | None = None
    #: Run notified handlers even when a later task fails on the host (``--force-handlers``).
    force_handlers: bool = False
    #: SSH connection timeout for each host, also how long ansible waits for the become (sudo) prompt:
    #: longer than ansible's 10 s, because a loaded host that answers late is not an unreachable one.
    connect_timeout: Seconds = 30.0
    #: Limit for one ansible-playbook run (check or apply).
    timeout: Seconds = 1800.0
    #: Names (or shell patterns such as ``AWS_*``) of environment variables passed to ansible-playbook.
    env: list[str] = Field(default_factory=list)

    @field_validator("playbook")
    @classmethod
    def _playbook(cls, value: str) -> str:
        return _inside(value, "playbook")

    @field_validator("inventory")
    @classmethod
    def _inventory(cls, value: str | None) -> str | None:
        return None if value is None else _inside(value, "inventory")

    @field_validator("vars_files")
    @classmethod
    def _vars_files(cls, value: list[str]) -> list[str]:
        return [_inside(v, "vars_files entries") for v in value]

    @field_validator("timeout", "connect_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @model_validator(mode="after")
    def _one_inventory(self) -> AnsibleSettings:
        if (self.inventory is None) == (self.hosts is None):
            raise ValueError("set exactly one of 'inventory' (a file in Git) and 'hosts' (listed here)")
        if self.hosts is not None and not self.hosts:
            raise ValueError("'hosts' lists no host")
        return self
