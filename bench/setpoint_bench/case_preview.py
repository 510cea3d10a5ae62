"""Case `preview`: what ``setpoint preview`` adds to rendering (issue 22).

100 ``files`` targets are synced; the preview of the head (nothing changed) renders each of them at
that commit, observes its destination and diffs. The anchor is rendering the same 100 targets
(checkout, decrypt, driver render) and nothing else. The difference is the price of the preview
itself: resolving the ref, the scratch folder, a driver of its own per target over a copy of the
target's folder and memory (taken under the run lock), observe and diff. Target: at most 2 s more
for 100 targets. Both sides start without a render cache, like a fresh ``setpoint preview`` process
(the preview's private drivers never have one).
"""

from __future__ import annotations

from setpoint.engine.reconcile import Reconciler
from setpoint.engine.run import Run
from setpoint.preview import preview
from setpoint.testing import GitRepo
from setpoint_bench.engines import check, engine
from setpoint_bench.harness import Ctx, Row, Stats, compare

CASE = "10 Preview"


def run(ctx: Ctx) -> list[Row]:
    count = 20 if ctx.smoke else 100
    base = ctx.scratch("preview")
    repo = GitRepo(base / "repo")
    repo.commit({f"t{i:03d}/{name}.conf": f"{name} = {i}\n" for i in range(count) for name in ("a", "b", "c")},
                "targets")
    live = base / "live"
    eng = engine(base, repo.path, [{"name": f"t{i:03d}", "kind": "files", "path": f"t{i:03d}", "interval": "1h",
                                    "files": {"destination": str(live / f"t{i:03d}")}} for i in range(count)])
    try:
        for outcome in eng.sync():
            check(outcome)
        head = repo.head()
        names = list(eng.runners)
        source = eng.sources["repo"]

        def forget_renders() -> None:
            for runner in eng.runners.values():
                runner.render_cache = None

        def previewed() -> None:
            forget_renders()
            report = preview(eng, head, names)
            assert not report.failed and report.changes == 0, report.to_dict()

        def rendered() -> None:
            forget_renders()
            for name in names:
                runner = eng.runners[name]
                reconciler = Reconciler(eng, runner)
                run = Run("bench", True)
                run.head = head
                sha = source.last_change(head, [runner.target.path]) or head
                run.revision = source.revision(sha)
                reconciler._desired(run, sha)  # noqa: SLF001 - the render alone is the anchor

        ours, theirs = compare(previewed, rendered, ctx.reps, ctx.warmup)
        assert theirs is not None
        extra = Stats([a - b for a, b in zip(ours.values, theirs.values, strict=True)])
        return [Row(CASE, f"preview of {count} unchanged files targets", setpoint=ours,
                    anchor_name="rendering the same targets", anchor=theirs,
                    ratio=theirs.median / ours.median if ours.median else None,
                    target="<= 2 s more than rendering (100 targets)", met=extra.median <= 2.0,
                    note=f"preview adds {extra.median:.2f} s (median of paired runs)",
                    extra={"added_seconds": extra.as_dict()})]
    finally:
        eng.close()
