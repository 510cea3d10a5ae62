"""Case 9: CLI start-up. ``setpoint status``, ``audit --since 1h`` and ``sync`` of one ``files``
target, each a fresh process, against ``python -c pass`` (the floor of any Python command) and
``git status`` (a command people run without thinking about it). Target: status and audit within
3x of ``python -c pass`` on the same machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from setpoint_bench.harness import Ctx, Row, Stats, compare

CASE = "9 CLI start-up"


def _setup(base: Path) -> tuple[Path, Path]:
    repo = base / "repo"
    (repo / "etc").mkdir(parents=True)
    (repo / "etc" / "app.conf").write_text("port = 80\n")
    for args in (["init", "--quiet", "-b", "main"], ["add", "."],
                 ["-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "--quiet", "-m", "v1"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    config = base / "setpoint.yaml"
    config.write_text(yaml.safe_dump({
        "sources": {"app": {"url": str(repo), "branch": "main"}},
        "targets": [{"name": "edge", "kind": "files", "source": "app", "path": "etc",
                     "files": {"destination": str(base / "live")}}]}))
    return repo, config


def run(ctx: Ctx) -> list[Row]:
    base = ctx.scratch("startup")
    repo, config = _setup(base)

    def setpoint(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    setpoint("sync")  # state exists, the plugin-provides cache is warm

    def python_pass() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    def git_status() -> None:
        subprocess.run(["git", "-C", str(repo), "status", "--short"], check=True, stdout=subprocess.DEVNULL)

    reps = ctx.reps if ctx.smoke else max(ctx.reps * 2, 10)
    git_times, _ = compare(git_status, None, reps, ctx.warmup)
    rows = []
    for name, args, judged in (("status", ("status",), True), ("audit --since 1h", ("audit", "--since", "1h"), True),
                               ("sync, one files target", ("sync",), False)):
        def command(args: tuple[str, ...] = args) -> None:
            setpoint(*args)

        ours, floor = compare(command, python_pass, reps, ctx.warmup)
        assert floor is not None
        ratio = ours.median / floor.median
        ms = 1000
        rows.append(Row(CASE, f"setpoint {name}", unit="ms", setpoint=Stats([v * ms for v in ours.values]),
                        anchor_name="python -c pass", anchor=Stats([v * ms for v in floor.values]), ratio=ratio,
                        ratio_label="setpoint / anchor", target="<= 3x python -c pass" if judged else "",
                        met=(ratio <= 3) if judged else None,
                        note=f"ratio = setpoint / python -c pass; git status: {git_times.median * ms:.0f} ms",
                        extra={"git_status_ms": round(git_times.median * ms, 1)}))
    return rows
