"""A fleet of Compose hosts from one setpoint.yaml: the shared local engine, an engine behind OpenSSH
(key-only, strict known_hosts, credentials from files named in the config) and an engine on
tcp://127.0.0.1 with mutual TLS (dev/services up docker-hosts).

The five phases run on each remote kind; under ``setpoint run`` drift is repaired through each
host's events stream, a SOPS-encrypted value reaches the containers and never the output, and a
host that goes away fails only its own target with a clear status, then recovers by itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_helpers import ComposeEnv, two_services

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for, write_config

from service_fixtures import DockerHost

pytestmark = [pytest.mark.docker, pytest.mark.docker_hosts]

CANARY = "canary-Hq4w-2b93-fleet-pw"


def _remote_env(tmp_path: Path, repo: GitRepo, host: DockerHost, compose_bin: str) -> ComposeEnv:
    return ComposeEnv(tmp_path, repo, host.client(), compose_bin, project=f"spdh-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["ssh", "tls"])
def remote(request: pytest.FixtureRequest, tmp_path: Path, git_repo: GitRepo, compose_bin: str,
           test_image: str) -> Any:
    host: DockerHost = request.getfixturevalue(f"{request.param}_docker_host")
    env = _remote_env(tmp_path, git_repo, host, compose_bin)
    yield env, host
    env.cleanup()
    env.docker.close()


def test_five_phases_on_a_remote_host(remote: tuple[ComposeEnv, DockerHost], test_image: str,
                                      test_image_2: str) -> None:
    env, host = remote
    repo = env.repo
    repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    engine = env.engine(env.target(docker_compose=host.settings, self_heal=True, prune=True))
    try:
        out = engine.reconcile("app")  # 1. first deploy
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
        assert len(env.running("web")) == 1 and len(env.running("worker")) == 1
        ids = env.ids()
        out = engine.reconcile("app")  # 2. no-op
        assert not out.actions and env.ids() == ids
        env.containers("worker")[0].stop(timeout=1)  # 3. drift
        out = engine.reconcile("app")
        assert [c.key for c in out.drift] == ["service/worker"] and len(env.running("worker")) == 1
        v2 = repo.commit({"app/compose.yaml": two_services(test_image_2, greeting="bonjour")}, "v2")  # 4. commit
        out = engine.reconcile("app")
        assert (out.sync, out.revision.sha) == (SyncStatus.SYNCED, v2)
        assert env.env_of(env.containers("web")[0])["GREETING"] == "bonjour"
        repo.revert(v2)  # 5. revert
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.SYNCED
        web = env.containers("web")[0]
        assert web.attrs["Config"]["Image"] == test_image and env.env_of(web)["GREETING"] == "hello"
    finally:
        engine.close()


def test_unknown_host_key_is_refused(tmp_path: Path, git_repo: GitRepo, ssh_docker_host: DockerHost,
                                     compose_bin: str, test_image: str) -> None:
    """known_hosts is checked: an empty known_hosts file fails the connection, nothing is accepted."""
    env = _remote_env(tmp_path, git_repo, ssh_docker_host, compose_bin)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = {**ssh_docker_host.settings, "ssh": {**ssh_docker_host.settings["ssh"], "known_hosts_file": str(empty)}}
    git_repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    engine = env.engine(env.target(docker_compose=settings))
    try:
        out = engine.reconcile("app")
        assert out.sync != SyncStatus.SYNCED and out.error and "unreachable" in out.error, out.error
        assert "Host key verification failed" in out.error, out.error
        assert not env.containers()
        assert empty.read_text() == "", "the host key was not written into known_hosts"
    finally:
        engine.close()
        env.docker.close()


def _status(config: Path) -> dict[str, dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "status", "-o", "json"],
                         capture_output=True, text=True, timeout=120)
    data = json.loads(out.stdout)
    items = data if isinstance(data, list) else data.get("targets", [])
    return {t["target"]: t for t in items}


def _sshd_pidfile() -> Path:
    from service_fixtures import services_env

    return Path(services_env()["SETPOINT_DHOSTS_SSHD_CONFIG"]).parent / "sshd.pid"


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    children = [int(p) for p in out.split()]
    return [d for c in children for d in (c, *_descendants(c))]


def _stop_sshd() -> None:
    """sshd and every connection it serves (each one's monitor and session processes) go away."""
    pid = int(_sshd_pidfile().read_text())
    for proc in [pid, *_descendants(pid)]:
        try:
            os.kill(proc, signal.SIGKILL if proc != pid else signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_for(lambda: not _alive(pid), 10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _start_sshd() -> None:
    from service_fixtures import services_env

    config = services_env()["SETPOINT_DHOSTS_SSHD_CONFIG"]
    subprocess.run(["/usr/sbin/sshd", "-f", config, "-E", str(Path(config).parent / "sshd.log")], check=True)


def _encrypt(sops_env: Any, text: str, tmp: Path) -> bytes:
    plain = tmp / "secret.env"
    plain.write_text(text)
    out = sops_env.run("encrypt", "--input-type", "dotenv", "--output-type", "dotenv",
                       "--age", sops_env.age_recipient, str(plain))
    plain.unlink()
    return out.stdout


@pytest.mark.sops
def test_fleet_under_run(tmp_path: Path, git_repo: GitRepo, docker_client: Any, ssh_docker_host: DockerHost,
                         tls_docker_host: DockerHost, compose_bin: str, test_image: str, sops_env: Any) -> None:
    doc = yaml.safe_load(two_services(test_image))
    doc["services"]["web"]["env_file"] = ["app.env", "secret.env"]
    secret = _encrypt(sops_env, f"DB_PASSWORD={CANARY}\n", tmp_path)
    envs = {"local": ComposeEnv(tmp_path, git_repo, docker_client, compose_bin, project=f"spdh-{uuid.uuid4().hex[:8]}"),
            "ssh": _remote_env(tmp_path, git_repo, ssh_docker_host, compose_bin),
            "tls": _remote_env(tmp_path, git_repo, tls_docker_host, compose_bin)}
    hosts = {"local": {}, "ssh": ssh_docker_host.settings, "tls": tls_docker_host.settings}
    files: dict[str, str | bytes] = {}
    for name in envs:
        files[f"{name}/compose.yaml"] = yaml.safe_dump(doc)
        files[f"{name}/app.env"] = "MODE=blue\n"
        files[f"{name}/secret.env"] = secret
    git_repo.commit(files, "one project on three hosts")
    targets = [envs[n].target(name=n, path=n, self_heal=True, docker_compose=hosts[n]) for n in envs]
    config = write_config(tmp_path, git_repo.path, targets, secrets={"sops": {"age_key_file": str(sops_env.age_key_file)}})
    log_path = tmp_path / "daemon.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: all(s.get("sync") == "Synced" for s in _status(config).values())
                 and len(_status(config)) == 3, 120, step=0.5)
        for name, env in envs.items():
            assert env.env_of(env.containers("web")[0])["DB_PASSWORD"] == CANARY, name
        time.sleep(1.0)  # the watches start after the first reconcile
        for name, env in envs.items():  # event-driven repair on every host kind
            env.containers("worker")[0].stop(timeout=1)
            started = time.monotonic()
            wait_for(lambda env=env: len(env.running("worker")) == 1, 20)
            print(f"{name}: stopped worker repaired in {time.monotonic() - started:.2f}s")

        _stop_sshd()  # the ssh host goes away
        try:
            envs["tls"].containers("worker")[0].stop(timeout=1)
            wait_for(lambda: len(envs["tls"].running("worker")) == 1, 20)  # the others are unaffected
            wait_for(lambda: (_status(config)["ssh"].get("last_error") or "") != "", 90, step=1)
            status = _status(config)
            assert "unreachable" in status["ssh"]["last_error"] and "127.0.0.1" in status["ssh"]["last_error"], status["ssh"]
            assert status["local"]["sync"] == status["tls"]["sync"] == "Synced"
            assert not status["local"].get("last_error") and not status["tls"].get("last_error")
        finally:
            _start_sshd()
        envs["ssh"].containers("worker")[0].stop(timeout=1)  # changed while it was away
        wait_for(lambda: len(envs["ssh"].running("worker")) == 1 and not _status(config)["ssh"].get("last_error"), 120,
                 step=1)
        outputs = [log_path.read_text(), json.dumps(_status(config))]
        outputs.append(subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "audit", "-o", "json"],
                                      capture_output=True, text=True, timeout=60).stdout)
        for text in outputs:
            assert CANARY not in text
            assert "PRIVATE KEY" not in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        try:
            running = _alive(int(_sshd_pidfile().read_text()))
        except (OSError, ValueError):
            running = False
        if not running:
            _start_sshd()
        for env in envs.values():
            env.cleanup()


