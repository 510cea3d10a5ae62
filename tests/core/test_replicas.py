"""Several replicas on one PostgreSQL state (issue 19 items 2-3): targets divided by leases, ownership
moving on join/leave, and the fence that stops a replica which lost a lease from applying."""

from __future__ import annotations

import time
from typing import Any

import pytest

from setpoint.state import StateStore
from setpoint.state.replicas import DUTIES, LeaseLost, Replicas, dependency_groups, rendezvous

pytestmark = pytest.mark.postgresql

TARGETS = {f"t{i:02d}": [] for i in range(30)}


@pytest.fixture
def stores(pg_state_url: str) -> Any:
    opened: list[StateStore] = []

    def open_store() -> StateStore:
        opened.append(StateStore(pg_state_url))
        return opened[-1]
    yield open_store
    for store in opened:
        store.close()


def replica(open_store: Any, name: str, ttl: float = 2.0, targets: dict[str, list[str]] | None = None,
            **kw: Any) -> Replicas:
    kw.setdefault("settle", 0.0)  # these tests drive the heartbeats by hand; the settling has its own test
    r = Replicas(open_store(), targets or TARGETS, ttl=ttl, replica_id=name, **kw)
    r.store.fence = r.check_fence
    return r


def test_targets_are_divided_and_move_on_join_and_leave(stores: Any) -> None:
    a, b = replica(stores, "a"), replica(stores, "b")
    a.beat()
    assert a.owned() == set(TARGETS), "alone, a replica owns everything"
    b.beat()
    a.beat()  # a sees b, releases what hashes to b
    b.beat()  # b claims it
    assert a.owned() | b.owned() == set(TARGETS) and not a.owned() & b.owned()
    assert 5 <= len(b.owned()) <= 25, "rendezvous hashing spreads the targets"
    moved_to_c: set[str] = set()
    c = replica(stores, "c")
    c.beat()
    before = {"a": a.owned(), "b": b.owned()}
    a.beat(), b.beat(), c.beat()
    moved_to_c = c.owned()
    assert moved_to_c and all(t in before["a"] | before["b"] for t in moved_to_c)
    assert a.owned() <= before["a"] and b.owned() <= before["b"], "a join only moves targets to the newcomer"
    b.stop()  # leaving hands over at once
    a.beat(), c.beat()
    assert a.owned() | c.owned() == set(TARGETS) and not a.owned() & c.owned()
    a.stop(), c.stop()


def test_replicas_that_join_together_claim_nothing_until_they_have_seen_each_other(stores: Any) -> None:
    """Started together, the first replica to beat must not claim every target (it would do most of the
    first pass alone): for its first heartbeat period it claims nothing, then only its share."""
    a = replica(stores, "a", settle=0.6)
    a.beat()
    assert a.owned() == set(), "just joined: claims nothing yet"
    b = replica(stores, "b", settle=0.6)
    b.beat()
    a.beat()
    assert a.owned() == set() and b.owned() == set(), "still settling"
    time.sleep(0.6)
    a.beat()
    b.beat()
    assert a.owned() and b.owned(), "each claims its share once settled"
    assert a.owned() | b.owned() == set(TARGETS) and not a.owned() & b.owned()
    a.stop(), b.stop()
    alone = replica(stores, "alone", settle=0.3, targets={"x1": [], "x2": []})
    alone.beat()
    time.sleep(0.3)
    alone.beat()
    assert alone.owned() == {"x1", "x2"}, "a lone replica claims everything after one heartbeat period"
    alone.stop()


def test_a_busy_target_that_moved_is_handed_over_when_its_reconcile_ends(stores: Any) -> None:
    busy = set(TARGETS)
    a = replica(stores, "a", busy=lambda name: name in busy)
    a.beat()
    b = replica(stores, "b")
    b.beat()
    a.beat()  # a sees b; every target is reconciling, so a keeps them all for now
    b.beat()
    assert a.owned() == set(TARGETS) and b.owned() == set()
    moved = {t for t, g in a.groups.items() if rendezvous(g, ["a", "b"]) == "b"}
    assert moved
    for target in sorted(TARGETS):
        busy.discard(target)
        a.release_if_moved(target)  # the scheduler calls this as each reconcile ends
    assert a.owned() == set(TARGETS) - moved, "handed over at the end of the reconcile, not at a heartbeat"
    b.beat()
    assert b.owned() == moved, "the new owner claims them at its next heartbeat"
    with pytest.raises(LeaseLost):
        a.check_fence(a.store.db, sorted(moved)[0])  # the old owner could apply none of them
    a.stop(), b.stop()


