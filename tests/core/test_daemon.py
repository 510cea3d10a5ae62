"""`setpoint run` as a real process: live-state events repair drift within about a second, new
commits are picked up by polling, other processes' commands reach it, SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.testing import GitRepo, wait_for, write_config


@pytest.fixture
def daemon(tmp_path: Path, git_repo: GitRepo) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    live = tmp_path / "live"
    git_repo.commit({"etc/app.conf": "port = 80\n", "etc/motd": "hello\n"}, "v1")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "prune": True, "interval": "1h",
         "files": {"destination": str(live)}}],
        server={"listen": "127.0.0.1:0"})  # tests may run daemons side by side: any free port
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        # generous: the first reconcile of a fresh process on a loaded 2-core CI machine
        wait_for(lambda: '"sync": "Synced"' in cli(config, "status", "-o", "json").stdout, 90, step=0.2)
        yield proc, config, live
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True, text=True)


def test_manual_edit_is_reverted_within_about_a_second(daemon, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _proc, config, live = daemon
    latencies = []
    for i in range(3):
        (live / "app.conf").write_text(f"port = {2200 + i}\n")
        latencies.append(wait_for(lambda: (live / "app.conf").read_text() == "port = 80\n", 5))
    # the interval is 1h: only the live-state watch can explain a repair this fast
    assert max(latencies) < 2.0, latencies
    audit = cli(config, "audit", "--action", "revert-drift", "-o", "json").stdout
    assert audit.count('"action": "revert-drift"') >= 3 and "event:file-changed" in audit


def test_new_commit_is_applied_by_polling(daemon, git_repo: GitRepo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _proc, _config, live = daemon
    # the start line says which database this daemon writes (issue 15 item 10)
    assert f"target(s) from {tmp_path}, state {tmp_path / 'state' / 'state.db'}" in (tmp_path / "daemon.log").read_text()
    git_repo.commit({"etc/motd": "new message\n"}, "v2")
    took = wait_for(lambda: (live / "motd").read_text() == "new message\n", 10)
    assert took < 5, "poll_interval is 1s"


def test_commands_from_other_processes_reach_the_daemon(daemon) -> None:  # type: ignore[no-untyped-def]
    _proc, config, live = daemon
    run = cli(config, "pause", "host", "--reason", "incident 7", "--by", "oncall")
    assert run.returncode == 0 and "paused by oncall" in run.stdout
    time.sleep(0.6)
    (live / "motd").write_text("emergency fix\n")
    time.sleep(1.5)
    assert (live / "motd").read_text() == "emergency fix\n", "paused: drift is kept"
    status = cli(config, "status").stdout
    assert "paused by oncall" in status and "incident 7" in status
    assert cli(config, "resume", "host", "--by", "oncall").returncode == 0
    wait_for(lambda: (live / "motd").read_text() == "hello\n", 5)
    # a one-shot sync while the daemon runs waits for its lock instead of overlapping
    assert cli(config, "sync", "host").returncode == 0


def test_sigterm_stops_cleanly(daemon) -> None:  # type: ignore[no-untyped-def]
    proc, _config, _live = daemon
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_wait_for_a_commit_next_to_the_running_daemon(daemon, git_repo: GitRepo) -> None:  # type: ignore[no-untyped-def]
    """`setpoint wait` (issue 15 item 15): a CI job blocks until the daemon applied its commit."""
    _proc, config, live = daemon
    git_repo.commit({"etc/motd": "from CI\n"}, "v2")
    done = cli(config, "wait", "host", "--health", "--timeout", "60s")  # default: the branch head now
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert (live / "motd").read_text() == "from CI\n", "exit 0 only once the commit is applied"
    head = git_repo.head()
    assert done.stdout == f"host synced and healthy at {head[:12]}\n"
    # an older commit is included in what was applied: done at once
    git_repo.commit({"README.md": "outside the target's path\n"}, "docs only")
    assert cli(config, "wait", "host", "--revision", head[:8], "--timeout", "5s").returncode == 0
    # a paused target never reaches a new commit: a timeout that says why
    assert cli(config, "pause", "host", "--reason", "freeze").returncode == 0
    git_repo.commit({"etc/motd": "frozen\n"}, "v3")
    late = cli(config, "wait", "host", "--timeout", "3s")
    new = git_repo.head()[:12]
    assert late.returncode == 1 and late.stdout == ""
    assert late.stderr.startswith(f"error: timed out after 3s waiting for host to be synced at {new}:\n"
                                  f"  host: {new} not applied yet (applied: "), late.stderr
    assert "paused (setpoint resume)" in late.stderr
    unknown = cli(config, "wait", "hots")
    assert unknown.returncode == 2 and "did you mean 'host'?" in unknown.stderr
    assert cli(config, "wait", "host", "--revision", "not-a-sha").returncode == 2
