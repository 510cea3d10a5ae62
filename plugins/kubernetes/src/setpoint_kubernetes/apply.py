"""Server-side apply, staged: CRDs, Namespaces and cluster roles first; then wait until the CRDs
are Established and re-read discovery; then everything else by wave and kind, in parallel within a
group. Only objects in the plan are sent.

Immutable fields: when the server refuses a change because a field cannot be updated in place,
the object is deleted and re-created only if its manifest opts in with
``setpoint.dev/replace-on-immutable: "true"``; otherwise the error says how to opt in.

Conflicts: a field another manager changed by an imperative *update* (``kubectl scale``, ``kubectl
edit``) is taken back, since reverting such edits is what self-heal is for. A field another
*applier* owns (another GitOps tool, another target, ``kubectl apply --server-side``) is a conflict:
it is reported with the fields and managers and nothing of that object changes, unless the target
sets ``force_conflicts``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from setpoint.secrets import reveal_all
from setpoint_kubernetes.client import ApiError, ApiResource, Cluster
from setpoint_kubernetes.hooks import ARGO_WAVE
from setpoint_kubernetes.identity import REPLACE_ANNOTATION, REVISION_ANNOTATION, WAVE_ANNOTATION, Ref
from setpoint_kubernetes.ownership import Foreign, foreign_entries, taken_over
from setpoint_kubernetes.settings import KubernetesSettings

FIRST = {("apiextensions.k8s.io", "CustomResourceDefinition"), ("", "Namespace"),
         ("rbac.authorization.k8s.io", "ClusterRole")}
#: Within a wave, kinds others depend on go first (as Helm and kubectl users expect).
KIND_ORDER = ["Namespace", "CustomResourceDefinition", "PriorityClass", "ResourceQuota", "LimitRange",
              "PodSecurityPolicy", "ServiceAccount", "Secret", "ConfigMap", "StorageClass", "PersistentVolume",
              "PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
              "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
              "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
              "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}
_CONFLICT = re.compile(r'conflict with "([^"]+)"(?: using ([^:]+))?')


def wave(obj: dict[str, Any]) -> int:
    """setpoint's wave, else Argo CD's sync wave (manifests migrated from Argo CD keep their order)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(WAVE_ANNOTATION, annotations.get(ARGO_WAVE, 0))
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def order_key(ref: Ref, obj: dict[str, Any]) -> tuple[int, int, int, str]:
    stage = 0 if ref.group_kind in FIRST else 1
    return (stage, wave(obj) if stage else 0, _RANK.get(ref.kind, len(KIND_ORDER)), ref.key)


@dataclass
class Item:
    key: str
    ref: Ref
    body: dict[str, Any]  # with Secret leaves; revealed only when sent
    live: dict[str, Any] | None
    drift: bool = False
    replaced: bool = False  # set when applied by delete and re-create


@dataclass
class Outcome:
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: Applied by deleting and re-creating (an immutable field changed; see REPLACE_ANNOTATION).
    replaced: list[str] = field(default_factory=list)


