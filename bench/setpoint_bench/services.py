"""Which real services (dev/services) answer, checked once per run.

A missing service makes its cases "not run: <reason>"; in smoke mode under CI=true that fails the
run, because CI starts every service before calling ``dev/bench --smoke``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from setpoint_bench.harness import NotRun


def env() -> dict[str, str]:
    return dict(os.environ)


@cache
def _docker() -> str | None:
    try:
        import docker
    except ImportError:
        return "the Python package 'docker' is missing (uv sync)"
    try:
        client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), timeout=10)
        client.ping()
        client.images.get(os.environ.get("SETPOINT_TEST_IMAGE", "setpoint-test/busybox:1"))
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"no Docker engine or test image ({type(exc).__name__}: {str(exc)[:120]})"
    compose = os.environ.get("SETPOINT_COMPOSE_BIN")
    if not compose or not os.access(compose, os.X_OK):
        return "SETPOINT_COMPOSE_BIN is not set (eval \"$(dev/services env)\")"
    return None


@cache
def _kubernetes() -> str | None:
    path = os.environ.get("SETPOINT_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if not path or not Path(path).is_file():
        return f"no kubeconfig ({path})"
    kubectl = kubectl_bin()
    try:
        proc = subprocess.run([kubectl, "--kubeconfig", path, "get", "--raw", "/readyz"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"kubectl failed: {exc}"
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        return f"kube-apiserver is not ready: {proc.stderr.strip()[:160]}"
    return None


@cache
def _terraform() -> str | None:
    tf = os.environ.get("SETPOINT_TERRAFORM_BIN")
    cfg = os.environ.get("SETPOINT_TF_CLI_CONFIG")
    if not tf or not os.access(tf, os.X_OK):
        return f"no terraform binary ({tf})"
    if not cfg or not Path(cfg).is_file():
        return f"no test provider CLI config ({cfg})"
    return None


@cache
def _sops() -> str | None:
    sops = os.environ.get("SETPOINT_SOPS_BIN") or shutil.which("sops")
    if not sops or not os.access(sops, os.X_OK):
        return "no sops binary (SETPOINT_SOPS_BIN)"
    return None


@cache
def _docker_hosts() -> str | None:
    reason = _docker()
    if reason is not None:
        return reason
    for var in ("SETPOINT_DHOSTS_SSH_HOST", "SETPOINT_DHOSTS_SSH_KEY", "SETPOINT_DHOSTS_SSH_KNOWN_HOSTS",
                "SETPOINT_DHOSTS_SSH_SOCK"):
        if not os.environ.get(var):
            return f"{var} is not set (eval \"$(dev/services env)\")"
    try:
        import docker

        client = docker.DockerClient(base_url=os.environ["SETPOINT_DHOSTS_SSH_SOCK"], timeout=10)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"the ssh Docker host's engine does not answer ({type(exc).__name__})"
    return None


@cache
def _ansible_hosts() -> str | None:
    for var in ("SETPOINT_ANSIBLE_HOSTS", "SETPOINT_ANSIBLE_SSH_KEY", "SETPOINT_ANSIBLE_KNOWN_HOSTS"):
        if not os.environ.get(var):
            return f"{var} is not set (eval \"$(dev/services env)\")"
    import socket

    for address in os.environ["SETPOINT_ANSIBLE_HOSTS"].split(","):
        host, port = address.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=5) as conn:
                conn.settimeout(5)
                if not conn.recv(64).startswith(b"SSH-"):
                    return f"{address} does not answer like an SSH server"
        except OSError as exc:
            return f"the SSH host {address} does not answer ({exc})"
    return None


@cache
def _postgresql() -> str | None:
    url, password_file = os.environ.get("SETPOINT_PG_URL"), os.environ.get("SETPOINT_PG_PASSWORD_FILE")
    if not url or not password_file:
        return "SETPOINT_PG_URL is not set (eval \"$(dev/services env)\")"
    try:
        import psycopg

        with psycopg.connect(url, password=Path(password_file).read_text().strip(), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"PostgreSQL does not answer ({type(exc).__name__})"
    return None


CHECKS = {"docker": _docker, "docker-hosts": _docker_hosts, "kubernetes": _kubernetes, "terraform": _terraform,
          "sops": _sops, "ansible-hosts": _ansible_hosts, "postgresql": _postgresql}


def require(service: str) -> None:
    reason = CHECKS[service]()
    if reason is not None:
        raise NotRun(f"{service} not available: {reason}; start it with dev/services up {service}", service)


def kubectl_bin() -> str:
    return os.environ.get("SETPOINT_KUBECTL") or shutil.which("kubectl") or "kubectl"


def kubeconfig() -> str:
    return os.environ.get("SETPOINT_KUBECONFIG") or os.environ["KUBECONFIG"]


def tf_env() -> dict[str, str]:
    return {**os.environ, "TF_CLI_CONFIG_FILE": os.environ["SETPOINT_TF_CLI_CONFIG"], "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
