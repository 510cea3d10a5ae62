"""Kubernetes fixtures for the benchmarks: namespaces, generated manifests, kubectl."""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import yaml

from setpoint_bench import services

#: Objects per manifest file: a repository of many small files, as people keep them.
PER_FILE = 10


def kubectl(*args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    argv = [services.kubectl_bin(), "--kubeconfig", services.kubeconfig(), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[3:6])}...: exit {proc.returncode}: {proc.stderr.strip()[:400]}")
    return proc


def new_namespace(prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "setpoint.bench=true")
    return name


def delete_namespaces(*names: str, wait: bool = True) -> None:
    """Delete namespaces (kube-controller-manager removes their objects); waiting keeps a deletion's
    load on the API server out of the next measurement."""
    if names:
        kubectl("delete", "namespace", *names, f"--wait={'true' if wait else 'false'}", "--timeout=900s",
                "--ignore-not-found", check=False, timeout=1000)


def settle(*namespaces: str, timeout: float = 300) -> None:
    """Wait until the deployment controller has observed every Deployment (its status writes would
    otherwise show up as differences in ``kubectl diff`` and as load in the measurements)."""
    deadline = time.monotonic() + timeout
    for ns in namespaces:
        while time.monotonic() < deadline:
            out = kubectl("get", "deployments", "-n", ns, "-o",
                          "jsonpath={range .items[*]}{.metadata.generation}={.status.observedGeneration} {end}").stdout
            if all(a == b for a, b in (pair.split("=") for pair in out.split())):
                break
            time.sleep(1)


def objects(n: int, prefix: str = "obj") -> list[dict[str, Any]]:
    """``n`` objects, alternately a ConfigMap and a Deployment scaled to 0 (the control plane has no
    nodes: replicas 0 lets a Deployment be Healthy without pods)."""
    result: list[dict[str, Any]] = []
    for i in range(n):
        name = f"{prefix}-{i:05d}"
        if i % 2 == 0:
            result.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": prefix}},
                           "data": {"index": str(i), "settings.conf": f"listen = {8000 + i % 1000}\nworkers = 4\n"}})
        else:
            result.append(deployment(name, 0, labels={"app": prefix}))
    return result


def deployment(name: str, replicas: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"bench": name}},
                     "template": {"metadata": {"labels": {"bench": name}},
                                  "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
                                                           "resources": {"requests": {"cpu": "10m"}}}]}}}}


def files(objs: list[dict[str, Any]], path: str) -> dict[str, str]:
    """Manifest files under ``path``, PER_FILE objects each."""
    return {f"{path}/m{i // PER_FILE:04d}.yaml": yaml.safe_dump_all(objs[i:i + PER_FILE], sort_keys=False)
            for i in range(0, len(objs), PER_FILE)}


def target(name: str, namespace: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "kubernetes", "path": path, "interval": "1h",
            "kubernetes": {"kubeconfig": services.kubeconfig(), "namespace": namespace}, **extra}


def api() -> Any:
    """A kubernetes.client ApiClient (observing repairs without spawning kubectl each time)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=services.kubeconfig())
