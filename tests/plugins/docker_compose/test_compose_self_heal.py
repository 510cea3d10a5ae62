"""Self-heal timing with a real Compose project: drift repaired through the Docker events stream under
`setpoint run`, the grace period, and the crash-loop guard (a health problem, not endless restarts)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from compose_helpers import ComposeEnv, two_services

from setpoint.api import HealthStatus, SyncStatus
from setpoint.testing import wait_for, write_config

pytestmark = pytest.mark.docker


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=120)


def test_events_stream_repairs_drift_within_about_a_second(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    # interval 1h: only the events stream can explain a repair within seconds
    config = write_config(env.tmp_path, env.repo.path, [env.target(self_heal=True)])
    log = open(env.tmp_path / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: '"sync": "Synced"' in _cli(config, "status", "-o", "json").stdout, 90, step=0.3)
        time.sleep(1.0)  # the watch starts after the first reconcile
        latencies = {}
        env.containers("worker")[0].stop(timeout=1)
        started = time.monotonic()
        wait_for(lambda: len(env.running("worker")) == 1, 15)
        latencies["stop"] = time.monotonic() - started
        env.containers("web")[0].remove(force=True)
        started = time.monotonic()
        wait_for(lambda: len(env.running("web")) == 1, 15)
        latencies["rm"] = time.monotonic() - started
        env.containers("worker")[0].kill()
        started = time.monotonic()
        wait_for(lambda: len(env.running("worker")) == 1, 15)
        latencies["kill"] = time.monotonic() - started
        print(f"drift repair latency through Docker events: {latencies}")
        assert max(latencies.values()) < 5.0, latencies
        audit = _cli(config, "audit", "--action", "revert-drift", "-o", "json").stdout
        assert audit.count('"action": "revert-drift"') >= 3 and "event:docker:" in audit
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_grace_period_self_heal(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    engine = env.engine(env.target(self_heal={"grace": "4s"}))
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    env.containers("worker")[0].stop(timeout=1)
    stopped_at = time.monotonic()
    out = engine.reconcile("app")
    assert [c.key for c in out.drift] == ["service/worker"]
    assert engine.store.audit_entries(actions=("drift-detected",)), "recorded at once"
    assert not env.running("worker"), "kept during the grace period"
    assert engine.runners["app"].wake_at is not None, "the engine wakes up when the grace ends"
    assert "within their grace period" in engine.store.status("app")["message"]
    time.sleep(max(0.0, 4.2 - (time.monotonic() - stopped_at)))
    out = engine.reconcile("app")
    assert len(env.running("worker")) == 1
    assert engine.store.audit_entries(actions=("revert-drift",))
    engine.close()


def test_crash_loop_is_degraded_not_restarted_forever(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    doc = yaml.safe_load(two_services(test_image))
    doc["services"]["worker"]["command"] = ["sh", "-c", "sleep 0.2; exit 3"]
    env.repo.commit({"app/compose.yaml": yaml.safe_dump(doc), "app/app.env": "MODE=blue\n"}, "crashes")
    engine = env.engine(env.target(self_heal=True, docker_compose={"restart_limit": 2}))
    restarts = 0
    for _ in range(6):
        before = env.containers("worker")[0].attrs["State"]["StartedAt"] if env.containers("worker") else None
        time.sleep(0.5)
        out = engine.reconcile("app")
        after = env.containers("worker")[0]
        after.reload()
        restarts += before is not None and after.attrs["State"]["StartedAt"] != before
    assert restarts == 2, "the restart limit stops the loop"
    assert out.health == HealthStatus.DEGRADED
    assert "crash-looping" in engine.store.status("app")["health_message"]
    engine.close()
