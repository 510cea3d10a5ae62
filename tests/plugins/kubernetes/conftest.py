"""Helpers for the Kubernetes target's tests: manifests, an engine around a kubernetes target, kubectl."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from setpoint.testing import GitRepo, make_engine, write_config

KUBECTL = os.environ.get("SETPOINT_KUBECTL") or "/usr/bin/kubectl"


def deployment(name: str = "web", replicas: int = 2, image: str = "registry.local/web:1", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, **extra.pop("metadata", {})},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image,
                                                           "ports": [{"containerPort": 8080}],
                                                           "resources": {"requests": {"cpu": "0.5", "memory": "64Mi"}}}]}},
                     **extra}}


def service(name: str = "web", port: int = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": 8080}]}}


def configmap(name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": data}


def issuer_crd(group: str) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"clusterissuers.{group}"},
            "spec": {"group": group, "scope": "Cluster",
                     "names": {"plural": "clusterissuers", "singular": "clusterissuer", "kind": "ClusterIssuer"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {"spec": {"type": "object", "properties": {
                             "selfSigned": {"type": "object", "properties": {
                                 "crlDistributionPoints": {"type": "array", "items": {"type": "string"}}}},
                             "solvers": {"type": "array", "items": {"type": "object",
                                                                    "x-kubernetes-preserve-unknown-fields": True}}}}}}}}]}}


def manifests(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)




class Kube:
    """kubectl and raw API access for one test namespace."""

    def __init__(self, kubeconfig: str, namespace: str, api: Any) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.api = api

    def kubectl(self, *args: str, check: bool = True, namespaced: bool = True) -> str:
        argv = [KUBECTL, "--kubeconfig", self.kubeconfig, *(["-n", self.namespace] if namespaced else []), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: {proc.stderr}")
        return proc.stdout

    def get(self, path: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            data = self.api.call_api(*self.api.param_serialize("GET", path, auth_settings=["BearerToken"]))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if data.status == 404:
            return None
        import json

        return json.loads(data.read())

    def obj(self, kind_path: str, name: str) -> dict[str, Any] | None:
        """``kind_path`` like ``apis/apps/v1/deployments`` or ``api/v1/configmaps``."""
        return self.get(f"/{kind_path.split('/', 1)[0]}/{kind_path.split('/', 1)[1].rsplit('/', 1)[0]}"
                        f"/namespaces/{self.namespace}/{kind_path.rsplit('/', 1)[1]}/{name}")


@pytest.fixture
def kube(kubeconfig: str, k8s_namespace: str, k8s_api_client: Any) -> Kube:
    return Kube(kubeconfig, k8s_namespace, k8s_api_client)


def k8s_config(tmp_path: Path, repo: GitRepo, targets: list[dict[str, Any]], **top: Any) -> Path:
    return write_config(tmp_path, repo.path, targets, **top)


def k8s_target(name: str, kubeconfig: str, namespace: str, path: str = "app", **extra: Any) -> dict[str, Any]:
    settings = {"kubeconfig": kubeconfig, "namespace": namespace, **extra.pop("kubernetes", {})}
    return {"name": name, "kind": "kubernetes", "path": path, "interval": "1h", "kubernetes": settings, **extra}


@pytest.fixture
def engine_for(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    engines: list[Any] = []

    def make(repo: GitRepo, targets: list[dict[str, Any]], **top: Any) -> Any:
        engine = make_engine(k8s_config(tmp_path, repo, targets, **top), load_entrypoints=True)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()
