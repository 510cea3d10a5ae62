"""What ``setpoint status`` and ``audit`` need of a valid setpoint.yaml, cached so they can answer
without parsing YAML or building the pydantic models (docs/benchmarks.md, case 9).

Every full load of a valid file (any command) writes an entry: the resolved state path and each
target's name, kind, source and path. An entry is used only while it matches: the SHA-256 of the
file's bytes, its resolved path, setpoint's version and the configuration code's own files (a
change to the models invalidates it) must all be the same; anything else, or any doubt (unreadable,
not ours, writable by others, malformed), means the full load, which also rewrites the entry. An
invalid file never gets an entry, so its problems are always reported by the full load.

Entries live in ``$XDG_CACHE_HOME/setpoint/config/`` (``~/.cache``), one per configuration path,
in a 0700 folder as 0600 files, in :mod:`marshal` format (read without importing json, pathlib or
dataclasses: the quick path's start-up is what the cache is for; the key holds the Python version,
since marshal's format is Python's own). They hold no secret (setpoint.yaml holds none: credentials are
files and environment variables) but do hold target names and paths, so they stay private. The
state folder cannot hold them: where it is, is what the entry says.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys

from setpoint import __version__

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from typing import Any

FORMAT = 2
#: Entries kept (one per configuration path); test suites and demos create many paths.
MAX_ENTRIES = 64
#: The modules whose code decides what a valid file means: a change to any of them invalidates every entry.
_CODE = ("config.py", "opsconfig.py", "durations.py", "durationtype.py", "configcache.py")
_SUFFIX = ".entry"


class CachedTarget:
    __slots__ = ("name", "kind", "source", "path")

    def __init__(self, name: str, kind: str, source: str, path: str) -> None:
        self.name, self.kind, self.source, self.path = name, kind, source, path


class CachedConfig:
    """The part of a validated configuration that ``status`` and ``audit`` read."""

    __slots__ = ("state_path", "targets")

    def __init__(self, state_path: str, targets: tuple[CachedTarget, ...]) -> None:
        self.state_path, self.targets = state_path, targets


def _sha256(data: bytes) -> str:
    try:  # the built-in module: hashlib would load OpenSSL first, a few milliseconds of every status
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # Python 3.12+
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def cache_dir() -> str:
    """The cache folder; RuntimeError when there is no home folder to find it in."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if home == "~":
            raise RuntimeError("no home folder")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "setpoint", "config")


def _entry_path(config_file: str) -> str:
    return os.path.join(cache_dir(), _sha256(config_file.encode())[:32] + _SUFFIX)


def _code_fingerprint() -> list[Any]:
    here = os.path.dirname(__file__)
    out: list[Any] = [__version__, sys.version]
    for name in _CODE:
        try:
            st = os.stat(os.path.join(here, name))
            out.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([name, None])
    return out


def _key(config_file: str, content: bytes) -> dict[str, Any]:
    return {"format": FORMAT, "file": config_file, "sha256": _sha256(content), "code": _code_fingerprint()}


def _private(path: str) -> bool:
    """Ours and writable by nobody else (a planted entry could name another state database)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def lookup(config_file: str) -> CachedConfig | None:
    """The cached form of ``config_file`` if it matches the file as it is now, else None."""
    try:
        config_file = os.path.realpath(config_file)
        content = _read(config_file)
        entry = _entry_path(config_file)
    except (OSError, RuntimeError):  # RuntimeError: no home folder to find the cache in
        return None
    if not (_private(os.path.dirname(entry)) and _private(entry)):
        return None
    try:
        # our own 0600 file in a 0700 folder (checked above); unmarshalling builds values, runs no code
        data = marshal.loads(_read(entry))  # noqa: S302
        if data["key"] != _key(config_file, content):
            return None
        targets = tuple(CachedTarget(str(t["name"]), str(t["kind"]), str(t["source"]), str(t["path"]))
                        for t in data["targets"])
        return CachedConfig(str(data["state_path"]), targets)
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        return None


def store(config: Any, content: bytes) -> None:
    """Remember a valid configuration (``content``: the bytes it was loaded from). Best effort."""
    if getattr(config, "state_is_postgresql", False):
        return  # the quick path reads SQLite only; a PostgreSQL state goes through the full CLI
    config_file = os.path.realpath(config.file)
    data = {"key": _key(config_file, content), "state_path": str(config.state_path),
            "targets": [{"name": t.name, "kind": t.kind, "source": t.source, "path": t.path} for t in config.targets]}
    try:
        entry = _entry_path(config_file)
    except RuntimeError:
        return
    try:
        if os.path.exists(entry) and _private(entry) and marshal.loads(_read(entry)) == data:  # noqa: S302 - as in lookup
            return
    except (OSError, ValueError, EOFError, TypeError):
        pass
    folder = os.path.dirname(entry)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        tmp = os.path.join(folder, f".{os.path.basename(entry)}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps(data))
        os.replace(tmp, entry)
        _trim(folder)
    except OSError:
        pass  # a read-only home: every command loads the file in full, as before


def _trim(folder: str) -> None:
    """At most :data:`MAX_ENTRIES` entries (one per configuration path): the oldest written go first.
    Entries of the earlier JSON format are removed."""
    names = os.listdir(folder)
    entries = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            if name.endswith(".json"):
                os.unlink(path)
            elif name.endswith(_SUFFIX):
                entries.append((os.path.getmtime(path), path))
        except FileNotFoundError:
            pass  # another process trimmed it first
    for _, old in sorted(entries)[:-MAX_ENTRIES]:
        try:
            os.unlink(old)
        except FileNotFoundError:
            pass
