"""What the built-in observers (metrics, notifications) read from a running engine: a narrow
Protocol, so ``setpoint.builtin`` never imports ``setpoint.engine`` (checked by import-linter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from setpoint.api import TargetInfo
from setpoint.config import Config
from setpoint.plugins import Registry
from setpoint.state import StateStore


class SourceView(Protocol):
    @property
    def last_poll_at(self) -> float | None: ...

    @property
    def last_error(self) -> str | None: ...


class RunnerView(Protocol):
    @property
    def info(self) -> TargetInfo: ...


class EngineView(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def sources(self) -> Mapping[str, SourceView]: ...

    @property
    def runners(self) -> Mapping[str, RunnerView]: ...

    def emit(self, event: str, target: TargetInfo | None, details: dict[str, Any]) -> None: ...