def test_a_paused_replica_past_its_ttl_applies_nothing(stores: Any) -> None:
    a = replica(stores, "a", ttl=1.0)
    a.beat()
    assert a.owns("t01")
    a.store.set_apply_intent("t01", {"plan_id": "p"})  # the fence passes while the lease is ours
    a.store.clear_apply_intent("t01")
    token = a._owned["t01"]
    time.sleep(1.2)  # "SIGSTOP": no heartbeat for longer than the TTL
    b = replica(stores, "b", ttl=1.0)
    b.beat()
    assert b.owns("t01") and b._owned["t01"] == token + 1, "the takeover raises the fencing token"
    assert not a.owns("t01"), "the resumed replica knows its leases lapsed before it asks the database"
    with pytest.raises(LeaseLost, match="no longer holds its lease"):
        a.store.set_apply_intent("t01", {"plan_id": "stale"})
    assert a.store.apply_intent("t01") is None, "nothing of the stale apply was recorded"
    writer = b.store.set_apply_intent("t01", {"plan_id": "p2"})
    assert writer == {"replica": "b", "token": token + 1}
    assert b.store.apply_intent("t01")["writer"] == writer  # type: ignore[index]
    a.beat()  # resumed: b is alive and the lease is b's; a gets it back only if hashing says so and it is free
    assert not (a.owned() & b.owned())
    a.stop(), b.stop()


def test_without_a_lease_the_fence_refuses(stores: Any) -> None:
    a = replica(stores, "a")
    with pytest.raises(LeaseLost):
        a.store.set_apply_intent("t01", {"plan_id": "p"})


def test_dependency_chains_stay_on_one_replica(stores: Any) -> None:
    targets = {"db": [], "app": ["db"], "web": ["app"], "other": [], "cache": []}
    assert len(set(dependency_groups(targets)[t] for t in ("db", "app", "web"))) == 1
    replicas = [replica(stores, n, targets=targets) for n in ("a", "b", "c")]
    for _ in range(2):
        for r in replicas:
            r.beat()
    owners = {t: r.id for r in replicas for t in r.owned()}
    assert set(owners) == set(targets)
    assert owners["db"] == owners["app"] == owners["web"]
    for r in replicas:
        r.stop()


def test_rendezvous_moves_little_when_one_replica_leaves() -> None:
    groups = [f"g{i}" for i in range(1000)]
    three = {g: rendezvous(g, ["a", "b", "c"]) for g in groups}
    two = {g: rendezvous(g, ["a", "b"]) for g in groups}
    assert all(two[g] == three[g] for g in groups if three[g] != "c"), "only c's targets move"
    assert 250 < sum(1 for g in groups if three[g] == "c") < 420


def test_a_one_shot_command_applies_only_under_a_free_lease(stores: Any) -> None:
    from setpoint.state.replicas import Borrower, OwnedElsewhere

    a = replica(stores, "a")
    a.beat()  # a running replica owns every target
    cli = Borrower(stores(), ttl=2.0)
    with pytest.raises(OwnedElsewhere, match="owned by the running replica a"), cli.hold("t01", "sync"):
        pass
    assert a.store.take_wakeups() == [("t01", "sync")], "the owner was asked to reconcile instead"
    with pytest.raises(LeaseLost):
        cli.store.set_apply_intent("t01", {"plan_id": "p"})
    a.stop()  # the replica is gone: the command takes the lease, with a higher token, and gives it back
    with cli.hold("t01"):
        writer = cli.store.set_apply_intent("t01", {"plan_id": "p"})
        assert writer is not None and writer["replica"] == cli.id and writer["token"] >= 2
    b = replica(stores, "b")
    b.beat()
    assert b.owns("t01"), "handed back at once, not after the TTL"
    b.stop()
    cli.stop()


