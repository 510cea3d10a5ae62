"""Compose on a host reached over SSH (issue 24 case 7): the ``ssh://`` Docker host of
``dev/services up docker-hosts`` (an engine behind OpenSSH on loopback, key-only).

setpoint's target has ``ssh:`` key and known_hosts files; the anchor is ``docker compose up -d`` with
``DOCKER_HOST`` set to the very same ssh alias (same key, known_hosts file and master connection),
on an identical project of its own. Three measurements:

- no-op: setpoint's reconcile (daemon path: Git polled separately) vs ``up -d`` with nothing to do;
- drift repair, one reconcile: one service's container stopped behind both backs (``docker stop -t 0``
  on the host's engine), then setpoint's reconcile that the Docker event triggers vs ``up -d``, which
  starts it again; only the repairing command is timed;
- drift repair under the daemon: the same stop, from the moment it returns until the container runs
  again, with setpoint's Scheduler, events stream and all (case 2's method, 20 trials).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from setpoint.testing import GitRepo
from setpoint_bench import case_drift, composedata
from setpoint_bench.engines import check, engine
from setpoint_bench.harness import Ctx, NotRun, Row, Stats, speedup_row, timed

CASE = "Compose over SSH"


def run(ctx: Ctx) -> list[Row]:
    rows = []
    for measure in (noop_and_repair, daemon_repair):
        try:
            rows.extend(measure(ctx))
        except NotRun as exc:
            rows.append(Row(CASE, measure.__name__, status="not run", note=exc.reason, extra={"service": exc.service}))
    return rows


def noop_and_repair(ctx: Ctx) -> list[Row]:
    n = 3 if ctx.smoke else 10
    base = ctx.scratch("compose-ssh")
    stamp = int(time.time()) % 100000
    ours_name, theirs_name = f"benchspssh{stamp}", f"benchdcssh{stamp}"
    repo = GitRepo(base / "repo")
    repo.commit({"app/compose.yaml": composedata.project(n)}, f"{n} services")
    anchor_dir = base / "anchor"
    anchor_dir.mkdir()
    (anchor_dir / "compose.yaml").write_text(composedata.project(n))
    ssh_env = composedata.ssh_compose_env()
    # the host's engine itself (its local socket), to stop containers behind setpoint's and Compose's back
    admin = composedata.docker_client(os.environ["SETPOINT_DHOSTS_SSH_SOCK"])
    eng = None
    try:
        eng = engine(base, repo.path, [composedata.target("shop", "app", ours_name, **composedata.ssh_settings())])
        check(eng.reconcile("shop", trigger="bench"))
        composedata.compose(theirs_name, anchor_dir, "up", "-d", env=ssh_env)

        def noop() -> None:
            outcome = check(eng.reconcile("shop", trigger="bench", poll=False))
            if outcome.actions:
                raise RuntimeError(f"no-op reconcile acted: {outcome.actions[:3]}")

        def up() -> None:
            composedata.compose(theirs_name, anchor_dir, "up", "-d", env=ssh_env)

        def repair() -> None:
            outcome = check(eng.reconcile("shop", trigger="event:docker:die:svc00", poll=False))
            if not outcome.actions:
                raise RuntimeError("the repair reconcile did nothing")

        ours_noop, theirs_noop = _interleaved(ctx, noop, up)
        ours_fix, theirs_fix = _interleaved(ctx, repair, up, before=(lambda: _stop(admin, ours_name),
                                                                     lambda: _stop(admin, theirs_name)))
        for name in (ours_name, theirs_name):
            if not _running(admin, name):
                raise RuntimeError(f"svc00 of {name} is not running after the repair")
    finally:
        if eng is not None:
            eng.close()
        composedata.down(ours_name, env=ssh_env)
        composedata.down(theirs_name, env=ssh_env)
        admin.close()
    note = "ssh:// host (OpenSSH on loopback), both through the same ssh alias and master connection"
    return [
        speedup_row(CASE, f"no-op reconcile, {n} services", ours_noop,
                    "docker compose up -d over the same SSH (nothing to do)", theirs_noop, min_ratio=5.0,
                    target="≥ 5x faster", note=f"daemon path: Git polled separately; {note}"),
        speedup_row(CASE, f"drift repair (docker stop of 1 of {n}), one reconcile", ours_fix,
                    "docker compose up -d over the same SSH (starts it)", theirs_fix, min_ratio=1.0,
                    target="no slower than up -d", note=f"only the repairing command is timed; {note}"),
    ]


def daemon_repair(ctx: Ctx) -> list[Row]:
    row = case_drift.compose_ssh(ctx)
    row.case = CASE
    row.name = "drift repair under the daemon: docker stop until running"
    return [row]


def _interleaved(ctx: Ctx, ours: Callable[[], Any], theirs: Callable[[], Any],
                 before: tuple[Callable[[], Any], Callable[[], Any]] | None = None) -> tuple[Stats, Stats]:
    """Like harness.compare, with an untimed step (the stop) before each side's timed command."""
    def side(fn: Callable[[], Any], prepare: Callable[[], Any] | None) -> float:
        if prepare is not None:
            prepare()
        return timed(fn)

    first, second = before or (None, None)
    for _ in range(ctx.warmup):
        side(ours, first)
        side(theirs, second)
    a: list[float] = []
    b: list[float] = []
    for _ in range(ctx.reps):
        a.append(side(ours, first))
        b.append(side(theirs, second))
    return Stats(a), Stats(b)


def _container(admin: Any, project: str) -> Any:
    found = admin.containers.list(all=True, filters={"label": [f"com.docker.compose.project={project}",
                                                               "com.docker.compose.service=svc00"]})
    if len(found) != 1:
        raise RuntimeError(f"expected one container of svc00 in {project}, found {len(found)}")
    return found[0]


def _stop(admin: Any, project: str) -> None:
    _container(admin, project).stop(timeout=0)


def _running(admin: Any, project: str) -> bool:
    return bool(_container(admin, project).attrs["State"]["Running"])

