"""`setpoint run` as a real process serving everything on a free port of 127.0.0.1: readiness, a
signed webhook that deploys a new commit at once (the poll interval is an hour), the status API
and its audited sync call, metrics, notifications to a local receiver, a clean SIGTERM; and TLS."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opshelpers import Receiver, wait_for

from setpoint.testing import GitRepo, write_config

HOOK_SECRET = "e2e-generic-hook-secret"
STATUS_TOKEN = "e2e-status-token-0123456789"
ADMIN_TOKEN = "e2e-admin-token-9876543210"


class Daemon:
    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"],
                                     stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, **env})

    def base_url(self) -> str:
        def found() -> str | None:
            assert self.proc.poll() is None, self.log.read_text()
            match = re.search(r"serving (https?://[\d.]+:\d+)", self.log.read_text())
            return match.group(1) if match else None
        return str(wait_for(found, 20))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    mac = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Setpoint-Timestamp": stamp, "X-Setpoint-Signature": f"sha256={mac}", "Content-Type": "application/json"}


def test_setpoint_run_serves_webhooks_api_metrics_and_notifications(tmp_path: Path, git_repo: GitRepo,
                                                                   receiver: Receiver) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/app.conf": "port = 80\n"}, "v1")
    (tmp_path / "status.token").write_text(STATUS_TOKEN)
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "interval": "1h", "files": {"destination": str(live)}}],
        server={"listen": "127.0.0.1:0", "status_tokens": [{"name": "dashboard", "file": "status.token"}],
                "admin_tokens": [{"name": "ci", "env": "E2E_ADMIN"}],
                "webhooks": {"generic": {"secret_env": "E2E_HOOK"}}},
        notifications={"digest": {"window": "0.2s"},
                       "notifiers": [{"name": "ops", "kind": "webhook", "url_env": "E2E_NOTIFY"}]})
    # the poll interval of the source is an hour too: only the webhook can explain a quick deploy
    config.write_text(config.read_text().replace("poll_interval: 1s", "poll_interval: 1h"))
    daemon = Daemon(config, {"E2E_ADMIN": ADMIN_TOKEN, "E2E_HOOK": HOOK_SECRET, "E2E_NOTIFY": receiver.url("/n")},
                    tmp_path / "daemon.log")
    try:
        base = daemon.base_url()
        wait_for(lambda: httpx.get(f"{base}/readyz").json()["checks"]["first_pass_done"], 20)
        assert (live / "app.conf").read_text() == "port = 80\n"

        v2 = git_repo.commit({"etc/app.conf": "port = 8080\n"}, "v2")
        body = json.dumps({"repository": str(git_repo.path), "branch": "main"}).encode()
        response = httpx.post(f"{base}/hooks/generic", content=body, headers=signed(body))
        assert response.status_code == 202 and response.json()["targets"] == ["host"], response.text
        wait_for(lambda: (live / "app.conf").read_text() == "port = 8080\n", 10)

        headers = {"Authorization": f"Bearer {STATUS_TOKEN}"}
        row = wait_for(lambda: next((r for r in httpx.get(f"{base}/api/v1/targets", headers=headers).json()
                                     if r["applied_revision"] == v2), None), 10)
        assert row["last_trigger"] == "webhook:generic" and row["sync"] == "Synced"

        sync = httpx.post(f"{base}/api/v1/targets/host/sync", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert sync.status_code == 202
        audit = httpx.get(f"{base}/api/v1/targets/host", headers=headers).json()["audit"]
        assert any(e["action"] == "api" and e["actor"] == "api:ci" and e["details"]["call"] == "sync" for e in audit)

        metrics = httpx.get(f"{base}/metrics").text
        assert 'setpoint_webhook_deliveries_total{provider="generic",result="accepted"} 1.0' in metrics
        assert 'setpoint_applies_total{result="ok",target="host"} 2.0' in metrics

        wait_for(lambda: len(receiver.at("/n")) >= 2, 10)
        digests = [r.json for r in receiver.at("/n")]
        assert [d["event"] for d in digests] == ["digest", "digest"]
        assert digests[1]["revision"] == v2 and digests[1]["targets"] == {"host": "deployed"}
    finally:
        code = daemon.stop()
    log = daemon.log.read_text()
    assert code == 0, log
    for value in (HOOK_SECRET, STATUS_TOKEN, ADMIN_TOKEN, receiver.url("/n")):
        assert value not in log


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test certificate")
def test_tls_and_a_clear_error_for_a_busy_port(tmp_path: Path, git_repo: GitRepo) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    git_repo.commit({"etc/app.conf": "x\n"}, "v1")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}],
        server={"listen": "127.0.0.1:0", "tls": {"cert_file": "cert.pem", "key_file": "key.pem"}})
    daemon = Daemon(config, {}, tmp_path / "tls.log")
    try:
        base = daemon.base_url()
        assert base.startswith("https://")
        assert httpx.get(f"{base}/healthz", verify=ssl.create_default_context(cafile=tmp_path / "cert.pem")).json() == {"status": "ok"}
        with pytest.raises(httpx.HTTPError):
            httpx.get(base.replace("https://", "http://") + "/healthz", timeout=3)

        # a second daemon on the same port fails at once with a clear message
        port = base.rsplit(":", 1)[1]
        busy = config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}")
        other = tmp_path / "other"
        other.mkdir()
        (other / "setpoint.yaml").write_text(busy.replace(str(tmp_path / "state"), str(other / "state")))
        for name in ("cert.pem", "key.pem"):
            shutil.copy(tmp_path / name, other / name)
        result: Any = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(other / "setpoint.yaml"), "run"],
                                     capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and f"127.0.0.1:{port}: cannot bind" in result.stderr
    finally:
        assert daemon.stop() == 0
