"""One target's status row, from plain values: the single builder behind every status row.

:func:`setpoint.views.status_row` (the CLI's full path, the HTTP status API, the dashboard) and
setpoint.quick (``setpoint status`` read with plain sqlite3, setpoint.state.quickstate) both call
:func:`status_row`, so the rows cannot diverge. The fields are documented in docs/cli.md ("Status,
history and plan fields").

No imports (it is on the quick path); values come in as the stored JSON has them.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from typing import Any

#: What a stored status reads as when a key is missing or null (setpoint.state.status.TargetStatus).
_TEXT = ("health_message", "message", "kind")
SYNC_VALUES = ("Synced", "OutOfSync", "Unknown")
HEALTH_VALUES = ("Healthy", "Progressing", "Degraded", "Missing", "Unknown")


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """A stored status (its JSON, any version) as TargetStatus.from_json reads it: missing keys and
    nulls take their defaults. Raises ValueError for a sync or health value that does not exist."""
    values = dict(data)
    values["sync"] = values.get("sync") or "Unknown"
    values["health"] = values.get("health") or "Unknown"
    if values["sync"] not in SYNC_VALUES or values["health"] not in HEALTH_VALUES:
        raise ValueError(f"not a status: sync {values['sync']!r}, health {values['health']!r}")
    values["drift"] = list(values.get("drift") or ())
    values["consecutive_failures"] = int(values.get("consecutive_failures") or 0)
    for text in _TEXT:
        values[text] = values.get(text) or ""
    return values


def held_plan_row(target: str, plan_id: str, revision: str, reason: str, created_at: float,
                  changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A held plan; ``changes`` only where its changes are shown (not in a status row)."""
    row: dict[str, Any] = {"target": target, "plan_id": plan_id, "revision": revision, "reason": reason,
                           "created_at": created_at}
    if changes is not None:
        row["changes"] = changes
    return row


def status_row(name: str, kind: str, source: str, path: str, status: dict[str, Any] | None,
               pause: dict[str, Any] | None, held: list[dict[str, Any]], source_error: str | None = None,
               now: float | None = None) -> dict[str, Any]:
    """``status``: the stored status (:func:`normalise`\\ d), None if the target never ran; ``pause``:
    its pause row (reason, paused_by, paused_at, until) or None; ``held``: its pending plans as
    :func:`held_plan_row` rows; ``source_error``: the running process's own view of the source."""
    st = status or normalise({})
    active = pause is not None and not (pause["until"] is not None and (now or time.time()) >= pause["until"])
    return {
        "target": name, "kind": kind, "source": source, "path": path,
        "sync": st["sync"], "health": st["health"],
        "health_message": st["health_message"] or None,
        "revision": st.get("revision"), "revision_author": st.get("revision_author"),
        "revision_subject": st.get("revision_subject"),
        "applied_revision": st.get("applied_revision"),
        "last_applied": ({"time": st["last_applied_at"], "revision": st.get("last_applied_revision")}
                         if st.get("last_applied_at") is not None else None),
        "last_run": st.get("last_run"), "last_trigger": st.get("last_trigger"),
        "last_error": st.get("last_error"), "error_stage": st.get("error_stage"),
        "source_error": source_error or st.get("source_error"),
        "consecutive_failures": st["consecutive_failures"], "message": st["message"] if status else None,
        "drift": list(st["drift"]),
        "paused": ({"reason": pause["reason"], "by": pause["paused_by"], "since": pause["paused_at"],
                    "until": pause["until"]} if pause is not None and active else None),
        "held_plans": held,
    }
