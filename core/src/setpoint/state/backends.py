"""The two databases the state store runs on: SQLite (one process per file) and PostgreSQL (several
replicas). :class:`setpoint.state.store.StateStore` writes its SQL once, in the common subset of both
(``?`` placeholders, ``INSERT ... ON CONFLICT``, ``RETURNING``); a backend opens the connection, runs
transactions, translates placeholders and keeps its own numbered migrations.

psycopg is imported only when a ``postgresql://`` state is opened (the ``setpoint[postgresql]`` extra).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from setpoint.errors import ConfigError, StateError
from setpoint.stateurl import PASSWORD_ENV, PASSWORD_FILE_ENV, check_postgresql_url, is_postgresql_url

__all__ = ["Backend", "PostgresBackend", "SqliteBackend", "check_postgresql_url", "is_postgresql_url"]


class Backend(Protocol):
    """One connection; the store serialises calls on it with its own lock."""

    #: "sqlite" or "postgresql"
    name: str
    #: what error messages and ``setpoint state`` show (never a password)
    location: str

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any: ...
    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def migrate(self) -> None: ...
    def schema_version(self) -> int: ...
    def is_error(self, exc: BaseException) -> bool: ...
    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...
    def reset_identity(self, table: str) -> None: ...
    def notify(self, payload: str) -> None: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- SQLite

SQLITE_MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
    CREATE TABLE revisions (
        sha TEXT PRIMARY KEY, source TEXT, author TEXT, author_email TEXT, committer TEXT,
        time REAL, message TEXT
    );
    CREATE TABLE target_state (
        target TEXT PRIMARY KEY, kind TEXT, data TEXT NOT NULL, updated_at REAL
    );
    CREATE TABLE pauses (
        target TEXT PRIMARY KEY, reason TEXT NOT NULL, paused_by TEXT, paused_at REAL, until REAL
    );
    CREATE TABLE inventory (
        target TEXT, key TEXT, kind TEXT, name TEXT, namespace TEXT, digest TEXT, revision TEXT,
        applied_at REAL, PRIMARY KEY (target, key)
    );
    CREATE TABLE drift (
        target TEXT, key TEXT, first_seen REAL, live_digest TEXT, details TEXT,
        PRIMARY KEY (target, key)
    );
    CREATE TABLE held_plans (
        id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT, plan_id TEXT, revision TEXT,
        created_at REAL, reason TEXT, changes TEXT, status TEXT, decided_by TEXT, decided_at REAL
    );
    CREATE INDEX held_plans_target ON held_plans (target, status);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, target TEXT, kind TEXT,
        revision TEXT, author TEXT, subject TEXT, trigger TEXT, action TEXT NOT NULL,
        result TEXT, duration REAL, actor TEXT, details TEXT
    );
    CREATE INDEX audit_time ON audit (time);
    CREATE INDEX audit_target_time ON audit (target, time);
    CREATE TABLE wakeups (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT, reason TEXT, time REAL);
    CREATE TABLE outputs (target TEXT PRIMARY KEY, data TEXT, updated_at REAL);
    """,
    # 2: drivers' durable memory (context.memory), one JSON value per target and key
    """
    CREATE TABLE target_memory (target TEXT, key TEXT, value TEXT NOT NULL, PRIMARY KEY (target, key));
    """,
    # 3: the revisions table was written at every poll and never read: commit metadata comes from Git
    """
    DROP TABLE IF EXISTS revisions;
    """,
    # 4: secrecy is sticky: the field paths of each applied object that held a secret (JSON list)
    """
    ALTER TABLE inventory ADD COLUMN secret_paths TEXT NOT NULL DEFAULT '[]';
    """,
    # 5: replicas and target leases (used on PostgreSQL only; kept here so both schemas number alike)
    """
    CREATE TABLE replicas (id TEXT PRIMARY KEY, host TEXT, pid INTEGER, started_at REAL, heartbeat_at REAL);
    CREATE TABLE leases (target TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL);
    """,
    # 6: the notifications' memory, shared by every replica of a state: which (target, revision, event)
    # messages were sent, and the commits' digests being gathered (one row per target that deployed it)
    """
    CREATE TABLE notify_sent (
        target TEXT NOT NULL, revision TEXT NOT NULL, event TEXT NOT NULL, sent_at REAL NOT NULL,
        PRIMARY KEY (target, revision, event)
    );
    CREATE INDEX notify_sent_time ON notify_sent (sent_at);
    CREATE TABLE notify_digest (
        revision TEXT NOT NULL, target TEXT NOT NULL, result TEXT NOT NULL, at REAL NOT NULL, about TEXT,
        PRIMARY KEY (revision, target)
    );
    """,
]


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        self.conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=30000")

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        version = self.schema_version()
        for number, script in enumerate(SQLITE_MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {number}")

    def is_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    def reset_identity(self, table: str) -> None:
        """AUTOINCREMENT follows explicitly inserted ids by itself."""

    def notify(self, payload: str) -> None:
        """One process per SQLite state: it polls the wake-up table itself."""

    def close(self) -> None:
        self.conn.close()


# ------------------------------------------------------------------------------------------ PostgreSQL

#: Numbered like :data:`SQLITE_MIGRATIONS` (same length, same schema version after each step), so one
#: ``schema_version`` means one schema on both. 1 creates the schema SQLite reaches after its 4.
POSTGRES_MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA);
    CREATE TABLE target_state (target TEXT PRIMARY KEY, kind TEXT, data TEXT NOT NULL, updated_at DOUBLE PRECISION);
    CREATE TABLE pauses (
        target TEXT PRIMARY KEY, reason TEXT NOT NULL, paused_by TEXT, paused_at DOUBLE PRECISION,
        until DOUBLE PRECISION
    );
    CREATE TABLE inventory (
        target TEXT, key TEXT, kind TEXT, name TEXT, namespace TEXT, digest TEXT, revision TEXT,
        applied_at DOUBLE PRECISION, secret_paths TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (target, key)
    );
    CREATE TABLE drift (
        target TEXT, key TEXT, first_seen DOUBLE PRECISION, live_digest TEXT, details TEXT, PRIMARY KEY (target, key)
    );
    CREATE TABLE held_plans (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, target TEXT, plan_id TEXT, revision TEXT,
        created_at DOUBLE PRECISION, reason TEXT, changes TEXT, status TEXT, decided_by TEXT,
        decided_at DOUBLE PRECISION
    );
    CREATE INDEX held_plans_target ON held_plans (target, status);
    CREATE TABLE audit (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, time DOUBLE PRECISION NOT NULL, target TEXT,
        kind TEXT, revision TEXT, author TEXT, subject TEXT, trigger TEXT, action TEXT NOT NULL, result TEXT,
        duration DOUBLE PRECISION, actor TEXT, details TEXT
    );
    CREATE INDEX audit_time ON audit (time);
    CREATE INDEX audit_target_time ON audit (target, time);
    CREATE TABLE wakeups (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, target TEXT, reason TEXT, time DOUBLE PRECISION
    );
    CREATE TABLE outputs (target TEXT PRIMARY KEY, data TEXT, updated_at DOUBLE PRECISION);
    CREATE TABLE target_memory (target TEXT, key TEXT, value TEXT NOT NULL, PRIMARY KEY (target, key));
    """,
    "",
    "",
    "",
    """
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY, host TEXT, pid INTEGER, started_at DOUBLE PRECISION, heartbeat_at DOUBLE PRECISION
    );
    CREATE TABLE leases (
        target TEXT PRIMARY KEY, owner TEXT NOT NULL, token BIGINT NOT NULL, expires_at DOUBLE PRECISION NOT NULL
    );
    """,
    """
    CREATE TABLE notify_sent (
        target TEXT NOT NULL, revision TEXT NOT NULL, event TEXT NOT NULL, sent_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (target, revision, event)
    );
    CREATE INDEX notify_sent_time ON notify_sent (sent_at);
    CREATE TABLE notify_digest (
        revision TEXT NOT NULL, target TEXT NOT NULL, result TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, about TEXT,
        PRIMARY KEY (revision, target)
    );
    """,
]

def postgresql_password() -> str | None:
    path = os.environ.get(PASSWORD_FILE_ENV)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{PASSWORD_FILE_ENV}={path}: cannot read the PostgreSQL password file "
                              f"({exc.strerror})") from None
    return os.environ.get(PASSWORD_ENV) or None


class _Row(dict[str, Any]):
    """A row read by name (``row["target"]``) or position (``row[0]``), like sqlite3.Row."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Any:
    names = [c.name for c in cursor.description or ()]

    def make(values: Any) -> _Row:
        return _Row(zip(names, values, strict=True))
    return make