def test_a_one_shot_pass_borrows_the_free_leases_together_and_leaves_an_owned_one_to_its_owner(stores: Any) -> None:
    """`setpoint sync` over many targets borrows every free lease of the pass in one statement; a target
    a running replica owns is not taken (hold() still wakes its owner); at the end every borrowed lease
    is handed back at once, and nothing borrowed is applied to after that."""
    from setpoint.state.replicas import Borrower, OwnedElsewhere

    a = replica(stores, "a")
    a.beat()
    owned_by_a = sorted(a.owned())[0]
    cli = Borrower(stores(), ttl=5.0)
    names = ["free1", "free2", owned_by_a]
    with cli.hold_many(names):
        assert cli.owns("free1") and cli.owns("free2") and not cli.owns(owned_by_a)
        with cli.hold("free1"):  # borrowed already: no second claim, the fence passes
            writer = cli.store.set_apply_intent("free1", {"plan_id": "p"})
            assert writer is not None and writer["replica"] == cli.id
            cli.store.clear_apply_intent("free1")
        assert cli.owns("free1"), "a target of the pass keeps its lease until the pass ends"
        with pytest.raises(OwnedElsewhere, match="owned by the running replica a"), cli.hold(owned_by_a):
            pass
    assert not cli.owns("free1") and not cli.owns("free2")
    with pytest.raises(LeaseLost):
        cli.store.set_apply_intent("free2", {"plan_id": "p"})
    a.stop()
    b = replica(stores, "b", targets={"free1": [], "free2": []})
    b.beat()
    assert b.owned() == {"free1", "free2"}, "handed back at the end of the pass, not after the TTL"
    b.stop()
    cli.stop()


def test_a_wake_for_a_target_another_replica_owns_is_passed_to_it(tmp_path: Any, git_repo: Any) -> None:
    """The status API's "sync now" or a dependency wake on a replica that does not own the target: the
    request goes to the wake-up table (and its NOTIFY), never dropped, never run here."""
    from setpoint.engine.scheduler import Scheduler
    from setpoint.testing import make_engine, write_config

    git_repo.commit({"etc/a.conf": "a\n"})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    engine = make_engine(config)

    class NoneOwned:
        def owns(self, target: str) -> bool:
            return False

        def owned(self) -> set[str]:
            return set()

        def release_if_moved(self, target: str) -> None:
            pass
    engine.leases = NoneOwned()
    scheduler = Scheduler(engine)
    scheduler.wake("edge", "ops")
    assert scheduler._due == {}, "not queued here"
    assert engine.store.take_wakeups() == [("edge", "ops")], "passed on to the owner"
    engine.close()


def test_a_duty_is_held_by_one_live_replica_and_moves_when_it_dies(stores: Any) -> None:
    """duty:notify (the digests) is a lease like a target's: one holder among the live replicas, taken
    over with a higher token when the holder stops beating, and fenced like an apply."""
    (duty,) = DUTIES
    replicas = {n: replica(stores, n, ttl=1.0) for n in ("a", "b", "c")}
    for _ in range(2):
        for r in replicas.values():
            r.beat()
    holders = [n for n, r in replicas.items() if r.holds(duty)]
    assert len(holders) == 1, holders
    holder = replicas[holders[0]]
    assert duty not in holder.owned(), "a duty is not a target: the engine never reconciles it"
    token = holder._owned[duty]
    holder.store.take_due_digests(None, fence=lambda db: holder.check_fence(db, duty))  # the holder passes
    time.sleep(1.2)  # the holder is frozen (SIGSTOP) past the TTL; the others go on
    others = [r for n, r in replicas.items() if n != holders[0]]
    for _ in range(2):
        for r in others:
            r.beat()
    (successor,) = [r for r in others if r.holds(duty)]
    assert successor._owned[duty] > token, "taken over with a higher fencing token"
    assert not holder.holds(duty), "the frozen holder knows its lease lapsed"
    holder.store.add_to_digest("sha1", "t01", "deployed", {})
    with pytest.raises(LeaseLost):
        holder.store.take_due_digests(None, fence=lambda db: holder.check_fence(db, duty))
    due = successor.store.take_due_digests(None, fence=lambda db: successor.check_fence(db, duty))
    assert [d[0] for d in due] == ["sha1"], "the stale holder's refused take left the digest to the successor"
    for r in replicas.values():
        r.stop()


def test_lease_writes_skip_the_wal_flush_and_the_store_keeps_it(stores: Any) -> None:
    """Heartbeats and lease claims/releases commit without waiting for the WAL flush (two fewer flushes per
    target in a one-shot sync); the store's own connection, where the fence and the apply intent commit,
    stays durable, and its commit flushes the claims it read."""
    r = replica(stores, "a")
    r.beat()
    assert r._db.conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
    assert r.store.db.conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    r._db.conn.close()  # a dropped connection comes back with the same setting
    r._db.reconnect_if_broken()
    assert r._db.conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
    r.stop()
