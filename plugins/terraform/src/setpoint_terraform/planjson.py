"""``terraform show -json PLAN`` into setpoint's terms.

* ``resource_changes`` (what apply would do) become :class:`ResourceChange` objects keyed by
  resource address, with one :class:`FieldChange` per attribute (``before`` = the refreshed, live
  value; ``after`` = what the plan sets).
* ``resource_drift`` (what refresh saw changed outside Terraform) marks those changes as drift.
* ``output_changes`` become one pseudo-resource ``outputs``.
* Values Terraform marks sensitive, and values equal to (or containing) a decrypted secret, are
  wrapped in :class:`Secret` before anything else sees them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from setpoint.api import Action, FieldChange, Resource, ResourceChange, diff_values
from setpoint.secrets import Secret, to_jsonable

UNKNOWN = "(known after apply)"
#: Pseudo-fields that record what apply does to the state only (no object is created or destroyed).
MOVE_FIELD = "(moved from)"
IMPORT_FIELD = "(imported)"
FORGET_FIELD = "(forgotten)"
OUTPUTS_KEY = "outputs"
#: A decrypted value shorter than this is only redacted where a value equals it exactly.
MIN_CONTAINED = 4

_ACTIONS = {
    ("create",): Action.CREATE,
    ("update",): Action.UPDATE,
    ("delete",): Action.DELETE,
    # forget (a `removed` block with destroy = false) drops the state entry and destroys nothing:
    # for the core it is an update of the resource's management, never a deletion
    ("forget",): Action.UPDATE,
    ("delete", "create"): Action.REPLACE,
    ("create", "delete"): Action.REPLACE,
    ("create", "forget"): Action.REPLACE,
}


class Redactor:
    """Wraps sensitive and decrypted values as :class:`Secret`."""

    def __init__(self, secret_texts: Iterable[str]) -> None:
        texts = [t for t in secret_texts if t]
        self.exact = set(texts)
        self.contained = [t for t in texts if len(t) >= MIN_CONTAINED]

    def _is_secret(self, value: Any) -> bool:
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            return False
        text = value if isinstance(value, str) else json.dumps(value)
        return text in self.exact or (isinstance(value, str) and any(t in value for t in self.contained))

    def wrap(self, value: Any, sensitive: Any = False) -> Any:
        """``sensitive`` mirrors ``value`` (Terraform's ``*_sensitive`` trees): True marks a secret."""
        if sensitive is True:
            return value if value is None or isinstance(value, Secret) else Secret(value, origin="terraform")
        if isinstance(value, dict):
            sens = sensitive if isinstance(sensitive, dict) else {}
            return {k: self.wrap(v, sens.get(k, False)) for k, v in value.items()}
        if isinstance(value, list):
            items = sensitive if isinstance(sensitive, list) else []
            return [self.wrap(v, items[i] if i < len(items) else False) for i, v in enumerate(value)]
        if self._is_secret(value):
            return Secret(value, origin="decrypted value")
        return value


def _unknown(value: Any, unknown: Any) -> Any:
    """Replace values Terraform only knows after apply by a readable marker."""
    if unknown is True:
        return UNKNOWN
    if isinstance(unknown, dict):
        base = value if isinstance(value, dict) else {}
        return {**base, **{k: _unknown(base.get(k), u) for k, u in unknown.items() if u not in (False, None, [], {})}}
    if isinstance(unknown, list) and isinstance(value, list):
        return [_unknown(v, unknown[i] if i < len(unknown) else False) for i, v in enumerate(value)]
    return value


@dataclass
class TfPlan:
    """One saved plan, mapped."""

    changes: list[ResourceChange]
    #: Addresses refresh found changed outside Terraform, with the fields that moved (state -> live).
    drift: dict[str, list[FieldChange]]
    #: Every resource instance (and ``outputs``) the configuration wants after apply.
    desired_keys: dict[str, tuple[str, str, str | None]]
    #: The refreshed state: address -> Resource with live values.
    live: dict[str, Resource]
    #: A digest of what apply would do (not of when or where it was planned).
    content_id: str
    applyable: bool = True
    errored: bool = False
    #: Output values the state holds (prior state), sensitive ones as Secret.
    outputs: dict[str, Any] = field(default_factory=dict)


def _resources(module: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
    if not module:
        return
    yield from module.get("resources") or []
    for child in module.get("child_modules") or []:
        yield from _resources(child)


def paired(fields: list[FieldChange]) -> list[FieldChange]:
    """A field that is secret on one side is secret on both: the live value of an attribute that
    takes a decrypted value holds the previous secret (after a rotation, Git no longer has it)."""
    out = []
    for f in fields:
        if isinstance(f.before, Secret) != isinstance(f.after, Secret):
            before = f.before if f.before is None or isinstance(f.before, Secret) else Secret(f.before)
            after = f.after if f.after is None or isinstance(f.after, Secret) else Secret(f.after)
            f = FieldChange(f.path, before, after)
        out.append(f)
    return out


def _fields(action: Action, before: Any, after: Any) -> list[FieldChange]:
    if action == Action.DELETE:
        return []
    if action == Action.CREATE:
        if isinstance(after, dict):
            return [f for f in diff_values({}, after) if f.after is not None]
        before = None
    if isinstance(before, dict) and isinstance(after, dict):
        return paired(diff_values(before, after))
    return paired(diff_values(before, after, "(value)"))


def parse(doc: dict[str, Any], redactor: Redactor) -> TfPlan:
    changes: list[ResourceChange] = []
    desired: dict[str, tuple[str, str, str | None]] = {}
    canonical: list[Any] = []
    for rc in doc.get("resource_changes") or []:
        if rc.get("mode") != "managed":
            continue  # data sources are read, never changed
        address, change = rc["address"], rc.get("change") or {}
        actions = tuple(change.get("actions") or ())
        kind, module = rc.get("type", ""), rc.get("module_address")
        if actions != ("delete",):
            # a forgotten resource stays "desired" until its forget is applied (the core records
            # the change against a desired resource); afterwards it is in neither config nor state
            desired[address] = (kind, address, module)
        # A `moved` address or an `import` is a change to apply even when the resource itself is
        # unchanged (terraform exits 2 for it): apply rewrites the state and destroys nothing.
        moved_from = rc.get("previous_address") if rc.get("previous_address") not in (None, address) else None
        importing = change.get("importing")
        if actions in (("no-op",), ("read",), ()) and moved_from is None and importing is None:
            continue
        action = _ACTIONS.get(actions, Action.UPDATE)
        before = redactor.wrap(change.get("before"), change.get("before_sensitive", False))
        after = redactor.wrap(_unknown(change.get("after"), change.get("after_unknown", False)),
                              change.get("after_sensitive", False))
        fields = _fields(action, before, after) if actions not in (("no-op",), ("read",), ()) else []
        if actions == ("forget",):
            fields = [FieldChange(FORGET_FIELD, "managed", "forgotten: removed from state, not destroyed")]
        if importing is not None:
            # the object exists already: apply adds it to the state (and updates it if the
            # configuration says otherwise); nothing is created
            fields = [FieldChange(IMPORT_FIELD, None, _import_label(importing)), *fields]
        if moved_from is not None:
            fields = [FieldChange(MOVE_FIELD, moved_from, address), *fields]
        changes.append(ResourceChange(address, kind, address, action, fields, module))
        canonical.append([address, list(actions), rc.get("action_reason"), to_jsonable(before), to_jsonable(after),
                          change.get("replace_paths"), moved_from, importing])
    output_fields: list[FieldChange] = []
    output_actions: set[str] = set()
    for name, change in sorted((doc.get("output_changes") or {}).items()):
        actions = tuple(change.get("actions") or ())
        if actions in (("no-op",), ()):
            continue
        before = redactor.wrap(change.get("before"), change.get("before_sensitive", False))
        after = redactor.wrap(UNKNOWN if change.get("after_unknown") is True else change.get("after"),
                              change.get("after_sensitive", False))
        if actions == ("delete",):
            after = None
        output_fields.extend(paired([FieldChange(name, before, after)]))
        output_actions.update(actions)
        canonical.append(["output", name, list(actions), to_jsonable(before), to_jsonable(after)])
    if doc.get("output_changes") or output_fields:
        desired[OUTPUTS_KEY] = ("outputs", OUTPUTS_KEY, None)
    prior = (doc.get("prior_state") or {}).get("values") or {}
    if output_fields:
        # removing an output is not a deletion of anything: the pseudo-resource is only updated
        had_outputs = bool(prior.get("outputs"))
        changes.append(ResourceChange(OUTPUTS_KEY, "outputs", OUTPUTS_KEY,
                                      Action.UPDATE if had_outputs else Action.CREATE, output_fields))
    drift: dict[str, list[FieldChange]] = {}
    for rc in doc.get("resource_drift") or []:
        change = rc.get("change") or {}
        before = redactor.wrap(change.get("before"), change.get("before_sensitive", False))
        after = redactor.wrap(change.get("after"), change.get("after_sensitive", False))
        drift[rc["address"]] = paired(diff_values(before, after)) if isinstance(before, dict) and isinstance(after, dict) \
            else [FieldChange("(resource)", "present" if before is not None else None,
                              "deleted outside Terraform" if after is None else "present")]
    live: dict[str, Resource] = {}
    for res in _resources(prior.get("root_module")):
        if res.get("mode") != "managed":
            continue
        body = redactor.wrap(res.get("values") or {}, res.get("sensitive_values") or {})
        live[res["address"]] = Resource(res["address"], res.get("type", ""), res["address"], body)
    outputs = {name: redactor.wrap(out.get("value"), bool(out.get("sensitive")))
               for name, out in (prior.get("outputs") or {}).items()}
    if outputs:
        live[OUTPUTS_KEY] = Resource(OUTPUTS_KEY, "outputs", OUTPUTS_KEY, dict(outputs))
    blob = json.dumps(canonical, sort_keys=True, default=str)
    return TfPlan(changes, drift, desired, live, hashlib.sha256(blob.encode()).hexdigest(),
                  bool(doc.get("applyable", True)), bool(doc.get("errored", False)), outputs)


def _import_label(importing: Any) -> str:
    if isinstance(importing, dict) and importing.get("id"):
        return f"import id {importing['id']}"
    return "imported"


def state_only(change: ResourceChange) -> str | None:
    """``move``, ``import`` or ``forget`` when the change only rewrites Terraform's state."""
    paths = {f.path for f in change.fields}
    if FORGET_FIELD in paths:
        return "forget"
    if IMPORT_FIELD in paths:
        return "import"
    if MOVE_FIELD in paths and paths == {MOVE_FIELD}:
        return "move"
    return None


def stale_salted(content_id: str, serial: int | None, lineage: str | None) -> str:
    """A new identity for a plan whose content equals one terraform refused as stale, so the
    re-plan is held again instead of matching the old approval."""
    return hashlib.sha256(f"{content_id}:{lineage}:{serial}".encode()).hexdigest()


def _address(module: str | None, kind: str, name: str, index: Any) -> str:
    base = f"{module}.{kind}.{name}" if module else f"{kind}.{name}"
    if index is None:
        return base
    return f"{base}[{json.dumps(index)}]"


def from_state(state: dict[str, Any], redactor: Redactor) -> TfPlan:
    """A plan with no changes, read from the state saved inside the plan file.

    ``plan -detailed-exitcode`` exiting 0 means configuration, state and the world agree; the
    refreshed state in the plan file then says everything ``show -json`` would, one process
    sooner (a no-op reconcile runs a single terraform command)."""
    desired: dict[str, tuple[str, str, str | None]] = {}
    live: dict[str, Resource] = {}
    for res in state.get("resources") or []:
        if res.get("mode") != "managed":
            continue
        module, kind, name = res.get("module"), res.get("type", ""), res.get("name", "")
        for inst in res.get("instances") or []:
            address = _address(module, kind, name, inst.get("index_key"))
            sensitive = {step.get("value"): True for path in inst.get("sensitive_attributes") or []
                         for step in path[:1] if isinstance(step, dict) and step.get("type") == "get_attr"}
            body = redactor.wrap(inst.get("attributes") or {}, sensitive)
            desired[address] = (kind, address, module)
            live[address] = Resource(address, kind, address, body)
    outputs = {name: redactor.wrap(out.get("value"), bool(out.get("sensitive")))
               for name, out in (state.get("outputs") or {}).items()}
    if outputs:
        desired[OUTPUTS_KEY] = ("outputs", OUTPUTS_KEY, None)
        live[OUTPUTS_KEY] = Resource(OUTPUTS_KEY, "outputs", OUTPUTS_KEY, dict(outputs))
    return TfPlan([], {}, desired, live, hashlib.sha256(b"[]").hexdigest(), outputs=outputs)
