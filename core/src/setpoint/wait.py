"""``setpoint wait``: block a CI job until targets are synced (and healthy) at a revision.

It only reads: the state store the running daemon (or any ``setpoint sync``) writes, and the source's
cache repository for "is this commit included in what was applied". It never reconciles itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from setpoint.api import HealthStatus, SyncStatus
from setpoint.config import Config
from setpoint.source.git import GitSource
from setpoint.state import StateStore, TargetStatus


@dataclass(frozen=True)
class Verdict:
    target: str
    done: bool
    #: Why it is not done yet (empty when done).
    reason: str


def judge(status: TargetStatus | None, target: str, wanted: str, health: bool, source: GitSource,
          paused: bool, held: str | None) -> Verdict:
    """Is ``target`` synced (and healthy when asked) at ``wanted`` or a later revision?"""
    if status is None or status.last_run is None:
        return Verdict(target, False, "never reconciled yet")
    short = wanted[:12]
    applied = status.applied_head or ""
    at_wanted = bool(applied) and (applied.startswith(wanted) or (status.applied_revision or "").startswith(wanted)
                                   or source.includes(applied, wanted))
    synced = status.sync == SyncStatus.SYNCED and not status.last_error
    if at_wanted and synced and (not health or status.health == HealthStatus.HEALTHY):
        return Verdict(target, True, "")
    notes = []
    if not at_wanted:
        notes.append(f"{short} not applied yet (applied: {(applied or 'nothing')[:12]})")
    if status.sync != SyncStatus.SYNCED:
        notes.append(status.sync.value)
    if health and status.health != HealthStatus.HEALTHY:
        notes.append(f"health {status.health.value}" + (f" ({status.health_message})" if status.health_message else ""))
    if status.last_error:
        notes.append(f"last run failed at {status.error_stage}: {status.last_error}")
    if paused:
        notes.append("paused (setpoint resume)")
    if held:
        notes.append(f"plan {held} held (setpoint approve {target} {held})")
    return Verdict(target, False, "; ".join(notes))


def wait_for(config: Config, store: StateStore, targets: list[str], revision: str | None, health: bool,
             timeout: float, interval: float = 1.0,
             progress: Callable[[list[Verdict]], None] | None = None) -> tuple[bool, str, list[Verdict]]:
    """Poll until every target is done or ``timeout`` passes. Returns (done, the revision waited
    for, the last verdicts). The default revision is each source's remote head when the wait starts."""
    sources = {name: GitSource(name, sc, config.state_dir / "cache", config.base_dir)
               for name, sc in config.sources.items()}
    wanted: dict[str, str] = {}
    for name in targets:
        source_name = config.target(name).source
        wanted[name] = revision or wanted.get(source_name) or sources[source_name].remote_head()
        wanted.setdefault(source_name, wanted[name])
    deadline = time.monotonic() + timeout
    while True:
        verdicts = []
        for name in targets:
            pause = store.get_pause(name)
            held = store.held_plans(name, ("pending",))
            verdicts.append(judge(store.status(name), name, wanted[name], health,
                                  sources[config.target(name).source],
                                  paused=bool(pause and not pause.expired()),
                                  held=held[-1].plan_id if held else None))
        if progress:
            progress(verdicts)
        if all(v.done for v in verdicts):
            return True, wanted[targets[0]], verdicts
        if time.monotonic() >= deadline:
            return False, wanted[targets[0]], verdicts
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
