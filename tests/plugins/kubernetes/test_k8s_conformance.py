"""The kubernetes target passes the driver conformance suite against the real API server: one
ConfigMap per resource (its value in ``data.value``); the secret input is an encrypted Secret."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from setpoint.testing.conformance import ConformanceAdapter, Encrypt, TargetConformance

pytestmark = pytest.mark.kubernetes


class KubernetesAdapter(ConformanceAdapter):
    kind = "kubernetes"

    def __init__(self, kubeconfig: str, namespace: str, api_client: Any) -> None:
        from kubernetes import client

        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.core = client.CoreV1Api(api_client)

    def settings(self) -> dict[str, Any]:
        return {"kubeconfig": self.kubeconfig, "namespace": self.namespace}

    @staticmethod
    def _configmap(name: str, value: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": value}}

    def files(self, values: Mapping[str, str]) -> dict[str, str | bytes]:
        docs = [self._configmap(name, value) for name, value in values.items()]
        # an empty manifest file keeps the folder in Git and renders no objects
        return {"manifests.yaml": yaml.safe_dump_all(docs, sort_keys=True) if docs else ""}

    def secret_files(self, values: Mapping[str, str], secret_name: str, encrypt: Encrypt) -> dict[str, str | bytes]:
        files = self.files({k: v for k, v in values.items() if k != secret_name})
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": secret_name},
                  "stringData": {"value": values[secret_name]}}
        files["secret.yaml"] = encrypt(yaml.safe_dump(secret, sort_keys=True))
        return files

    def read_live(self) -> dict[str, str]:
        live = {cm.metadata.name: (cm.data or {}).get("value", "")
                for cm in self.core.list_namespaced_config_map(self.namespace).items
                if cm.metadata.name != "kube-root-ca.crt"
                and not cm.metadata.name.startswith("setpoint-inventory-")}  # setpoint's own record
        for secret in self.core.list_namespaced_secret(self.namespace).items:
            if secret.type == "Opaque":
                live[secret.metadata.name] = base64.b64decode((secret.data or {}).get("value", "")).decode()
        return live

    def change_by_hand(self, name: str, value: str) -> None:
        """What `kubectl edit` does: a patch under another field manager."""
        if name in {s.metadata.name for s in self.core.list_namespaced_secret(self.namespace).items}:
            self.core.patch_namespaced_secret(name, self.namespace, {"stringData": {"value": value}},
                                              field_manager="kubectl-edit")
        else:
            self.core.patch_namespaced_config_map(name, self.namespace, {"data": {"value": value}},
                                                  field_manager="kubectl-edit")

    def delete_by_hand(self, name: str) -> None:
        self.core.delete_namespaced_config_map(name, self.namespace)

    def create_by_hand(self, name: str, value: str) -> None:
        self.core.create_namespaced_config_map(self.namespace, self._configmap(name, value),
                                               field_manager="kubectl-create")


class TestKubernetesConformance(TargetConformance):
    @pytest.fixture
    def adapter(self, kubeconfig: str, k8s_namespace: str, k8s_api_client: Any, tmp_path: Path) -> KubernetesAdapter:
        return KubernetesAdapter(kubeconfig, k8s_namespace, k8s_api_client)
