"""``setpoint state migrate``: copy a whole state (SQLite <-> PostgreSQL) without losing audit history.

Every table is copied row for row, audit and held-plan ids included (so references such as
``setpoint approve`` plan ids and audit ids stay valid), with the fingerprint salt: secrets fingerprinted
before the move compare equal after it. The copy is one transaction on the destination: it lands whole
or not at all. The destination must be empty (no audit, no target status): a merge of two histories is
not a migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from setpoint.errors import StateError
from setpoint.state.store import StateStore

#: table -> its columns, in the order both backends define them (wakeups are transient: not copied)
TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "target_state": ("target", "kind", "data", "updated_at"),
    "pauses": ("target", "reason", "paused_by", "paused_at", "until"),
    "inventory": ("target", "key", "kind", "name", "namespace", "digest", "revision", "applied_at", "secret_paths"),
    "drift": ("target", "key", "first_seen", "live_digest", "details"),
    "held_plans": ("id", "target", "plan_id", "revision", "created_at", "reason", "changes", "status", "decided_by",
                   "decided_at"),
    "audit": ("id", "time", "target", "kind", "revision", "author", "subject", "trigger", "action", "result",
              "duration", "actor", "details"),
    "outputs": ("target", "data", "updated_at"),
    "target_memory": ("target", "key", "value"),
    "notify_sent": ("target", "revision", "event", "sent_at"),
    "notify_digest": ("revision", "target", "result", "at", "about"),
}
#: tables whose ``id`` the destination must continue after
IDENTITY_TABLES = ("held_plans", "audit")
BATCH = 2000


@dataclass
class Copied:
    rows: dict[str, int]


def copy_state(source: StateStore, destination: StateStore) -> Copied:
    if source.schema_version != destination.schema_version:
        raise StateError(f"the two states have different schema versions ({source.schema_version} and "
                         f"{destination.schema_version}): run the same setpoint version against both")
    for table in ("audit", "target_state", "inventory"):
        if destination._query(f"SELECT 1 FROM {table} LIMIT 1"):  # noqa: S608 - a constant
            raise StateError(f"the destination {destination.location} already holds a state ({table} is not "
                             "empty); migrate into a new, empty database or schema")
    copied: dict[str, int] = {}
    with destination.batch() as db:
        for table, columns in TABLES.items():
            names = ", ".join(columns)
            marks = ", ".join("?" * len(columns))
            insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - constants
            if table == "meta":  # the destination's own fresh salt gives way to the source's
                db.execute("DELETE FROM meta")
            rows = source._query(f"SELECT {names} FROM {table} ORDER BY 1")  # noqa: S608 - constants
            for start in range(0, len(rows), BATCH):
                chunk = [tuple(_portable(row[i], table == "meta" and name == "value") for i, name in enumerate(columns))
                         for row in rows[start:start + BATCH]]
                db.executemany(insert, chunk)
            copied[table] = len(rows)
            if table in IDENTITY_TABLES:
                db.reset_identity(table)
        for table, count in copied.items():
            found = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - constants
            if int(found) != count:
                raise StateError(f"copy check failed: {table} has {found} rows at the destination, {count} at the "
                                 "source; nothing was committed")
    return Copied(copied)


def _portable(value: object, binary: bool) -> object:
    if isinstance(value, memoryview):
        return bytes(value)
    if binary and isinstance(value, str):  # older SQLite states kept apply intents as text
        return value.encode()
    return value


def open_location(location: str, *, must_exist: bool) -> StateStore:
    """A store from ``sqlite:///PATH`` (relative to the working folder) or ``postgresql://...``."""
    if location.startswith(("postgresql://", "postgres://")):
        return StateStore(location)
    if not location.startswith("sqlite:///"):
        raise StateError(f"{location!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
    path = Path(location.removeprefix("sqlite:///")).expanduser().resolve()
    if must_exist and not path.is_file():
        raise StateError(f"there is no state database at {path}")
    if not must_exist and path.exists():
        raise StateError(f"{path} exists already; migrate into a new file")
    return StateStore(path)
