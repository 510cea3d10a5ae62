"""One ``setpoint run`` per state folder.

Two daemons on one state would apply concurrently (repeated applies, older commits after newer
ones). The owner holds an exclusive ``flock`` on ``owner.lock`` in the state folder for its whole
life; the kernel releases it when the process ends, however it ends (SIGKILL included), so a crash
leaves no stale lock. The file names the owner (host, PID, since) for the refusal message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from setpoint.errors import StateError


class StateOwner:
    """Held by the daemon; :meth:`acquire` raises :class:`StateError` naming the current owner."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "owner.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _describe(os.read(fd, 4096))
            os.close(fd)
            raise StateError(
                f"the state in {self.path.parent} is already owned by another setpoint run ({owner}); "
                "one setpoint run per state: stop that one first, or give this one its own state "
                "(settings: state in setpoint.yaml)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _describe(raw: bytes) -> str:
    try:
        data = json.loads(raw or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(data["since"])))
        return f"host {data['host']}, pid {int(data['pid'])}, since {since}"
    except (ValueError, KeyError, TypeError):
        return "owner unknown"
