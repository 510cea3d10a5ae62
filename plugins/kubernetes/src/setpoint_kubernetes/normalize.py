"""Normalisers: the ways the API server rewrites an object that are not changes.

Each has a test against the real API server (tests/plugins/kubernetes/test_normalizers.py):

* ``server-fields``: ``managedFields``, ``resourceVersion``, ``uid``, ``generation``,
  ``creationTimestamp``, ``selfLink`` and ``status`` are the server's, never compared;
* ``revision-annotation``: setpoint's own revision annotation changes with every applying commit;
* ``secret-string-data``: the server stores ``stringData`` as base64 ``data`` and drops it;
* ``quantities``: resource quantities come back canonical (``0.5`` -> ``500m``, ``1024Mi`` -> ``1Gi``);
* ``empty-values``: empty maps, lists and strings in a manifest are omitted by the server;
* ``numbers``: ``1.0`` in YAML is ``1`` in JSON;
* defaulted fields (``imagePullPolicy``, ``protocol``, ``clusterIP``, CRD schema defaults) are not
  normalised away: the comparison in diff.py only looks at fields Git sets or setpoint owns.
"""

from __future__ import annotations

import base64
import re
from fractions import Fraction
from typing import Any

from setpoint.secrets import Secret
from setpoint_kubernetes.identity import REVISION_ANNOTATION

SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink")
NOISE_ANNOTATIONS = (REVISION_ANNOTATION, "kubectl.kubernetes.io/last-applied-configuration")

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {"": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
           "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
           "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
           "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60)}
#: Map keys whose values are resource quantities (``resources.limits.cpu``, ``hard.pods``...).
QUANTITY_PARENTS = {"limits", "requests", "hard", "capacity", "allocatable", "default", "defaultRequest",
                    "max", "min", "maxLimitRequestRatio"}
QUANTITY_KEYS = {"sizeLimit", "storage"}


def quantity(value: Any) -> Fraction | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Fraction(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    return Fraction(match.group(1)) * _SUFFIX[match.group(2) or ""]


def is_quantity_path(path: tuple[Any, ...]) -> bool:
    if len(path) >= 2 and isinstance(path[-2], str) and path[-2] in QUANTITY_PARENTS:
        return True
    return bool(path) and isinstance(path[-1], str) and path[-1] in QUANTITY_KEYS


def is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, dict | list) and not value)


def drop_nulls(value: Any) -> Any:
    """Nulls in a manifest mean "not set" (``creationTimestamp: null`` from kustomize and helm)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def desired_object(obj: dict[str, Any]) -> dict[str, Any]:
    """The object setpoint applies and compares: no status, no server fields, no nulls, and a
    Secret's ``stringData`` folded into ``data`` the way the server stores it."""
    out = drop_nulls({k: v for k, v in obj.items() if k != "status"})
    meta = {k: v for k, v in out.get("metadata", {}).items() if k not in SERVER_METADATA}
    out["metadata"] = meta
    if out.get("kind") == "Secret" and out.get("apiVersion") == "v1" and isinstance(out.get("stringData"), dict):
        data = dict(out.get("data") or {})
        for key, value in out.pop("stringData").items():
            data[key] = _b64(value)
        out["data"] = data
    return out


def _b64(value: Any) -> Any:
    if isinstance(value, Secret):
        return Secret(_b64(value.reveal()), origin=value.origin)
    raw = value if isinstance(value, bytes) else str(value).encode()
    return base64.b64encode(raw).decode()


def live_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A live object as compared and recorded: server fields, status and setpoint's own revision
    annotation removed; a Secret's values wrapped as secrets."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    annotations = meta.get("annotations")
    if annotations and any(a in annotations for a in NOISE_ANNOTATIONS):
        annotations = {k: v for k, v in annotations.items() if k not in NOISE_ANNOTATIONS}
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations")
    out["metadata"] = meta
    return wrap_secret_values(out)


def wrap_secret_values(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            out[field] = {k: v if isinstance(v, Secret) else Secret(v, origin=f"Secret.{field}.{k}")
                          for k, v in obj[field].items()}
    return out


def same_scalar(want: Any, have: Any, path: tuple[Any, ...]) -> bool:
    if isinstance(want, Secret) or isinstance(have, Secret):
        return isinstance(want, Secret) and isinstance(have, Secret) and want == have
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return want == have
    if want == have:
        return True
    if is_empty(want) and is_empty(have):
        return True
    if is_quantity_path(path):
        a, b = quantity(want), quantity(have)
        return a is not None and a == b
    return False
