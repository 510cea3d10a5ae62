"""Case 3: commit-to-applied latency. A commit pushed to a local bare repository until it is live
on a ``files`` target, (a) with the internal trigger a webhook uses (``Scheduler.wake_source``)
and (b) with polling every 1 s.

The clock starts when ``git push`` returns (the commit is in the remote) and stops when the new
content is readable in the destination. Anchors are published, not run: Argo CD polls every
3 minutes by default, Flux's GitRepository interval is 1 minute in its examples and 10 minutes in
bootstrap (../shared/notes/anchors.md); both take webhooks too.
"""

from __future__ import annotations

from pathlib import Path

from setpoint_bench.engines import Daemon, engine
from setpoint_bench.gitdata import commit_and_push, pushable
from setpoint_bench.harness import Ctx, Row, Stats, wait_for

CASE = "3 Commit-to-applied"


def _trials(ctx: Ctx, mode: str) -> Stats:
    base = ctx.scratch(f"commit-{mode}")
    remote, work = pushable(base)
    live = base / "live"
    commit_and_push(work, {"etc/app.conf": "version = 0\n", "etc/motd": "hello\n"}, "v0")
    interval = "1s" if mode == "poll" else "1h"  # with the trigger, polling must not be what applies it
    eng = engine(base, remote, [{"name": "host", "kind": "files", "path": "etc", "interval": "1h",
                                 "files": {"destination": str(live)}}], poll_interval=interval)
    trials = ctx.reps if ctx.smoke else 20
    values: list[float] = []
    with Daemon(eng) as daemon:
        for i in range(1, trials + 1):
            expected = f"version = {i}\n"
            commit_and_push(work, {"etc/app.conf": expected}, f"v{i}")
            target = live / "app.conf"
            if mode == "trigger":
                daemon.scheduler.wake_source("repo", "webhook")
            took = wait_for(lambda: _read(target) == expected, 30)  # noqa: B023 - called within this iteration
            values.append(took)
    return Stats(values)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def run(ctx: Ctx) -> list[Row]:
    rows = []
    for mode, label, note in (
        ("trigger", "internal trigger (as a webhook)", "wake_source right after git push"),
        ("poll", "polling every 1 s", "expected ≈ 0.5 s wait for the next poll + fetch + apply"),
    ):
        stats = _trials(ctx, mode)
        rows.append(Row(CASE, label, setpoint=stats, anchor_name="Argo CD 180 s / Flux 60–600 s poll (published)",
                        target="", style="latency", note=note))
    return rows
