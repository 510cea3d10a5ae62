"""Dashboard sessions live in the state store (issue 20 items 3 and 4): they survive a restart, every
replica on one PostgreSQL state knows them, the store keeps only hashes, and a session ends when
the token that opened it is removed, changed or moved to the read-only list. Failed logins are
limited per client address (429 with Retry-After) and every failed or refused one is audited."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opshelpers import serving

from setpoint.opsconfig import ServerConfig
from setpoint.server.auth import TokenAuth
from setpoint.server.dashboard.session import PREFIX, Sessions
from setpoint.server.dashboard.throttle import LIMIT, LoginThrottle
from setpoint.state import StateStore
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

ADMIN_TOKEN = "admin-tok-fedcba9876543210"
OTHER_TOKEN = "admin-tok-0000000000000000-new"


def auth_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admin: str | None, status: str | None = None) -> TokenAuth:
    tokens: dict[str, Any] = {}
    if admin is not None:
        monkeypatch.setenv("T_ADMIN", admin)
        tokens["admin_tokens"] = [{"name": "alice", "env": "T_ADMIN"}]
    if status is not None:
        monkeypatch.setenv("T_STATUS", status)
        tokens["status_tokens"] = [{"name": "alice", "env": "T_STATUS"}]
    return TokenAuth.from_config(ServerConfig(listen="127.0.0.1:0", **tokens), tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "state" / "state.db")
    return str(request.getfixturevalue("pg_state_url"))


def test_sessions_are_shared_through_the_store_hashed_and_revoked_with_their_token(
        location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = StateStore(location), StateStore(location)  # two replicas (or a restart) on one state
    try:
        auth = auth_with(tmp_path, monkeypatch, ADMIN_TOKEN)
        caller = auth.identify(f"Bearer {ADMIN_TOKEN}")
        assert caller is not None
        session = Sessions(one, auth).create(caller, ADMIN_TOKEN)
        seen = Sessions(two, auth).get(session.id)
        assert seen is not None and seen.caller == caller and seen.csrf == session.csrf
        stored = two.meta_items(PREFIX)
        assert len(stored) == 1
        for key, value in stored.items():  # only hashes: the id (and token) cannot be read back
            for clear in (session.id, session.csrf, ADMIN_TOKEN):
                assert clear not in key and clear.encode() not in value
        assert Sessions(two, auth).get(session.id + "x") is None and Sessions(two, auth).get("") is None

        # the token changed in the configuration (a reload builds a new TokenAuth): revoked, and removed
        assert Sessions(two, auth_with(tmp_path, monkeypatch, OTHER_TOKEN)).get(session.id) is None
        assert one.meta_items(PREFIX) == {} and Sessions(one, auth).get(session.id) is None
        # removed, or moved to the read-only list under the same name: revoked too
        for changed in (auth_with(tmp_path, monkeypatch, None, "status-tok-0123456789abcdef"),
                        auth_with(tmp_path, monkeypatch, None, ADMIN_TOKEN)):
            again = Sessions(one, auth).create(caller, ADMIN_TOKEN)
            assert Sessions(two, changed).get(again.id) is None
        # logout on one replica ends it on the other; an expired session is gone
        third = Sessions(one, auth).create(caller, ADMIN_TOKEN)
        Sessions(two, auth).end(third.id)
        assert Sessions(one, auth).get(third.id) is None
        short = Sessions(one, auth, lifetime=0.2).create(caller, ADMIN_TOKEN)
        time.sleep(0.3)
        assert Sessions(two, auth).get(short.id) is None
    finally:
        one.close()
        two.close()


def test_failed_logins_are_limited_per_address() -> None:
    throttle = LoginThrottle()
    for _ in range(LIMIT):
        assert throttle.retry_after("10.0.0.1", now=100.0) == 0
        throttle.failed("10.0.0.1", now=100.0)
    assert throttle.retry_after("10.0.0.1", now=100.0) == 60
    assert throttle.retry_after("10.0.0.1", now=130.0) == 30
    assert throttle.retry_after("10.0.0.2", now=100.0) == 0, "per client address"
    assert throttle.retry_after("10.0.0.1", now=160.0) == 0, "a minute later it may try again"


@pytest.fixture
def site(tmp_path: Path, git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> Any:
    git_repo.commit({"app/a.yaml": yaml.safe_dump([{"kind": "Deployment", "name": "a"}])}, "v1")
    monkeypatch.setenv("T_ADMIN", ADMIN_TOKEN)

    def start() -> Any:
        server = {"listen": "127.0.0.1:0", "admin_tokens": [{"name": "alice", "env": "T_ADMIN"}]}
        config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                              server=server)
        return make_engine(config, FakePlugin())

    return start


def test_a_session_survives_a_restart_and_ends_when_its_token_changes(site: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    engine = site()
    with serving(engine, None) as base:
        login = httpx.post(base + "/ui/login", data={"token": ADMIN_TOKEN})
        assert login.status_code == 303
        cookie = login.cookies["setpoint_session"]
    engine.close()

    engine = site()  # `setpoint run` restarted on the same state
    with serving(engine, None) as base:
        page = httpx.get(base + "/ui/targets/app", cookies={"setpoint_session": cookie}, follow_redirects=False)
        assert page.status_code == 200 and "Log out" in page.text
    engine.close()

    monkeypatch.setenv("T_ADMIN", OTHER_TOKEN)  # the token is rotated and the configuration reloaded
    engine = site()
    with serving(engine, None) as base:
        page = httpx.get(base + "/ui/targets/app", cookies={"setpoint_session": cookie}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
        events = httpx.get(base + "/ui/events", cookies={"setpoint_session": cookie})
        assert events.status_code == 401
    engine.close()


def test_too_many_failed_logins_get_429_and_every_one_is_audited(site: Any) -> None:
    engine = site()
    with serving(engine, None) as base:
        guesses = [f"guess-{i}-0123456789abcdef" for i in range(LIMIT + 2)]
        codes = [httpx.post(base + "/ui/login", data={"token": g}).status_code for g in guesses[:LIMIT]]
        assert codes == [401] * LIMIT
        refused = httpx.post(base + "/ui/login", data={"token": guesses[LIMIT]})
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
        # even the right token waits: the limit is not a way to test guesses
        right = httpx.post(base + "/ui/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
        assert right.status_code == 429 and "set-cookie" not in right.headers
        entries = [e for e in engine.store.audit_entries(actions=("api",)) if e.details.get("call") == "login"]
        assert [e.result for e in entries] == ["failed"] * LIMIT + ["refused", "refused"]
        assert all(e.details["remote"] == "127.0.0.1" and e.actor == "anonymous@127.0.0.1" for e in entries)
        dump = repr([(e.details, e.actor) for e in entries])
        for token in (*guesses, ADMIN_TOKEN):
            assert token not in dump
    engine.close()


def test_the_live_update_stream_ends_with_its_session(site: Any) -> None:
    """A stream opened before a logout (or a revocation) tells that session nothing more."""
    import threading

    engine = site()
    with serving(engine, None) as base:
        client = httpx.Client(base_url=base)
        assert client.post("/ui/login", data={"token": ADMIN_TOKEN}).status_code == 303
        cookie = client.cookies["setpoint_session"]
        lines: list[str] = []
        ended = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", base + "/ui/events", cookies={"setpoint_session": cookie}, timeout=10) as r:
                for line in r.iter_lines():
                    lines.append(line)
            ended.set()

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        time.sleep(0.8)
        Sessions(engine.store, TokenAuth.from_config(engine.config.server, engine.config.base_dir)).end(cookie)
        engine.pause("app", "window", "alice", None)  # a change the stream would announce
        assert ended.wait(5), "the stream goes on after its session ended"
        assert not any(line.startswith("event: change") for line in lines), lines
    engine.close()