def test_tls_engine_stopped_and_back(tmp_path: Path, git_repo: GitRepo, docker_client: Any,
                                     tls_docker_host: DockerHost, compose_bin: str, test_image: str) -> None:
    """The engine itself goes away: only its target fails, naming the host; it recovers once the
    engine is back (restarted by dev/services, as an operator would restart dockerd)."""
    local = ComposeEnv(tmp_path, git_repo, docker_client, compose_bin, project=f"spdh-{uuid.uuid4().hex[:8]}")
    remote = _remote_env(tmp_path, git_repo, tls_docker_host, compose_bin)
    files: dict[str, str | bytes] = {}
    for name in ("local", "tls"):
        files[f"{name}/compose.yaml"] = two_services(test_image)
        files[f"{name}/app.env"] = "MODE=blue\n"
    git_repo.commit(files, "two hosts")
    engine = local.engine(local.target(name="local", path="local", self_heal=True),
                          remote.target(name="tls", path="tls", self_heal=True,
                                        docker_compose=tls_docker_host.settings))
    pidfile = Path(tls_docker_host.admin.removeprefix("unix://")).parent / "dockerd.pid"
    try:
        assert engine.reconcile("local").sync == engine.reconcile("tls").sync == SyncStatus.SYNCED
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not _alive(pid), 60)
        out = engine.reconcile("tls")
        assert out.error and "unreachable" in out.error and tls_docker_host.host in out.error, out.error
        local.containers("worker")[0].stop(timeout=1)
        out = engine.reconcile("local")
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None) and len(local.running("worker")) == 1
    finally:
        subprocess.run([str(Path(__file__).resolve().parents[3] / "dev" / "services"), "up", "docker-hosts"],
                       capture_output=True, timeout=300, check=False)
    try:
        remote.docker.close()
        remote.docker = tls_docker_host.client()
        wait_for(lambda: engine.reconcile("tls").sync == SyncStatus.SYNCED, 60, step=1)
        assert len(remote.running("worker")) == 1 and len(remote.running("web")) == 1
    finally:
        engine.close()
        local.cleanup()
        remote.cleanup()
        remote.docker.close()
