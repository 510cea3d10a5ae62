"""Issue 15 item 13: the quick path's own reader and renderer parts agree with the full ones.

setpoint.state.quickstate reads with plain sqlite3 what setpoint.state.store wrote (by the names in
setpoint.state.stateschema, which the store checks too); setpoint.escapes, render's markup scanner
and durations' parser replace regular expressions. Each is compared here with what it replaces."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from setpoint import quick, render, statusrow, views
from setpoint.apicore import HealthStatus, Revision, SyncStatus
from setpoint.durations import parse_duration
from setpoint.escapes import escape_controls
from setpoint.state import AuditAction, StateStore, TargetStatus, stateschema
from setpoint.state.backends import SQLITE_MIGRATIONS
from setpoint.state.quickstate import QuickState, Unreadable, loads
from setpoint.state.status import PauseInfo
from setpoint.state.store import AuditEntry, HeldPlan, Pause

TARGETS = [SimpleNamespace(name=n, kind="files", source="repo", path="etc", depends_on=())
           for n in ("never-ran", "plain", "odd", "paused", "held", "expired")]


def fill(store: StateStore) -> None:
    store.save_status(TargetStatus("plain", "files", SyncStatus.SYNCED, HealthStatus.HEALTHY, revision="a" * 40,
                                   last_run=time.time() - 5.123456789, drift=("x/y", "z"), message="ok \x1b[31m",
                                   last_applied_at=time.time() - 60.5, last_applied_revision="a" * 40))
    store.save_status(TargetStatus("paused", "files", paused=PauseInfo("r", "me", 1.0)))
    store.save_status(TargetStatus("held", "files", last_error="boom [red]x[/]\n", error_stage="apply",
                                   consecutive_failures=3))
    store.pause("paused", "maintenance [bold]", "alice", None)
    store.pause("expired", "over", "bob", time.time() - 1)
    store.hold_plan("held", "p1", "b" * 40, "deletes 3 of 4", [{"action": "delete", "key": "k"}])
    store.hold_plan("held", "p2", "c" * 40, "second", [])
    rev = Revision("d" * 40, "Dev", "dev@example.com", message="subject \\\nbody")
    store.audit(AuditAction.APPLY, target="plain", kind="files", revision=rev, trigger="manual", result="ok",
                duration=0.5, details={"changes": [{"action": "update", "key": "app.conf", "fields": [
                    {"path": "port", "before": 1, "after": None}, {"path": "text", "before": "a\nb", "after": "a\nc"},
                    {"path": "long", "before": "x" * 200, "after": "x" * 199 + "y"}]}]})
    store.audit(AuditAction.DRIFT_DETECTED, target="odd", actor="kubectl-edit", details={"note": "[/] \u2028"})
    store.audit(AuditAction.PAUSE, target="paused", actor="alice")
    # a row an older version wrote: keys missing, nulls where the current one writes text
    with store._tx() as db:
        db.execute("INSERT INTO target_state (target, kind, data, updated_at) VALUES (?, ?, ?, ?)",
                   ("odd", "files", json.dumps({"target": "odd", "sync": None, "health": "Degraded",
                                                "message": None, "unknown_key": 1, "drift": None}), 1.0))


def quick_rows(path: Path) -> list[dict[str, Any]]:
    state = QuickState(str(path))
    statuses, pauses = state.statuses(), state.pauses()
    pending: dict[str, list[dict[str, object]]] = {}
    for p in state.pending_plans():
        pending.setdefault(p["target"], []).append(statusrow.held_plan_row(p["target"], p["plan_id"], p["revision"],
                                                                           p["reason"], p["created_at"]))
    return [statusrow.status_row(t.name, t.kind, t.source, t.path,
                                 statusrow.normalise(statuses[t.name]) if t.name in statuses else None,
                                 pauses.get(t.name), pending.get(t.name, [])) for t in TARGETS]


def test_the_quick_reader_reads_what_the_store_wrote(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    fill(store)
    expected = views.status_rows(SimpleNamespace(targets=TARGETS), store)  # type: ignore[arg-type]
    assert quick_rows(tmp_path / "state.db") == expected
    state = QuickState(str(tmp_path / "state.db"))
    for args in [(None, None, None, None), (0.0, time.time() + 1, "plain", ("apply",)),
                 (None, None, None, ("drift-detected", "pause"))]:
        assert [e.to_dict() for e in state.audit(*args)] == [e.to_dict() for e in store.audit_entries(*args)]
    assert render.audit_json(state.audit(None, None, None, None)) == render.audit_json(store.audit_entries())


def test_a_writer_in_the_middle_of_a_transaction_neither_blocks_the_reader_nor_shows_it_half_done(
        tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    fill(store)
    before = quick_rows(tmp_path / "state.db")
    started = time.monotonic()
    with store.batch():  # the write lock is held until the block ends
        store.save_status(TargetStatus("plain", "files", SyncStatus.OUT_OF_SYNC))
        store.pause("plain", "half", "carol", None)
        assert quick_rows(tmp_path / "state.db") == before
    assert time.monotonic() - started < 5
    after = quick_rows(tmp_path / "state.db")
    assert after[1]["sync"] == "OutOfSync" and after[1]["paused"]["reason"] == "half"


def test_the_quick_reader_reads_a_database_migrated_from_an_old_version(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # what setpoint wrote at schema 3, before secret paths and replicas
        for script in SQLITE_MIGRATIONS[:3]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 3")
        conn.execute("INSERT INTO audit (time, target, action, details) VALUES (1.5, 'plain', 'apply', NULL)")
        conn.execute("INSERT INTO target_state VALUES ('plain', 'files', '{\"sync\": \"Synced\"}', 1.0)")
    with pytest.raises(Unreadable):
        QuickState(str(path))  # not at this version's schema: the full command migrates it
    store = StateStore(path)
    fill(store)
    assert quick_rows(path) == views.status_rows(SimpleNamespace(targets=TARGETS), store)  # type: ignore[arg-type]
    assert [e.to_dict() for e in QuickState(str(path)).audit(None, None, None, None)] == \
        [e.to_dict() for e in store.audit_entries()]


def test_the_schema_names_are_the_stores() -> None:
    assert len(SQLITE_MIGRATIONS) == stateschema.SCHEMA_VERSION
    assert tuple(AuditEntry.__dataclass_fields__) == stateschema.AUDIT_COLUMNS
    assert tuple(HeldPlan.__dataclass_fields__) == stateschema.HELD_PLAN_COLUMNS
    assert tuple(Pause.__dataclass_fields__) == stateschema.PAUSE_COLUMNS
    assert quick.AUDIT_ACTIONS == {a.value for a in AuditAction}
    assert statusrow.SYNC_VALUES == tuple(s.value for s in SyncStatus)
    assert statusrow.HEALTH_VALUES == tuple(h.value for h in HealthStatus)
    with pytest.raises(RuntimeError, match="migrations"):
        stateschema.check_records(stateschema.SCHEMA_VERSION + 1, {})
    with pytest.raises(RuntimeError, match="audit"):
        stateschema.check_records(stateschema.SCHEMA_VERSION, {"audit": ("id", "time")})


def test_the_store_refuses_a_database_without_the_named_columns(tmp_path: Path) -> None:
    from setpoint.errors import StateError

    StateStore(tmp_path / "state.db").close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("ALTER TABLE audit DROP COLUMN actor")
    with pytest.raises(StateError, match="audit.actor"):
        StateStore(tmp_path / "state.db")


# ------------------------------------------------------------------ what replaces a regular expression

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def regex_escape_controls(value: object) -> str:
    named = {"\n": "\\n", "\r": "\\r"}

    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        code = ord(char)
        if char in named:
            return named[char]
        return f"\\x{code & 0xff:02x}" if 0xDC80 <= code <= 0xDCFF or code <= 0xFF else f"\\u{code:04x}"
    return _CONTROL.sub(escaped, str(value))


def regex_escape(text: str) -> str:
    text = _ESCAPE.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


def regex_strip(markup: str) -> str:
    out, position = [], 0
    for match in _TAG.finditer(markup):
        full, escapes, _tag = match.groups()
        start, end = match.span()
        if start > position:
            out.append(markup[position:start].replace("\\[", "["))
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            out.append("\\" * backslashes)
            if escaped:
                out.append(full[len(escapes):])
        position = end
    if position < len(markup):
        out.append(markup[position:].replace("\\[", "["))
    return "".join(out)


def random_texts(alphabet: str, count: int = 20000) -> list[str]:
    rng = random.Random(15013)
    return [alphabet[:0].join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(count)]


def test_control_characters_are_escaped_as_the_regular_expression_did() -> None:
    alphabet = "a \t\n\r\x1b\x7f\x85\x9f\xa0\u2028\u2029\ud800\udc80\udcff\U0001f600é"
    for text in [*random_texts(alphabet), "".join(chr(c) for c in range(0x3000))]:
        assert escape_controls(text) == regex_escape_controls(text), repr(text)


def test_markup_is_escaped_and_stripped_as_the_regular_expressions_did() -> None:
    for text in random_texts("ab[]\\/#@ Z"):
        assert render.escape(text) == regex_escape(text), repr(text)
        assert render.strip(text) == regex_strip(text), repr(text)
        assert render.strip(render.plain(text)) == regex_strip(regex_escape(text)), repr(text)


def test_durations_parse_as_the_regular_expression_did() -> None:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    part = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

    def regex_parse(text: str) -> float | None:
        text = text.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        pos, total = 0, 0.0
        for match in part.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * units[match.group(2)]
            pos = match.end()
        return None if pos != len(text) or not text else total

    for text in random_texts("12.msMhdwx \u0663"):
        expected = regex_parse(text)
        try:
            got: float | None = parse_duration(text)
        except ValueError:
            got = None
        assert got == expected or (expected is not None and expected > 10 * 365 * 86400 and got is None), repr(text)


@pytest.mark.parametrize("text", ['{"a": [1, 2.5, -3e10, null, true, false, "x\\u2028\\ud800"]}', "[]", '"s"',
                                  "NaN", '{"a": Infinity}', " {} ", "{} x", "{", "", '{"a": 1,}', "1e999"])
def test_json_columns_parse_as_json_loads_parses_them(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(ValueError) as caught:
            loads(text)
        assert str(caught.value) == str(exc)
        return
    assert repr(loads(text)) == repr(expected)
