"""The ``docker_compose`` target driver: wires settings, render, observe, diff, apply, health and events."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from typing import Any

from setpoint.api import (
    Action,
    ApplyResult,
    Desired,
    Health,
    Live,
    Plan,
    SourceTree,
    TargetContext,
    TargetDriver,
    diff_resources,
)
from setpoint.errors import TemporaryError
from setpoint_docker_compose.apply import TREE_FILES_MEMORY, Applier
from setpoint_docker_compose.compose import ComposeCli
from setpoint_docker_compose.connection import UNREACHABLE, make_client
from setpoint_docker_compose.events import EventWatcher
from setpoint_docker_compose.hashing import content_key
from setpoint_docker_compose.health import project_health
from setpoint_docker_compose.observe import Observer
from setpoint_docker_compose.render import render_project
from setpoint_docker_compose.settings import ComposeSettings

#: context.memory key: service -> times its stopped containers were restarted (the crash-loop guard).
RESTARTS_MEMORY = "restarts"


class DockerComposeTarget(TargetDriver):
    """A Compose project on one Docker host (docs/targets/docker_compose.md)."""

    kind = "docker_compose"
    Settings = ComposeSettings
    partial_apply = True  # services are created, updated and removed one by one

    def __init__(self, context: TargetContext) -> None:
        super().__init__(context)
        self.settings_: ComposeSettings = context.settings or ComposeSettings.model_validate({})
        self.project = self.settings_.project(self.spec.name)
        self.cli = ComposeCli(self.settings_, self.project)
        #: The project's files live here while containers run (bind mounts); see render.py.
        self.stable_root = context.state_dir / "tree"
        #: Where bind mounts point in the model: the stable tree, or for a preview's driver (working
        #: in a copy) the real target's, so an unchanged project previews as unchanged.
        self.model_root = (context.stands_for or context.state_dir) / "tree"
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._watcher: EventWatcher | None = None
        self._last_live: Live | None = None
        self._observer = Observer(self.project, content_key(context.state_dir), self.stable_root,
                                  self.settings_.docker_host())
        # remembered in setpoint's state store; files from an older version move there once
        context.memory.adopt_file(RESTARTS_MEMORY, context.state_dir / "restarts.json")
        context.memory.adopt_file(TREE_FILES_MEMORY, context.state_dir / "tree.json")
        self._restarts: dict[str, list[float]] = self._load_restarts()
        self._crash_looping: set[str] = set()

    # ------------------------------------------------------------------ clients

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.settings_)
            return self._client

    def _reset_client(self) -> None:
        with self._client_lock:
            if self._client is not None:
                try:
                    self._client.close()
                except Exception:  # noqa: BLE001, S110 - a dead connection may fail to close
                    pass
            self._client = None

    # ------------------------------------------------------------------ the contract

    def render(self, tree: SourceTree) -> Desired:
        return render_project(tree, self.settings_, self.cli, self.context.state_dir, self.stable_root,
                              self.model_root)

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        try:
            live = self._observer.observe(self.client, desired, managed)
        except TemporaryError:
            self._reset_client()  # reconnect next time (the daemon may have restarted)
            raise
        self._last_live = live
        return live

    def diff(self, desired: Desired, live: Live) -> Plan:
        plan = diff_resources(desired, live)
        changes = []
        self._crash_looping = set()
        for change in plan.changes:
            if change.kind == "Volume":
                if change.action == Action.DELETE and not self.settings_.remove_volumes:
                    continue  # named volumes hold data: kept unless remove_volumes is set
                if change.action == Action.UPDATE:
                    change.action = Action.REPLACE  # Compose can only change a volume by recreating it
            if change.kind == "Service" and change.action == Action.UPDATE and self._restart_limited(change.name):
                state = [f for f in change.fields if f.path == "state"]
                if state and state[0].before not in ("none",):
                    self._crash_looping.add(change.name)
                    change.fields = [f for f in change.fields if f.path != "state"]
                    if not change.fields:
                        continue
            changes.append(change)
        return Plan(changes, plan.extra)

    def review(self, plan: Plan, drift: bool) -> str | None:
        volumes = [c.name for c in plan.changes if c.kind == "Volume" and c.action == Action.REPLACE]
        if volumes:
            return (f"the plan recreates volume(s) {', '.join(volumes)}: Compose would remove them and their data "
                    "is lost")
        return None

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        live_orphans = set()
        if self._last_live is not None:
            live_orphans = {r.name for k, r in self._last_live.resources.items()
                            if r.kind == "Service" and k not in desired.resources}
        applier = Applier(self.settings_, self.cli, self.client, self.stable_root, self.context.memory)
        try:
            result = applier.apply(plan, desired, self.spec.prune, live_orphans, self._last_live)
        except UNREACHABLE as exc:
            self._reset_client()
            raise TemporaryError(f"Docker host {self.settings_.docker_host()} is unreachable: {type(exc).__name__}") \
                from None
        self._record_restarts(plan, result)
        return result

    def health(self, desired: Desired, live: Live) -> Health:
        return project_health(desired, live, self._crash_looping)

    def start_watching(self) -> None:
        if self._watcher is None and self.settings_.watch_events:
            self._watcher = EventWatcher(lambda: make_client(self.settings_, timeout=60), self.project,
                                         self.context.trigger, self.context.logger, self._observer.touched)
            self._watcher.start()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        self._reset_client()

    # ------------------------------------------------------------------ the crash-loop guard

    def _window(self, service: str) -> list[float]:
        cutoff = time.time() - self.settings_.restart_window
        return [t for t in self._restarts.get(service, []) if t >= cutoff]

    def _restart_limited(self, service: str) -> bool:
        return len(self._window(service)) >= self.settings_.restart_limit

    def _record_restarts(self, plan: Plan, result: ApplyResult) -> None:
        """Count restarts of stopped containers (drift reverted, or a deploy that keeps exiting), persisted
        so a restart of setpoint does not reset the guard."""
        now, changed = time.time(), False
        for change in plan.changes:
            if change.kind == "Service" and change.action == Action.UPDATE and change.key in result.applied \
                    and any(f.path == "state" and f.before not in ("none",) for f in change.fields):
                self._restarts[change.name] = [*self._window(change.name), now]
                changed = True
        if changed:
            self.context.memory.set(RESTARTS_MEMORY, self._restarts)

    def _load_restarts(self) -> dict[str, list[float]]:
        try:
            data = self.context.memory.get(RESTARTS_MEMORY) or {}
            return {str(k): [float(t) for t in v] for k, v in data.items()}
        except (TypeError, ValueError, AttributeError):
            return {}
