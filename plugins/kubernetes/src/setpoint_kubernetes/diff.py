"""Field-level comparison of a desired object with its live object, without false alarms.

"Changed" is decided by what setpoint owns, not by the whole live object:

1. every field the manifest sets must have the same value live (after the normalisers), so fields
   the server defaulted and fields other controllers added are never a difference; lists of
   objects are matched by their merge key (``name``, ``containerPort``+``protocol``...), so a
   defaulted field inside a container is not one either;
2. every field setpoint's field manager still owns (``managedFields``) but the manifest no longer
   sets is a difference: applying will remove it;
3. ignore rules and ignored field managers overlay the live value onto the desired object first,
   so those fields are neither compared nor taken back when applying.

Paths are shown dotted with list items by merge key: ``spec.template.spec.containers[name=web].image``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from typing import Any

from setpoint.api import FieldChange
from setpoint_kubernetes.identity import NOISE_ANNOTATIONS_KEYS as _NOISE
from setpoint_kubernetes.normalize import is_empty, same_scalar
from setpoint_kubernetes.settings import IgnoreRule

Path = tuple[Any, ...]
PORT_KEYS = ("containerPort", "port")


# ---------------------------------------------------------------------- paths


def show(path: Path) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, ItemRef):
            out += str(seg)
        else:
            out += f".{seg}" if out else str(seg)
    return out or "(object)"


class ItemRef:
    """A list item in a path: by its merge key when it has one, else by index."""

    __slots__ = ("index", "key")

    def __init__(self, index: int, key: dict[str, Any] | None) -> None:
        self.index = index
        self.key = key

    def __str__(self) -> str:
        if self.key:
            return "[" + ",".join(f"{k}={v}" for k, v in self.key.items()) + "]"
        return f"[{self.index}]"

    def matches(self, segment: str) -> bool:
        if segment == "*" or segment == str(self.index):
            return True
        return self.key is not None and any(str(v) == segment for v in self.key.values())


def merge_key(items: list[Any]) -> tuple[str, ...] | None:
    """The field identifying items of a list of objects, as server-side apply's list-map keys do."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for candidate in ("name", "containerPort", "port", "mountPath", "devicePath", "ip"):
        if all(candidate in item for item in items):
            return (candidate,)
    return None


def item_identity(item: dict[str, Any], key: tuple[str, ...]) -> tuple[Any, ...]:
    ident = tuple(item.get(k) for k in key)
    if key[0] in PORT_KEYS:  # ports are keyed by number and protocol; protocol defaults to TCP
        ident += (item.get("protocol") or "TCP",)
    return ident


