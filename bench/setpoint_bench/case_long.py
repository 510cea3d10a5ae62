"""Case 10: memory and disk over time (issue 24 case 8; ``dev/bench --cases 10 --long [MINUTES]``, not in CI).

``setpoint run`` (the real command, a process of its own) with 200 ``files`` targets polling a local
bare repository every second, while the runner pushes a commit every 5 s (each changes the files of
10 targets, in turn) for 30 minutes. Sampled every 5 s: the daemon's resident memory (VmRSS), the
exported per-commit trees on disk (count and bytes) and the state database (with its WAL).

What must plateau: RSS and the exported trees (the daemon garbage-collects the trees no target needs,
issue 13). The state database holds the audit log, which is append-only by design (one entry per
applied change, no retention yet): it grows with the work done, and the row reports its growth per
commit. Judged by comparing the last third of the samples with the middle third: RSS growth under
10 %, and the trees not growing (at most 2 more).

Without ``--long`` the case is not run (a full run is long enough); smoke mode runs it for a few
seconds with 10 targets to check the harness.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from setpoint.testing import write_config
from setpoint_bench.gitdata import commit_and_push, pushable
from setpoint_bench.harness import Ctx, NotRun, Row, Stats

CASE = "10 Memory over time"
COMMIT_EVERY = 5.0


def _content(targets: int, version: dict[int, int]) -> dict[str, str | bytes | None]:
    return {f"hosts/t{t:03d}/conf/f{f}.conf": f"target = {t}\nfile = {f}\nversion = {version.get(t, 0)}\n"
            for t in range(targets) for f in range(10)}


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _trees(state: Path) -> tuple[int, int]:
    found = [p for p in state.glob("cache/trees/*/*") if not p.name.startswith(".")]
    return len(found), sum(_size(p) for p in found)


def _db_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.glob("state.db*") if p.is_file())


def run(ctx: Ctx) -> list[Row]:
    if ctx.smoke:
        targets, seconds = 10, 12.0
    elif ctx.long_minutes:
        targets, seconds = 200, ctx.long_minutes * 60
    else:
        raise NotRun("a long run: dev/bench --cases 10 --long [MINUTES] (30 by default)")
    base = ctx.scratch("long")
    remote, work = pushable(base)
    version: dict[int, int] = {}
    commit_and_push(work, _content(targets, version), "all targets")
    state = base / "state"
    config = write_config(base, remote, [
        {"name": f"t{t:03d}", "kind": "files", "path": f"hosts/t{t:03d}", "interval": "1h",
         "files": {"destination": str(base / "live" / f"t{t:03d}")}} for t in range(targets)],
        server={"enabled": False}, state=f"sqlite:///{state}/state.db",
        sources={"repo": {"url": str(remote), "branch": "main", "poll_interval": "1s"}})
    log = open(base / "daemon.log", "w")  # noqa: SIM115 - closed below, after the process
    daemon = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "--log-level", "WARNING", "run", "-c", str(config)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    samples: list[dict[str, Any]] = []
    try:
        started = time.monotonic()
        commits = 0
        next_commit = started + COMMIT_EVERY
        while time.monotonic() - started < seconds:
            if daemon.poll() is not None:
                raise RuntimeError(f"setpoint run exited with {daemon.returncode}: "
                                   f"{(base / 'daemon.log').read_text()[-600:]}")
            now = time.monotonic()
            if now >= next_commit:
                commits += 1
                moving = {(commits * 10 + i) % targets for i in range(10)}
                for t in moving:
                    version[t] = commits
                commit_and_push(work, {k: v for k, v in _content(targets, version).items()
                                       if int(k.split("/")[1][1:]) in moving}, f"commit {commits}")
                next_commit += COMMIT_EVERY
                trees, tree_bytes = _trees(state)
                samples.append({"t": round(now - started, 1), "commits": commits, "rss_mib": round(_rss_mib(daemon.pid), 1),
                                "trees": trees, "tree_mib": round(tree_bytes / 2**20, 2),
                                "db_mib": round(_db_bytes(state) / 2**20, 2), "load": round(os.getloadavg()[0], 1)})
                if len(samples) % 12 == 0 or ctx.smoke:
                    s = samples[-1]
                    ctx.log(f"   {s['t']:.0f} s: {commits} commits, RSS {s['rss_mib']} MiB, {s['trees']} trees "
                            f"({s['tree_mib']} MiB), state DB {s['db_mib']} MiB, load {s['load']}")
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
    return _rows(samples, targets, ctx.smoke)


def _thirds(samples: list[dict[str, Any]], key: str) -> tuple[float, float]:
    third = max(1, len(samples) // 3)
    middle = Stats([s[key] for s in samples[third:2 * third]] or [samples[0][key]])
    last = Stats([s[key] for s in samples[-third:]])
    return middle.median, last.median


def _rows(samples: list[dict[str, Any]], targets: int, smoke: bool) -> list[Row]:
    if len(samples) < 2:
        raise RuntimeError("too few samples")
    minutes = samples[-1]["t"] / 60
    curve = ", ".join(f"{s['t'] / 60:.0f} min {s['rss_mib']:.0f} MiB/{s['trees']} trees/{s['db_mib']:.1f} MiB DB"
                      for s in samples[::max(1, len(samples) // 6)])
    rss_mid, rss_last = _thirds(samples, "rss_mib")
    growth = rss_last / rss_mid - 1
    max_trees = max(s["trees"] for s in samples)
    trees_mid, trees_last = _thirds(samples, "trees")
    db_per_commit = (samples[-1]["db_mib"] - samples[0]["db_mib"]) * 1024 / max(1, samples[-1]["commits"] - samples[0]["commits"])
    name = f"files ×{targets}, a commit every {COMMIT_EVERY:.0f} s for {minutes:.0f} min"
    return [
        Row(CASE, f"{name}: RSS", unit="MiB", setpoint=Stats([s["rss_mib"] for s in samples]), anchor_name="",
            target="" if smoke else "plateau: last third within 10 % of the middle third",
            met=None if smoke else growth < 0.10,
            note=f"middle third {rss_mid:.0f} MiB, last third {rss_last:.0f} MiB ({growth:+.0%}); curve: {curve}",
            extra={"samples": samples}),
        Row(CASE, f"{name}: exported trees", unit="", setpoint=Stats([float(s["trees"]) for s in samples]),
            anchor_name="", target="" if smoke else "bounded (garbage-collected)",
            met=None if smoke else trees_last <= trees_mid + 2,
            note=f"middle third {trees_mid:.0f}, last third {trees_last:.0f}, at most {max_trees} trees, "
                 f"{max(s['tree_mib'] for s in samples):.1f} MiB; {samples[-1]['commits']} commits made (each "
                 f"target keeps the tree of its own last change: about targets/10 distinct revisions)"),
        Row(CASE, f"{name}: state database", unit="MiB", setpoint=Stats([s["db_mib"] for s in samples]),
            anchor_name="", note=f"grows {db_per_commit:.1f} KiB per commit (10 targets applied each): the append-only "
                                 f"audit log and the WAL; no audit retention yet"),
    ]
