"""Case 4: Compose no-op reconcile of a 10-service project versus ``docker compose up -d`` with
nothing to do on an identical project.

Two projects with the same services run side by side: one deployed by setpoint (its target),
one by ``docker compose up -d`` (the anchor). Each side then repeats its no-op on its own project:
setpoint's reconcile as the daemon runs it (Git polled separately, render cached, live state from
the Docker API) and ``up -d``, which Compose answers by loading the project and inspecting every
container before deciding there is nothing to do.
"""

from __future__ import annotations

import time

from setpoint.testing import GitRepo
from setpoint_bench import composedata
from setpoint_bench.engines import check, engine
from setpoint_bench.harness import Ctx, Row, compare, speedup_row

CASE = "4 Compose"


def run(ctx: Ctx) -> list[Row]:
    # the same comparison against an ssh:// host is case compose-ssh (case_compose_ssh.py)
    return [_local(ctx)]


def _local(ctx: Ctx) -> Row:
    n = 3 if ctx.smoke else 10
    base = ctx.scratch("compose")
    stamp = int(time.time()) % 100000
    ours_name, theirs_name = f"benchsp{stamp}", f"benchdc{stamp}"
    repo = GitRepo(base / "repo")
    repo.commit({"app/compose.yaml": composedata.project(n)}, f"{n} services")
    anchor_dir = base / "anchor"
    anchor_dir.mkdir()
    (anchor_dir / "compose.yaml").write_text(composedata.project(n))
    eng = None
    try:
        eng = engine(base, repo.path, [composedata.target("shop", "app", ours_name)])
        check(eng.reconcile("shop", trigger="bench"))
        # from here on reconcile with poll=False: the head polled above is used, Git is not asked again
        composedata.compose(theirs_name, anchor_dir, "up", "-d")

        def noop() -> None:
            outcome = check(eng.reconcile("shop", trigger="bench", poll=False))
            if outcome.actions:
                raise RuntimeError(f"no-op reconcile acted: {outcome.actions[:3]}")

        def up() -> None:
            composedata.compose(theirs_name, anchor_dir, "up", "-d")

        ours, theirs = compare(noop, up, ctx.reps, ctx.warmup)
    finally:
        if eng is not None:
            eng.close()
        composedata.down(ours_name)
        composedata.down(theirs_name)
    return speedup_row(CASE, f"no-op reconcile, {n} services", ours, "docker compose up -d (nothing to do)", theirs,
                       min_ratio=5.0, target="≥ 5x faster", note="daemon path: Git polled separately")
