"""Timing, statistics and the result model shared by every case."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class NotRun(Exception):  # noqa: N818 - it is an outcome, not an error
    """A case (or one row of it) cannot run here: a service or a plugin is missing.

    ``service`` names the missing service, so smoke mode under CI=true can fail on it.
    """

    def __init__(self, reason: str, service: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.service = service


@dataclass
class Stats:
    """Seconds (or another unit) of repeated runs; the spread is shown as min-max and p95."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def pct(self, q: float) -> float:
        """Nearest-rank percentile (no interpolation: with 20 trials p95 is the 19th value)."""
        ordered = sorted(self.values)
        rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
        return ordered[rank - 1]

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "median": self.median, "min": self.min, "max": self.max,
                "p95": self.pct(95), "values": self.values}


@dataclass
class Row:
    """One line of the results table.

    ``ratio`` is anchor / setpoint for times (above 1: setpoint is faster), or what ``ratio_label``
    says. ``met`` is None when the row has no target or was not run.
    """

    case: str
    name: str
    unit: str = "s"
    setpoint: Stats | None = None
    anchor_name: str = ""
    anchor: Stats | None = None
    ratio: float | None = None
    ratio_label: str = "anchor / setpoint"
    target: str = ""
    met: bool | None = None
    status: str = "ok"  # ok | not run | failed
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: how the setpoint column is summarised: "median" or "latency" (p50 / p95)
    style: str = "median"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["setpoint"] = self.setpoint.as_dict() if self.setpoint else None
        data["anchor"] = self.anchor.as_dict() if self.anchor else None
        return data


@dataclass
class Ctx:
    """What a case needs: its size knobs, a scratch directory and a logger."""

    smoke: bool
    reps: int
    warmup: int
    workdir: Path
    env: dict[str, str]
    log: Callable[[str], None] = print
    profile_dir: Path | None = None
    #: ``--long MINUTES``: how long case 10 runs (0: the case is not run).
    long_minutes: float = 0.0
    #: ``--scale-files 100,1000``: the sizes of case 7's files targets (default 100, 1000, 10000).
    scale_files: tuple[int, ...] = ()
    #: ``--scale-files none``: case 7 runs no files targets (only its Kubernetes sizes).
    no_scale_files: bool = False
    #: ``--scale-kubernetes 200,1000``: the sizes of case 7's kubernetes targets (default 1000; smoke 5).
    scale_kubernetes: tuple[int, ...] = ()

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def compare(setpoint: Callable[[], Any], anchor: Callable[[], Any] | None, reps: int,
            warmup: int) -> tuple[Stats, Stats | None]:
    """Run both sides ``warmup`` times unmeasured, then ``reps`` times interleaved.

    Interleaving (A, B, A, B, ...) spreads the load of a shared machine evenly over both sides,
    so a burst of someone else's work does not land on one side only.
    """
    for _ in range(warmup):
        setpoint()
        if anchor is not None:
            anchor()
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(reps):
        ours.append(timed(setpoint))
        if anchor is not None:
            theirs.append(timed(anchor))
    return Stats(ours), (Stats(theirs) if anchor is not None else None)


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.01) -> float:
    """Seconds until ``predicate()`` is true; TimeoutError after ``timeout``."""
    started = time.perf_counter()
    while True:
        if predicate():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout:.0f}s")
        time.sleep(step)


def speedup_row(case: str, name: str, ours: Stats, anchor_name: str, theirs: Stats | None, *,
                min_ratio: float | None = None, target: str = "", note: str = "") -> Row:
    """A row whose target is "setpoint at least ``min_ratio`` times faster than the anchor"."""
    ratio = theirs.median / ours.median if theirs is not None and ours.median > 0 else None
    met = None if min_ratio is None or ratio is None else ratio >= min_ratio
    return Row(case, name, setpoint=ours, anchor_name=anchor_name, anchor=theirs, ratio=ratio, target=target,
               met=met, note=note)
