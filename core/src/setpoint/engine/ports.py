"""What one reconcile may ask of the rest of setpoint: a narrow port the :class:`~setpoint.engine.Engine`
implements and a test can stand in for. The reconciler and its stages depend on this Protocol,
never on the engine module, so the two do not import each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from setpoint.api import Decryptor, TargetInfo

if TYPE_CHECKING:
    from setpoint.config import Config
    from setpoint.engine.runner import TargetRunner
    from setpoint.plugins import Registry
    from setpoint.source.git import GitSource
    from setpoint.state import StateStore


class ReconcilePorts(Protocol):
    config: Config
    registry: Registry
    store: StateStore
    #: Outputs published by targets in this process: ``{target: {output: value}}``.
    outputs: dict[str, dict[str, Any]]

    @property
    def sources(self) -> Mapping[str, GitSource]: ...

    def current_head(self, source_name: str, *, poll: bool) -> str:
        """The head to reconcile to; ``poll``: ask Git first (one-shot commands), else the last poll's."""
        ...

    def source_error(self, source_name: str) -> str | None: ...

    def unmet_dependencies(self, runner: TargetRunner, head: str) -> dict[str, str]:
        """The dependencies ``runner`` must wait for, each with why."""
        ...

    def dependency_outputs(self, target: Any) -> dict[str, Mapping[str, Any]]: ...

    def decryptors_for(self, runner: TargetRunner) -> Sequence[Decryptor]: ...

    def emit(self, event: str, target: TargetInfo | None, details: dict[str, Any]) -> None: ...
