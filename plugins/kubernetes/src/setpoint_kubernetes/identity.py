"""Object identity and setpoint's tracking metadata.

A resource key is ``Kind[.group][/namespace]/name`` (``Deployment.apps/shop/web``,
``Namespace/shop``, ``ConfigMap/shop/settings``): readable in status and audit, and independent of
the API version, so moving a manifest from ``v1beta1`` to ``v1`` is an update, not a delete+create.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: Label on every object setpoint applies: the name of the target that owns it.
TARGET_LABEL = "setpoint.dev/target"
#: Label on every object setpoint applies: the id of the installation (its state store) that applied
#: it. The shared watch selects by it, so other installations' objects are never cached here.
INSTANCE_LABEL = "setpoint.dev/instance"
#: Annotation: the Git revision that last applied the object (not compared: see diff.py).
REVISION_ANNOTATION = "setpoint.dev/revision"
#: Annotation a manifest sets to ``disabled`` to keep the object when it leaves Git.
PRUNE_ANNOTATION = "setpoint.dev/prune"
#: Annotation a manifest sets to ``"true"`` to let setpoint delete and re-create the object when a
#: change touches a field the API server will not update in place (an immutable ConfigMap's data,
#: a Job's template, a selector). Opt-in per object: the old object and what depends on it go.
REPLACE_ANNOTATION = "setpoint.dev/replace-on-immutable"
#: Optional apply wave (an integer; lower waves first, default 0).
WAVE_ANNOTATION = "setpoint.dev/wave"
#: Label on the in-cluster inventory ConfigMap (deliberately not TARGET_LABEL: it is not managed).
INVENTORY_LABEL = "setpoint.dev/inventory"
#: Paths setpoint owns but never compares: its revision annotation changes with each applying commit.
NOISE_ANNOTATIONS_KEYS = {("metadata", "annotations", REVISION_ANNOTATION)}


def label_value(name: str) -> str:
    """A label value for a target name (label values are at most 63 characters)."""
    if len(name) <= 63:
        return name
    return name[:50] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def version_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Ref:
    group: str
    kind: str
    namespace: str | None
    name: str

    @property
    def key(self) -> str:
        gk = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{gk}/{self.namespace}/{self.name}" if self.namespace else f"{gk}/{self.name}"

    @property
    def group_kind(self) -> tuple[str, str]:
        return (self.group, self.kind)

    @classmethod
    def parse(cls, key: str) -> Ref:
        return _parse(key)

    @classmethod
    def _parse(cls, key: str) -> Ref:
        parts = key.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"not a Kubernetes resource key: {key!r}")
        kind, _, group = parts[0].partition(".")
        if len(parts) == 3:
            return cls(group, kind, parts[1], parts[2])
        return cls(group, kind, None, parts[1])

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Ref:
        meta = obj.get("metadata") or {}
        return cls(group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")),
                   meta.get("namespace") or None, str(meta.get("name", "")))


@lru_cache(maxsize=65536)
def _parse(key: str) -> Ref:
    """Keys are parsed on every reconcile for every managed object: parse each once."""
    return Ref._parse(key)
