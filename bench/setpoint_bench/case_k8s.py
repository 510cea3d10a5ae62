"""Case 1: Kubernetes, one target of N objects (half ConfigMaps, half Deployments) against the
real API server.

* first sync: setpoint's first reconcile into an empty namespace versus ``kubectl apply
  --server-side -f DIR`` into another empty namespace (same files);
* no-op reconcile: setpoint's reconcile with nothing to do, as the daemon runs it on its interval
  (Git already polled, the render cached, live state from the watch cache), versus ``kubectl diff
  --server-side -f DIR`` against what kubectl applied (what a CI job or a cron "is anything
  different?" costs; Argo CD and Flux do the same server-side dry-run comparison).

Each first sync gets fresh namespaces and a fresh engine; namespaces are deleted (and the
deletion waited for) between repetitions so their load does not land on the next measurement.
"""

from __future__ import annotations

import os
import time
from typing import Any

from setpoint.testing import GitRepo
from setpoint_bench import k8sdata
from setpoint_bench.engines import check, engine
from setpoint_bench.harness import Ctx, Row, Stats, speedup_row

CASE = "1 Kubernetes"


def _first_syncs(ctx: Ctx, n: int, reps: int, tag: str) -> tuple[Stats, Stats, Any, str, str, Any]:
    """``reps`` interleaved first syncs; returns the stats and the last engine/namespaces (kept for the no-op)."""
    base = ctx.scratch(f"k8s-{tag}")
    repo = GitRepo(base / "repo")
    repo.commit(k8sdata.files(k8sdata.objects(n), "app"), f"{n} objects")
    manifests = repo.path / "app"
    ours: list[float] = []
    theirs: list[float] = []
    eng: Any = None
    ns_ours = ns_theirs = ""
    for rep in range(reps):
        if eng is not None:
            eng.close()
            k8sdata.delete_namespaces(ns_ours, ns_theirs, wait=not ctx.smoke)
        ns_ours, ns_theirs = k8sdata.new_namespace(f"bench-sp{n}"), k8sdata.new_namespace(f"bench-kc{n}")
        state = ctx.scratch(f"k8s-{tag}/state{rep}")
        eng = engine(state, repo.path, [k8sdata.target("app", ns_ours, "app")])
        eng.poll("repo")  # Git is polled before the clock starts: case 8 measures it
        # from here on reconcile with poll=False: the head polled above is used, Git is not asked again
        started = time.perf_counter()
        outcome = check(eng.reconcile("app", trigger="bench", poll=False))
        ours.append(time.perf_counter() - started)
        if len(outcome.actions) == 0:
            raise RuntimeError("the first sync applied nothing")
        started = time.perf_counter()
        k8sdata.kubectl("apply", "--server-side", "-n", ns_theirs, "-f", str(manifests))
        theirs.append(time.perf_counter() - started)
    return Stats(ours), Stats(theirs), eng, ns_ours, ns_theirs, manifests


def run(ctx: Ctx) -> list[Row]:
    sizes = [20] if ctx.smoke else [int(n) for n in os.environ.get("SETPOINT_BENCH_K8S_SIZES", "100,1000,5000").split(",")]
    rows: list[Row] = []
    # Warm-up of both sides (kubectl's discovery cache on disk, the Python imports and the API
    # server's first requests of each kind), unmeasured, at a small size.
    _, _, warm, *namespaces, _ = _first_syncs(ctx, 10, ctx.warmup or 1, "warmup")
    warm.close()
    k8sdata.delete_namespaces(*namespaces, wait=not ctx.smoke)
    for n in sizes:
        # kubectl apply of 5000 objects takes over 10 minutes here: one first sync each side at that size
        first_reps = 1 if ctx.smoke or n >= 5000 else 3
        ctx.log(f"   N={n}: {first_reps} first syncs each side")
        try:
            first_ours, first_theirs, eng, ns_ours, ns_theirs, manifests = _first_syncs(ctx, n, first_reps, str(n))
        except Exception as exc:  # noqa: BLE001 - keep the sizes already measured
            rows.append(Row(CASE, f"N={n}", status="failed", note=f"{type(exc).__name__}: {exc}"))
            break
        try:
            rows.append(speedup_row(CASE, f"first sync, N={n}", first_ours, "kubectl apply --server-side",
                                    first_theirs, min_ratio=1.0, target="no slower than kubectl apply (ratio >= 1)"))
            ctx.log(f"   N={n}: first sync setpoint {first_ours.median:.2f} s, kubectl apply {first_theirs.median:.2f} s")

            def noop(eng: Any = eng) -> None:
                outcome = check(eng.reconcile("app", trigger="bench", poll=False))
                if outcome.actions:
                    raise RuntimeError(f"no-op reconcile acted: {outcome.actions[:3]}")

            differed: list[int] = []

            def diff(ns_theirs: str = ns_theirs, manifests: Any = manifests, differed: list[int] = differed) -> None:
                proc = k8sdata.kubectl("diff", "--server-side", "-n", ns_theirs, "-f", str(manifests), check=False)
                # exit 1 = differences: the same work was done (a live GET and a dry-run apply per
                # object); it happens when the deployment controller writes status between the two
                if proc.returncode == 1:
                    differed.append(1)
                elif proc.returncode != 0:
                    raise RuntimeError(f"kubectl diff failed ({proc.returncode}): {proc.stderr[:300]}")

            k8sdata.settle(ns_ours, ns_theirs)

            reps = ctx.reps if ctx.smoke or n < 5000 else 3
            ours, theirs = _compare(noop, diff, reps, ctx.warmup)
            rows.append(speedup_row(CASE, f"no-op reconcile, N={n}", ours, "kubectl diff --server-side", theirs,
                                    min_ratio=20.0 if n == 1000 else None,
                                    target="≥ 20x faster than kubectl diff" if n == 1000 else "",
                                    note="daemon path: Git polled separately, watch cache"
                                    + (f"; kubectl diff reported differences {len(differed)} times (controller "
                                       "status writes)" if differed else "")))
            ctx.log(f"   N={n}: no-op setpoint {ours.median:.3f} s, kubectl diff {theirs.median:.2f} s")
        except Exception as exc:  # noqa: BLE001 - keep the sizes already measured (e.g. the API server went away)
            rows.append(Row(CASE, f"no-op reconcile, N={n}", status="failed", note=f"{type(exc).__name__}: {exc}"))
            break
        finally:
            eng.close()
            k8sdata.delete_namespaces(ns_ours, ns_theirs, wait=not ctx.smoke)
    return rows


def _compare(ours_fn: Any, theirs_fn: Any, reps: int, warmup: int) -> tuple[Stats, Stats]:
    from setpoint_bench.harness import compare

    ours, theirs = compare(ours_fn, theirs_fn, reps, warmup)
    assert theirs is not None
    return ours, theirs
