"""Reloading setpoint.yaml under ``setpoint run`` on SIGHUP (docs/operations.md, "Stopping and reloading").

The new file is checked first, the way ``setpoint validate`` checks it (every plugin's settings
blocks and decryptors), and so is what it points to that the daemon reads at start: the status API
tokens, the webhook secrets and the notifiers. A file with problems changes nothing: the daemon keeps
reconciling with the configuration it runs, logs the whole report once, counts the failure
(``setpoint_config_reloads_total{result="failed"}``), records a ``config-reload`` audit entry and
leaves the error where ``setpoint status`` and ``/readyz`` show it. A good file replaces the
running engine between reconciles: the scheduler stops taking work, the reconciles in flight finish,
and a new engine starts with the new targets (a removed target is only no longer managed: nothing
of it is pruned).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from setpoint.secrets import scrub
from setpoint.state import stateschema

if TYPE_CHECKING:
    from setpoint.config import Config
    from setpoint.state import StateStore

log = logging.getLogger("setpoint")

#: The state store's meta key holding the last reload's outcome (read by ``setpoint status``).
META_KEY = stateschema.CONFIG_RELOAD_META


@dataclass
class ReloadStatus:
    """What every generation of the running engine shares: reload counts and the last outcome."""

    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0})
    last_result: str | None = None
    last_at: float | None = None
    #: The problems of the last rejected file ([] after a good reload).
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"result": self.last_result, "at": self.last_at, "problems": self.problems}


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def check_new_config(path: Path, running: Config) -> tuple[Config | None, list[str]]:
    """The new configuration, or the list of problems that keep the running one in force."""
    from setpoint.plugins import get_plugin_manager
    from setpoint.validation import check_config

    registry = get_plugin_manager()  # every installed plugin: a new target may use a kind not loaded yet
    config, found = check_config(path, registry)
    problems = [str(p) for p in found]
    if config is None or problems:
        return None, problems or ["the file could not be read"]
    if config.state_path != running.state_path:
        problems.append(f"{path}: state: the new file moves the state from {running.state_path} to "
                        f"{config.state_path}; a running setpoint keeps its state store, so restart it to move")
    problems.extend(_operations_problems(config, registry))
    return (None, problems) if problems else (config, [])


def _operations_problems(config: Config, registry: Any) -> list[str]:
    """What ``setpoint run`` reads besides the file at start (tokens, webhook secrets, notifiers)."""
    from setpoint.builtin.notify.setup import build_routes
    from setpoint.errors import ConfigError
    from setpoint.opsconfig import read_credential
    from setpoint.server.auth import TokenAuth

    problems: list[str] = []
    if config.server.enabled:
        try:
            TokenAuth.from_config(config.server, config.base_dir)
        except ConfigError as exc:
            problems.append(scrub(str(exc)))
        hooks = config.server.webhooks
        for provider in ("github", "gitlab", "gitea", "bitbucket", "generic"):
            block = getattr(hooks, provider)
            if block is not None:
                try:
                    read_credential(block.secret_file, block.secret_env, config.base_dir)
                except ValueError as exc:
                    problems.append(f"server.webhooks.{provider}: {scrub(str(exc))}")
        for provider in ("github", "gitlab"):
            poster = getattr(hooks.previews, provider) if hooks.previews is not None else None
            if poster is not None:
                try:
                    read_credential(poster.token_file, poster.token_env, config.base_dir)
                except ValueError as exc:
                    problems.append(f"server.webhooks.previews.{provider}: {scrub(str(exc))}")
    try:
        build_routes(config, registry)
    except ConfigError as exc:
        problems.append(scrub(str(exc)))
    return problems


def describe_changes(old: Config, new: Config) -> dict[str, Any]:
    """Which targets the reload adds, removes and changes, and which other sections changed."""
    before = {t.name: t for t in old.targets}
    after = {t.name: t for t in new.targets}
    sections = [name for name in ("sources", "defaults", "secrets", "server", "notifications", "lifecycle")
                if getattr(old, name) != getattr(new, name)]
    return {"added": [n for n in after if n not in before], "removed": [n for n in before if n not in after],
            "changed": [n for n in after if n in before and after[n] != before[n]], "sections": sections}


class Reloader:
    """Takes SIGHUP: checks the file on a thread of its own (never in the signal handler), then either
    reports the problems or hands the new configuration to ``setpoint run``'s loop (``apply``)."""

    def __init__(self, path: Path, status: ReloadStatus) -> None:
        self.path = path
        self.status = status
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        #: A checked new configuration the loop has not started yet.
        self.pending: Config | None = None
        #: SIGHUP arrived while :attr:`pending` was being started: check the file once more after it.
        self.again = False

    def request(self, running: Config, store: StateStore, apply: Any, keep_running: Any) -> None:
        """SIGHUP arrived. ``apply()`` stops the scheduler so the loop builds the new engine from
        :attr:`pending`; ``keep_running()`` is called when the file is rejected (poll and reconcile now)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True  # a second SIGHUP while checking: check once more afterwards
                return
            self._thread = threading.Thread(target=self._check, args=(running, store, apply, keep_running),
                                            name="setpoint-reload", daemon=True)
            self._thread.start()

    def _check(self, running: Config, store: StateStore, apply: Any, keep_running: Any) -> None:
        while True:
            log.info("received SIGHUP: reading %s", self.path)
            try:
                config, problems = check_new_config(self.path, running)
            except Exception as exc:  # noqa: BLE001 - a bug in a check must not kill the daemon
                log.exception("checking the new configuration failed")
                config, problems = None, [f"checking the file failed: {scrub(str(exc))}"]
            if config is None:
                self.rejected(store, problems)
                keep_running()
            else:
                self.pending = config
                apply()
            with self._lock:
                again, self._again = self._again, False
            if not again:
                return
            if config is not None:
                self.again = True  # the loop checks the file once more after starting this one
                return

    def rejected(self, store: StateStore, problems: list[str]) -> None:
        """Keep the running configuration: log the whole report once, count it, record it."""
        self._finish(store, "failed", problems, {"file": str(self.path), "digest": file_digest(self.path),
                                                 "problems": problems})
        log.error("the new %s was NOT applied; setpoint keeps running the previous configuration. "
                  "%d problem(s):\n  %s\nFix the file (setpoint validate shows the same report) and send SIGHUP "
                  "again (systemctl reload setpoint)", self.path, len(problems), "\n  ".join(problems))

    def applied(self, store: StateStore, changes: dict[str, Any]) -> None:
        self._finish(store, "ok", [], {"file": str(self.path), "digest": file_digest(self.path), **changes})
        parts = [f"{what}: {', '.join(changes[what])}" for what in ("added", "removed", "changed") if changes[what]]
        if changes["sections"]:
            parts.append(f"sections changed: {', '.join(changes['sections'])}")
        log.info("applied the new %s (%s)", self.path, "; ".join(parts) or "no changes")

    def _finish(self, store: StateStore, result: str, problems: list[str], details: dict[str, Any]) -> None:
        from setpoint.state import AuditAction

        self.status.counts[result] = self.status.counts.get(result, 0) + 1
        self.status.last_result, self.status.last_at, self.status.problems = result, time.time(), problems
        try:
            store.audit(AuditAction.CONFIG_RELOAD, result=result, actor="setpoint", trigger="sighup", details=details)
            store.set_meta(META_KEY, json.dumps(self.status.to_json()).encode())
        except Exception:  # noqa: BLE001 - the reload's outcome is in the log either way
            log.exception("could not record the configuration reload")


def mark_started(store: StateStore) -> None:
    """A fresh ``setpoint run`` runs the file as it is now: an old rejected reload no longer applies."""
    store.set_meta(META_KEY, json.dumps({"result": "started", "at": time.time(), "problems": []}).encode())


def read_last(store: StateStore) -> dict[str, Any] | None:
    raw = store.get_meta(META_KEY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
