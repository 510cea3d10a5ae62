"""The in-cluster inventory: a ConfigMap listing the objects a target applied, so that a person or a
second setpoint replica can see what this target manages without setpoint's state store.

The core's inventory stays the authority for pruning; this copy is written after each apply that
changed the set of objects or the revision, never on a no-op reconcile.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from setpoint_kubernetes.client import ApiError, Cluster
from setpoint_kubernetes.identity import INVENTORY_LABEL, label_value


def configmap_name(target: str) -> str:
    name = f"setpoint-inventory-{target}".replace("_", "-").replace(".", "-").lower()
    if len(name) > 253:
        name = name[:240] + "-" + hashlib.sha256(target.encode()).hexdigest()[:12]
    return name


class ClusterInventory:
    def __init__(self, cluster: Cluster, target: str, namespace: str, field_manager: str) -> None:
        self.cluster = cluster
        self.target = target
        self.namespace = namespace
        self.field_manager = field_manager
        self._written: tuple[str, tuple[str, ...]] | None = None

    def write(self, keys: set[str], revision: str) -> str | None:
        """Record ``keys``; returns a warning instead of raising (the apply itself succeeded)."""
        entry = (revision, tuple(sorted(keys)))
        if entry == self._written:
            return None
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": configmap_name(self.target), "namespace": self.namespace,
                         "labels": {INVENTORY_LABEL: label_value(self.target),
                                    "app.kubernetes.io/managed-by": "setpoint"}},
            "data": {"target": self.target, "revision": revision, "count": str(len(keys)),
                     "objects": json.dumps(list(entry[1]), indent=0)},
        }
        path = f"/api/v1/namespaces/{self.namespace}/configmaps/{body['metadata']['name']}"
        try:
            self.cluster.request("PATCH", path, [("fieldManager", self.field_manager), ("force", "true")], body,
                                 content_type="application/apply-patch+yaml")
        except ApiError as exc:
            return f"the inventory ConfigMap {self.namespace}/{body['metadata']['name']} was not written: {exc}"
        self._written = entry
        return None

    def read(self) -> list[str] | None:
        try:
            obj = self.cluster.request("GET", f"/api/v1/namespaces/{self.namespace}/configmaps/"
                                              f"{configmap_name(self.target)}")
        except ApiError:
            return None
        try:
            return list(json.loads((obj.get("data") or {}).get("objects", "[]")))
        except ValueError:
            return None
