"""Case 5: setpoint's overhead on Terraform. A no-op reconcile of a module (10 resources of the
test provider) versus a bare ``terraform plan -detailed-exitcode`` of an identical module with its
own state, both initialised and applied beforehand.

setpoint's observe runs ``plan -out`` and ``show -json`` of the saved plan (to review exactly what
would be applied), so the overhead is that second command plus setpoint's own work. The ratio
here is setpoint / terraform; the target is at most 1.10.
"""

from __future__ import annotations

from setpoint.testing import GitRepo
from setpoint_bench import tfdata
from setpoint_bench.engines import check, engine
from setpoint_bench.harness import Ctx, Row, compare

CASE = "5 Terraform"


def run(ctx: Ctx) -> list[Row]:
    count = 3 if ctx.smoke else 10
    base = ctx.scratch("terraform")
    cache = ctx.scratch("tf-plugin-cache")
    ours_world, theirs_world = base / "world-sp", base / "world-tf"
    ours_world.mkdir()
    theirs_world.mkdir()
    repo = GitRepo(base / "repo")
    repo.commit({"infra/main.tf": tfdata.module(ours_world, count)}, "module")
    anchor = base / "anchor"
    anchor.mkdir()
    (anchor / "main.tf").write_text(tfdata.module(theirs_world, count))
    tfdata.terraform(anchor, "init", "-input=false", "-no-color", cache=cache)
    tfdata.terraform(anchor, "apply", "-auto-approve", "-input=false", "-no-color", cache=cache)

    eng = engine(base, repo.path, [tfdata.target("net", "infra", cache)])
    try:
        check(eng.reconcile("net", trigger="bench"))
        # from here on reconcile with poll=False: the head polled above is used, Git is not asked again

        def noop() -> None:
            outcome = check(eng.reconcile("net", trigger="bench", poll=False))
            if outcome.actions:
                raise RuntimeError(f"no-op reconcile acted: {outcome.actions[:3]}")

        def plan() -> None:
            proc = tfdata.terraform(anchor, "plan", "-detailed-exitcode", "-input=false", "-no-color", "-lock=true",
                                    cache=cache, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"terraform plan: exit {proc.returncode} (2 = changes): {proc.stdout[-300:]}")

        ours, theirs = compare(noop, plan, ctx.reps, ctx.warmup)
    finally:
        eng.close()
    assert theirs is not None
    overhead = ours.median / theirs.median
    return [Row(CASE, f"no-op reconcile, {count} resources", setpoint=ours, anchor_name="terraform plan -detailed-exitcode",
                anchor=theirs, ratio=overhead, ratio_label="setpoint / terraform", target="≤ 1.10 (10 % overhead)",
                met=overhead <= 1.10, note=f"overhead {100 * (overhead - 1):+.0f} %; ratio = setpoint / terraform")]
