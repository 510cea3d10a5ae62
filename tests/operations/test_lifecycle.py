"""Stopping and reloading `setpoint run` (a real process; its fake target's apply is slow on
purpose, slow_daemon.py): SIGTERM lets an apply in flight finish and records a clean shutdown; a
second SIGTERM, or the shutdown grace running out, stops at once and records the apply as
interrupted (exit 143); SIGHUP polls the sources at once (poll interval: an hour)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from opshelpers import wait_for

from setpoint.testing import GitRepo, write_config

HELPER = Path(__file__).with_name("slow_daemon.py")
pytestmark = pytest.mark.slow


def start(tmp_path: Path, repo: GitRepo, apply_seconds: float, grace: str, poll: str = "1s") -> subprocess.Popen[str]:
    config = write_config(tmp_path, repo.path, [{"name": "app", "kind": "fake", "path": "app", "interval": "1h"}],
                          lifecycle={"shutdown_grace": grace})
    data = yaml.safe_load(config.read_text())
    data["sources"]["repo"]["poll_interval"] = poll
    config.write_text(yaml.safe_dump(data))
    (tmp_path / "markers").mkdir()
    env = {**os.environ, "SLOW_APPLY_SECONDS": str(apply_seconds), "MARKER_DIR": str(tmp_path / "markers")}
    return subprocess.Popen([sys.executable, str(HELPER), "-c", str(config), "run"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(tmp_path / "setpoint.yaml"), "audit",
                           "--since", "1h", "-o", "json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def in_flight(tmp_path: Path, count: int = 1) -> None:
    wait_for(lambda: (tmp_path / "markers" / f"apply-started-{count}").exists(), 30)


def stopped(proc: subprocess.Popen[str], timeout: float) -> tuple[int, float, str]:
    started = time.monotonic()
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, time.monotonic() - started, out


@pytest.fixture
def repo(git_repo: GitRepo) -> GitRepo:
    git_repo.commit({"app/web.yaml": yaml.safe_dump([{"kind": "Deployment", "name": "web", "replicas": 2}])}, "v1")
    return git_repo


def test_sigterm_lets_the_apply_in_flight_finish(tmp_path: Path, repo: GitRepo) -> None:
    proc = start(tmp_path, repo, apply_seconds=3, grace="30s")
    try:
        in_flight(tmp_path)
        proc.send_signal(signal.SIGTERM)
        code, took, out = stopped(proc, 30)
    finally:
        proc.kill()
    assert code == 0, out
    assert 1.5 < took < 15, out   # it waited for the apply, not for the grace
    assert "waiting up to 30s for app to finish" in out
    entries = audit(tmp_path)
    assert [e["result"] for e in entries if e["action"] == "apply"] == ["ok"]
    [shutdown] = [e for e in entries if e["action"] == "shutdown"]
    assert shutdown["result"] == "ok"
    assert not [e for e in entries if e["action"] == "interrupted"]


def test_a_second_sigterm_stops_at_once_and_records_the_interrupted_apply(tmp_path: Path, repo: GitRepo) -> None:
    proc = start(tmp_path, repo, apply_seconds=60, grace="5m")
    try:
        in_flight(tmp_path)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None   # still waiting for the apply
        proc.send_signal(signal.SIGTERM)
        code, took, out = stopped(proc, 20)
    finally:
        proc.kill()
    assert code == 143, out
    assert took < 5, out
    assert "stopping at once (a second SIGTERM): interrupted app" in out
    entries = audit(tmp_path)
    [interrupted] = [e for e in entries if e["action"] == "interrupted"]
    assert interrupted["target"] == "app"
    assert not [e for e in entries if e["action"] == "apply"]   # the apply never completed


def test_the_grace_running_out_stops_at_once(tmp_path: Path, repo: GitRepo) -> None:
    proc = start(tmp_path, repo, apply_seconds=60, grace="2s")
    try:
        in_flight(tmp_path)
        proc.send_signal(signal.SIGTERM)
        code, took, out = stopped(proc, 30)
    finally:
        proc.kill()
    assert code == 143, out
    assert 1.5 < took < 10, out
    assert "the shutdown grace of 2s ran out" in out
    entries = audit(tmp_path)
    assert [e["target"] for e in entries if e["action"] == "interrupted"] == ["app"]
    [shutdown] = [e for e in entries if e["action"] == "shutdown"]
    assert shutdown["result"] == "interrupted"


def test_sighup_polls_and_reconciles_now(tmp_path: Path, repo: GitRepo) -> None:
    proc = start(tmp_path, repo, apply_seconds=0, grace="30s", poll="1h")
    try:
        in_flight(tmp_path)
        wait_for(lambda: any(e["action"] == "apply" for e in audit(tmp_path)), 30)
        repo.commit({"app/web.yaml": yaml.safe_dump([{"kind": "Deployment", "name": "web", "replicas": 3}])}, "v2")
        time.sleep(1)
        assert len([e for e in audit(tmp_path) if e["action"] == "apply"]) == 1   # an hour until the next poll
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len([e for e in audit(tmp_path) if e["action"] == "apply"]) == 2, 30)
        assert proc.poll() is None   # SIGHUP does not stop it
        proc.send_signal(signal.SIGTERM)
        code, _, out = stopped(proc, 30)
    finally:
        proc.kill()
    assert code == 0, out
    assert "received SIGHUP" in out


def test_a_reload_waits_for_the_apply_in_flight_and_never_interrupts_it(tmp_path: Path, repo: GitRepo) -> None:
    proc = start(tmp_path, repo, apply_seconds=3, grace="30s", poll="1h")
    try:
        in_flight(tmp_path)
        config = tmp_path / "setpoint.yaml"
        data = yaml.safe_load(config.read_text())
        data["targets"][0]["interval"] = "2h"   # a changed setting
        config.write_text(yaml.safe_dump(data))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: any(e["action"] == "config-reload" for e in audit(tmp_path)), 30)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        code, _, out = stopped(proc, 30)
    finally:
        proc.kill()
    assert code == 0, out
    entries = audit(tmp_path)
    [reload] = [e for e in entries if e["action"] == "config-reload"]
    assert reload["result"] == "ok" and reload["details"]["changed"] == ["app"]
    applies = [e for e in entries if e["action"] == "apply"]
    assert applies[0]["result"] == "ok" and applies[0]["time"] < reload["time"]   # finished first, then reloaded
    assert not [e for e in entries if e["action"] == "interrupted"]
