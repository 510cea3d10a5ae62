"""Case `replicas`: several replicas on PostgreSQL (issue 19). ``setpoint sync`` of N ``files`` targets, first
pass and no-op pass, on a PostgreSQL state against the same on SQLite (target: within 1.5x); and the
takeover after SIGKILL of one of two ``setpoint run`` replicas: from the kill (a commit landing at the
same moment) until every target runs the commit (target: p50 <= lease TTL + 2 s); and the first pass of
3 ``setpoint run`` replicas started together on 3,000 ``files`` targets (target: under 60 s on the 2-core
machine)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from setpoint_bench.harness import Ctx, NotRun, Row, Stats

CASE = "10 Replicas on PostgreSQL"


def _pg() -> tuple[str, str]:
    url = os.environ.get("SETPOINT_PG_URL")
    password_file = os.environ.get("SETPOINT_PG_PASSWORD_FILE")
    if not url or not password_file or not Path(password_file).is_file():
        raise NotRun("postgresql not available: SETPOINT_PG_URL is not set; start it with dev/services up postgresql",
                     "postgresql")
    os.environ["SETPOINT_STATE_PASSWORD_FILE"] = password_file
    return url, Path(password_file).read_text().strip()


def _schema(url: str, password: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, password=password, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{url}?options=-csearch_path%3D{name}"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Bench", "-c", "user.email=bench@example.com", *args],
                   check=True, stdout=subprocess.DEVNULL)


def _repo(base: Path, names: list[str], version: int) -> Path:
    repo = base / "repo"
    if not repo.exists():
        repo.mkdir(parents=True)
        _git(repo, "init", "--quiet", "-b", "main")
    for n in names:
        (repo / "t" / n).mkdir(parents=True, exist_ok=True)
        (repo / "t" / n / "value.txt").write_text(f"{n} v{version}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", f"v{version}")
    return repo


def _config(base: Path, repo: Path, names: list[str], state: str, **extra: Any) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    path = base / "setpoint.yaml"
    path.write_text(yaml.safe_dump({
        "sources": {"repo": {"url": str(repo), "branch": "main", "poll_interval": "1s"}},
        "targets": [{"name": n, "kind": "files", "source": "repo", "path": f"t/{n}",
                     "files": {"destination": str(base.parent / "live" / n)}} for n in names],
        "defaults": {"interval": "10m"}, "state": state, "server": {"listen": "127.0.0.1:0"}, **extra}))
    return path


def _sync(config: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "sync"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _passes(ctx: Ctx, url: str, password: str, count: int) -> list[Row]:
    names = [f"t{i:04d}" for i in range(count)]
    first: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    noop: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    for rep in range(ctx.reps):
        for backend in ("sqlite", "postgresql"):
            base = ctx.scratch(f"replicas-passes-{count}-{rep}-{backend}")
            repo = _repo(base, names, 0)
            state = "sqlite:///state/state.db" if backend == "sqlite" else _schema(url, password)
            config = _config(base / "conf", repo, names, state)
            first[backend].append(_sync(config))
            noop[backend].append(_sync(config))
    rows = []
    for label, times in (("first pass", first), ("no-op pass", noop)):
        ratio = Stats(times["postgresql"]).median / Stats(times["sqlite"]).median
        rows.append(Row(CASE, f"setpoint sync, {count} files targets, {label}", setpoint=Stats(times["postgresql"]),
                        anchor_name="same on SQLite", anchor=Stats(times["sqlite"]), ratio=ratio,
                        ratio_label="PostgreSQL / SQLite", target="<= 1.5x SQLite", met=ratio <= 1.5,
                        note="one `setpoint sync` process each (start-up included)"))
    return rows


def _at(live: Path, names: list[str], version: int) -> bool:
    for n in names:
        path = live / n / "value.txt"
        if not path.is_file() or path.read_text() != f"{n} v{version}\n":
            return False
    return True


def _wait(check: Any, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not reached within {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic() - started


def _takeover(ctx: Ctx, url: str, password: str, count: int, ttl: float) -> Row:
    from setpoint.state import StateStore

    took = []
    for rep in range(ctx.reps):
        base = ctx.scratch(f"replicas-takeover-{rep}")
        names = [f"t{i:03d}" for i in range(count)]
        repo = _repo(base, names, 0)
        state = _schema(url, password)
        procs = []
        for replica in ("a", "b"):
            config = _config(base / replica, repo, names, state, replicas={"lease_ttl": f"{ttl:g}s"})
            procs.append(subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        try:
            _wait(lambda names=names, base=base: _at(base / "live", names, 0), 120)
            store = StateStore(state)
            try:
                _wait(lambda store=store: len({r["owner"] for r in store._query(
                    "SELECT owner FROM leases WHERE expires_at > 0 AND target NOT LIKE 'duty:%'")}) == 2, 60)
            finally:
                store.close()
            os.kill(procs[0].pid, signal.SIGKILL)
            procs[0].wait()
            _repo(base, names, 1)
            took.append(_wait(lambda names=names, base=base: _at(base / "live", names, 1), ttl * 4 + 60))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
    stats = Stats(took)
    return Row(CASE, f"takeover after SIGKILL, 2 replicas, {count} targets", setpoint=stats,
               anchor_name="lease TTL", ratio=stats.median / ttl, ratio_label="takeover / TTL",
               target=f"p50 <= TTL + 2 s ({ttl + 2:g} s)", met=stats.median <= ttl + 2,
               note="from the kill (a commit lands at once) until every target runs the commit")


def _cluster_first_pass(ctx: Ctx, url: str, password: str, replicas: int, count: int) -> Row:
    """Replicas started at once on a new PostgreSQL state: from the start until every target is applied.
    Each replica claims nothing for its first heartbeat period (setpoint.state.replicas), so replicas
    started together divide the work; the note gives how many applies each one made (from the audit)."""
    names = [f"t{i:05d}" for i in range(count)]
    took, loads, division = [], [], []
    for rep in range(1 if not ctx.smoke else ctx.reps):
        base = ctx.scratch(f"replicas-cluster-{count}-{rep}")
        repo = _repo(base, names, 0)
        state = _schema(url, password)
        configs = [_config(base / f"r{i}", repo, names, state) for i in range(replicas)]
        loads.append(os.getloadavg()[0])
        started = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                 for config in configs]
        try:
            live = base / "live"
            while not _at(live, names, 0):  # a whole check reads every target's file: once a second
                if time.monotonic() - started > 600:
                    raise TimeoutError("the cluster's first pass did not finish within 600 s")
                time.sleep(1.0)
            took.append(time.monotonic() - started)
            loads.append(os.getloadavg()[0])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=120)
        division.append(_applies_per_replica(state))
    stats = Stats(took)
    return Row(CASE, f"first pass, {replicas} `setpoint run` replicas, {count} files targets", setpoint=stats,
               target="< 60 s", met=stats.median < 60,
               note=f"from starting the processes until every target is applied (checked each second); "
                    f"1-min load {min(loads):.1f}-{max(loads):.1f}; applies per replica "
                    + "; ".join("/".join(str(n) for n in d) for d in division))


def _applies_per_replica(state: str) -> list[int]:
    """How many applies each replica made (the audit's writer field), most first."""
    from setpoint.state import StateStore

    store = StateStore(state)
    try:
        counts: dict[str, int] = {}
        for entry in store.audit_entries(actions=("apply",)):
            if entry.result == "ok":
                writer = entry.details["writer"]["replica"]
                counts[writer] = counts.get(writer, 0) + 1
        return sorted(counts.values(), reverse=True)
    finally:
        store.close()


def run(ctx: Ctx) -> list[Row]:
    url, password = _pg()
    rows = _passes(ctx, url, password, 40 if ctx.smoke else 1000)
    rows.append(_takeover(ctx, url, password, 10 if ctx.smoke else 50, 3.0 if ctx.smoke else 15.0))
    rows.append(_cluster_first_pass(ctx, url, password, 3, 30 if ctx.smoke else 3000))
    return rows
