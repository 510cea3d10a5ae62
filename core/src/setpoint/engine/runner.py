"""One configured target at run time: its driver, its render cache and its run lock."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from setpoint.api import (
    Desired,
    Outcome,
    Plan,
    SharedScope,
    TargetContext,
    TargetDriver,
    TargetInfo,
    TargetMemory,
    TargetSpec,
)
from setpoint.config import Config, Grace, TargetConfig
from setpoint.errors import SetpointError

if TYPE_CHECKING:
    from setpoint.engine.run import RunResult
    from setpoint.state import TargetStatus


class TargetLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds ``target`` to every record and keeps fields given at the call (``revision``, ``trigger``)."""

    def process(self, msg: object, kwargs: Any) -> tuple[object, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


@dataclass
class RenderCache:
    """The desired state rendered for one revision; reused while the target's files are unchanged."""

    revision: str
    desired: Desired
    #: Digest of what else went into the render (dependency outputs).
    inputs: str = ""


class TargetRunner:
    """Holds what persists between reconciles of one target inside one process."""

    def __init__(self, config: Config, target: TargetConfig) -> None:
        self.config = config
        self.target = target
        self.name = target.name
        self.driver: TargetDriver | None = None
        self.driver_error: str | None = None
        self.render_cache: RenderCache | None = None
        #: The desired state whose objects were last recorded in the inventory as managed.
        self.adopted: Desired | None = None
        #: Digest of the outputs last published, so unchanged outputs are not written again.
        self.outputs_digest = ""
        #: Decryptors with this target's own ``secrets:`` overrides (None: the engine's).
        self.decryptors: list[Any] | None = None
        self.watched_paths: list[str] = []
        #: The driver's ``context.memory``; the record stage makes its writes durable.
        self.memory = TargetMemory()
        #: What the last reconcile in this process returned (read-only for others: CLI, tests).
        self.last_result: RunResult | None = None
        self.consecutive_failures = 0
        #: The last status written to the store (without volatile fields) and when (monotonic).
        self.saved_status: TargetStatus | None = None
        self.saved_at = 0.0
        #: The per-object health last written (None: not written by this process yet).
        self.saved_object_health: dict[str, str] | None = None
        #: Delay of the next quick re-check after an apply that did not converge (doubles, capped).
        self.recheck_delay = 0.0
        self._thread_lock = threading.Lock()
        self.info = TargetInfo(target.name, target.kind, target.source, target.path)
        self.logger = TargetLogger(logging.getLogger(f"setpoint.target.{target.name}"), {"target": target.name})

    @property
    def last_outcome(self) -> Outcome | None:
        return self.last_result.outcome if self.last_result else None

    @property
    def last_plan(self) -> Plan | None:
        return self.last_result.plan if self.last_result else None

    @property
    def wake_at(self) -> float | None:
        """When the last reconcile asked to run again regardless of the interval (epoch), if it did."""
        return self.last_result.next_run_at if self.last_result else None

    # Effective settings (target value, else the defaults block)
    @property
    def interval(self) -> float:
        return float(self.config.effective(self.target, "interval"))

    @property
    def prune(self) -> bool:
        return bool(self.config.effective(self.target, "prune"))

    @property
    def allow_empty(self) -> bool:
        return bool(self.config.effective(self.target, "allow_empty"))

    @property
    def self_heal(self) -> bool | Grace:
        value = self.config.effective(self.target, "self_heal")
        return value  # type: ignore[no-any-return]

    def spec(self) -> TargetSpec:
        return TargetSpec(self.name, self.target.kind, self.target.source, self.target.path, self.prune,
                          self.allow_empty, self.interval)

    def create_driver(self, cls: type[TargetDriver], settings: object, state_dir: Path,
                      trigger: object, outputs: object, check_health: object, memory: TargetMemory,
                      progress: object, stands_for: Path | None = None, shared: SharedScope | None = None,
                      instance: str = "local") -> None:
        driver_dir = state_dir / "targets" / self.name
        driver_dir.mkdir(parents=True, exist_ok=True)
        self.memory = memory
        context = TargetContext(self.spec(), settings, driver_dir, logging.getLogger(f"setpoint.target.{self.name}"),
                                trigger, outputs, self.config.base_dir, check_health,  # type: ignore[arg-type]
                                memory, progress,  # type: ignore[arg-type]
                                stands_for, shared if shared is not None else SharedScope(), instance)
        self.driver = cls(context)
        # what the last render depended on outside the target's path, remembered by the driver across
        # restarts: the first revision picked in this process already accounts for it
        try:
            self.watched_paths = list(self.driver.remembered_watched_paths())
        except Exception:  # noqa: BLE001 - a memory the driver cannot read only costs a second render
            self.logger.warning("could not read the paths the last render depended on", exc_info=True)

    @contextmanager
    def exclusive(self, lock_dir: Path, timeout: float) -> Iterator[None]:
        """One run of this target at a time: within this process (a lock) and across processes
        (``flock`` on a per-target file, released by the kernel if the process dies)."""
        if not self._thread_lock.acquire(timeout=timeout):
            raise SetpointError(f"target {self.name} is busy: another reconcile is running in this process")
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"{self.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise SetpointError(
                                f"target {self.name} is busy: another setpoint process is reconciling it") from None
                        time.sleep(0.05)
                yield
            finally:
                os.close(fd)
        finally:
            self._thread_lock.release()
