"""The machine a run happened on: CPU, cores, memory, load and the versions of the anchor tools.

Load average is sampled at the start and the end of every case, because on a shared machine it is
the first thing to look at when two runs disagree.
"""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


def _first_line(argv: list[str], env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.SubprocessError):
        return "not found"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0].strip() if text else f"exit {proc.returncode}"


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def describe(env: dict[str, str]) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115 - read once
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    kubectl = env.get("SETPOINT_KUBECTL") or "kubectl"
    terraform = env.get("SETPOINT_TERRAFORM_BIN") or "terraform"
    compose = env.get("SETPOINT_COMPOSE_BIN") or "docker-compose"
    sops = env.get("SETPOINT_SOPS_BIN") or "sops"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average": [round(x, 2) for x in load()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "kubectl": _first_line([kubectl, "version", "--client"], env),
            "kube-apiserver": env.get("SETPOINT_K8S_VERSION", "unknown"),
            "terraform": _first_line([terraform, "version"], env),
            "docker": _first_line(["docker", "version", "--format", "{{.Server.Version}}"], env),
            "compose": _first_line([compose, "version", "--short"], env),
            "sops": _first_line([sops, "--version", "--disable-version-check"], env),
            "git": _first_line(["git", "--version"], env),
        },
    }


def summary_lines(info: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return [
        f"CPU: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB memory",
        f"load average at start: {' '.join(str(x) for x in info['load_average'])}",
        f"OS: {info['os']}, Python {info['python']}",
        f"tools: {versions}",
    ]
