"""The state store and audit log, in SQLite (WAL, synchronous=FULL) or PostgreSQL, with numbered migrations.

Everything that must survive a restart lives here: per-target status, pauses, the inventory of
what setpoint applied (for safe prune and drift attribution), open drift, held plans, drivers'
memory (``context.memory``) and the append-only audit log. No secret value is ever written: records are built with
:func:`setpoint.secrets.to_jsonable`, which turns secrets into salted fingerprints.

The :class:`StateStore` interface is what the engine and CLI use, on either database: its SQL is the
common subset of both, and :mod:`setpoint.state.backends` runs it (``StateStore(path)`` opens SQLite,
``StateStore("postgresql://...")`` PostgreSQL).
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.apicore import Revision
from setpoint.errors import StateError
from setpoint.secrets import set_fingerprint_salt, to_jsonable
from setpoint.state import stateschema
from setpoint.state.backends import (
    POSTGRES_MIGRATIONS,
    SQLITE_MIGRATIONS,
    Backend,
    PostgresBackend,
    SqliteBackend,
    is_postgresql_url,
)
from setpoint.state.status import AuditAction, TargetStatus

#: SQLite's numbered migrations (kept under this name for callers that count them)
MIGRATIONS = SQLITE_MIGRATIONS


#: PostgreSQL connections a store opens at most (threads of one process commit in parallel on them)
POOL_SIZE = 8

#: What :meth:`StateStore.prefetch` reads for a pass: table -> (query of the rows, by their key, and the
#: key of a target). Each query returns its key as ``owner``.
_PREFETCHED: dict[str, tuple[str, Callable[[str], str]]] = {
    "target_state": ("SELECT data, target AS owner FROM target_state WHERE target IN ({marks})", lambda t: t),
    "inventory": ("SELECT *, target AS owner FROM inventory WHERE target IN ({marks})", lambda t: t),
    "drift": ("SELECT key, first_seen, live_digest, details, target AS owner FROM drift WHERE target IN ({marks})",
              lambda t: t),
    "outputs": ("SELECT data, target AS owner FROM outputs WHERE target IN ({marks})", lambda t: t),
    "apply_intent": ("SELECT value, key AS owner FROM meta WHERE key IN ({marks})", lambda t: f"apply-intent:{t}"),
}
#: names per prefetch query (SQLite allows 32,766 parameters; keep statements small)
_PREFETCH_CHUNK = 500


def _in_chunks(names: list[str]) -> Iterator[tuple[tuple[str, ...], str]]:
    """``names`` in slices of :data:`_PREFETCH_CHUNK`, each with its ``?, ?, ...`` for an ``IN (...)``."""
    for start in range(0, len(names), _PREFETCH_CHUNK):
        chunk = tuple(names[start:start + _PREFETCH_CHUNK])
        yield chunk, ", ".join("?" * len(chunk))

#: Notification keys remembered at most (the oldest forgotten first; a failure streak's alert is kept).
MAX_NOTIFY_KEYS = 4096


class LeaseLost(StateError):
    """With several replicas: this one no longer holds the target's lease, so it must not apply."""


@dataclass
class InventoryItem:
    key: str
    kind: str
    name: str
    namespace: str | None
    digest: str
    revision: str
    applied_at: float
    #: Field paths that held a secret when applied (kept from earlier applies: secrecy is sticky).
    secret_paths: tuple[str, ...] = ()


@dataclass
class Pause:
    target: str
    reason: str
    paused_by: str
    paused_at: float
    until: float | None

    def expired(self, now: float | None = None) -> bool:
        return self.until is not None and (now or time.time()) >= self.until


@dataclass
class HeldPlan:
    id: int
    target: str
    plan_id: str
    revision: str
    created_at: float
    reason: str
    changes: list[dict[str, Any]]
    status: str
    decided_by: str | None = None
    decided_at: float | None = None


