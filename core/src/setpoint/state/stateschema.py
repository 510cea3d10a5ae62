"""The names of the state database that more than the store reads: one source of truth.

:mod:`setpoint.state.store` (and its backends) and :mod:`setpoint.state.quickstate` (the reader of
``setpoint status`` and ``audit`` that imports only sqlite3) both take the schema version and the
table and column names from here. The store refuses to start if its migrations, its records or the
database itself disagree with this module (:func:`check_records`, :func:`missing_columns`), so the
two readers cannot drift apart silently; tests/core/test_quick_start.py reads a database written
and migrated by the real store with the quick reader.

No imports: this module is on the quick path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable

#: The schema version after the last migration (SQLite's ``user_version``; PostgreSQL's
#: ``setpoint_schema``). Raise it with every new migration of either backend.
SCHEMA_VERSION = 6

TARGET_STATE = "target_state"
TARGET_STATE_COLUMNS = ("target", "kind", "data", "updated_at")
PAUSES = "pauses"
PAUSE_COLUMNS = ("target", "reason", "paused_by", "paused_at", "until")
HELD_PLANS = "held_plans"
HELD_PLAN_COLUMNS = ("id", "target", "plan_id", "revision", "created_at", "reason", "changes", "status",
                     "decided_by", "decided_at")
AUDIT = "audit"
AUDIT_COLUMNS = ("id", "time", "target", "kind", "revision", "author", "subject", "trigger", "action", "result",
                 "duration", "actor", "details")
META = "meta"
META_COLUMNS = ("key", "value")

#: The meta key under which ``setpoint run`` records its last configuration reload (setpoint.reload).
CONFIG_RELOAD_META = "config_reload"

#: Every table the quick reader reads, with the columns it reads.
TABLES = {TARGET_STATE: TARGET_STATE_COLUMNS, PAUSES: PAUSE_COLUMNS, HELD_PLANS: HELD_PLAN_COLUMNS,
          AUDIT: AUDIT_COLUMNS, META: META_COLUMNS}

def check_records(migrations: int, records: dict[str, tuple[str, ...]]) -> None:
    """Raise RuntimeError unless ``migrations`` reach :data:`SCHEMA_VERSION` and each record type's
    fields (by table) are the columns named here, in order."""
    if migrations != SCHEMA_VERSION:
        raise RuntimeError(f"state schema: {migrations} migrations but stateschema.SCHEMA_VERSION = {SCHEMA_VERSION}")
    for table, fields in records.items():
        if tuple(fields) != TABLES[table]:
            raise RuntimeError(f"state schema: the {table} record has {fields}, stateschema says {TABLES[table]}")


def missing_columns(columns_of: Callable[[str], tuple[str, ...]]) -> list[str]:
    """``table.column`` named here that the database lacks (``columns_of(table)``: its column names)."""
    return [f"{table}.{column}" for table, columns in TABLES.items()
            for column in columns if column not in columns_of(table)]

