"""What ``setpoint status`` and ``audit`` need of a valid setpoint.yaml, cached so they can answer
without parsing YAML or building the pydantic models (docs/benchmarks.md, case 9).

Every full load of a valid file (any command) writes an entry: the resolved state path and each
target's name, kind, source and path. An entry is used only while it matches: the SHA-256 of the
file's bytes, its resolved path, setpoint's version and the configuration code's own files (a
change to the models invalidates it) must all be the same; anything else, or any doubt (unreadable,
not ours, writable by others, malformed), means the full load, which also rewrites the entry. An
invalid file never gets an entry, so its problems are always reported by the full load.

Entries live in ``$XDG_CACHE_HOME/setpoint/config/`` (``~/.cache``), one per configuration path,
in a 0700 folder as 0600 files. They hold no secret (setpoint.yaml holds none: credentials are
files and environment variables) but do hold target names and paths, so they stay private. The
state folder cannot hold them: where it is, is what the entry says.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint import __version__

FORMAT = 1
#: Entries kept (one per configuration path); test suites and demos create many paths.
MAX_ENTRIES = 64
#: The modules whose code decides what a valid file means: a change to any of them invalidates every entry.
_CODE = ("config.py", "opsconfig.py", "durations.py", "durationtype.py", "configcache.py")


@dataclass(frozen=True)
class CachedTarget:
    name: str
    kind: str
    source: str
    path: str


@dataclass(frozen=True)
class CachedConfig:
    """The part of a validated configuration that ``status`` and ``audit`` read."""

    state_path: Path
    targets: tuple[CachedTarget, ...]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "setpoint" / "config"


def _entry_path(config_file: Path) -> Path:
    return cache_dir() / (hashlib.sha256(str(config_file).encode()).hexdigest()[:32] + ".json")


def _code_fingerprint() -> list[Any]:
    here = Path(__file__).parent
    out: list[Any] = [__version__]
    for name in _CODE:
        try:
            st = os.stat(here / name)
            out.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([name, None])
    return out


def _key(config_file: Path, content: bytes) -> dict[str, Any]:
    return {"format": FORMAT, "file": str(config_file), "sha256": hashlib.sha256(content).hexdigest(),
            "code": _code_fingerprint()}


def _private(path: Path) -> bool:
    """Ours and writable by nobody else (a planted entry could name another state database)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def lookup(config_file: Path) -> CachedConfig | None:
    """The cached form of ``config_file`` if it matches the file as it is now, else None."""
    try:
        config_file = config_file.resolve()
        content = config_file.read_bytes()
        entry = _entry_path(config_file)
    except (OSError, RuntimeError):  # RuntimeError: no home folder to find the cache in
        return None
    if not (_private(entry.parent) and _private(entry)):
        return None
    try:
        data = json.loads(entry.read_text())
        if data["key"] != _key(config_file, content):
            return None
        targets = tuple(CachedTarget(str(t["name"]), str(t["kind"]), str(t["source"]), str(t["path"]))
                        for t in data["targets"])
        return CachedConfig(Path(data["state_path"]), targets)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(config: Any, content: bytes) -> None:
    """Remember a valid configuration (``content``: the bytes it was loaded from). Best effort."""
    if getattr(config, "state_is_postgresql", False):
        return  # the quick path reads SQLite only; a PostgreSQL state goes through the full CLI
    config_file = Path(config.file).resolve()
    data = {"key": _key(config_file, content), "state_path": str(config.state_path),
            "targets": [{"name": t.name, "kind": t.kind, "source": t.source, "path": t.path} for t in config.targets]}
    try:
        entry = _entry_path(config_file)
    except RuntimeError:
        return
    try:
        if entry.exists() and _private(entry) and json.loads(entry.read_text()) == data:
            return
    except (OSError, ValueError):
        pass
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(entry.parent, 0o700)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, entry)
        _trim(entry.parent)
    except OSError:
        pass  # a read-only home: every command loads the file in full, as before


def _trim(folder: Path) -> None:
    """At most :data:`MAX_ENTRIES` entries (one per configuration path): the oldest written go first."""
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_ENTRIES]:
        old.unlink(missing_ok=True)