def _key_dict(item: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    out = {k: item.get(k) for k in key}
    if key[0] in PORT_KEYS and item.get("protocol") not in (None, "TCP"):
        out["protocol"] = item["protocol"]
    return out


# ---------------------------------------------------------------------- 1. desired fields


def compare(want: Any, have: Any, path: Path = ()) -> list[FieldChange]:
    """Differences in the fields ``want`` sets (``have`` may hold more)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [] if is_empty(want) and have is None else [FieldChange(show(path), have, want)]
        changes: list[FieldChange] = []
        for key, value in want.items():
            sub = (*path, key)
            if key not in have:
                if not is_empty(value):
                    changes.append(FieldChange(show(sub), None, value))
                continue
            changes.extend(compare(value, have[key], sub))
        return changes
    if isinstance(want, list):
        if not isinstance(have, list):
            return [] if not want and have is None else [FieldChange(show(path), have, want)]
        key = merge_key(want)
        if key is not None and merge_key(have) == key or (key is not None and not have):
            by_id = {item_identity(item, key): item for item in have}
            changes = []
            for index, item in enumerate(want):
                sub = (*path, ItemRef(index, _key_dict(item, key)))
                live_item = by_id.get(item_identity(item, key))
                if live_item is None:
                    changes.append(FieldChange(show(sub), None, item))
                else:
                    changes.extend(compare(item, live_item, sub))
            return changes
        if want and all(isinstance(i, dict) for i in want) and len(want) == len(have):
            changes = []
            for index, (item, live_item) in enumerate(zip(want, have, strict=True)):
                changes.extend(compare(item, live_item, (*path, ItemRef(index, None))))
            return changes
        if len(want) == len(have) and all(_equal(w, h, path) for w, h in zip(want, have, strict=True)):
            return []
        return [FieldChange(show(path), have, want)]
    if same_scalar(want, have, path):
        return []
    return [FieldChange(show(path), have, want)]


def missing_empties(want: Any, have: Any, path: Path = ()) -> list[str]:
    """Paths of empty maps and lists Git sets (``selfSigned: {}``, ``emptyDir: {}``, ``ports: []``)
    that the live object does not have. The server drops some of them itself (an empty ``annotations``
    map, an empty ``args`` list); which ones is learnt from the server (see the target's compare)."""
    found: list[str] = []
    if isinstance(want, dict) and isinstance(have, dict):
        for key, value in want.items():
            sub = (*path, key)
            if isinstance(value, dict | list) and not value:
                if have.get(key) is None:
                    found.append(show(sub))
            elif key in have:
                found.extend(missing_empties(value, have[key], sub))
    elif isinstance(want, list) and isinstance(have, list):
        key = merge_key(want)
        if key is not None:
            by_id = {item_identity(item, key): item for item in have if isinstance(item, dict)}
            for index, item in enumerate(want):
                live_item = by_id.get(item_identity(item, key))
                if live_item is not None:
                    found.extend(missing_empties(item, live_item, (*path, ItemRef(index, _key_dict(item, key)))))
        elif len(want) == len(have):
            for index, (item, live_item) in enumerate(zip(want, have, strict=True)):
                found.extend(missing_empties(item, live_item, (*path, ItemRef(index, None))))
    return found


def _equal(want: Any, have: Any, path: Path) -> bool:
    if isinstance(want, dict | list):
        return not compare(want, have, path)
    return same_scalar(want, have, path)


# ---------------------------------------------------------------------- 2. fields setpoint owns


def owned_fields(live: dict[str, Any], manager: str, operation: str | None = "Apply") -> dict[str, Any] | None:
    """The merged ``fieldsV1`` set of ``manager`` (all subresources) or None."""
    merged: dict[str, Any] | None = None
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or (operation and entry.get("operation") != operation):
            continue
        if entry.get("subresource"):
            continue
        merged = _merge_sets(merged or {}, entry.get("fieldsV1") or {})
    return merged


def _merge_sets(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge_sets(out[k], v) if k in out and isinstance(out[k], dict) and isinstance(v, dict) else v
    return out


def find_item(items: Any, keyfields: dict[str, Any]) -> tuple[int, Any] | None:
    if not isinstance(items, list):
        return None
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if all(item.get(k, "TCP" if k == "protocol" else None) == v for k, v in keyfields.items()):
            return index, item
    return None


def removed_fields(fields: dict[str, Any], want: Any, have: Any, path: Path = ()) -> list[FieldChange]:
    """Fields in setpoint's field set that the desired object no longer sets: applying removes them."""
    changes: list[FieldChange] = []
    for entry, sub in fields.items():
        if entry == ".":
            continue
        kind, _, raw = entry.partition(":")
        if kind == "f":
            sub_path = (*path, raw)
            if sub_path in _NOISE:
                continue
            want_v = want.get(raw) if isinstance(want, dict) else None
            have_v = have.get(raw) if isinstance(have, dict) else None
            children = {k: v for k, v in sub.items() if k != "."}
            if want_v is None and not children:
                if have_v is not None:
                    changes.append(FieldChange(show(sub_path), have_v, None))
                continue
            if children:  # report the owned leaves, not the whole map (others may own the rest)
                changes.extend(removed_fields(children, {} if want_v is None else want_v, have_v, sub_path))
        elif kind == "k":
            try:
                keyfields = json.loads(raw)
            except ValueError:
                continue
            live_hit = find_item(have, keyfields)
            want_hit = find_item(want, keyfields)
            sub_path = (*path, ItemRef(live_hit[0] if live_hit else 0, keyfields))
            if want_hit is None:
                if live_hit is not None:
                    changes.append(FieldChange(show(sub_path), live_hit[1], None))
                continue
            if sub:
                changes.extend(removed_fields(sub, want_hit[1], live_hit[1] if live_hit else None, sub_path))
        elif kind == "v":
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            if isinstance(want, list) and value not in want and isinstance(have, list) and value in have:
                changes.append(FieldChange(show((*path, ItemRef(have.index(value), None))), value, None))
        elif kind == "i":
            index = int(raw)
            want_v = want[index] if isinstance(want, list) and index < len(want) else None
            have_v = have[index] if isinstance(have, list) and index < len(have) else None
            if want_v is None and have_v is not None:
                changes.append(FieldChange(show((*path, ItemRef(index, None))), have_v, None))
            elif sub and want_v is not None:
                changes.extend(removed_fields(sub, want_v, have_v, (*path, ItemRef(index, None))))
    return changes


# ---------------------------------------------------------------------- 3. ignored fields


def rules_for(rules: Iterable[IgnoreRule], group: str, kind: str, namespace: str | None, name: str) -> list[list[str]]:
    pointers: list[list[str]] = []
    for rule in rules:
        if rule.kind and not fnmatch.fnmatchcase(kind, rule.kind):
            continue
        if rule.group is not None and not fnmatch.fnmatchcase(group, rule.group):
            continue
        if rule.name and not fnmatch.fnmatchcase(name, rule.name):
            continue
        if rule.namespace and not fnmatch.fnmatchcase(namespace or "", rule.namespace):
            continue
        for pointer in rule.paths:
            pointers.append([seg.replace("~1", "/").replace("~0", "~") for seg in pointer.split("/")[1:]])
    return pointers


def overlay_pointer(want: Any, have: Any, pointer: list[str], for_apply: bool) -> Any:
    """``want`` with the field at ``pointer`` replaced by the live value. Where the live object has
    no value the desired one stays for applying (a create) and is dropped for comparing."""
    if not pointer:
        if have is not None:
            return have
        return want if for_apply else _DROP
    head, rest = pointer[0], pointer[1:]
    if isinstance(want, dict):
        out = dict(want)
        for key in list(want) if head == "*" else [head] if head in want else []:
            value = overlay_pointer(want[key], have.get(key) if isinstance(have, dict) else None, rest, for_apply)
            if value is _DROP:
                out.pop(key, None)
            else:
                out[key] = value
        return out
    if isinstance(want, list):
        key = merge_key(want)
        out_list = []
        for index, item in enumerate(want):
            ref = ItemRef(index, _key_dict(item, key) if key else None)
            if not ref.matches(head):
                out_list.append(item)
                continue
            live_item = None
            if isinstance(have, list):
                if key and merge_key(have) == key:
                    live_item = next((h for h in have if item_identity(h, key) == item_identity(item, key)), None)
                elif index < len(have):
                    live_item = have[index]
            value = overlay_pointer(item, live_item, rest, for_apply)
            if value is not _DROP:
                out_list.append(value)
        return out_list
    return want


class _Drop:
    pass


_DROP: Any = _Drop()


def overlay_fields(want: Any, have: Any, fields: dict[str, Any]) -> Any:
    """``want`` with every field in ``fields`` (another manager's field set) taken from live."""
    if not isinstance(want, dict | list):
        return have if have is not None else want
    if isinstance(want, dict):
        out = dict(want)
        for token, sub in fields.items():
            kind, _, raw = token.partition(":")
            if kind != "f" or raw not in want:
                continue
            live_v = have.get(raw) if isinstance(have, dict) else None
            if sub and isinstance(want[raw], dict | list):
                out[raw] = overlay_fields(want[raw], live_v, sub)
            elif live_v is not None:
                out[raw] = live_v
        return out
    out_list = list(want)
    for token, sub in fields.items():
        kind, _, raw = token.partition(":")
        if kind != "k":
            continue
        try:
            keyfields = json.loads(raw)
        except ValueError:
            continue
        hit = find_item(want, keyfields)
        live_hit = find_item(have, keyfields)
        if hit is not None and live_hit is not None and sub:
            out_list[hit[0]] = overlay_fields(hit[1], live_hit[1], sub)
    return out_list


# ---------------------------------------------------------------------- 4. who changed it


_SEGMENT = re.compile(r"\[[^\]]*\]|[^.\[]+")


def changed_by(live: dict[str, Any], paths: list[str], own_manager: str) -> str | None:
    """The field manager, other than setpoint's own, that owns the most of the changed ``paths``
    (as :func:`show` prints them) in ``managedFields``; the latest one wins a tie. A manager that
    wrote through a subresource is named with it (``kubectl via scale``). None when no manager owns
    a changed field (a removed field is owned by nobody)."""
    best: tuple[int, str, str] | None = None
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        manager = entry.get("manager")
        if not manager or manager == own_manager:
            continue
        fields = entry.get("fieldsV1") or {}
        owned = sum(1 for path in paths if _owns(fields, path))
        if not owned:
            continue
        name = f"{manager} via {entry['subresource']}" if entry.get("subresource") else str(manager)
        candidate = (owned, str(entry.get("time") or ""), name)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None


def _owns(fields: dict[str, Any], path: str) -> bool:
    """Whether the ``fieldsV1`` set ``fields`` holds ``path`` (a list item only by its merge key)."""
    node: Any = fields
    for segment in _SEGMENT.findall(path):
        if not isinstance(node, dict):
            return False
        if segment.startswith("["):
            node = _item(node, segment[1:-1])
        else:
            node = node.get(f"f:{segment}")
        if node is None:
            return False
    return True


def _item(node: dict[str, Any], key_text: str) -> Any:
    if "=" not in key_text:
        return None  # by index: fieldsV1 names items by key or value only
    wanted = dict(part.split("=", 1) for part in key_text.split(","))
    for name, child in node.items():
        if not name.startswith("k:"):
            continue
        try:
            key = json.loads(name[2:])
        except ValueError:
            continue
        if isinstance(key, dict) and all(str(key.get(k)) == v for k, v in wanted.items()):
            return child
    return None
