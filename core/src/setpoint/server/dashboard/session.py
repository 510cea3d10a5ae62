"""Browser sessions of the dashboard: a token typed once becomes a session cookie.

The cookie holds only a random session id (the token never goes back to the browser). Sessions
live in the state store (its ``meta`` table, keys ``ui-session:<sha256 of the id>``), so they
survive a restart of ``setpoint run`` and every replica on one PostgreSQL state knows them; the
store holds only a hash of the id, so whoever reads the database cannot ride a session.

A session is bound to the token that opened it: the record keeps ``sha256(id + sha256(token))``.
Each request recomputes that from the tokens configured now, so a token removed from or changed in
the configuration (a SIGHUP reload builds a new :class:`TokenAuth`) ends every session it opened,
and so does moving the token from the admin to the status list. The CSRF token is derived from the
id (an HMAC), so it need not be stored and does not reveal the id. The cookie is HttpOnly and
SameSite=Strict always, and Secure when the server speaks TLS (a Secure cookie would never come
back over plain HTTP).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from setpoint.server.auth import Caller, TokenAuth

if TYPE_CHECKING:
    from setpoint.state import StateStore

COOKIE = "setpoint_session"
#: A session ends this long after login, whatever happens in between.
LIFETIME = 12 * 3600.0
#: Bounds the rows logins can leave behind; the sessions that end soonest go first.
MAX_SESSIONS = 1000
PREFIX = "ui-session:"


@dataclass(frozen=True)
class Session:
    id: str
    caller: Caller
    expires: float

    @property
    def csrf(self) -> str:
        return hmac.new(self.id.encode(), b"setpoint-csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), str(presented).encode())


def _key(session_id: str) -> str:
    return PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def _binding(session_id: str, token_digest: bytes) -> str:
    return hashlib.sha256(session_id.encode() + token_digest).hexdigest()


class Sessions:
    def __init__(self, store: StateStore, auth: TokenAuth, lifetime: float = LIFETIME) -> None:
        self.store = store
        self.auth = auth
        self.lifetime = lifetime

    def create(self, caller: Caller, token: str) -> Session:
        """A new session for ``caller``, who presented ``token`` (kept only as the binding hash)."""
        session = Session(secrets.token_urlsafe(32), caller, time.time() + self.lifetime)
        self._make_room()
        record = {"name": caller.name, "role": caller.role, "expires": session.expires,
                  "bind": _binding(session.id, TokenAuth.digest(token))}
        self.store.set_meta(_key(session.id), json.dumps(record).encode())
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this cookie value, or None (unknown, expired, or its token is gone)."""
        if not session_id or len(session_id) > 200:
            return None
        key = _key(session_id)
        raw = self.store.get_meta(key)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            caller, expires, bind = Caller(str(record["name"]), str(record["role"])), float(record["expires"]), \
                str(record["bind"])
        except (ValueError, KeyError, TypeError):
            self.store.delete_meta(key)
            return None
        digest = self.auth.digest_of(caller)
        if expires <= time.time() or digest is None or \
                not hmac.compare_digest(_binding(session_id, digest), bind):
            self.store.delete_meta(key)  # expired, or its token was removed or changed: revoked
            return None
        return Session(session_id, caller, expires)

    def end(self, session_id: str | None) -> None:
        if session_id:
            self.store.delete_meta(_key(session_id))

    def _make_room(self) -> None:
        now = time.time()
        rows = []
        for key, raw in self.store.meta_items(PREFIX).items():
            try:
                expires = float(json.loads(raw)["expires"])
            except (ValueError, KeyError, TypeError):
                expires = 0.0
            if expires <= now:
                self.store.delete_meta(key)
            else:
                rows.append((expires, key))
        rows.sort()
        for _expires, key in rows[:max(0, len(rows) - MAX_SESSIONS + 1)]:
            self.store.delete_meta(key)


def cookie_header(session: Session | None, secure: bool) -> str:
    """The Set-Cookie value for ``session`` (None: delete the cookie)."""
    value, max_age = (session.id, int(session.expires - time.time())) if session else ("", 0)
    parts = [f"{COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