@dataclass
class DriftRecord:
    key: str
    first_seen: float
    live_digest: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditEntry:
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

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# the quick reader (setpoint.state.quickstate) reads these tables by the names in stateschema: refuse to
# run with records or migrations that say otherwise (a new column is added there first)
for _migrations in (len(SQLITE_MIGRATIONS), len(POSTGRES_MIGRATIONS)):
    stateschema.check_records(_migrations, {stateschema.PAUSES: tuple(Pause.__dataclass_fields__),
                                            stateschema.HELD_PLANS: tuple(HeldPlan.__dataclass_fields__),
                                            stateschema.AUDIT: tuple(AuditEntry.__dataclass_fields__)})

_REMEDY = ("Restore it from a backup (or try `sqlite3 FILE .recover`), or move it aside to start a new "
           "state with an empty audit log and inventory (setpoint then owns nothing it applied before).")


class StateStore:
    """The state, on SQLite (a path) or PostgreSQL (a ``postgresql://`` URL); safe across threads, and
    across processes (SQLite) or replicas (PostgreSQL).

    SQLite: one connection guarded by a lock (SQLite has one writer anyway). PostgreSQL: a small pool of
    connections (:data:`POOL_SIZE`), one per transaction or :meth:`batch`: the worker threads of a pass
    then wait for their commits' WAL flush together (PostgreSQL flushes concurrent commits at once)
    instead of one after the other behind a lock. Every statement is already safe against a concurrent
    writer, since several replicas write to the same database."""

    def __init__(self, location: Path | str) -> None:
        self._lock = threading.RLock()
        #: this thread's connection while it is inside a transaction or batch, and how deep
        self._session = _Session()
        self._pool: _Pool | None = None
        #: (table, target) -> rows, while a pass runs under :meth:`prefetch`
        self._prefetched: dict[tuple[str, str], list[Any]] | None = None
        self._prefetch_lock = threading.Lock()
        self._claims = 0
        self.path: Path | None = None
        #: Set by several replicas (setpoint.state.replicas): run inside the transaction of every apply
        #: intent; raises when this process may no longer apply to the target, else says who writes.
        self.fence: Callable[[Backend, str], dict[str, Any]] | None = None
        if isinstance(location, str) and is_postgresql_url(location):
            self.db: Backend = PostgresBackend(location)
            self._pool = _Pool(self.db, lambda: PostgresBackend(location), POOL_SIZE)
        else:
            self.db = self._open_sqlite(Path(location))
        try:
            with self._tx() as db:
                db.migrate()
                missing = stateschema.missing_columns(lambda table: _columns(db, table))
            if missing:
                raise StateError(f"the state database {self.db.location} lacks {', '.join(missing)}: it was changed "
                                 f"by hand or by another program; {_REMEDY}")
            set_fingerprint_salt(self._salt())
        except sqlite3.OperationalError:
            raise  # busy, locked, read-only: not corruption, and the message says so
        except sqlite3.DatabaseError as exc:
            raise StateError(f"the state database {self.path} cannot be read ({exc}): it is corrupt or not a "
                             f"setpoint state database. {_REMEDY}") from None

    def _open_sqlite(self, path: Path) -> Backend:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        if path.exists() and path.stat().st_size == 0:
            # SQLite would treat it as a new, empty database: the audit history would silently restart.
            raise StateError(f"the state database {path} is empty (0 bytes): it existed, so its audit "
                             f"history and inventory are lost or the file was truncated. {_REMEDY}")
        try:
            backend = SqliteBackend(path)
            os.chmod(path, 0o600)
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise StateError(f"the state database {path} cannot be read ({exc}): it is corrupt or not a "
                             f"setpoint state database. {_REMEDY}") from None
        return backend

    @property
    def backend(self) -> str:
        """"sqlite" or "postgresql"."""
        return self.db.name

    @property
    def location(self) -> str:
        return self.db.location

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
            else:
                self.db.close()

    @contextmanager
    def _connection(self) -> Iterator[Backend]:
        """The connection this thread works on, held until the outermost caller is done."""
        session = self._session
        if session.db is not None:  # nested: inside this thread's transaction or batch
            yield session.db
            return
        if self._pool is None:
            with self._lock:
                session.db = self.db
                try:
                    yield self.db
                finally:
                    session.db = None
            return
        db = self._pool.take()
        session.db = db
        try:
            yield db
        finally:
            session.db = None
            self._pool.give(db)

    @contextmanager
    def _tx(self) -> Iterator[Backend]:
        with self._connection() as db:
            if self._session.depth:  # inside batch(): one commit at the end
                yield db
                return
            db.begin()
            try:
                yield db
            except BaseException:
                db.rollback()
                raise
            db.commit()

    @contextmanager
    def batch(self) -> Iterator[Backend]:
        """Group several writes into one durable commit (one fsync instead of one per write).

        Holds a connection (SQLite: the store's lock) for the duration: keep the block short, never
        around an apply."""
        with self._connection() as db:
            session = self._session
            outer = session.depth == 0
            if outer:
                db.begin()
            session.depth += 1
            try:
                yield db
            except BaseException:
                session.depth -= 1
                if outer:
                    db.rollback()
                raise
            session.depth -= 1
            if outer:
                db.commit()

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._connection() as db:
            if self._session.depth:
                return list(db.execute(sql, args).fetchall())
            return db.read(sql, args)

    @contextmanager
    def prefetch(self, targets: Iterable[str]) -> Iterator[None]:
        """A pass over ``targets`` by the process that owns them (SQLite's owner lock, or the leases
        borrowed for the pass): the reads of each target's status, inventory, open drift, outputs and
        apply intent are served from one query per table made now, not one round trip per target and
        read. While this process owns those targets no other one writes their rows, and a write here
        drops that table's prefetched rows of the target (the next read goes to the database), so a
        read returns what the database holds. Pauses and held plans, which other processes write, are
        always read from the database. Worth it where a read is a round trip (PostgreSQL: `setpoint
        sync` prefetches there); on SQLite a read is a local call and the rows would only take memory."""
        names = sorted(set(targets))
        fetched: dict[tuple[str, str], list[Any]] = {(table, name): [] for table in _PREFETCHED for name in names}
        for chunk, marks in _in_chunks(names):
            for table, (sql, key) in _PREFETCHED.items():
                keys = tuple(key(name) for name in chunk)
                for row in self._query(sql.format(marks=marks), keys):
                    fetched[(table, row["owner"][len(key("")):])].append(row)
        with self._prefetch_lock:
            self._prefetched = fetched
        try:
            yield
        finally:
            with self._prefetch_lock:
                self._prefetched = None

    def _target_rows(self, table: str, target: str) -> list[Any]:
        """The rows of ``table`` (a key of :data:`_PREFETCHED`) for ``target``: prefetched, else read."""
        with self._prefetch_lock:
            rows = self._prefetched.get((table, target)) if self._prefetched is not None else None
        if rows is not None:
            return list(rows)
        sql, key = _PREFETCHED[table]
        return self._query(sql.format(marks="?"), (key(target),))

    def release_prefetched(self, target: str) -> None:
        """The pass is done with ``target``: its prefetched rows are let go (a pass over thousands of
        targets holds only those still to run)."""
        with self._prefetch_lock:
            if self._prefetched is not None:
                for table in _PREFETCHED:
                    self._prefetched.pop((table, target), None)

    def _written(self, table: str, target: str) -> None:
        """A write to ``target``'s rows of ``table``: its prefetched rows are no longer what the database
        holds (dropped before the write: a read that follows goes to the database, committed or not)."""
        with self._prefetch_lock:
            if self._prefetched is not None:
                self._prefetched.pop((table, target), None)

    @property
    def schema_version(self) -> int:
        with self._connection() as db:
            return db.schema_version()

    def _salt(self) -> bytes:
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'fingerprint_salt'").fetchone()
            if row:
                return bytes(row[0])
            # two replicas starting at once on a new database: the first salt wins, both use it
            db.execute("INSERT INTO meta (key, value) VALUES ('fingerprint_salt', ?) ON CONFLICT (key) DO NOTHING",
                       (os.urandom(32),))
            return bytes(db.execute("SELECT value FROM meta WHERE key = 'fingerprint_salt'").fetchone()[0])

    def instance_id(self) -> str:
        """A stable id of this installation, made on first use and kept here (every replica of a
        shared store, and every restart, reads the same one). 12 hex digits: a valid label value."""
        rows = self._query("SELECT value FROM meta WHERE key = 'instance_id'")
        if rows:
            return _text(rows[0][0])
        with self._tx() as db:
            db.execute("INSERT INTO meta (key, value) VALUES ('instance_id', ?) ON CONFLICT (key) DO NOTHING",
                       (os.urandom(6).hex().encode(),))
            return _text(db.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0])

    def get_meta(self, key: str) -> bytes | None:
        """A value stored by :meth:`set_meta` (small operational memory, such as which
        notifications were sent), or None."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: bytes) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (key, value))

    def meta_items(self, prefix: str) -> dict[str, bytes]:
        """Every :meth:`set_meta` value whose key starts with ``prefix``."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._query("SELECT key, value FROM meta WHERE key LIKE ? ESCAPE '\\'", (pattern,))
        # SQLite's LIKE ignores ASCII case: keep exact matches only
        return {str(r["key"]): bytes(r["value"]) for r in rows if str(r["key"]).startswith(prefix)}

    def delete_meta(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def object_health(self, target: str) -> dict[str, str] | None:
        """Each object's health as the target's driver last reported it (``Health.resources``), or
        None when the driver never reported health per object."""
        raw = self.get_meta(f"object-health:{target}")
        return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else None

    def save_object_health(self, target: str, objects: dict[str, str]) -> None:
        """Replace the per-object report (empty: the driver reported none, forget the last one)."""
        if objects:
            self.set_meta(f"object-health:{target}", json.dumps(objects, sort_keys=True).encode())
        else:
            self.delete_meta(f"object-health:{target}")

    def ping(self) -> bool:
        try:
            self._query("SELECT 1")
            return True
        except Exception as exc:
            if self.db.is_error(exc):
                return False
            raise

    # ------------------------------------------------------------------ target status

    def save_status(self, status: TargetStatus) -> None:
        self._written("target_state", status.target)
        with self._tx() as db:
            db.execute(
                "INSERT INTO target_state VALUES (?, ?, ?, ?) ON CONFLICT(target) DO UPDATE SET "
                "kind = excluded.kind, data = excluded.data, updated_at = excluded.updated_at",
                (status.target, status.kind, json.dumps(to_jsonable(status.to_json())), time.time()),
            )

    def status(self, target: str) -> TargetStatus | None:
        rows = self._target_rows("target_state", target)
        return TargetStatus.from_json(json.loads(rows[0][0])) if rows else None

    def all_status(self) -> dict[str, TargetStatus]:
        return {r["target"]: TargetStatus.from_json(json.loads(r["data"]))
                for r in self._query("SELECT target, data FROM target_state")}

    # ------------------------------------------------------------------ drivers' memory

    def memory(self, target: str) -> dict[str, str]:
        """A target's remembered values, JSON-encoded, by key."""
        return {r["key"]: r["value"] for r in self._query("SELECT key, value FROM target_memory WHERE target = ?", (target,))}

    def memories(self, targets: Iterable[str]) -> dict[str, dict[str, str]]:
        """:meth:`memory` of many targets, in one query per few hundred (an engine's start)."""
        names = sorted(set(targets))
        found: dict[str, dict[str, str]] = {name: {} for name in names}
        for chunk, marks in _in_chunks(names):
            for r in self._query(f"SELECT target, key, value FROM target_memory WHERE target IN ({marks})",  # noqa: S608
                                 chunk):
                found[r["target"]][r["key"]] = r["value"]
        return found

    def write_memory(self, target: str, changes: dict[str, str | None]) -> None:
        """Store JSON-encoded values (None: forget the key); inside :meth:`batch`, with the rest of it."""
        if not changes:
            return
        with self._tx() as db:
            for key, value in changes.items():
                if value is None:
                    db.execute("DELETE FROM target_memory WHERE target = ? AND key = ?", (target, key))
                else:
                    db.execute("INSERT INTO target_memory (target, key, value) VALUES (?, ?, ?) "
                               "ON CONFLICT (target, key) DO UPDATE SET value = excluded.value", (target, key, value))

    # ------------------------------------------------------------------ pauses

    def pause(self, target: str, reason: str, by: str, until: float | None) -> Pause:
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO pauses (target, reason, paused_by, paused_at, until) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, paused_by = excluded.paused_by, "
                       "paused_at = excluded.paused_at, until = excluded.until", (target, reason, by, now, until))
        return Pause(target, reason, by, now, until)

    def get_pause(self, target: str) -> Pause | None:
        rows = self._query("SELECT * FROM pauses WHERE target = ?", (target,))
        return Pause(**dict(rows[0])) if rows else None

    def resume(self, target: str) -> Pause | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM pauses WHERE target = ?", (target,)).fetchone()
            db.execute("DELETE FROM pauses WHERE target = ?", (target,))
        return Pause(**dict(row)) if row else None

    # ------------------------------------------------------------------ inventory

    def inventory(self, target: str) -> dict[str, InventoryItem]:
        rows = self._target_rows("inventory", target)
        items = {}
        for r in rows:
            values = {k: r[k] for k in r.keys() if k not in ("target", "owner")}
            values["secret_paths"] = tuple(json.loads(values.get("secret_paths") or "[]"))
            items[r["key"]] = InventoryItem(**values)
        return items

    def update_inventory(self, target: str, upserts: list[InventoryItem], deletes: list[str]) -> None:
        self._written("inventory", target)
        with self._tx() as db:
            for item in upserts:
                db.execute(
                    "INSERT INTO inventory (target, key, kind, name, namespace, digest, revision, "
                    "applied_at, secret_paths) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, key) DO UPDATE "
                    "SET kind = excluded.kind, name = excluded.name, namespace = excluded.namespace, "
                    "digest = excluded.digest, revision = excluded.revision, applied_at = excluded.applied_at, "
                    "secret_paths = excluded.secret_paths",
                    (target, item.key, item.kind, item.name, item.namespace, item.digest, item.revision, item.applied_at,
                     json.dumps(sorted(item.secret_paths))),
                )
            for key in deletes:
                db.execute("DELETE FROM inventory WHERE target = ? AND key = ?", (target, key))

    # ------------------------------------------------------------------ drift

    def drift(self, target: str) -> dict[str, DriftRecord]:
        rows = self._target_rows("drift", target)
        return {r["key"]: DriftRecord(r["key"], r["first_seen"], r["live_digest"], json.loads(r["details"] or "{}")) for r in rows}

    def set_drift(self, target: str, records: list[DriftRecord], cleared: list[str]) -> None:
        self._written("drift", target)
        with self._tx() as db:
            for rec in records:
                db.execute("INSERT INTO drift (target, key, first_seen, live_digest, details) VALUES (?, ?, ?, ?, ?) "
                           "ON CONFLICT (target, key) DO UPDATE SET first_seen = excluded.first_seen, "
                           "live_digest = excluded.live_digest, details = excluded.details",
                           (target, rec.key, rec.first_seen, rec.live_digest, json.dumps(to_jsonable(rec.details))))
            for key in cleared:
                db.execute("DELETE FROM drift WHERE target = ? AND key = ?", (target, key))

    # ------------------------------------------------------------------ held plans

    def hold_plan(self, target: str, plan_id: str, revision: str, reason: str, changes: list[dict[str, Any]]) -> HeldPlan:
        """Record a held plan; an identical pending plan is reused, older pending ones are superseded."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM held_plans WHERE target = ? AND plan_id = ? AND status IN ('pending', 'approved') "
                "ORDER BY id DESC LIMIT 1", (target, plan_id)).fetchone()
            if row:
                if row["reason"] != reason:  # same plan, held now for another reason (policy changed)
                    db.execute("UPDATE held_plans SET reason = ? WHERE id = ?", (reason, row["id"]))
                    row = db.execute("SELECT * FROM held_plans WHERE id = ?", (row["id"],)).fetchone()
                return _held(row)
            db.execute("UPDATE held_plans SET status = 'superseded', decided_at = ? WHERE target = ? AND status = 'pending'",
                       (now, target))
            row = db.execute(
                "INSERT INTO held_plans (target, plan_id, revision, created_at, reason, changes, status) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending') RETURNING *",
                (target, plan_id, revision, now, reason, json.dumps(to_jsonable(changes)))).fetchone()
            return _held(row)

    def held_plans(self, target: str | None = None, statuses: tuple[str, ...] = ("pending", "approved")) -> list[HeldPlan]:
        marks = ",".join("?" * len(statuses))
        if target:
            rows = self._query(f"SELECT * FROM held_plans WHERE target = ? AND status IN ({marks}) ORDER BY id",  # noqa: S608
                               (target, *statuses))
        else:
            rows = self._query(f"SELECT * FROM held_plans WHERE status IN ({marks}) ORDER BY id", statuses)  # noqa: S608
        return [_held(r) for r in rows]

    def decide_plan(self, target: str, plan_id: str, status: str, by: str) -> HeldPlan | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM held_plans WHERE target = ? AND plan_id = ? AND status = 'pending' "
                             "ORDER BY id DESC LIMIT 1", (target, plan_id)).fetchone()
            if not row:
                return None
            db.execute("UPDATE held_plans SET status = ?, decided_by = ?, decided_at = ? WHERE id = ?",
                       (status, by, time.time(), row["id"]))
            return _held(db.execute("SELECT * FROM held_plans WHERE id = ?", (row["id"],)).fetchone())

    def finish_plan(self, target: str, plan_id: str, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE held_plans SET status = ? WHERE target = ? AND plan_id = ? AND status IN ('pending', 'approved')",
                       (status, target, plan_id))

    def supersede_plans(self, target: str, keep: str | None = None) -> None:
        sql = ("UPDATE held_plans SET status = 'superseded', decided_at = ? WHERE target = ? "
               "AND status IN ('pending', 'approved') AND ")
        with self._tx() as db:
            if keep is None:
                db.execute(sql + "plan_id IS NOT NULL", (time.time(), target))
            else:
                db.execute(sql + "(plan_id IS NULL OR plan_id <> ?)", (time.time(), target, keep))

    # ------------------------------------------------------------------ audit

    def audit(self, action: AuditAction | str, *, target: str | None = None, kind: str | None = None, revision: Revision | None = None,
              trigger: str | None = None, result: str | None = None, duration: float | None = None,
              actor: str | None = None, details: dict[str, Any] | None = None, at: float | None = None) -> int:
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO audit (time, target, kind, revision, author, subject, trigger, action, result, duration, actor, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (at or time.time(), target, kind, revision.sha if revision else None,
                 f"{revision.author} <{revision.author_email}>" if revision else None,
                 revision.subject if revision else None, trigger, str(action), result, duration, actor,
                 json.dumps(to_jsonable(details or {})))).fetchone()
            return int(row[0])

    def audit_entries(self, since: float | None = None, until: float | None = None, target: str | None = None,
                      actions: tuple[str, ...] | None = None, limit: int | None = None) -> list[AuditEntry]:
        sql, args = "SELECT * FROM audit WHERE 1=1", list[float | str]()
        if since is not None:
            sql += " AND time >= ?"
            args.append(since)
        if until is not None:
            sql += " AND time < ?"
            args.append(until)
        if target:
            sql += " AND target = ?"
            args.append(target)
        if actions:
            sql += f" AND action IN ({','.join('?' * len(actions))})"
            args.extend(actions)
        sql += " ORDER BY time, id"
        if limit:
            newest_first = sql.replace("ORDER BY time, id", "ORDER BY time DESC, id DESC")
            sql = f"SELECT * FROM ({newest_first} LIMIT {int(limit)}) AS newest ORDER BY time, id"  # noqa: S608 - only int and constants
        rows = self._query(sql, tuple(args))
        return [AuditEntry(**{**dict(r), "details": json.loads(r["details"] or "{}")}) for r in rows]

    # ------------------------------------------------------------------ apply intents (write-ahead audit)

    def set_apply_intent(self, target: str, intent: dict[str, Any]) -> dict[str, Any] | None:
        """Record, durably and before anything is applied, what an apply is about to do. With replicas,
        the lease is checked in the same transaction (the fence); returns the writer (replica, token)."""
        self._written("apply_intent", target)
        with self._tx() as db:
            writer = self.fence(db, target) if self.fence is not None else None
            if writer is not None:
                intent = {**intent, "writer": writer}
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (f"apply-intent:{target}", json.dumps(to_jsonable(intent)).encode()))
        return writer

    def clear_apply_intent(self, target: str) -> None:
        self._written("apply_intent", target)
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (f"apply-intent:{target}",))

    def apply_intent(self, target: str) -> dict[str, Any] | None:
        """An intent without its result: the apply that wrote it never finished (the process died)."""
        rows = self._target_rows("apply_intent", target)
        return json.loads(bytes(rows[0][0]) if isinstance(rows[0][0], memoryview) else rows[0][0]) if rows else None

    # ------------------------------------------------------------------ wakeups (CLI -> running daemon)

    def request_wakeup(self, target: str, reason: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO wakeups (target, reason, time) VALUES (?, ?, ?)", (target, reason, time.time()))
            db.notify(f"target:{target}")  # PostgreSQL: replicas listening hear it at the commit

    def notify_source(self, source: str, reason: str) -> None:
        """Ask every replica to poll ``source`` now (a webhook reached this one); SQLite: nothing to tell."""
        with self._tx() as db:
            db.notify(f"source:{source}")

    def take_wakeups(self, targets: set[str] | None = None) -> list[tuple[str, str]]:
        """Wake-up requests, removed as they are taken; ``targets``: only those (a replica takes the
        requests of the targets it owns and leaves the others' to their owners)."""
        with self._tx() as db:
            rows = db.execute("SELECT id, target, reason FROM wakeups ORDER BY id").fetchall()
            if targets is not None:
                rows = [r for r in rows if r["target"] in targets]
                for r in rows:
                    db.execute("DELETE FROM wakeups WHERE id = ?", (r["id"],))
            elif rows:
                db.execute("DELETE FROM wakeups WHERE id <= ?", (rows[-1]["id"],))
        return [(r["target"], r["reason"]) for r in rows]

    # ------------------------------------------------------------------ notifications' memory (every replica's)

    def claim_notification(self, target: str, revision: str, event: str, repeat_after: float | None = None,
                           fence: Callable[[Backend], Any] | None = None) -> bool:
        """True, and remembered for every replica, when the (target, revision, event) message was not sent
        yet (or, with ``repeat_after``, not within that many seconds): the caller then sends it. One
        statement, so of two replicas claiming the same key exactly one wins. ``fence`` runs first in the
        same transaction (a duty's lease check) and raises to refuse."""
        with self._tx() as db:
            if fence is not None:
                fence(db)
            return self._claim(db, target, revision, event, repeat_after)

    def _claim(self, db: Backend, target: str, revision: str, event: str, repeat_after: float | None) -> bool:
        now = time.time()
        if repeat_after is None:
            row = db.execute("INSERT INTO notify_sent (target, revision, event, sent_at) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (target, revision, event) DO NOTHING RETURNING sent_at",
                             (target, revision, event, now)).fetchone()
        else:
            row = db.execute("INSERT INTO notify_sent (target, revision, event, sent_at) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (target, revision, event) DO UPDATE SET sent_at = excluded.sent_at "
                             "WHERE notify_sent.sent_at <= ? RETURNING sent_at",
                             (target, revision, event, now, now - repeat_after)).fetchone()
        if row is not None:
            self._claims += 1
            if self._claims % 256 == 0:  # bounded: the oldest keys are forgotten, never a streak's alert
                db.execute("DELETE FROM notify_sent WHERE event <> 'failed' AND sent_at < (SELECT sent_at FROM "
                           "notify_sent ORDER BY sent_at DESC LIMIT 1 OFFSET ?)", (MAX_NOTIFY_KEYS,))
        return row is not None

    def release_notifications(self, target: str, event: str) -> int:
        """Forget the target's ``event`` keys (a recovery ends a failure streak); how many there were. Of
        two replicas releasing at once only one sees them: that one announces the recovery."""
        with self._tx() as db:
            return len(db.execute("DELETE FROM notify_sent WHERE target = ? AND event = ? RETURNING revision",
                                  (target, event)).fetchall())

    def has_notifications(self, target: str, event: str) -> bool:
        return bool(self._query("SELECT 1 FROM notify_sent WHERE target = ? AND event = ? LIMIT 1", (target, event)))

    def sent_notifications(self) -> list[tuple[str, str, str]]:
        return [(r[0], r[1], r[2]) for r in self._query("SELECT target, revision, event FROM notify_sent ORDER BY sent_at")]

    def add_to_digest(self, revision: str, target: str, result: str, about: dict[str, Any],
                      only_if_open: bool = False) -> None:
        """Add a target's result to the digest of ``revision`` that every replica gathers; with
        ``only_if_open``, only when another target already opened it."""
        with self._tx() as db:
            if only_if_open and db.execute("SELECT 1 FROM notify_digest WHERE revision = ? LIMIT 1",
                                           (revision,)).fetchone() is None:
                return
            db.execute("INSERT INTO notify_digest (revision, target, result, at, about) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (revision, target) DO UPDATE SET result = excluded.result",
                       (revision, target, result, time.time(), json.dumps(about)))

    def take_due_digests(self, started_before: float | None, repeat_after: float | None = None,
                         fence: Callable[[Backend], Any] | None = None) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
        """The digests opened before ``started_before`` (all with None), removed, each with its digest
        key claimed (a digest whose key another process claimed is dropped): (revision, about, target ->
        result). One transaction, after ``fence``: the claim and the removal land together or not at all."""
        with self._tx() as db:
            if fence is not None:
                fence(db)
            if started_before is None:
                shas = [r[0] for r in db.execute("SELECT DISTINCT revision FROM notify_digest").fetchall()]
            else:
                shas = [r[0] for r in db.execute("SELECT revision FROM notify_digest GROUP BY revision "
                                                 "HAVING min(at) <= ?", (started_before,)).fetchall()]
            due = []
            for sha in sorted(shas):
                rows = db.execute("DELETE FROM notify_digest WHERE revision = ? RETURNING target, result, at, about",
                                  (sha,)).fetchall()
                if rows and self._claim(db, "*", sha, "digest", repeat_after):
                    first = min(rows, key=lambda r: r[2])
                    due.append((sha, json.loads(first[3] or "{}"), {r[0]: r[1] for r in rows}))
            return due

    # ------------------------------------------------------------------ outputs of targets (for dependants)

    def outputs(self, target: str) -> dict[str, Any] | None:
        rows = self._target_rows("outputs", target)
        return json.loads(rows[0][0]) if rows else None

    def save_outputs(self, target: str, outputs: dict[str, Any]) -> None:
        self._written("outputs", target)
        with self._tx() as db:
            db.execute("INSERT INTO outputs (target, data, updated_at) VALUES (?, ?, ?) ON CONFLICT (target) DO UPDATE "
                       "SET data = excluded.data, updated_at = excluded.updated_at",
                       (target, json.dumps(to_jsonable(outputs)), time.time()))


def _columns(db: Backend, table: str) -> tuple[str, ...]:
    cursor = db.execute(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 - stateschema's table names
    return tuple(d[0] for d in cursor.description or ())


def _held(row: Any) -> HeldPlan:
    data = dict(row)
    data["changes"] = json.loads(data["changes"] or "[]")
    return HeldPlan(**data)


def _text(value: Any) -> str:
    return (bytes(value) if isinstance(value, memoryview) else value).decode() \
        if isinstance(value, (bytes, memoryview)) else str(value)


class _Session(threading.local):
    """Per thread: the connection of its open transaction or batch (None: none open), and the depth."""

    db: Backend | None = None
    depth: int = 0


class _Pool:
    """Up to ``size`` PostgreSQL connections, opened when first needed; a thread takes one for a
    transaction and gives it back (the most recently used first: its server process is warm)."""

    def __init__(self, first: Backend, connect: Callable[[], Backend], size: int) -> None:
        self._idle: queue.LifoQueue[Backend] = queue.LifoQueue()
        self._idle.put(first)
        self._all = [first]
        self._connect = connect
        self._size = size
        self._lock = threading.Lock()

    def take(self) -> Backend:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            opened = len(self._all) < self._size
            if opened:
                self._all.append(self._connect())
                return self._all[-1]
        return self._idle.get()  # all in use: wait for one

    def give(self, db: Backend) -> None:
        self._idle.put(db)

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
