"""Profiles of the slow paths named in docs/benchmarks.md (pyinstrument, text output).

``dev/bench --profile DIR`` is for the cases; this module profiles one operation each, in this
process, so the tree shows setpoint's own frames:

    PYTHONPATH=bench .venv/bin/python -m setpoint_bench.profiles compose-repair compose-noop DIR

Names: compose-repair (one reconcile that restarts a stopped container), compose-noop,
terraform-noop, k8s-noop (N=1000).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from setpoint.testing import GitRepo
from setpoint_bench import composedata, k8sdata, tfdata
from setpoint_bench.engines import check, engine


def _profile(name: str, out: Path, fn: Callable[[], Any], repeat: int = 1) -> None:
    profiler = Profiler(interval=0.001)
    profiler.start()
    for _ in range(repeat):
        fn()
    profiler.stop()
    path = out / f"{name}.txt"
    path.write_text(profiler.output_text(unicode=True, color=False))
    print(f"{name}: {path}")


def compose(out: Path, base: Path, repair: bool) -> None:
    name = f"benchprof{int(time.time()) % 100000}"
    repo = GitRepo(base / "repo")
    repo.commit({"app/compose.yaml": composedata.project(10)}, "v1")
    eng = engine(base, repo.path, [composedata.target("shop", "app", name)])
    docker = composedata.docker_client()
    try:
        check(eng.reconcile("shop"))
        # from here on reconcile with poll=False: the head polled above is used, Git is not asked again
        if repair:
            def stop_and_repair() -> None:
                found = docker.containers.list(filters={"label": [f"com.docker.compose.project={name}",
                                                                   "com.docker.compose.service=svc00"]})
                found[0].stop(timeout=0)
                check(eng.reconcile("shop", trigger="event:docker:die:svc00", poll=False))

            stop_and_repair()  # warm-up
            _profile("compose-repair", out, stop_and_repair, repeat=5)
        else:
            eng.reconcile("shop", poll=False)
            _profile("compose-noop", out, lambda: check(eng.reconcile("shop", poll=False)), repeat=20)
    finally:
        eng.close()
        composedata.down(name)
        docker.close()


def terraform(out: Path, base: Path) -> None:
    world = base / "world"
    world.mkdir()
    repo = GitRepo(base / "repo")
    repo.commit({"infra/main.tf": tfdata.module(world, 10)}, "v1")
    eng = engine(base, repo.path, [tfdata.target("net", "infra", base / "cache")])
    try:
        check(eng.reconcile("net"))
        # from here on reconcile with poll=False: the head polled above is used, Git is not asked again
        eng.reconcile("net", poll=False)
        _profile("terraform-noop", out, lambda: check(eng.reconcile("net", poll=False)), repeat=5)
    finally:
        eng.close()


def k8s(out: Path, base: Path, n: int = 1000) -> None:
    ns = k8sdata.new_namespace("bench-prof")
    repo = GitRepo(base / "repo")
    repo.commit(k8sdata.files(k8sdata.objects(n), "app"), "v1")
    eng = engine(base, repo.path, [k8sdata.target("app", ns, "app")])
    try:
        _profile("k8s-first-sync", out, lambda: check(eng.reconcile("app")))
        # from here on reconcile with poll=False: the head polled above is used, Git is not asked again
        eng.reconcile("app", poll=False)
        _profile("k8s-noop", out, lambda: check(eng.reconcile("app", poll=False)), repeat=10)
    finally:
        eng.close()
        k8sdata.delete_namespaces(ns, wait=False)


def main(argv: list[str]) -> None:
    *names, out_dir = argv
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        with tempfile.TemporaryDirectory(prefix="setpoint-profile-") as tmp:
            base = Path(tmp)
            if name in ("compose-repair", "compose-noop"):
                compose(out, base, repair=name == "compose-repair")
            elif name == "terraform-noop":
                terraform(out, base)
            elif name == "k8s":
                k8s(out, base)
            else:
                raise SystemExit(f"unknown profile {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
