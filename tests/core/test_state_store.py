"""The state store's contract, run against both backends: SQLite and PostgreSQL (dev/services up postgresql).

Everything the engine and CLI rely on -- status, pauses, inventory, drift, held plans, drivers' memory,
outputs, apply intents, wake-ups and the audit log with its time filters -- must behave the same on both.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from setpoint.api import Revision
from setpoint.errors import ConfigError, StateError
from setpoint.secrets import Secret, to_jsonable
from setpoint.state import DriftRecord, InventoryItem, StateStore, TargetStatus
from setpoint.state.backends import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from setpoint.state.transfer import copy_state


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "sqlite":
        return tmp_path / "state" / "state.db"
    url: str = request.getfixturevalue("pg_state_url")
    return url


@pytest.fixture
def store(location: Path | str) -> Any:
    s = StateStore(location)
    yield s
    s.close()


def test_both_backends_reach_the_same_schema_version(store: StateStore) -> None:
    assert len(POSTGRES_MIGRATIONS) == len(SQLITE_MIGRATIONS)
    assert store.schema_version == len(SQLITE_MIGRATIONS)


def test_reopening_keeps_everything_and_migrates_nothing_twice(location: Path | str) -> None:
    first = StateStore(location)
    first.save_status(TargetStatus("web", "files", message="hello"))
    first.close()
    again = StateStore(location)
    assert again.status("web") is not None and again.status("web").message == "hello"  # type: ignore[union-attr]
    assert again.schema_version == len(SQLITE_MIGRATIONS)
    again.close()


def test_status_round_trip(store: StateStore) -> None:
    store.save_status(TargetStatus("a", "files", message="one"))
    store.save_status(TargetStatus("a", "files", message="two"))
    store.save_status(TargetStatus("b", "files"))
    assert store.status("a").message == "two"  # type: ignore[union-attr]
    assert store.status("missing") is None
    assert sorted(store.all_status()) == ["a", "b"]


def test_memory_pause_outputs(store: StateStore) -> None:
    store.write_memory("a", {"k": '"v"', "gone": '"x"'})
    store.write_memory("a", {"gone": None, "k": '"w"'})
    assert store.memory("a") == {"k": '"w"'}
    p = store.pause("a", "maintenance", "ann", until=None)
    assert store.get_pause("a") == p
    store.pause("a", "again", "bob", until=time.time() + 60)
    assert store.get_pause("a").reason == "again"  # type: ignore[union-attr]
    assert store.resume("a").paused_by == "bob"  # type: ignore[union-attr]
    assert store.get_pause("a") is None and store.resume("a") is None
    store.save_outputs("a", {"url": "http://x"})
    store.save_outputs("a", {"url": "http://y"})
    assert store.outputs("a") == {"url": "http://y"} and store.outputs("b") is None


def test_inventory_and_drift(store: StateStore) -> None:
    item = InventoryItem("k1", "File", "f", None, "d1", "sha1", 1.0, ("spec.password",))
    store.update_inventory("a", [item, InventoryItem("k2", "File", "g", "ns", "d2", "sha1", 1.0)], [])
    store.update_inventory("a", [InventoryItem("k1", "File", "f", None, "d3", "sha2", 2.0, ("spec.password",))],
                           ["k2"])
    inv = store.inventory("a")
    assert list(inv) == ["k1"] and inv["k1"].digest == "d3" and inv["k1"].secret_paths == ("spec.password",)
    store.set_drift("a", [DriftRecord("k1", 5.0, "live", {"field": "x"})], [])
    store.set_drift("a", [DriftRecord("k1", 5.0, "live2", {})], [])
    assert store.drift("a")["k1"].live_digest == "live2"
    store.set_drift("a", [], ["k1"])
    assert store.drift("a") == {}


def test_held_plans_lifecycle(store: StateStore) -> None:
    first = store.hold_plan("a", "p1", "sha1", "deletion budget", [{"key": "k"}])
    assert store.hold_plan("a", "p1", "sha1", "deletion budget", []).id == first.id  # reused
    assert store.hold_plan("a", "p1", "sha1", "policy", []).reason == "policy"
    second = store.hold_plan("a", "p2", "sha2", "budget", [])
    assert second.id > first.id
    assert [p.plan_id for p in store.held_plans("a")] == ["p2"]  # p1 superseded
    assert store.decide_plan("a", "p2", "approved", "ann").decided_by == "ann"  # type: ignore[union-attr]
    assert store.decide_plan("a", "p2", "approved", "ann") is None  # no longer pending
    store.supersede_plans("a", keep="p2")
    assert [p.status for p in store.held_plans("a")] == ["approved"]
    store.supersede_plans("a", keep=None)
    assert store.held_plans("a") == []
    store.hold_plan("b", "p3", "sha3", "x", [])
    store.finish_plan("b", "p3", "applied")
    assert store.held_plans(statuses=("applied",))[0].plan_id == "p3"


def test_audit_filters_limits_and_secret_fingerprints(store: StateStore) -> None:
    rev = Revision(sha="abc", author="Ann", author_email="ann@example.com", message="change")
    ids = [store.audit("apply", target="a", kind="files", revision=rev, at=100.0 + i, details={"n": i})
           for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    store.audit("error", target="b", at=103.5, details={"password": Secret("hunter2")})
    assert [e.details["n"] for e in store.audit_entries(since=101, until=103, target="a")] == [1, 2]
    assert [e.action for e in store.audit_entries(actions=("error",))] == ["error"]
    assert [e.time for e in store.audit_entries(limit=2)] == [103.5, 104.0]
    entry = store.audit_entries(target="a")[0]
    assert entry.author == "Ann <ann@example.com>" and entry.revision == "abc"
    stored = store.audit_entries(target="b")[0].details["password"]
    assert "hunter2" not in str(stored) and stored == to_jsonable(Secret("hunter2"))


def test_intents_wakeups_meta_and_batch_rollback(store: StateStore) -> None:
    store.set_apply_intent("a", {"plan_id": "p", "changes": 3})
    assert store.apply_intent("a") == {"plan_id": "p", "changes": 3}
    store.clear_apply_intent("a")
    assert store.apply_intent("a") is None
    store.request_wakeup("a", "cli sync")
    store.request_wakeup("b", "approve")
    assert store.take_wakeups() == [("a", "cli sync"), ("b", "approve")]
    assert store.take_wakeups() == []
    store.set_meta("k", b"\x00\x01")
    assert store.get_meta("k") == b"\x00\x01"
    with pytest.raises(RuntimeError), store.batch():
        store.audit("apply", target="a")
        store.save_status(TargetStatus("a", "files"))
        raise RuntimeError("crash in the middle of a record")
    assert store.audit_entries() == [] and store.status("a") is None
    assert store.ping()


def test_notification_keys_are_claimed_once_and_released_once(location: Path | str) -> None:
    """Two processes on one state (two replicas): a key is sent by one of them, a recovery announced by one."""
    first, second = StateStore(location), StateStore(location)
    assert first.claim_notification("a", "sha1", "failed")
    assert not second.claim_notification("a", "sha1", "failed"), "the other replica already sent it"
    assert second.claim_notification("a", "sha2", "failed") and second.claim_notification("b", "sha1", "failed")
    assert sorted(first.sent_notifications()) == [("a", "sha1", "failed"), ("a", "sha2", "failed"),
                                                  ("b", "sha1", "failed")]
    assert second.release_notifications("a", "failed") == 2
    assert first.release_notifications("a", "failed") == 0, "released once: one recovery message"
    assert first.claim_notification("a", "sha1", "failed"), "a new streak alerts again"
    # repeat_after: sent again only once the previous send is that old
    assert first.claim_notification("c", "sha1", "drift_detected", repeat_after=3600)
    assert not second.claim_notification("c", "sha1", "drift_detected", repeat_after=3600)
    assert second.claim_notification("c", "sha1", "drift_detected", repeat_after=0)
    first.close()
    second.close()


def test_a_digest_gathers_every_writer_and_is_taken_once(location: Path | str) -> None:
    first, second = StateStore(location), StateStore(location)
    about = {"author": "Alice", "subject": "v2"}
    first.add_to_digest("sha1", "a", "deployed", about)
    second.add_to_digest("sha1", "b", "deployed", about)
    second.add_to_digest("sha1", "c", "failed", about, only_if_open=True)
    second.add_to_digest("sha2", "c", "failed", about, only_if_open=True)  # opens nothing on its own
    assert first.take_due_digests(started_before=time.time() - 60) == [], "not due yet"
    (due,) = second.take_due_digests(started_before=time.time() + 1)
    assert due == ("sha1", about, {"a": "deployed", "b": "deployed", "c": "failed"})
    assert first.take_due_digests(None) == [], "taken once"
    first.add_to_digest("sha1", "d", "deployed", about)  # a late deploy after the digest went out
    assert first.take_due_digests(None) == [] and second.take_due_digests(None) == [], "never a second digest"

    def refuse(db: Any) -> None:
        raise StateError("not the holder")
    first.add_to_digest("sha3", "a", "deployed", about)
    with pytest.raises(StateError):
        first.take_due_digests(None, fence=refuse)
    assert [d[0] for d in second.take_due_digests(None)] == ["sha3"], "a refused take leaves the digest in place"
    first.close()
    second.close()


def test_schema_5_notification_memory_moves_to_its_table(tmp_path: Path) -> None:
    """An installation from before the shared memory: its keys (a JSON list in meta) are imported once."""
    import json
    import sqlite3

    from setpoint.builtin.notify import SENT_KEYS, _import_legacy_keys

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for script in SQLITE_MIGRATIONS[:5]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 5")
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                 (SENT_KEYS, json.dumps([["app", "sha1", "failed"], ["*", "sha0", "digest"]]).encode()))
    conn.commit()
    conn.close()
    store = StateStore(path)
    assert store.schema_version == len(SQLITE_MIGRATIONS) == 6

    class View:
        pass
    view = View()
    view.store = store  # type: ignore[attr-defined]
    _import_legacy_keys(view)  # type: ignore[arg-type]
    assert sorted(store.sent_notifications()) == [("*", "sha0", "digest"), ("app", "sha1", "failed")]
    assert store.get_meta(SENT_KEYS) is None
    assert not store.claim_notification("app", "sha1", "failed"), "what the old process sent is not sent again"
    store.close()


@pytest.mark.postgresql
def test_migrate_sqlite_to_postgresql_and_back_keeps_the_audit(tmp_path: Path, pg_state_url: str) -> None:
    sqlite = StateStore(tmp_path / "old" / "state.db")
    secret_print = to_jsonable(Secret("s3cret"))
    for i in range(2500):  # more than one copy batch
        sqlite.audit("apply", target=f"t{i % 7}", at=1000.0 + i, details={"i": i, "pw": Secret("s3cret")})
    sqlite.save_status(TargetStatus("t1", "files", message="ok"))
    sqlite.update_inventory("t1", [InventoryItem("k", "File", "f", None, "d", "sha", 1.0, ("x",))], [])
    held = sqlite.hold_plan("t1", "p1", "sha", "budget", [{"key": "k"}])
    sqlite.set_apply_intent("t2", {"plan_id": "p9"})
    sqlite.write_memory("t1", {"m": "1"})
    sqlite.pause("t3", "why", "ann", None)
    sqlite.claim_notification("t1", "sha", "failed")
    sqlite.add_to_digest("sha", "t1", "deployed", {"subject": "s"})
    source_entries = [e.to_dict() for e in sqlite.audit_entries()]
    pg = StateStore(pg_state_url)
    copied = copy_state(sqlite, pg)
    assert copied.rows["audit"] == 2500
    assert [e.to_dict() for e in pg.audit_entries()] == source_entries  # ids, times, details: all of it
    assert [e.details["i"] for e in pg.audit_entries(since=1100, until=1103)] == [100, 101, 102]
    assert pg.status("t1").message == "ok"  # type: ignore[union-attr]
    assert pg.inventory("t1")["k"].secret_paths == ("x",)
    assert pg.held_plans("t1")[0].id == held.id and pg.apply_intent("t2") == {"plan_id": "p9"}
    assert pg.memory("t1") == {"m": "1"} and pg.get_pause("t3").reason == "why"  # type: ignore[union-attr]
    assert not pg.claim_notification("t1", "sha", "failed"), "the notifications' memory came along"
    assert pg.take_due_digests(None) == [("sha", {"subject": "s"}, {"t1": "deployed"})]
    assert pg.audit("apply", target="new") > source_entries[-1]["id"]  # new ids continue after the copied ones
    assert pg.hold_plan("t9", "p2", "sha", "x", []).id > held.id
    sqlite.close()
    pg.close()
    # the salt came along: the same secret still fingerprints the same after reopening the PostgreSQL state
    reopened = StateStore(pg_state_url)
    assert to_jsonable(Secret("s3cret")) == secret_print
    with pytest.raises(StateError, match="already holds a state"):
        copy_state(StateStore(tmp_path / "old" / "state.db"), reopened)
    back = StateStore(tmp_path / "back" / "state.db")
    copy_state(reopened, back)
    assert len(back.audit_entries()) == 2501
    reopened.close()
    back.close()


@pytest.mark.parametrize("url", ["postgresql://setpoint:hunter2@db.example.com/setpoint",
                                 "postgresql://db.example.com/setpoint?password=hunter2"])
def test_a_password_in_the_state_url_is_a_config_error(tmp_path: Path, url: str) -> None:
    from setpoint.config import load_config

    (tmp_path / "setpoint.yaml").write_text(
        f"sources: {{main: {{url: {tmp_path}}}}}\ntargets: []\nstate: {url}\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "setpoint.yaml")
    assert "hunter2" not in str(err.value) and "SETPOINT_STATE_PASSWORD_FILE" in str(err.value)


def test_an_unreadable_password_file_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SETPOINT_STATE_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot read the PostgreSQL password file"):
        StateStore("postgresql://setpoint@127.0.0.1:1/setpoint")


@pytest.mark.postgresql
def test_replicas_opening_a_new_database_at_once_agree_on_one_salt(pg_state_url: str) -> None:
    import threading

    barrier = threading.Barrier(4)
    opened: list[StateStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(StateStore(pg_state_url))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({s.get_meta("fingerprint_salt") for s in opened}) == 1
    for s in opened:
        s.close()


@pytest.mark.postgresql
def test_postgresql_threads_commit_side_by_side_on_a_bounded_pool(pg_state_url: str) -> None:
    """A pass's worker threads each hold a connection for their transaction: one thread's open batch
    neither blocks another thread's write nor shows it uncommitted rows, a failed batch rolls back only
    its own writes, and no more than POOL_SIZE connections are ever opened, however many threads write."""
    import threading

    from setpoint.state import store as store_module

    store = StateStore(pg_state_url)
    inside, release = threading.Event(), threading.Event()

    def slow_batch() -> None:
        with store.batch():
            store.save_status(TargetStatus("slow", "files", message="uncommitted"))
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=slow_batch)
    holder.start()
    assert inside.wait(10)
    started = time.monotonic()
    store.save_status(TargetStatus("quick", "files", message="committed"))  # not behind the open batch
    assert time.monotonic() - started < 2
    assert store.status("slow") is None, "another thread's batch is not visible before it commits"
    release.set()
    holder.join(10)
    assert store.status("slow").message == "uncommitted"  # type: ignore[union-attr]

    def failing_batch() -> None:
        with pytest.raises(RuntimeError), store.batch():
            store.save_status(TargetStatus("rolled-back", "files"))
            raise RuntimeError("the batch fails")

    failing = threading.Thread(target=failing_batch)
    failing.start()
    store.save_status(TargetStatus("kept", "files"))
    failing.join(10)
    assert store.status("rolled-back") is None and store.status("kept") is not None

    def writer(i: int) -> None:
        for j in range(5):
            store.save_status(TargetStatus(f"t{i}-{j}", "files"))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3 * store_module.POOL_SIZE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(store.all_status()) == 3 + 3 * store_module.POOL_SIZE * 5
    pool = store._pool
    assert pool is not None and len(pool._all) <= store_module.POOL_SIZE
    store.close()


def test_a_prefetched_pass_reads_what_the_database_holds_in_a_few_queries(store: StateStore) -> None:
    """`setpoint sync` prefetches the rows of the targets it owns (status, inventory, drift, outputs,
    apply intent): one query per table for the pass instead of one per target and read. Every read
    inside must return exactly what a read outside returns, a write inside is seen by the next read (of
    that table; the others stay prefetched), and pauses and held plans (written by other processes) are
    never served from the prefetch."""
    names = [f"t{i:03d}" for i in range(120)]
    for i, name in enumerate(names[:60]):
        store.save_status(TargetStatus(name, "files", message=f"m{i}"))
        store.update_inventory(name, [InventoryItem("k", "File", name, None, f"d{i}", "sha", 1.0)], [])
        store.set_drift(name, [DriftRecord("k", 5.0, f"live{i}", {"field": i})], [])
        store.save_outputs(name, {"n": i})
    store.set_apply_intent("t007", {"plan_id": "interrupted"})
    store.write_memory("t003", {"seen": '"yes"'})

    def reads(name: str) -> tuple[Any, ...]:
        return (store.status(name), store.inventory(name), store.drift(name), store.outputs(name),
                store.apply_intent(name))

    expected = {name: reads(name) for name in names}
    queries: list[str] = []
    original = store._query

    def counting(sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        queries.append(sql)
        return original(sql, args)

    store._query = counting  # type: ignore[method-assign]
    with store.prefetch(names):
        prefetched = len(queries)
        assert {name: reads(name) for name in names} == expected
        assert len(queries) == prefetched, "every first read came from the prefetch"
        store.save_status(TargetStatus("t001", "files", message="written during the pass"))
        assert store.status("t001").message == "written during the pass"  # type: ignore[union-attr]
        store.update_inventory("t002", [], ["k"])
        assert store.inventory("t002") == {}
        store.pause("t004", "incident", "alice", None)
        assert store.get_pause("t004") is not None, "pauses are always read from the database"
        assert store.status("t002") == expected["t002"][0], "the status was not written: still prefetched"
        assert store.inventory("t005") == expected["t005"][1]
        assert len(queries) == prefetched + 3, "only the reads after a write, and the pause, went to the database"
        store.set_drift("t006", [], ["k"])
        assert store.drift("t006") == {} and store.outputs("t006") == expected["t006"][3]
        store.release_prefetched("t008")
        before = len(queries)
        assert store.status("t008") == expected["t008"][0] and len(queries) == before + 1, "released: read again"
    assert prefetched <= 5, f"one query per table for {len(names)} targets, not {prefetched}"
    store._query = original  # type: ignore[method-assign]
    assert store.memories(["t003", "t004"]) == {"t003": {"seen": '"yes"'}, "t004": {}}
    assert store.status("t001").message == "written during the pass"  # type: ignore[union-attr]


@pytest.mark.postgresql
def test_postgresql_a_queued_statement_that_fails_rolls_its_whole_transaction_back(pg_state_url: str) -> None:
    """Transactions run in pipeline mode (writes are sent without waiting for their result): an error of
    a write nobody read must still fail the transaction at its commit, leave none of its writes behind,
    and leave the connection ready for the next transaction."""
    from setpoint.state.backends import PostgresBackend

    store = StateStore(pg_state_url)
    db = store.db
    assert isinstance(db, PostgresBackend)
    store.save_status(TargetStatus("before", "files"))
    with pytest.raises(Exception, match="duplicate key|unique"), store.batch() as tx:
        tx.execute("INSERT INTO outputs (target, data, updated_at) VALUES (?, ?, ?)", ("dup", "{}", 1.0))
        tx.execute("INSERT INTO outputs (target, data, updated_at) VALUES (?, ?, ?)", ("dup", "{}", 2.0))  # fails
        tx.execute("INSERT INTO target_state VALUES (?, ?, ?, ?)", ("after-the-error", "files", "{}", 1.0))
    assert store.outputs("dup") is None and store.status("after-the-error") is None
    store.save_status(TargetStatus("next", "files"))  # the connection is usable again
    assert sorted(store.all_status()) == ["before", "next"]
    store.close()
