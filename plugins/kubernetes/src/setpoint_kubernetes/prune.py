"""Deleting objects that left Git, after the core's safety rules let the deletion through.

On top of the core (only objects in setpoint's inventory, empty-render guard, deletion budget,
approval) the driver refuses to delete:

* an object whose live copy carries ``setpoint.dev/prune: disabled`` (the diff never plans it);
* an object no longer labelled as this target's (another target or a person took it over);
* a Namespace that still holds objects this target did not create (deleting it would take them
  along), and a CRD that still has custom resources this target did not create.

Deletions run in reverse apply order (custom resources before their CRD, contents before their
Namespace) with the target's propagation policy.
"""

from __future__ import annotations

from typing import Any

from setpoint_kubernetes.client import ApiError, ApiResource, Cluster
from setpoint_kubernetes.hooks import ARGO_SYNC_OPTIONS
from setpoint_kubernetes.identity import PRUNE_ANNOTATION, TARGET_LABEL, Ref

#: Objects that controllers create in every namespace: they do not make a namespace "in use".
AUTOMATIC = {("", "ServiceAccount", "default"), ("", "ConfigMap", "kube-root-ca.crt")}
SKIP_KINDS = {("", "Event"), ("events.k8s.io", "Event"), ("", "Endpoints"), ("discovery.k8s.io", "EndpointSlice"),
              ("coordination.k8s.io", "Lease"), ("authorization.k8s.io", "LocalSubjectAccessReview")}


def opted_out(obj: dict[str, Any] | None) -> bool:
    """``setpoint.dev/prune: disabled``, or Argo CD's ``argocd.argoproj.io/sync-options: Prune=false``
    (manifests migrated from Argo CD keep what they protected)."""
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(PRUNE_ANNOTATION, "")).lower() in ("disabled", "false", "off"):
        return True
    options = {o.strip() for o in str(annotations.get(ARGO_SYNC_OPTIONS, "")).split(",")}
    return "Prune=false" in options


class Pruner:
    def __init__(self, cluster: Cluster, target_label: str, propagation: str) -> None:
        self.cluster = cluster
        self.target_label = target_label
        self.propagation = propagation

    def delete(self, ref: Ref, live: dict[str, Any] | None, leaving: set[str]) -> str | None:
        """Delete one object; returns a reason when it was not deleted."""
        if live is None:
            return None  # already gone
        labels = (live.get("metadata") or {}).get("labels") or {}
        if labels.get(TARGET_LABEL) != self.target_label:
            return f"not deleted: the object is now labelled {TARGET_LABEL}={labels.get(TARGET_LABEL)!r}"
        if opted_out(live):
            return f"not deleted: it is annotated {PRUNE_ANNOTATION}: disabled"
        try:
            resource = self.cluster.resource(ref.group, ref.kind)
            if resource is None:
                return None  # the kind is gone (its CRD was deleted): so is the object
            if ref.group_kind == ("", "Namespace"):
                blocking = self._namespace_contents(ref.name, leaving)
                if blocking:
                    return (f"not deleted: namespace {ref.name} holds objects this target did not create "
                            f"({', '.join(blocking[:5])})")
            if ref.group_kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
                blocking = self._custom_resources(live, leaving)
                if blocking:
                    return f"not deleted: custom resources this target did not create exist ({', '.join(blocking[:5])})"
            self.cluster.request("DELETE", resource.path(ref.namespace, ref.name),
                                 [("propagationPolicy", self.propagation)],
                                 body={"kind": "DeleteOptions", "apiVersion": "v1",
                                       "propagationPolicy": self.propagation,
                                       "preconditions": {"uid": (live.get("metadata") or {}).get("uid")}})
        except ApiError as exc:
            if exc.status == 404:
                return None
            if exc.status == 409:
                return "not deleted: the object was replaced in the meantime (uid changed)"
            return str(exc)
        return None

    def _foreign(self, items: list[dict[str, Any]], resource: ApiResource, leaving: set[str]) -> list[str]:
        out = []
        for obj in items:
            obj = {**obj, "apiVersion": resource.api_version, "kind": resource.kind}
            meta = obj.get("metadata") or {}
            ref = Ref.of(obj)
            if ref.key in leaving or meta.get("ownerReferences") or meta.get("deletionTimestamp"):
                continue
            if (resource.group, resource.kind, ref.name) in AUTOMATIC:
                continue
            if (meta.get("labels") or {}).get(TARGET_LABEL) == self.target_label and ref.key in leaving:
                continue
            out.append(ref.key)
        return out

    def _namespace_contents(self, namespace: str, leaving: set[str]) -> list[str]:
        found: list[str] = []
        for resource in self.cluster.namespaced_resources():
            if (resource.group, resource.kind) in SKIP_KINDS:
                continue
            try:
                page = self.cluster.request("GET", resource.path(namespace), [("limit", 50)])
            except ApiError as exc:
                if exc.status in (403, 404, 405):
                    continue
                raise
            found.extend(self._foreign(page.get("items") or [], resource, leaving))
            if len(found) >= 5:
                break
        return found

    def _custom_resources(self, crd: dict[str, Any], leaving: set[str]) -> list[str]:
        spec = crd.get("spec") or {}
        resource = self.cluster.resource(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))
        if resource is None:
            return []
        try:
            page = self.cluster.request("GET", resource.path(), [("limit", 50)])
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return self._foreign(page.get("items") or [], resource, leaving)
