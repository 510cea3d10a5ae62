"""Several ``setpoint run`` replicas on one PostgreSQL state: who owns which target, and the fence that
stops a replica which lost a target from applying to it.

* Every replica writes a heartbeat row (``replicas``) every ``ttl / 3``. The live replicas are those whose
  heartbeat is younger than ``ttl``, by the database's clock (machines' clocks may differ).
* Targets are spread by rendezvous hashing over the live replicas: each target goes to the replica with
  the highest hash of (replica, group). A target and everything it depends on (or that depends on it)
  form one group, so a dependency chain stays on one replica and its ordering holds as it does alone.
  When a replica joins or leaves, only the targets whose top score changes move.
* Ownership is a lease row per target (``leases``: owner, fencing token, expiry). A replica claims a
  target it should own once the lease is free or expired, which raises the token; it renews its leases
  with its heartbeat, and releases (expires) those it should no longer own: at a heartbeat when they are
  not reconciling, else as soon as their reconcile ends (:meth:`Replicas.release_if_moved`).
* A replica that has just joined claims nothing for its first heartbeat period (``settle``): replicas
  started together would otherwise see an empty cluster, and the first to beat would claim every target
  and do most of the first pass alone before the others' heartbeats moved anything. After one period it
  sees everyone who started with it, and each claims only its share. A lone replica starts one heartbeat
  period later; fencing, not this wait, is what keeps two replicas from applying one target.
* The fence: :meth:`Replicas.check_fence` runs inside the transaction that writes an apply's intent
  (``StateStore.set_apply_intent``) and fails unless this replica still holds the lease with the token it
  was granted, unexpired. A replica that was paused (SIGSTOP) past its TTL and resumes finds its
  token stale and applies nothing; the intent is never written, so the driver is never called.
* Duties done once per cluster (``duty:notify``: the notifications' digests) are leases too, hashed over
  the live replicas like a target; :meth:`Replicas.holds` says whether this replica has one, and
  :meth:`Replicas.check_fence` guards the duty's writes as it guards an apply.

With a SQLite state there is one process (the ``owner.lock`` flock of :mod:`setpoint.state.owner`): it
owns every target and no fence is needed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from setpoint.errors import StateError
from setpoint.state.store import LeaseLost, StateStore

__all__ = ["DUTIES", "Borrower", "LeaseLost", "OwnedElsewhere", "Replicas", "dependency_groups", "rendezvous"]

#: The cluster-wide duties each replica may hold (lease names; never a target's name, which has no colon).
DUTIES = ("duty:notify",)

log = logging.getLogger("setpoint.replicas")

#: the database's clock, in epoch seconds (one clock for every replica): ``NOW`` in the SQL below
_NOW = "extract(epoch from clock_timestamp())"


def _t(sql: str) -> str:
    return sql.replace("NOW", _NOW)


def rendezvous(group: str, replicas: Iterable[str]) -> str | None:
    best: tuple[bytes, str] | None = None
    for replica in replicas:
        score = hashlib.blake2b(f"{replica}\0{group}".encode(), digest_size=8).digest()
        if best is None or score > best[0]:
            best = (score, replica)
    return best[1] if best else None


def dependency_groups(depends_on: dict[str, list[str]]) -> dict[str, str]:
    """target -> the name its group is hashed by (the smallest name of its connected component)."""
    parent = {name: name for name in depends_on}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for name, deps in depends_on.items():
        for dep in deps:
            if dep in parent:
                a, b = find(name), find(dep)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {name: find(name) for name in depends_on}


class Replicas:
    """This replica's view of the cluster; call :meth:`start` once, :meth:`stop` at the end."""

    def __init__(self, store: StateStore, depends_on: dict[str, list[str]], ttl: float = 15.0,
                 on_claimed: Callable[[str], None] | None = None, busy: Callable[[str], bool] | None = None,
                 replica_id: str | None = None, on_notify: Callable[[str, str], None] | None = None,
                 settle: float | None = None) -> None:
        if store.backend != "postgresql":
            raise StateError("several replicas need a postgresql:// state")
        from setpoint.state.backends import PostgresBackend

        self.store = store
        self.ttl = ttl
        #: seconds after joining during which this replica claims nothing (default: one heartbeat period)
        self.settle = ttl / 3 if settle is None else settle
        self.id = replica_id or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self.groups = dependency_groups(depends_on)
        self.duties: tuple[str, ...] = DUTIES
        self._on_claimed = on_claimed or (lambda name: None)
        self._busy = busy or (lambda name: False)
        #: ("target", name) when a wake-up was requested, ("source", name) when a webhook reached a replica
        self._on_notify = on_notify
        # its own connection: heartbeats never wait behind the store's writes. Its commits (heartbeats,
        # lease claims, renewals, releases) do not wait for the WAL flush: an apply relies on a lease only
        # through the fence, which reads the lease row in the intent's transaction, and that transaction's
        # durable commit flushes the WAL up to and past the claim it saw. A claim, renewal or release lost
        # in a database crash is one no apply depended on, and the TTL settles it; a one-shot sync saves
        # two flushes per target.
        assert isinstance(store.db, PostgresBackend)
        self._db = PostgresBackend(store.db.url, application=f"setpoint replica {self.id}", durable=False)
        self._lock = threading.Lock()
        self._lock_db = threading.RLock()
        #: target -> fencing token, for the leases this replica holds
        self._owned: dict[str, int] = {}
        #: monotonic time of the last renewal that succeeded: past it + ttl every lease is presumed lost
        self._renewed = 0.0
        #: monotonic time of this replica's first heartbeat (None: not joined yet)
        self._joined: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.live: list[str] = []

    # ------------------------------------------------------------------ what the engine asks

    def owns(self, target: str) -> bool:
        with self._lock:
            return target in self._owned and time.monotonic() - self._renewed < self.ttl

    def holds(self, duty: str) -> bool:
        """This replica holds the lease of ``duty`` (one of :data:`DUTIES`) now."""
        return self.owns(duty)

    def owned(self) -> set[str]:
        with self._lock:
            if time.monotonic() - self._renewed >= self.ttl:
                return set()
            return {name for name in self._owned if name not in DUTIES}

    def check_fence(self, db: Any, target: str) -> dict[str, Any]:
        """Inside the intent's transaction: the lease is still ours, with our token, unexpired. The row
        stays share-locked until that transaction commits, so no takeover can interleave."""
        with self._lock:
            token = self._owned.get(target)
        if token is not None:
            row = db.execute(_t("SELECT token FROM leases WHERE target = ? AND owner = ? AND token = ? "
                                "AND expires_at > NOW FOR SHARE"), (target, self.id, token)).fetchone()
            if row is not None:
                return {"replica": self.id, "token": token}
        raise LeaseLost(f"target {target}: this replica ({self.id}) no longer holds its lease (token {token}); "
                        "another replica owns it now, nothing was applied")

    def release_if_moved(self, target: str) -> None:
        """A reconcile of ``target`` just ended: if the target hashes to another live replica now, hand
        its lease over at once rather than at the next heartbeat (a join moves work while it is busy)."""
        with self._lock:
            held = target in self._owned
            live = list(self.live)
        group = self.groups.get(target)
        if not held or group is None or not live or rendezvous(group, live) == self.id:
            return
        try:
            with self._lock_db:  # not between a heartbeat's renewal and its new view of what it owns
                self._db.reconnect_if_broken()
                self._db.execute("UPDATE leases SET expires_at = 0 WHERE target = ? AND owner = ?", (target, self.id))
                with self._lock:
                    self._owned.pop(target, None)
        except Exception as exc:  # noqa: BLE001 - the lease lapses with the TTL anyway
            log.warning("target %s: could not hand the lease over (%s); it lapses within %.0fs", target,
                        type(exc).__name__, self.ttl)
            return
        log.info("target %s: lease handed over after its reconcile (it hashes to another replica now)", target)

    # ------------------------------------------------------------------ the heartbeat loop

    def start(self) -> None:
        self.beat()
        self.store.fence = self.check_fence
        self._thread = threading.Thread(target=self._loop, name="setpoint-replicas", daemon=True)
        self._thread.start()
        if self._on_notify is not None:
            threading.Thread(target=self._db.listen, args=(self._dispatch, self._stop.is_set),
                             name="setpoint-listen", daemon=True).start()

    def _dispatch(self, payload: str) -> None:
        kind, _, name = payload.partition(":")
        if self._on_notify is not None and kind in ("target", "source"):
            try:
                self._on_notify(kind, name)
            except Exception:  # noqa: BLE001 - a wake-up never stops the listener
                log.exception("handling the notification %r failed", payload)

    def stop(self) -> None:
        """Hand every lease over at once (expire it) and leave the cluster."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        try:
            self._tx(lambda db: (
                db.execute("UPDATE leases SET expires_at = 0 WHERE owner = ?", (self.id,)),
                db.execute("DELETE FROM replicas WHERE id = ?", (self.id,))))
        except Exception:  # noqa: BLE001 - leaving: the TTL hands them over anyway
            log.warning("could not release this replica's leases; they expire within %.0fs", self.ttl)
        with self._lock:
            self._owned.clear()
        self._db.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - the database is away: our leases lapse with the TTL
                log.warning("replica heartbeat failed (%s); this replica's leases lapse after %.0fs without one",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, self.ttl)

    def _tx(self, work: Callable[[Any], Any]) -> Any:
        with self._lock_db:  # the heartbeat thread and a one-shot command's thread share the connection
            self._db.begin()
            try:
                result = work(self._db)
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()
            return result

    def _one(self, statement: Callable[[Any], Any]) -> Any:
        """A single statement: autocommit is its transaction (one round trip)."""
        with self._lock_db:
            self._db.reconnect_if_broken()
            return statement(self._db)

    def beat(self) -> None:
        """One heartbeat: renew, release what moved away, claim what moved here."""
        started = time.monotonic()
        if self._joined is None:
            self._joined = started
        # just joined: wait one heartbeat period for the replicas started with this one before claiming
        settling = started - self._joined < self.settle * 0.95
        claimed: list[str] = []

        def work(db: Any) -> None:
            db.execute(_t("INSERT INTO replicas (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, NOW, NOW) "
                          "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"),
                       (self.id, socket.gethostname(), os.getpid()))
            self.live = sorted(r[0] for r in db.execute(
                _t("SELECT id FROM replicas WHERE heartbeat_at > NOW - ?"), (self.ttl,)).fetchall())
            db.execute(_t("DELETE FROM replicas WHERE heartbeat_at < NOW - ?"), (self.ttl * 20,))
            held = {r[0]: int(r[1]) for r in db.execute(
                _t("UPDATE leases SET expires_at = NOW + ? WHERE owner = ? AND expires_at > NOW "
                   "RETURNING target, token"), (self.ttl, self.id)).fetchall()}
            wanted = {t for t, g in self.groups.items() if rendezvous(g, self.live) == self.id}
            wanted |= {d for d in self.duties if rendezvous(d, self.live) == self.id}
            if settling:
                wanted &= set(held)  # keeps nothing it has not got; claims nothing yet
            for target in sorted(set(held) - wanted):
                if not self._busy(target):  # a running reconcile keeps its lease until it ends
                    db.execute("UPDATE leases SET expires_at = 0 WHERE target = ? AND owner = ?", (target, self.id))
                    del held[target]
            for target in sorted(wanted - set(held)):
                row = db.execute(
                    _t("INSERT INTO leases (target, owner, token, expires_at) VALUES (?, ?, 1, NOW + ?) "
                       "ON CONFLICT (target) DO UPDATE SET owner = excluded.owner, token = leases.token + 1, "
                       "expires_at = excluded.expires_at WHERE leases.expires_at <= NOW RETURNING token"),
                    (target, self.id, self.ttl)).fetchone()
                if row is not None:
                    held[target] = int(row[0])
                    claimed.append(target)
            with self._lock:
                lost = set(self._owned) - set(held)
                self._owned = held
                self._renewed = started
            for target in sorted(lost):
                log.info("target %s: lease moved to another replica", target)

        self._tx(work)
        for target in claimed:
            if target in DUTIES:
                log.info("%s: lease claimed (token %d); this replica does it for the cluster", target,
                         self._owned.get(target, 0))
                continue
            log.info("target %s: lease claimed (token %d)", target, self._owned.get(target, 0))
            self._on_claimed(target)


class OwnedElsewhere(StateError):
    """A one-shot command found the target's lease held by a running replica."""


