"""deploy/Dockerfile, built by deploy/build-image on the real Docker engine from a base image made
locally (dev/base-image: debootstrap, no registry) and wheels built from this checkout, then run the
way docs/deploy.md says: read-only root filesystem, non-root, no capabilities, configuration mounted
read-only, state on a volume, a Git repository mounted in. The files target passes the five phases
(deploy, no-op, drift reverted, new commit, rollback by git revert), checked on the host and through
the status API; `docker stop` ends it cleanly (tini forwards SIGTERM) well within its grace."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from setpoint.testing import GitRepo

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "setpoint-test/setpoint:ci"
UID = 10001
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def run(*cmd: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def image(docker_client: Any, sops_env: Any) -> str:
    base = run(str(ROOT / "dev" / "base-image")).splitlines()[-1]
    # sops as an optional tool layer, the sops plugin as an optional extra
    tag = run(str(ROOT / "deploy" / "build-image"), "--base", base, "--tag", IMAGE, "--extras", "sops",
              "--tool", sops_env.sops).splitlines()[-1]
    assert tag == IMAGE
    return tag


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} not met within {timeout}s")


def test_image_shape(image: str) -> None:
    config = json.loads(run("docker", "image", "inspect", image))[0]["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"][:2] == ["tini", "--"] and config["Cmd"] == ["run"]
    assert "/var/lib/setpoint" in config["Volumes"] and config["StopSignal"] == "SIGTERM"
    assert run("docker", "run", "--rm", image, "--version") == "setpoint, version 0.1.0"
    plugins = run("docker", "run", "--rm", "--read-only", image, "plugins")
    assert "sops" in plugins
    assert run("docker", "run", "--rm", "--entrypoint", "sops", image, "--version").startswith("sops 3.")
    # no compiler, no pip in the final image: only what runs setpoint
    assert subprocess.run(["docker", "run", "--rm", "--entrypoint", "/opt/setpoint/bin/python", image, "-m", "pip"],
                          capture_output=True).returncode != 0


def test_five_phases_in_the_container_and_a_clean_stop(image: str, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"web/app.conf": "listen_port = 443\n", "web/motd": "hello v1\n"}, "Initial", author="Alice <alice@example.com>")
    v1 = repo.head()
    etc, state, live = tmp_path / "etc", tmp_path / "state", tmp_path / "live"
    for folder in (etc, state, live):
        folder.mkdir()
    os.chown(state, UID, UID)
    os.chown(live, UID, UID)
    os.chmod(state, 0o700)
    # the mounted repository belongs to another user (root here); git refuses such a repository
    # unless it is declared safe, which the configuration mount does (docs/deploy.md)
    (etc / "git").mkdir()
    (etc / "git" / "config").write_text("[safe]\n\tdirectory = /repo\n\tdirectory = /repo/.git\n")
    (etc / "setpoint.yaml").write_text(yaml.safe_dump({
        "sources": {"config": {"url": "/repo", "branch": "main", "poll_interval": "1s"}},
        "targets": [{"name": "web", "kind": "files", "source": "config", "path": "web", "prune": True, "interval": "2s",
                     "files": {"destination": "/live", "watch_interval": 0.25}}],
        "state": "sqlite:////var/lib/setpoint/state.db",
        "server": {"listen": "0.0.0.0:9464", "status_tokens": [{"name": "test", "env": "SETPOINT_STATUS_TOKEN"}]},
    }, sort_keys=False))
    token = secrets.token_hex(16)
    name = f"setpoint-image-test-{secrets.token_hex(4)}"
    run("docker", "run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp:size=64m",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--stop-timeout", "30",
        "-e", f"SETPOINT_STATUS_TOKEN={token}", "-e", "XDG_CONFIG_HOME=/etc/setpoint",
        "-v", f"{repo.path}:/repo:ro", "-v", f"{etc}:/etc/setpoint:ro", "-v", f"{state}:/var/lib/setpoint",
        "-v", f"{live}:/live", "-p", "127.0.0.1::9464", image)
    try:
        port = run("docker", "port", name, "9464/tcp").splitlines()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"

        def get(path: str) -> Any:
            request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        def ready() -> bool:
            try:
                return bool(get("/readyz")["checks"]["first_pass_done"])
            except OSError:
                return False

        def audit(action: str) -> list[dict[str, Any]]:
            return [e for e in get("/api/v1/targets/web?limit=200")["audit"] if e["action"] == action]

        def content() -> str | None:
            path = live / "app.conf"
            return path.read_text() if path.exists() else None

        # 1. initial deploy
        wait_for(ready, 120, "readiness")
        assert content() == "listen_port = 443\n" and (live / "motd").read_text() == "hello v1\n"
        target = get("/api/v1/targets/web")
        assert target["sync"] == "Synced" and target["revision"] == v1
        assert [e["revision"] for e in audit("apply")] == [v1]
        assert (live / "app.conf").stat().st_uid == UID

        # 2. no-op: several intervals later nothing more is written or audited
        entries = len(get("/api/v1/targets/web?limit=200")["audit"])
        time.sleep(5)
        assert len(get("/api/v1/targets/web?limit=200")["audit"]) == entries

        # 3. a manual change is reverted and recorded
        (live / "app.conf").write_text("listen_port = 22\n")
        wait_for(lambda: content() == "listen_port = 443\n", 30, "drift reverted")
        wait_for(lambda: audit("revert-drift"), 10, "revert audited")

        # 4. a new commit is deployed
        repo.commit({"web/app.conf": "listen_port = 8443\n"}, "Move to 8443", author="Bob <bob@example.com>")
        v2 = repo.head()
        wait_for(lambda: content() == "listen_port = 8443\n", 30, "v2 deployed")
        wait_for(lambda: any(e["revision"] == v2 for e in audit("apply")), 10, "v2 audited")

        # 5. rollback by git revert
        v3 = repo.revert()
        wait_for(lambda: content() == "listen_port = 443\n", 30, "revert deployed")
        wait_for(lambda: any(e["revision"] == v3 for e in audit("apply")), 10, "rollback audited")
        assert get("/api/v1/targets/web")["sync"] == "Synced"

        # docker stop: SIGTERM through tini; setpoint finishes and exits 0 long before the 30 s grace
        started = time.monotonic()
        run("docker", "stop", name, timeout=60)
        took = time.monotonic() - started
        inspect = json.loads(run("docker", "inspect", name))[0]["State"]
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        assert inspect["ExitCode"] == 0, logs[-2000:]
        assert not inspect["OOMKilled"] and took < 15, f"stop took {took:.1f}s"
        assert "received SIGTERM" in logs
        assert token not in logs
    finally:
        # shown by pytest only when the test failed
        print(subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr[-5000:])
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
