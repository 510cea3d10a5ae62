"""Case 9: CLI start-up. ``setpoint status``, ``audit --since 1h`` and ``sync`` of one ``files``
target, each a fresh process of the installed ``setpoint`` command, against ``python -c pass`` (the
floor of any Python command) and ``git status`` (a command people run without thinking about it),
the three interleaved. Also the full load (``python -m setpoint.cli status``: YAML, the pydantic
models, click), which every command pays when the configuration cache misses. Target: status and
audit within 3x of ``python -c pass`` on the same machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from setpoint_bench.harness import Ctx, Row, Stats, timed

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


def _command() -> list[str]:
    """The installed ``setpoint`` command (its entry point is setpoint.quick:main), as users run it."""
    script = Path(sys.executable).with_name("setpoint")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from setpoint.quick import main; main()"]


def run(ctx: Ctx) -> list[Row]:
    base = ctx.scratch("startup")
    repo, config = _setup(base)
    command = _command()
    # an installed package has its bytecode compiled (pip does it; uv sync does not, and the dev
    # environment sets PYTHONDONTWRITEBYTECODE): write it once, as an install would, before measuring
    compile_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def setpoint(*args: str, full: bool = False, env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "setpoint.cli"] if full else command
        subprocess.run([*argv, "-c", str(config), *args], check=False, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    setpoint("sync", env=compile_env)  # state exists, the plugin-provides and configuration caches are warm
    for args in (("status",), ("audit", "--since", "1h")):
        setpoint(*args, env=compile_env)
        setpoint(*args, full=True, env=compile_env)

    def python_pass() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    def git_status() -> None:
        subprocess.run(["git", "-C", str(repo), "status", "--short"], check=True, stdout=subprocess.DEVNULL)

    reps = ctx.reps if ctx.smoke else max(ctx.reps * 2, 10)
    rows = []
    cases = (("status", ("status",), False, True), ("audit --since 1h", ("audit", "--since", "1h"), False, True),
             ("status, full load (python -m setpoint.cli)", ("status",), True, False),
             ("sync, one files target", ("sync",), False, False))
    for name, args, full, judged in cases:
        def ours_side(args: tuple[str, ...] = args, full: bool = full) -> None:
            setpoint(*args, full=full)

        # the three side by side, interleaved: setpoint, python -c pass, git status
        for _ in range(ctx.warmup):
            for side in (ours_side, python_pass, git_status):
                side()
        ours_t, floor_t, git_t = [], [], []
        for _ in range(reps):
            ours_t.append(timed(ours_side))
            floor_t.append(timed(python_pass))
            git_t.append(timed(git_status))
        ours, floor, git = Stats(ours_t), Stats(floor_t), Stats(git_t)
        ratio = ours.median / floor.median
        ms = 1000
        rows.append(Row(CASE, f"setpoint {name}", unit="ms", setpoint=Stats([v * ms for v in ours.values]),
                        anchor_name="python -c pass", anchor=Stats([v * ms for v in floor.values]), ratio=ratio,
                        ratio_label="setpoint / anchor", target="<= 3x python -c pass" if judged else "",
                        met=(ratio <= 3) if judged else None,
                        note=f"ratio = setpoint / python -c pass; git status: {git.median * ms:.1f} ms "
                             f"(setpoint / git status: {ours.median / git.median:.0f}x)",
                        extra={"git_status_ms": round(git.median * ms, 1),
                               "git_status_ratio": round(ours.median / git.median, 1)}))
    return rows