class PostgresBackend:
    name = "postgresql"

    def __init__(self, url: str, application: str = "setpoint", durable: bool = True) -> None:
        """``durable=False``: this connection's commits do not wait for the WAL flush (``synchronous_commit
        = off``), for writes whose loss in a database crash is harmless (setpoint.state.replicas)."""
        check_postgresql_url(url)
        try:
            import psycopg
        except ImportError:
            raise ConfigError("state: postgresql:// needs psycopg: pip install 'setpoint[postgresql]'") from None
        self._psycopg = psycopg
        self.location = url
        self.url = url
        self._application = application
        self._channel: str | None = None
        self._durable = durable
        self._pipeline: Any = None
        self.conn = self._connect()

    def connect_args(self) -> dict[str, Any]:
        """What a second connection to the same database needs (the coordinator's LISTEN connection)."""
        args: dict[str, Any] = {"application_name": self._application, "connect_timeout": 10}
        password = postgresql_password()
        if password:
            args["password"] = password
        return args

    def _connect(self) -> Any:
        try:
            conn = self._psycopg.connect(self.url, autocommit=True, row_factory=_row_factory, **self.connect_args())
            if not self._durable:
                conn.execute("SET synchronous_commit = off")  # per session: a reconnect sets it again
            return conn
        except self._psycopg.OperationalError as exc:
            raise StateError(f"cannot connect to the PostgreSQL state {self.location}: "
                             f"{str(exc).strip().splitlines()[0]}") from None

    def reconnect_if_broken(self) -> None:
        self._alive()

    def _alive(self) -> Any:
        if self.conn.closed or self.conn.broken:  # the server restarted or the network dropped: reconnect
            self.conn = self._connect()
        return self.conn

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        if args:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return self.conn.execute(sql, args or None)

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """One statement outside a transaction: autocommit makes it its own (one round trip, not three)."""
        self._alive()
        return list(self.execute(sql, args).fetchall())

    # A transaction runs in pipeline mode: statements whose result nobody reads (BEGIN, most writes,
    # COMMIT) are sent without waiting, and go out with the next statement that is read (or the
    # commit). A transaction costs one or two round trips instead of one per statement. An error of
    # a queued statement surfaces at that read or at the commit, and the transaction is rolled back.

    def begin(self) -> None:
        conn = self._alive()
        self._pipeline = conn.pipeline()
        self._pipeline.__enter__()
        conn.execute("BEGIN")

    def _unpipe(self) -> None:
        """Leave pipeline mode (still in the transaction): for multi-statement scripts, which it refuses."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)

    def commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
            self._unpipe()  # sends what is queued and waits: an error of any statement is raised here
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if self.conn.broken:
            return
        if pipeline is not None:
            try:
                pipeline.__exit__(None, None, None)
            except self._psycopg.Error:
                pass  # the error that made us roll back (or the failed transaction it left): ended below
        if self.conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            self.conn.execute("ROLLBACK")

    def schema_version(self) -> int:
        rows = self._alive().execute("SELECT to_regclass('setpoint_schema') IS NOT NULL").fetchone()
        if not rows[0]:
            return 0
        return int(self.conn.execute("SELECT version FROM setpoint_schema").fetchone()[0])

    def migrate(self) -> None:
        self._unpipe()  # the migration scripts hold several statements each
        # one migrator at a time across replicas; the lock ends with the transaction
        self.conn.execute("SELECT pg_advisory_xact_lock(7210531)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS setpoint_schema (version INTEGER NOT NULL)")
        if not self.conn.execute("SELECT 1 FROM setpoint_schema").fetchone():
            self.conn.execute("INSERT INTO setpoint_schema VALUES (0)")
        version = self.schema_version()
        for number, script in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
            if script.strip():
                self.conn.execute(script)
            self.conn.execute(f"UPDATE setpoint_schema SET version = {int(number)}")  # noqa: S608 - an int

    def is_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.Error)

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this state (one per database schema, so states never cross-talk)."""
        if self._channel is None:
            schema = self._alive().execute("SELECT current_schema()").fetchone()[0] or "public"
            self._channel = "setpoint_" + hashlib.blake2b(schema.encode(), digest_size=8).hexdigest()
        return self._channel

    def notify(self, payload: str) -> None:
        """Delivered when the current transaction commits (not at all if it rolls back)."""
        self.conn.execute("SELECT pg_notify(%s, %s)", (self.channel, payload[:7000]))

    def listen(self, on_payload: Callable[[str], None], stop: Callable[[], bool]) -> None:
        """Call ``on_payload`` for every notification until ``stop()``; its own connection, reconnecting."""
        channel = self.channel
        while not stop():
            try:
                with self._psycopg.connect(self.url, autocommit=True, **self.connect_args()) as conn:
                    conn.execute(f'LISTEN "{channel}"')
                    while not stop():
                        for note in conn.notifies(timeout=0.5):
                            on_payload(note.payload)
            except self._psycopg.Error:
                if not stop():
                    time.sleep(1.0)  # the database is away: the wake-up table is still polled

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql.replace("%", "%%").replace("?", "%s"), rows)

    def reset_identity(self, table: str) -> None:
        """After rows were copied with their ids, new ids continue above them."""
        self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - our table names
                          f"GREATEST((SELECT max(id) FROM {table}), 1))")

    def close(self) -> None:
        self.conn.close()
