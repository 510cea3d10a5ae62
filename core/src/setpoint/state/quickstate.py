"""The state as ``setpoint status`` and ``audit`` read it on their quick path: plain sqlite3, read only.

The store (setpoint.state.store) brings logging, dataclasses, pathlib, json and the secrets module
with it, more than half of a quick command's start-up (docs/benchmarks.md, case 9). This reader
takes the table and column names and the schema version from setpoint.state.stateschema, like the
store, and answers only a database at exactly that version; anything it cannot read as the store
would (another version, a missing file, a lock held past the timeout, a malformed value) raises
:class:`Unreadable`, and the caller hands the command to the full command line, which reports it.

JSON columns are parsed by the C scanner ``json.loads`` itself uses, without importing the ``json``
package (which imports ``re``); if that scanner is missing or the text is not one JSON value, the
``json`` package parses it (same result, same errors).
"""

from __future__ import annotations

import sqlite3

from setpoint.state import stateschema as schema

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from typing import Any

#: Seconds a read waits for a writer's lock (the store waits 30).
BUSY_TIMEOUT = 30.0


class Unreadable(Exception):
    """The quick reader cannot answer for this database: the full command line must."""


class _Context:
    """What the C JSON scanner reads from its decoder (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, Any] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan: Any = None


def loads(text: str) -> Any:
    """``json.loads(text)``."""
    global _scan
    if _scan is None:
        try:
            from _json import make_scanner

            _scan = make_scanner(_Context())  # type: ignore[arg-type]  # reads only these attributes
        except ImportError:
            _scan = False
    if _scan:
        try:
            value, end = _scan(text, 0)
            if end == len(text):
                return value
        except (StopIteration, ValueError):
            pass
    import json  # whitespace around the value, an error to raise: json says it as it always does

    return json.loads(text)


class AuditRow:
    """One audit entry with the fields of setpoint.state.store.AuditEntry (stateschema.AUDIT_COLUMNS)."""

    __slots__ = schema.AUDIT_COLUMNS
    id: int
    time: float
    target: str | None
    kind: str | None
    revision: str | None
    author: str | None
    subject: str | None
    trigger: str | None
    action: str
    result: str | None
    duration: float | None
    actor: str | None
    details: dict[str, Any]

    def __init__(self, row: tuple[Any, ...]) -> None:
        for name, value in zip(schema.AUDIT_COLUMNS, row, strict=True):
            setattr(self, name, value)
        self.details = loads(self.details or "{}")  # type: ignore[arg-type]  # the column's text, parsed here

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in schema.AUDIT_COLUMNS}


class QuickState:
    """A read-only connection to a SQLite state at :data:`stateschema.SCHEMA_VERSION`."""

    def __init__(self, path: str) -> None:
        # a URI is the only way to open read only; SQLite reads '?', '#' and '%' in it as syntax
        if not path.startswith("/") or any(c in path for c in "?#%"):
            raise Unreadable(path)
        try:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
            # one read transaction: every table as of one commit, even while `setpoint run` writes
            self.conn.execute("BEGIN")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise Unreadable(f"{path}: {exc}") from None
        if version != schema.SCHEMA_VERSION:
            self.conn.close()
            raise Unreadable(f"{path}: schema {version}, not {schema.SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def _read(self, table: str, where: str = "", args: tuple[Any, ...] = ()) -> list[Any]:
        sql = f"SELECT {', '.join(schema.TABLES[table])} FROM {table} {where}"  # noqa: S608 - stateschema's names
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise Unreadable(str(exc)) from None

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Each target's stored status, as JSON (not normalised: setpoint.statusrow does that)."""
        out = {}
        for target, _kind, data, _updated in self._read(schema.TARGET_STATE):
            value = _parsed(data)
            if not isinstance(value, dict):
                raise Unreadable(f"status of {target!r} is not an object")
            out[target] = value
        return out

    def pauses(self) -> dict[str, dict[str, Any]]:
        return {row[0]: dict(zip(schema.PAUSE_COLUMNS, row, strict=True)) for row in self._read(schema.PAUSES)}

    def pending_plans(self) -> list[dict[str, Any]]:
        """Plans waiting for approval, in the order they were held (the store's ``held_plans``)."""
        plans = [dict(zip(schema.HELD_PLAN_COLUMNS, row, strict=True))
                 for row in self._read(schema.HELD_PLANS, "WHERE status IN (?) ORDER BY id", ("pending",))]
        for plan in plans:
            plan["changes"] = _parsed(plan["changes"] or "[]")  # as the store reads them (a bad one is its to report)
        return plans

    def meta(self, key: str) -> bytes | None:
        rows = self._read(schema.META, "WHERE key = ?", (key,))
        try:
            return bytes(rows[0][1]) if rows else None
        except TypeError:
            raise Unreadable(f"meta {key!r} is not bytes") from None

    def meta_json(self, key: str) -> Any:
        """A meta value holding JSON (None if there is none; a value that is not JSON reads as None,
        as setpoint.reload.read_last reads it)."""
        raw = self.meta(key)
        if not raw:
            return None
        try:
            return loads(raw.decode("utf-8")) if raw[:1] == b"{" else _json_bytes(raw)
        except (ValueError, UnicodeDecodeError):
            return None

    def audit(self, since: float | None, until: float | None, target: str | None,
              actions: tuple[str, ...] | None) -> list[AuditRow]:
        """The store's ``audit_entries(since, until, target, actions)``."""
        where, args = "WHERE 1=1", list[object]()
        if since is not None:
            where += " AND time >= ?"
            args.append(since)
        if until is not None:
            where += " AND time < ?"
            args.append(until)
        if target:
            where += " AND target = ?"
            args.append(target)
        if actions:
            where += f" AND action IN ({','.join('?' * len(actions))})"
            args.extend(actions)
        rows = self._read(schema.AUDIT, where + " ORDER BY time, id", tuple(args))
        try:
            return [AuditRow(row) for row in rows]
        except (ValueError, TypeError) as exc:
            raise Unreadable(str(exc)) from None


def _json_bytes(raw: bytes) -> Any:
    import json

    return json.loads(raw)


def _parsed(text: str) -> Any:
    try:
        return loads(text)
    except ValueError as exc:
        raise Unreadable(str(exc)) from None
