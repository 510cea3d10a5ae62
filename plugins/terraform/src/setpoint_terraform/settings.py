"""The ``terraform:`` block of a target in setpoint.yaml."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: Any) -> float:
    """``30``, ``"30s"``, ``"5m"``, ``"1h"`` -> seconds (plugins cannot import the core's parser)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


Seconds = Annotated[float, BeforeValidator(_seconds)]

#: Variables always passed to the binary: it needs them to run at all, and they hold no credentials.
BASE_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")

ApplyPolicy = Literal["auto", "no-destroy", "manual"]


class TerraformSettings(BaseModel):
    """Settings of one Terraform/OpenTofu target. Paths are relative to setpoint.yaml unless noted."""

    model_config = ConfigDict(extra="forbid")

    #: The root module, relative to the target's path in Git.
    module: str = "."
    #: ``terraform``/``tofu`` or a path; default: ``terraform`` on PATH, else ``tofu``.
    binary: str | None = None
    workspace: str = "default"
    #: ``-backend-config`` key/values for the module's own backend (not secret: use the env allow-list
    #: or the backend's own credential files for credentials).
    backend_config: dict[str, str] = Field(default_factory=dict)
    #: Input variables (written to a private var file, never put on the command line).
    variables: dict[str, Any] = Field(default_factory=dict)
    #: Extra var files relative to the module root, in order; SOPS-encrypted ones are decrypted.
    var_files: list[str] = Field(default_factory=list)
    #: auto: apply every plan; no-destroy: hold plans that delete or replace; manual: hold every plan.
    apply_policy: ApplyPolicy = "auto"
    parallelism: int = Field(10, ge=1, le=256)
    #: How long terraform waits for a state lock held by someone else before setpoint retries later.
    lock_timeout: Seconds = 60.0
    #: Limit for one terraform command (plan, apply).
    timeout: Seconds = 1800.0
    #: Names (or shell patterns such as ``AWS_*``) of environment variables passed to the binary.
    env: list[str] = Field(default_factory=list)
    #: A CLI configuration file (provider mirrors, credentials): TF_CLI_CONFIG_FILE for the binary.
    cli_config: str | None = None
    #: Provider plugin cache shared by every Terraform target; default: in setpoint's state directory.
    plugin_cache_dir: str | None = None

    @field_validator("module")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("module must be a path inside the target's folder (no '..', not absolute)")
        return str(path)

    @field_validator("var_files")
    @classmethod
    def _var_files(cls, value: list[str]) -> list[str]:
        for item in value:
            if PurePosixPath(item).is_absolute():
                raise ValueError(f"{item}: var files are read from Git, relative to the module root")
        return value

    @field_validator("workspace")
    @classmethod
    def _workspace(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise ValueError("workspace names may use letters, digits, '_', '.' and '-'")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("lock_timeout")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must not be negative")
        return value
