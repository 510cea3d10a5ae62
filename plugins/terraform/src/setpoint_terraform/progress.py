"""Progress of a running apply, from terraform's ``-json`` UI stream.

Each resource-level event (``apply_start``, ``apply_progress``, ``apply_complete``,
``apply_errored``, provisioner start/end) is logged as it arrives, with terraform's own one-line
text, and the target's status message says how far the apply is ("applying plan ID: 2 of 5 done;
creating terraform_data.migrate (20s)"). Provisioner output is never logged (it may print secrets).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from setpoint.secrets import scrub

#: The status message is rewritten at most this often (seconds), and on every completed resource.
STATUS_EVERY = 1.0

_ING = {"create": "creating", "update": "updating", "delete": "destroying", "replace": "replacing",
        "read": "reading", "noop": "checking", "forget": "forgetting"}


class ApplyProgress:
    def __init__(self, plan_id: str, total: int, log: Callable[[str], None], publish: Callable[[str], None]) -> None:
        self.plan_id = plan_id
        self.total = total
        self.log = log
        self.publish = publish
        self.done = 0
        self.failed = 0
        self.running: dict[str, tuple[str, float]] = {}
        self._published_at = 0.0

    def __call__(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "")
        if not kind.startswith(("apply_", "provision_")):
            return
        hook = message.get("hook") or {}
        addr = str((hook.get("resource") or {}).get("addr") or "?")
        action = str(hook.get("action") or "")
        if kind == "apply_start":
            self.running[addr] = (action, time.monotonic())
        elif kind == "apply_complete":
            self.running.pop(addr, None)
            self.done += 1
        elif kind == "apply_errored":
            self.running.pop(addr, None)
            self.failed += 1
        if kind == "provision_progress":
            return  # provisioner output: may hold secrets
        self.log(scrub(str(message.get("@message") or f"{addr}: {kind}")))
        now = time.monotonic()
        if kind in ("apply_complete", "apply_errored") or now - self._published_at >= STATUS_EVERY:
            self._published_at = now
            self.publish(self.status())

    def status(self) -> str:
        text = f"applying plan {self.plan_id}: {self.done} of {self.total} done"
        if self.failed:
            text += f", {self.failed} failed"
        if self.running:
            addr, (action, since) = next(iter(self.running.items()))
            text += f"; {_ING.get(action, action or 'applying')} {addr} ({time.monotonic() - since:.0f}s)"
            if len(self.running) > 1:
                text += f" and {len(self.running) - 1} more"
        return scrub(text)
