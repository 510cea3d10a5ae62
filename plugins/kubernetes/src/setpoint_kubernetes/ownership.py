"""List entries that another field manager added by hand to a list Git sets, and taking them over.

``kubectl edit`` changing a Service port from 80 to 8080 does not change an entry: ports are a
list keyed by ``port``, so the edit removes setpoint's entry 80 and adds an entry 8080 owned by
``kubectl-edit``. Server-side apply then merges Git's entry 80 back *next to* 8080, which the API
server refuses (``Duplicate value: "http"``, ``ports[0].name: Required value``), or, for
containers, env and volumes, which it accepts while the hand-made entry stays forever unseen.

Such a *foreign entry* is a list item (``k:{...}`` in ``managedFields``) that Git does not have, in
a list Git sets, owned only by managers that wrote with an imperative update (``kubectl edit``,
``kubectl set env``, ``kubectl patch``). It is drift. Repairing it takes ownership: the entry's
fields move from those managers to setpoint's own apply entry in ``managedFields`` (one JSON patch,
guarded by the resourceVersion, that changes nothing else), so the next apply, which no longer
contains the entry, removes it and adds Git's entry in the same request. Entries another *applier*
owns (another GitOps tool, ``kubectl apply --server-side``) are that applier's and are left alone,
as are entries of ignored managers.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from setpoint.api import FieldChange
from setpoint_kubernetes.diff import ItemRef, find_item, show

Tokens = tuple[str, ...]


@dataclass(frozen=True)
class Foreign:
    tokens: Tokens  # the item's path in fieldsV1 tokens: ("f:spec", "f:ports", 'k:{"port":8080,...}')
    path: str  # shown path, e.g. spec.ports[port=8080]
    item: Any  # the live entry

    def change(self) -> FieldChange:
        return FieldChange(self.path, self.item, None)


def _entries(live: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in (live.get("metadata") or {}).get("managedFields") or [] if isinstance(e, dict)]


def _has(fields: dict[str, Any], tokens: Tokens) -> bool:
    node: Any = fields
    for token in tokens:
        if not isinstance(node, dict) or token not in node:
            return False
        node = node[token]
    return True


def foreign_entries(live: dict[str, Any], want: dict[str, Any], manager: str,
                    ignored_managers: tuple[str, ...] = ()) -> list[Foreign]:
    """Entries of keyed lists in ``want`` that only imperative updates by other managers own."""
    entries = _entries(live)
    appliers = [e.get("fieldsV1") or {} for e in entries if e.get("operation") == "Apply" and e.get("manager") != manager]
    found: dict[Tokens, Foreign] = {}
    for entry in entries:
        if entry.get("operation") != "Update" or entry.get("subresource"):
            continue
        if entry.get("manager") == manager or entry.get("manager") in ignored_managers:
            continue
        _walk(entry.get("fieldsV1") or {}, want, live, (), (), found)
    return [f for tokens, f in sorted(found.items()) if not any(_has(a, tokens) for a in appliers)]


def _walk(fields: dict[str, Any], want: Any, have: Any, tokens: Tokens, path: tuple[Any, ...],
          found: dict[Tokens, Foreign]) -> None:
    for token, sub in fields.items():
        kind, _, raw = token.partition(":")
        if kind == "f":
            if isinstance(want, dict) and isinstance(have, dict) and raw in want and raw in have:
                if isinstance(sub, dict) and sub:
                    _walk(sub, want[raw], have[raw], (*tokens, token), (*path, raw), found)
        elif kind == "k" and isinstance(want, list) and isinstance(have, list):
            try:
                keyfields = json.loads(raw)
            except ValueError:
                continue
            live_hit = find_item(have, keyfields)
            if live_hit is None:
                continue
            want_hit = find_item(want, keyfields)
            if want_hit is None:
                item_tokens = (*tokens, token)
                found.setdefault(item_tokens, Foreign(item_tokens, show((*path, ItemRef(live_hit[0], keyfields))),
                                                      live_hit[1]))
            elif isinstance(sub, dict) and sub:
                _walk(sub, want_hit[1], live_hit[1], (*tokens, token), (*path, ItemRef(live_hit[0], keyfields)), found)


def _pop(fields: dict[str, Any], tokens: Tokens) -> Any:
    """Remove the subtree at ``tokens``; parents left empty by it go too. None when absent."""
    if not tokens:
        return None
    head, rest = tokens[0], tokens[1:]
    child = fields.get(head)
    if not isinstance(child, dict):
        return None
    if not rest:
        return fields.pop(head)
    popped = _pop(child, rest)
    if popped is not None and not child:
        del fields[head]
    return popped


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def _insert(fields: dict[str, Any], tokens: Tokens, sub: dict[str, Any]) -> None:
    node = fields
    for token in tokens[:-1]:
        node = node.setdefault(token, {})
    node[tokens[-1]] = _merge(node.get(tokens[-1]) or {}, sub)


def taken_over(live: dict[str, Any], foreign: list[Foreign], manager: str) -> list[dict[str, Any]]:
    """``managedFields`` with the foreign entries moved to ``manager``'s apply entry."""
    entries = copy.deepcopy(_entries(live))
    moved: dict[Tokens, dict[str, Any]] = {}
    for entry in entries:
        if entry.get("operation") != "Update" or entry.get("manager") == manager or entry.get("subresource"):
            continue
        fields = entry.get("fieldsV1") or {}
        for f in foreign:
            sub = _pop(fields, f.tokens)
            if isinstance(sub, dict):
                moved[f.tokens] = _merge(moved.get(f.tokens, {}), sub)
        entry["fieldsV1"] = fields
    entries = [e for e in entries if e.get("fieldsV1") or e.get("operation") != "Update"]
    ours = next((e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"
                 and not e.get("subresource")), None)
    if ours is None:
        ours = {"manager": manager, "operation": "Apply", "apiVersion": live.get("apiVersion", "v1"),
                "fieldsType": "FieldsV1", "fieldsV1": {}}
        entries.append(ours)
    ours.setdefault("fieldsV1", {})
    for tokens, sub in moved.items():
        _insert(ours["fieldsV1"], tokens, sub or {".": {}})
    return entries
