"""Case 7: many targets in one setpoint process. 100, 1000 and 10,000 ``files`` targets of 10 files
each, and 1000 Kubernetes targets of 10 objects each (Flux's published shape, issue 24): the first
full pass (``setpoint sync`` of every target: render, observe, apply) and a no-op pass, with peak RSS.

Each measurement is a fresh process with a fresh state directory (scale_worker.py). The anchor
is published, not run: Flux v2.9 reconciles 1000 Kustomizations in 4m13s with 223 MiB on a
16-core runner, roughly 4 per second at concurrency 20 (../shared/notes/anchors.md §4).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from setpoint.testing import GitRepo, write_config
from setpoint_bench import k8sdata, services
from setpoint_bench.harness import Ctx, NotRun, Row, Stats

CASE = "7 Scale"
FLUX = "Flux 1000 Kustomizations: 4m13s, 223 MiB, 16 cores (published)"
BENCH_DIR = Path(__file__).resolve().parent.parent


def _files_repo(base: Path, targets: int) -> GitRepo:
    repo = GitRepo(base / "repo")
    content: dict[str, str | bytes | None] = {}
    for t in range(targets):
        for f in range(10):
            content[f"hosts/t{t:05d}/conf/f{f}.conf"] = f"target = {t}\nfile = {f}\nvalue = {t * 10 + f}\n"
    repo.commit(content, "all targets")
    return repo


def _worker(config: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "setpoint_bench.scale_worker", str(config)], capture_output=True,
                          text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"scale worker failed: {proc.stderr.strip()[-600:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["error_count"]:
        raise RuntimeError(f"{result['error_count']} targets failed, e.g. {result['errors']}")
    return result


def _runs(ctx: Ctx, label: str, make_config: Any, reps: int) -> list[dict[str, Any]]:
    results = []
    for rep in range(reps):
        base = ctx.scratch(f"scale-{label}-{rep}")
        result = _worker(make_config(base))
        ctx.log(f"   {label} #{rep + 1}: first pass {result['first_s']:.1f} s, no-op {result['noop_s']:.2f} s, "
                f"peak RSS {result['rss_mib']:.0f} MiB (load {os.getloadavg()[0]:.1f})")
        results.append(result)
        shutil.rmtree(base, ignore_errors=True)
    return results


def _rows(name: str, results: list[dict[str, Any]], first_target: str = "", first_limit: float | None = None,
          noop_limit: float | None = None, rss_limit: float | None = None) -> list[Row]:
    first = Stats([r["first_s"] for r in results])
    noop = Stats([r["noop_s"] for r in results])
    rss = Stats([r["rss_mib"] for r in results])
    n = results[0]["targets"]
    per_second = n / first.median
    note = f"{per_second:.0f} targets/s; start-up {results[0]['startup_s']:.1f} s"
    return [
        Row(CASE, f"{name}: first pass", setpoint=first, anchor_name=FLUX, target=first_target,
            met=None if first_limit is None else first.median < first_limit, note=note),
        Row(CASE, f"{name}: no-op pass", setpoint=noop, anchor_name="",
            target="" if noop_limit is None else f"< {noop_limit:.0f} s",
            met=None if noop_limit is None else noop.median < noop_limit, note=(
            "applies on no-op: " + ", ".join(results[0]["changed_on_noop"])) if results[0]["changed_on_noop"] else ""),
        Row(CASE, f"{name}: peak RSS", unit="MiB", setpoint=rss, anchor_name=FLUX,
            target="" if rss_limit is None else f"< {rss_limit:.0f} MiB",
            met=None if rss_limit is None else rss.median < rss_limit),
    ]


#: files targets -> (first-pass target, limit s, no-op limit s, RSS limit MiB); issue 24 case 2 at 10,000
FILES_LIMITS: dict[int, tuple[str, float, float | None, float]] = {
    1000: ("< 60 s", 60.0, None, 300.0),
    10000: ("< 5 min", 300.0, 20.0, 1024.0),
}


def run(ctx: Ctx) -> list[Row]:
    sizes = () if ctx.no_scale_files else ctx.scale_files or ((10, 50, 100) if ctx.smoke else (100, 1000, 10000))
    rows: list[Row] = []
    by_size: dict[int, list[dict[str, Any]]] = {}
    for size in sizes:
        # a fresh process per repetition; 10,000 targets take minutes on 2 cores: once
        reps = 1 if ctx.smoke or size >= 10000 else 2
        # one repository per size (its making is not measured); each repetition gets a fresh state
        repo = _files_repo(ctx.scratch(f"scale-repo-{size}"), size)

        def config(base: Path, size: int = size, repo: GitRepo = repo) -> Path:
            targets = [{"name": f"t{t:05d}", "kind": "files", "path": f"hosts/t{t:05d}", "interval": "1h",
                        "files": {"destination": str(base / "live" / f"t{t:05d}")}} for t in range(size)]
            return write_config(base, repo.path, targets, server={"enabled": False})

        by_size[size] = _runs(ctx, f"files{size}", config, reps)
        rows += _rows(f"files ×{size}", by_size[size], *FILES_LIMITS.get(size, ("", None, None, None)))
    for small, large in zip(sizes, sizes[1:], strict=False):
        rows.append(_growth(by_size, small, large))
    for size in ctx.scale_kubernetes or ((5,) if ctx.smoke else (1000,)):
        if size > 0:  # --scale-kubernetes none: (0,)
            rows += _kubernetes(ctx, size, 1 if ctx.smoke else min(2, ctx.reps))
    return rows


def _growth(by_size: dict[int, list[dict[str, Any]]], small: int, large: int) -> Row:
    a, b = by_size[small], by_size[large]
    time_growth = Stats([r["first_s"] for r in b]).median / Stats([r["first_s"] for r in a]).median
    noop_growth = Stats([r["noop_s"] for r in b]).median / Stats([r["noop_s"] for r in a]).median
    rss_growth = Stats([r["rss_mib"] for r in b]).median / Stats([r["rss_mib"] for r in a]).median
    return Row(CASE, f"growth files ×{small} → ×{large}", unit="x", ratio=time_growth,
               ratio_label="first-pass time growth", target=f"close to linear ({large // small}x) or better",
               met=time_growth <= large / small * 1.2,
               note=f"first pass ×{time_growth:.1f}, no-op ×{noop_growth:.1f}, peak RSS ×{rss_growth:.2f} "
                    f"for ×{large // small} targets")


def _kubernetes(ctx: Ctx, targets: int, reps: int) -> list[Row]:
    try:
        services.require("kubernetes")
    except NotRun as exc:
        return [Row(CASE, f"kubernetes ×{targets}", status="not run", note=exc.reason, extra={"service": exc.service})]
    namespaces: list[str] = []

    def config(base: Path) -> Path:
        ns = k8sdata.new_namespace("bench-scale")
        namespaces.append(ns)
        repo = GitRepo(base / "repo")
        content: dict[str, str | bytes | None] = {}
        for t in range(targets):
            content.update(k8sdata.files(k8sdata.objects(10, f"t{t:05d}"), f"apps/t{t:04d}"))
        repo.commit(content, "all targets")
        return write_config(base, repo.path, [k8sdata.target(f"t{t:05d}", ns, f"apps/t{t:04d}")
                                              for t in range(targets)], server={"enabled": False})

    try:
        results = _runs(ctx, "k8s", config, reps)
    finally:
        k8sdata.delete_namespaces(*namespaces, wait=not ctx.smoke)
    limits: tuple[str, float | None, float | None, float | None] = (
        ("< 60 s", 60.0, 2.0, 300.0) if targets == 1000 and not ctx.smoke else ("", None, None, None))  # issue 24 case 1
    return _rows(f"kubernetes ×{targets} (10 objects each)", results, *limits)