class Borrower(Replicas):
    """One-shot commands (``setpoint sync``, ``approve --now``) on a PostgreSQL state apply under a lease
    too: they take a target's lease for one reconcile when no replica holds it (raising its token, so the
    fence works for them as for a replica), renew it while the reconcile runs, and hand it back at the
    end. They are never counted as a replica. A target a running replica owns is left to it: the command
    asks it to reconcile (a wake-up) and says so."""

    def __init__(self, store: StateStore, ttl: float = 15.0) -> None:
        super().__init__(store, {}, ttl=ttl, replica_id=f"cli:{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}")
        #: the targets :meth:`hold_many` borrowed for the pass that runs now
        self._pass: set[str] = set()
        self.store.fence = self.check_fence

    @contextmanager
    def hold_many(self, targets: list[str]) -> Iterator[set[str]]:
        """A pass over ``targets``: borrow every free lease among them in one statement, and hand the
        borrowed ones back together at the end (two round trips for the pass instead of two per
        target). :meth:`hold` then finds them held; a target a replica owns is left to :meth:`hold`,
        which wakes its owner and says so. Yields the targets borrowed."""
        if not targets:
            yield set()
            return
        borrowed = self._borrow(targets)
        with self._lock:
            self._owned.update(borrowed)
            self._pass = set(borrowed)
            self._renewed = time.monotonic()
        self._start_renewal()
        try:
            yield set(borrowed)
        finally:
            with self._lock:
                for target in borrowed:
                    self._owned.pop(target, None)
                self._pass = set()
            self._hand_back(list(borrowed))

    def _borrow(self, targets: list[str]) -> dict[str, int]:
        """Take the free or expired leases among ``targets`` (raising each one's token) in one statement;
        returns the tokens of those taken (a lease another holder keeps alive is not in it)."""
        rows = self._one(lambda db: db.execute(
            _t("INSERT INTO leases (target, owner, token, expires_at) SELECT name, ?, 1, NOW + ? FROM unnest(?::text[]) "
               "AS name ON CONFLICT (target) DO UPDATE SET owner = excluded.owner, token = leases.token + 1, "
               "expires_at = excluded.expires_at WHERE leases.expires_at <= NOW RETURNING target, token"),
            (self.id, self.ttl, sorted(set(targets)))).fetchall())
        return {str(r[0]): int(r[1]) for r in rows}

    def _hand_back(self, targets: list[str]) -> None:
        """Let the leases of ``targets`` this borrower holds expire now, in one statement."""
        if targets:
            self._one(lambda db: db.execute("UPDATE leases SET expires_at = 0 WHERE owner = ? AND target = ANY(?)",
                                            (self.id, targets)))

    def _start_renewal(self) -> None:
        with self._lock:  # concurrent holds (a pass's worker threads) start one renewal thread
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="setpoint-lease-renewal", daemon=True)
                self._thread.start()

    @contextmanager
    def hold(self, target: str, reason: str = "sync") -> Iterator[None]:
        with self._lock:
            in_pass = target in self._pass and target in self._owned
        if in_pass:  # borrowed for the whole pass by hold_many: handed back at its end
            yield
            return
        token = self._borrow([target]).get(target)
        if token is None:
            owner = self._one(lambda db: db.execute("SELECT owner FROM leases WHERE target = ?", (target,)).fetchone())
            self.store.request_wakeup(target, reason)
            raise OwnedElsewhere(f"target {target} is owned by the running replica {owner[0] if owner else '?'}; "
                                 "it was asked to reconcile it now (see `setpoint status`, or `setpoint wait`)")
        with self._lock:
            self._owned[target] = token
            self._renewed = time.monotonic()
        self._start_renewal()
        try:
            yield
        finally:
            with self._lock:
                self._owned.pop(target, None)
            self._hand_back([target])

    def beat(self) -> None:
        started = time.monotonic()
        with self._lock:
            targets = list(self._owned)
        if not targets:
            return
        renewed = {r[0] for r in self._tx(lambda db: db.execute(
            _t("UPDATE leases SET expires_at = NOW + ? WHERE owner = ? AND expires_at > NOW RETURNING target"),
            (self.ttl, self.id)).fetchall())}
        with self._lock:  # a lease taken by hold() since the snapshot is fresh: it stays
            self._owned = {t: token for t, token in self._owned.items() if t in renewed or t not in targets}
            self._renewed = started
