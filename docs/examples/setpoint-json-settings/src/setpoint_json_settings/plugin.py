"""The `json_settings` target kind: every `*.yaml` file under the target's path in Git becomes a
JSON file of the same name under `destination`. Diffs are per setting (`database.pool_size`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from setpoint import hookimpl
from setpoint.api import (
    Action,
    ApplyResult,
    Denial,
    Desired,
    Live,
    Outcome,
    Plan,
    Resource,
    SourceTree,
    TargetDriver,
    TargetInfo,
)
from setpoint.errors import RenderError
from setpoint.secrets import reveal_all, wrap_like


class Settings(BaseModel):
    """The `json_settings:` block of a target in setpoint.yaml."""

    model_config = ConfigDict(extra="forbid")
    destination: Path


class JsonSettingsTarget(TargetDriver):
    kind = "json_settings"
    Settings = Settings

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.destination = context.resolve(self.settings.destination)

    def render(self, tree: SourceTree) -> Desired:
        resources = []
        for relpath in tree.files("**/*.yaml"):
            if tree.is_encrypted(relpath):  # decrypted by the core; leaves are Secret
                data = tree.decrypted[relpath].data
            else:
                try:
                    data = yaml.safe_load(tree.read_text(relpath))
                except yaml.YAMLError as exc:
                    raise RenderError(f"{relpath}: {getattr(exc, 'problem', exc)}") from None
            if not isinstance(data, dict):
                raise RenderError(f"{relpath}: expected a mapping of settings")
            name = relpath.removesuffix(".yaml") + ".json"
            resources.append(Resource(name, "SettingsFile", name, data))
        return Desired.of(resources)

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        found = []
        for key in sorted(set(desired.resources) | set(managed)):
            path = self.destination / key
            if path.exists():
                data = json.loads(path.read_text())
                if key in desired.resources:  # secret settings compare as secrets
                    data = wrap_like(data, desired.resources[key].body)
                found.append(Resource(key, "SettingsFile", key, data))
        return Live.of(found)

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        result = ApplyResult()
        for change in plan.changes:
            path = self.destination / change.key
            if change.action == Action.DELETE:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(reveal_all(desired.resources[change.key].body), indent=2))
                os.replace(tmp, path)
            result.applied.append(change.key)
        return result


@hookimpl
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    register(JsonSettingsTarget)


@hookimpl
def setpoint_review_plan(target: TargetInfo, plan: Plan, drift: bool) -> Denial | None:
    # Policies see every plan of every kind; this one only cares about its own kind.
    if target.kind != "json_settings":
        return None
    for change in plan.deletions:
        if change.key.startswith("production"):
            return Denial(f"{change.key} is a production settings file; delete it by hand", plugin="json_settings")
    return None


#: Outcomes seen in this process (a real plugin would send them somewhere).
SEEN: list[Outcome] = []


@hookimpl
def setpoint_reconcile_finished(outcome: Outcome) -> None:
    SEEN.append(outcome)