class Applier:
    def __init__(self, cluster: Cluster, settings: KubernetesSettings, revision: str,
                 on_applied: Callable[[ApiResource, dict[str, Any]], None]) -> None:
        self.cluster = cluster
        self.settings = settings
        self.revision = revision
        self.on_applied = on_applied

    def run(self, items: list[Item]) -> Outcome:
        outcome = Outcome()
        groups: dict[tuple[int, int], list[Item]] = {}
        for item in sorted(items, key=lambda i: order_key(i.ref, i.body)):
            stage, wave_, _, _ = order_key(item.ref, item.body)
            groups.setdefault((stage, wave_), []).append(item)
        for (stage, _wave), group in sorted(groups.items()):
            self._apply_group(group, outcome)
            if stage == 0:
                crds = [i for i in group if i.ref.kind == "CustomResourceDefinition" and i.key in outcome.applied]
                self._wait_established(crds, outcome)
                kinds = {(str((i.body.get("spec") or {}).get("group", "")),
                          str(((i.body.get("spec") or {}).get("names") or {}).get("kind", "")))
                         for i in crds if i.key in outcome.applied}
                try:  # the new kinds are served (by discovery too) before anything uses them
                    self.cluster.wait_served(kinds, self.settings.wait_timeout_seconds)
                except ApiError:
                    pass
        return outcome

    def _apply_group(self, group: list[Item], outcome: Outcome) -> None:
        workers = min(self.settings.apply_concurrency, len(group))
        if workers <= 1:
            results = [self._apply_one(item) for item in group]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="setpoint-k8s-apply") as pool:
                results = list(pool.map(self._apply_one, group))
        for item, (obj, error) in zip(group, results, strict=True):
            if error is None and obj is not None:
                outcome.applied[item.key] = obj
                if item.replaced:
                    outcome.replaced.append(item.key)
            else:
                outcome.failed[item.key] = error or "no answer"

    def _apply_one(self, item: Item) -> tuple[dict[str, Any] | None, str | None]:
        ref = item.ref
        api_version = str(item.body.get("apiVersion", ""))
        version = api_version.rsplit("/", 1)[-1]
        try:
            resource = self.cluster.resource(ref.group, ref.kind, version)
        except ApiError as exc:
            return None, str(exc)
        if resource is None:
            return None, f"the cluster does not serve {ref.kind} in {api_version} (is its CRD installed?)"
        body = reveal_all(item.body)
        meta = dict(body.get("metadata") or {})
        meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: self.revision}
        body["metadata"] = meta
        force = self.settings.force_conflicts
        if item.live is not None:
            foreign = foreign_entries(item.live, body, self.settings.field_manager, self.settings.ignore_managers)
            if foreign:
                error = self._take_over(resource, ref, item.live, foreign, body)
                if error:
                    return None, error
        for _attempt in range(2):
            try:
                obj = self._patch(resource, ref, body, force=force)
            except ApiError as exc:
                if exc.status == 409 and not force:
                    conflicts = self._conflicts(exc, item.live)
                    appliers = [c for c in conflicts if c[2] != "Update"]
                    if conflicts and not appliers:
                        force = True  # only imperative edits hold these fields: take them back
                        continue
                    return None, self._describe_conflict(conflicts, exc)
                if exc.status == 422 and "field is immutable" in str(exc):
                    return self._replace(item, resource, body, force, exc)
                return None, _short(exc)
            obj.setdefault("apiVersion", resource.api_version)
            obj.setdefault("kind", resource.kind)
            self.on_applied(resource, obj)
            return obj, None
        return None, "conflict"

    def _take_over(self, resource: ApiResource, ref: Ref, live: dict[str, Any], foreign: list[Foreign],
                   body: dict[str, Any]) -> str | None:
        """Move list entries added by hand to setpoint's ownership, so the apply that follows removes
        them (see ownership.py). Only ``managedFields`` change, and only if the object did not since
        it was read; a status update in between (a controller) means reading it again."""
        path = resource.path(ref.namespace, ref.name)
        what = ", ".join(f.path for f in foreign)
        for _attempt in range(3):
            version = str((live.get("metadata") or {}).get("resourceVersion", ""))
            patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
                     {"op": "replace", "path": "/metadata/managedFields",
                      "value": taken_over(live, foreign, self.settings.field_manager)}]
            try:
                self.cluster.request("PATCH", path, [("fieldManager", self.settings.field_manager)], patch,
                                     content_type="application/json-patch+json")
                return None
            except ApiError as exc:
                if exc.status not in (409, 422):
                    return f"taking over {what} (added by hand): {_short(exc)}"
            try:
                live = self.cluster.request("GET", path)
            except ApiError as exc:
                return f"taking over {what} (added by hand): {_short(exc)}"
            foreign = foreign_entries(live, body, self.settings.field_manager, self.settings.ignore_managers)
            if not foreign:
                return None
        return f"taking over {what} (added by hand): the object kept changing; retried on the next reconcile"

    def _replace(self, item: Item, resource: ApiResource, body: dict[str, Any], force: bool,
                 refused: ApiError) -> tuple[dict[str, Any] | None, str | None]:
        """Delete the object, wait until it is gone, create it from ``body``: only when the manifest
        opts in, since whatever depends on the object (a Job's Pods, readers of a ConfigMap) sees
        it disappear for a moment."""
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        if str(annotations.get(REPLACE_ANNOTATION, "")).lower() != "true":
            return None, (f"{_short(refused)} (the API server cannot change this in place: rename the object, or "
                          f'annotate it with {REPLACE_ANNOTATION}: "true" in Git to let setpoint delete and re-create it)')
        ref = item.ref
        path = resource.path(ref.namespace, ref.name)
        try:
            self.cluster.request("DELETE", path, [("propagationPolicy", "Background")])
        except ApiError as exc:
            if exc.status != 404:
                return None, f"replacing (an immutable field changed): delete refused: {_short(exc)}"
        deadline = time.monotonic() + self.settings.wait_timeout_seconds
        while True:
            try:
                self.cluster.request("GET", path)
            except ApiError as exc:
                if exc.status == 404:
                    break
                return None, f"replacing (an immutable field changed): deleted, then {_short(exc)}"
            if time.monotonic() > deadline:
                return None, (f"replacing (an immutable field changed): the old object is still there after "
                              f"{self.settings.wait_timeout_seconds:g}s (a finalizer?); it will be created once gone")
            time.sleep(0.1)
        try:
            obj = self._patch(resource, ref, body, force=force)
        except ApiError as exc:
            return None, f"replacing (an immutable field changed): deleted, but creating it again failed: {_short(exc)}"
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self.on_applied(resource, obj)
        item.replaced = True
        return obj, None

    def _patch(self, resource: ApiResource, ref: Ref, body: dict[str, Any], force: bool,
               dry_run: bool = False) -> dict[str, Any]:
        query: list[tuple[str, Any]] = [("fieldManager", self.settings.field_manager),
                                        ("fieldValidation", self.settings.field_validation)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self.cluster.request("PATCH", resource.path(ref.namespace, ref.name), query, body,
                                    content_type="application/apply-patch+yaml")

    def dry_run(self, resource: ApiResource, ref: Ref, body: dict[str, Any]) -> dict[str, Any]:
        body = reveal_all(body)
        meta = dict(body.get("metadata") or {})
        meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: self.revision}
        body["metadata"] = meta
        return self._patch(resource, ref, body, force=True, dry_run=True)

    @staticmethod
    def _conflicts(exc: ApiError, live: dict[str, Any] | None) -> list[tuple[str, str, str]]:
        """(field, manager, operation) for each conflict the server named."""
        operations: dict[str, str] = {}
        for entry in ((live or {}).get("metadata") or {}).get("managedFields") or []:
            manager = entry.get("manager", "")
            if operations.get(manager) != "Apply":
                operations[manager] = entry.get("operation", "")
        out = []
        for cause in exc.causes:
            match = _CONFLICT.search(cause.get("message", ""))
            if match:
                manager = match.group(1)
                out.append((cause.get("field", "?"), manager, operations.get(manager, "Apply")))
        return out

    def _describe_conflict(self, conflicts: list[tuple[str, str, str]], exc: ApiError) -> str:
        if not conflicts:
            return _short(exc)
        by_manager: dict[tuple[str, str], list[str]] = {}
        for path, manager, operation in conflicts:
            by_manager.setdefault((manager, operation), []).append(path)
        parts = [f"{', '.join(paths)} owned by field manager {manager!r} ({operation.lower() or 'apply'})"
                 for (manager, operation), paths in sorted(by_manager.items())]
        return ("conflict: " + "; ".join(parts) +
                "; not changed (set force_conflicts: true to take these fields)")

    def _wait_established(self, crds: list[Item], outcome: Outcome) -> None:
        if not crds:
            return
        resource = self.cluster.resource("apiextensions.k8s.io", "CustomResourceDefinition")
        assert resource is not None
        deadline = time.monotonic() + self.settings.wait_timeout_seconds
        pending = {i.key: i for i in crds}
        while pending:
            for key, item in list(pending.items()):
                try:
                    obj = self.cluster.request("GET", resource.path(None, item.ref.name))
                except ApiError:
                    continue
                conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
                if (conditions.get("Established") or {}).get("status") == "True":
                    self.on_applied(resource, {**obj, "apiVersion": resource.api_version, "kind": resource.kind})
                    del pending[key]
                elif (conditions.get("NamesAccepted") or {}).get("status") == "False":
                    outcome.failed[key] = f"CRD names not accepted: {conditions['NamesAccepted'].get('message', '')}"
                    outcome.applied.pop(key, None)
                    del pending[key]
            if not pending:
                return
            if time.monotonic() > deadline:
                for key in pending:
                    outcome.failed[key] = f"not Established within {self.settings.wait_timeout_seconds:g}s"
                    outcome.applied.pop(key, None)
                return
            time.sleep(0.1)


def _short(exc: ApiError) -> str:
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."
