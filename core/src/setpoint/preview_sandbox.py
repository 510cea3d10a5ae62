"""A preview's own drivers: each previewed target gets a fresh driver instance over a private copy
of the target's driver folder and memory, so nothing a preview does (a Terraform ``plan`` that
re-initialises its working dir, a driver that remembers a digest, an expired lock file) can reach
the driver the reconciler uses, its working dir or the state store.

Copies live in ``<state_dir>/preview/<random>/`` (mode 0700: a Terraform working dir holds local
state with secrets in clear). The folder is ``flock``-ed through its ``.lock`` file for as long
as the preview runs; a folder whose lock nobody holds and that is older than
:data:`STALE_AFTER` seconds was left by a preview that crashed, and the next preview removes it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from setpoint.api import TargetMemory
from setpoint.config import validate_block
from setpoint.engine import Engine
from setpoint.engine.runner import TargetRunner
from setpoint.errors import ConfigError
from setpoint.secrets import safe_error

log = logging.getLogger("setpoint.preview")

#: An unlocked scratch folder older than this (seconds) belongs to a preview that died.
STALE_AFTER = 60.0
#: How long a preview waits for a running reconcile of the target before copying its folder.
COPY_LOCK_TIMEOUT = 600.0
LOCK_NAME = ".lock"


class PreviewMemory(TargetMemory):
    """The target's memory as the store holds it now; writes stay in this object and vanish with it."""

    def __init__(self, encoded: dict[str, str]) -> None:
        super().__init__()
        self._values.update(encoded)


def sweep(root: Path, stale_after: float = STALE_AFTER, now: float | None = None) -> list[Path]:
    """Remove scratch folders of crashed previews (unlocked, older than ``stale_after``); returns them."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    now = time.time() if now is None else now
    for folder in root.iterdir():
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            age = now - folder.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < stale_after:
            continue  # young: its preview may be between creating the folder and locking it
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running preview holds it
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            log.info("removed the scratch folder of a preview that did not finish: %s", folder.name)
        finally:
            os.close(fd)
    return removed


class Sandbox:
    """One preview's scratch folder and the private runners built in it (use as a context manager)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.root = engine.state_dir / "preview"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        sweep(self.root)
        self.dir = Path(tempfile.mkdtemp(prefix="p-", dir=self.root))  # 0700
        self._fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._share_plugin_caches()
        self.runners: dict[str, TargetRunner] = {}

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _share_plugin_caches(self) -> None:
        """Drivers find shared download caches next to ``targets/`` (``terraform-plugin-cache``):
        link them so a preview does not download providers again. Only caches: never the store."""
        for entry in self.engine.state_dir.iterdir():
            if entry.name.endswith("-plugin-cache") and entry.is_dir():
                (self.dir / entry.name).symlink_to(entry, target_is_directory=True)

    def runner(self, name: str) -> TargetRunner:
        """A runner of target ``name`` with its own driver over a copy of the live one's folder."""
        if name in self.runners:
            return self.runners[name]
        engine = self.engine
        real = engine.runner(name)
        target = real.target
        runner = TargetRunner(engine.config, target)
        runner.watched_paths = list(real.watched_paths)
        runner.decryptors = engine.decryptors_for(real)
        self.runners[name] = runner
        if real.driver is None:
            runner.driver_error = real.driver_error
            return runner
        # under the target's run lock: the copy is of a folder and memory no apply is halfway through
        with real.exclusive(engine.state_dir / "locks", COPY_LOCK_TIMEOUT):
            source = engine.state_dir / "targets" / name
            if source.is_dir():
                shutil.copytree(source, self.dir / "targets" / name, symlinks=True,
                                ignore=shutil.ignore_patterns(".terraform.tfstate.lock.info"))
            memory = PreviewMemory(engine.store.memory(name))
        try:
            cls = engine.registry.driver_class(target.kind)
            settings: Any = real.driver.context.settings
            if settings is None:
                settings, problems = validate_block(cls.Settings, target.settings_block, str(engine.config.file), {},
                                                    ("targets", target.name, target.kind))
                if problems:
                    raise ConfigError("; ".join(f"{p.path}: {p.message}" for p in problems))
            runner.create_driver(cls, settings, self.dir, lambda reason: None,  # a preview never wakes a target
                                 lambda t=target: engine.dependency_outputs(t),
                                 real.driver.context.check_health, memory,
                                 lambda message: None,  # nor writes a status message
                                 stands_for=engine.state_dir / "targets" / name,
                                 # the engine's shared watches (a preview driver detaches on close) and
                                 # its instance id: the objects it renders carry the same labels
                                 shared=engine.shared, instance=engine.instance_id)
        except Exception as exc:  # noqa: BLE001 - reported as this target's preview error
            runner.driver_error = safe_error(exc)
        return runner

    def close(self) -> None:
        for runner in self.runners.values():
            if runner.driver is not None:
                try:
                    runner.driver.close()
                except Exception:  # noqa: BLE001
                    log.exception("closing the preview driver of %s failed", runner.name)
        self.runners.clear()
        if self._fd >= 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._fd)
            self._fd = -1
