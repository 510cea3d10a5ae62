"""Browser sessions of the dashboard: a token typed once becomes a session cookie.

The cookie holds only a random session id (the token never goes back to the browser); the
session remembers the caller and its own CSRF token, which every state-changing form must echo.
Sessions live in the memory of the ``setpoint run`` process: a restart logs everybody out, which
is the safe direction. The cookie is HttpOnly and SameSite=Strict always, and Secure when the
server speaks TLS (a Secure cookie would never come back over plain HTTP).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from setpoint.server.auth import Caller

COOKIE = "setpoint_session"
#: A session ends this long after login, whatever happens in between.
LIFETIME = 12 * 3600.0
#: Bounds the memory a flood of logins can take; the oldest sessions go first.
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    id: str
    caller: Caller
    csrf: str
    expires: float

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), str(presented).encode())


class Sessions:
    def __init__(self, lifetime: float = LIFETIME) -> None:
        self.lifetime = lifetime
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, caller: Caller) -> Session:
        session = Session(secrets.token_urlsafe(32), caller, secrets.token_urlsafe(32), time.time() + self.lifetime)
        with self._lock:
            self._drop_expired()
            while len(self._by_id) >= MAX_SESSIONS:
                oldest = min(self._by_id.values(), key=lambda s: s.expires)
                del self._by_id[oldest.id]
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is not None and session.expires <= time.time():
                del self._by_id[session_id]
                return None
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def _drop_expired(self) -> None:
        now = time.time()
        for sid in [sid for sid, s in self._by_id.items() if s.expires <= now]:
            del self._by_id[sid]


def cookie_header(session: Session | None, secure: bool) -> str:
    """The Set-Cookie value for ``session`` (None: delete the cookie)."""
    value, max_age = (session.id, int(session.expires - time.time())) if session else ("", 0)
    parts = [f"{COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
