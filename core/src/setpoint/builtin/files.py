"""The built-in ``files`` target: a directory of files in Git, reconciled into a local directory.

Desired state is every file under the target's path (content and mode); live state is the same
paths under ``destination``. A file edited, deleted or added by hand is drift. Writes are atomic
(temp file, fsync, rename, fsync of the directory) and never follow a symbolic link the destination
holds (see :mod:`setpoint.builtin.dirfd`). Encrypted files (SOPS) are written in clear, 0600 (0700
if executable) unless ``file_mode`` says otherwise, and compare as secrets.
It is registered through the same hook as any external plugin.
"""

from __future__ import annotations

import hashlib
import stat
import threading
import time
import weakref
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from setpoint import hookimpl
from setpoint.api import (
    Action,
    ApplyResult,
    Desired,
    Health,
    HealthStatus,
    Live,
    Plan,
    Resource,
    SourceTree,
    TargetDriver,
)
from setpoint.builtin.dirfd import Tree
from setpoint.errors import RenderError
from setpoint.secrets import Secret

#: Text files up to this size keep their content in the compared body, so diffs show the lines.
INLINE_LIMIT = 16 * 1024


class FilesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    destination: Path = Field(description="Directory the files are written to (absolute, or relative to setpoint.yaml)")
    #: Mode for every file, e.g. "0640"; by default the mode recorded in Git (0644, or 0755 if executable).
    file_mode: str | None = None
    #: Files in Git to leave out (glob patterns relative to the target path).
    exclude: tuple[str, ...] = ()
    #: How often the destination is checked for manual changes between reconciles, in seconds.
    watch_interval: float = Field(0.25, gt=0, le=60)

    @field_validator("file_mode")
    @classmethod
    def _octal(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            mode = int(value, 8)
        except ValueError:
            raise ValueError("file_mode must be octal, like \"0644\"") from None
        if mode > 0o7777:
            raise ValueError("file_mode must be at most 07777")
        return f"{mode:04o}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _body(content: bytes | Secret[bytes], mode: int) -> dict[str, Any]:
    if isinstance(content, Secret):
        return {"mode": f"{mode:04o}", "content": content}
    if len(content) <= INLINE_LIMIT:
        try:
            return {"mode": f"{mode:04o}", "content": content.decode()}
        except UnicodeDecodeError:
            pass
    return {"mode": f"{mode:04o}", "sha256": _digest(content), "size": len(content)}


class FilesTarget(TargetDriver):
    kind = "files"
    Settings = FilesSettings
    partial_apply = True  # each file is written or removed on its own
    live_digest_is_applied_digest = True  # the body of a file is its mode and content, both sides
    local_work = True  # stat, read, write and fsync in a local folder: threads only add lock handoffs

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.destination = context.resolve(self.settings.destination)
        self._secret_keys: set[str] = set()
        self._watched: dict[str, tuple[int, int, int, int] | None] = {}

    # ------------------------------------------------------------------ render

    def render(self, tree: SourceTree) -> Desired:
        resources = []
        secret_keys = set()
        sources: dict[str, bytes] = {}  # clear bytes of plain files, for apply
        for relpath in tree.files():
            if any(Path(relpath).match(pattern) for pattern in self.settings.exclude):
                continue
            source = tree.root / relpath
            if source.is_symlink():
                raise RenderError(f"{relpath} is a symbolic link; the files target writes regular files only")
            executable = bool(source.stat().st_mode & stat.S_IXUSR)
            encrypted = tree.is_encrypted(relpath)
            if self.settings.file_mode:
                mode = int(self.settings.file_mode, 8)
            elif encrypted:  # decrypted content is readable by its owner only
                mode = 0o700 if executable else 0o600
            else:
                mode = 0o755 if executable else 0o644
            content: bytes | Secret[bytes]
            if encrypted:
                content = tree.decrypted[relpath].plaintext
                secret_keys.add(relpath)
            else:
                content = sources[relpath] = tree.read_bytes(relpath)
            resources.append(Resource(relpath, "File", relpath, _body(content, mode)))
        self._secret_keys = secret_keys
        return Desired.of(resources, sources=sources)

    # ------------------------------------------------------------------ observe

    def _read(self, live: Tree, key: str) -> Resource | None:
        found = live.read(key)
        if found is None:
            return None
        info, data = found
        if data is None:
            return Resource(key, "File", key, {"type": "not a regular file"})
        content: bytes | Secret[bytes] = Secret(data, origin=key) if key in self._secret_keys else data
        return Resource(key, "File", key, _body(content, stat.S_IMODE(info.st_mode)))

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        # Every file in the destination: ones not from Git are reported (the core never removes them).
        keys = set(desired.resources) | set(managed)
        found: list[Resource] = []
        if self.destination.is_dir():
            with Tree(self.destination) as live:
                keys |= set(live.files())
                found = [r for r in (self._read(live, key) for key in sorted(keys)) if r is not None]
        self._watched = {key: _fingerprint(self.destination / key) for key in keys}
        return Live.of(found)

    # ------------------------------------------------------------------ apply

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        result = ApplyResult()
        with Tree(self.destination, create=True) as live:
            # Deletions first: a folder that Git turned into a file must be emptied before the write.
            for change in sorted(plan.changes, key=lambda c: c.action != Action.DELETE):
                try:
                    if change.action == Action.DELETE:
                        live.delete(change.key)
                    else:
                        want = desired.resources[change.key]
                        secret = want.body.get("content")
                        content = secret.reveal() if isinstance(secret, Secret) else desired.extra["sources"][change.key]
                        live.write(change.key, content, int(want.body["mode"], 8))
                    result.applied.append(change.key)
                except OSError as exc:
                    result.failed[change.key] = f"{exc.strerror or exc.__class__.__name__} ({change.key})"
            live.sync()
        self._watched = {key: _fingerprint(self.destination / key) for key in self._watched}
        return result

    def health(self, desired: Desired, live: Live) -> Health:
        missing = [k for k in desired.resources if k not in live.resources]
        if missing:
            return Health(HealthStatus.MISSING, f"missing: {', '.join(missing[:5])}")
        return Health(HealthStatus.HEALTHY)

    # ------------------------------------------------------------------ live-state events

    def start_watching(self) -> None:
        _Watcher.shared().add(self)

    def close(self) -> None:
        _Watcher.shared().remove(self)

    def _poll_changes(self) -> None:
        for key, seen in list(self._watched.items()):
            now = _fingerprint(self.destination / key)
            if now != seen:
                self._watched[key] = now
                self.context.trigger(f"event:file-changed:{key}")
                return


def _fingerprint(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = path.lstat()
    except OSError:  # gone, or a parent replaced by a file or a link loop: the reconcile sorts it out
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)


class _Watcher:
    """One thread stats the managed files of every ``files`` target in the process.

    A stat per file per tick is cheap (a few microseconds) and portable, and catches edits,
    deletions and mode changes within ``watch_interval``; a real event API would need a
    dependency or a platform-specific binding for no measurable gain at this scale.
    """

    _instance: _Watcher | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._targets: weakref.WeakSet[FilesTarget] = weakref.WeakSet()
        self._thread = threading.Thread(target=self._loop, name="setpoint-files-watch", daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> _Watcher:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def add(self, target: FilesTarget) -> None:
        self._targets.add(target)

    def remove(self, target: FilesTarget) -> None:
        self._targets.discard(target)

    def _loop(self) -> None:
        while True:
            interval = 0.25
            for target in list(self._targets):
                interval = min(interval, target.settings.watch_interval)
                try:
                    target._poll_changes()
                except Exception:  # noqa: BLE001, S112 - a vanished directory is seen at the next reconcile
                    continue
            time.sleep(interval)


@hookimpl
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    register(FilesTarget)
