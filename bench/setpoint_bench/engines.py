"""setpoint as the benchmarks drive it: a one-shot engine, and the daemon's scheduler in a thread.

The scheduler runs in this process (as ``setpoint run`` would in its own) so a case can make a
manual change and watch for the repair without spawning and polling a CLI, whose start-up time
would be measured instead of setpoint's reaction.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from setpoint.engine.scheduler import Scheduler
from setpoint.testing import make_engine, write_config
from setpoint_bench.harness import NotRun

# The benchmarks report numbers; the engine's info logs would only interleave with them.
logging.getLogger("setpoint").setLevel(logging.ERROR)


def engine(directory: Path, repo: Path | str, targets: list[dict[str, Any]], poll_interval: str = "1s",
           **top: Any) -> Any:
    """An engine with every installed plugin (through the real entry points), no status server."""
    top.setdefault("server", {"enabled": False})
    top.setdefault("sources", {"repo": {"url": str(repo), "branch": "main", "poll_interval": poll_interval}})
    config = write_config(directory, repo, targets, **top)
    eng = make_engine(config, load_entrypoints=True)
    for runner in eng.runners.values():
        if runner.driver_error:
            eng.close()
            if "not implemented" in runner.driver_error:
                raise NotRun(f"plugin for kind {runner.target.kind} not landed yet ({runner.driver_error})")
            raise RuntimeError(f"target {runner.name}: {runner.driver_error}")
    return eng


def check(outcome: Any) -> Any:
    """Fail loudly on a failed reconcile: a benchmark of an error path measures nothing."""
    if outcome.error:
        if "not implemented" in outcome.error:
            raise NotRun(f"plugin not landed yet ({outcome.error})")
        raise RuntimeError(f"reconcile of {outcome.target.name} failed at {outcome.error_stage}: {outcome.error}")
    return outcome


class Daemon:
    """``setpoint run`` in a thread: the Scheduler with its pollers, workers and live-state watches."""

    def __init__(self, eng: Any, settle: float = 1.0) -> None:
        self.engine = eng
        self.scheduler = Scheduler(eng)
        self.settle = settle
        self.thread = threading.Thread(target=self.scheduler.run, name="bench-daemon", daemon=True)

    def __enter__(self) -> Daemon:
        self.thread.start()
        if not self.scheduler.first_pass_done.wait(600):
            raise RuntimeError("the daemon's first pass did not finish within 600 s")
        # watches start after a target's first reconcile; give them a moment to connect
        time.sleep(self.settle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.scheduler.stop()
        self.thread.join(timeout=120)
        self.engine.close()
