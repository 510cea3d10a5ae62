"""Failed logins per client address: at most :data:`LIMIT` in a sliding :data:`WINDOW`.

Kept in the memory of each ``setpoint run`` process (a guessing client talks to one replica per
connection; with N replicas behind one address it gets at most N times the limit). Tokens are at
least 16 characters, so the limit is not what keeps them safe; it keeps a guessing loop from
filling the audit log and the CPU. Bounded: the addresses seen longest ago are forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

LIMIT = 5
WINDOW = 60.0
MAX_ADDRESSES = 10_000


class LoginThrottle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str, now: float | None = None) -> int:
        """0 when ``address`` may try to log in now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent(address, now)
            if len(times) < self.limit:
                return 0
            return max(1, int(times[0] + self.window - now + 0.999))

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(address, now).append(now)
            self._failures.move_to_end(address)
            while len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times
