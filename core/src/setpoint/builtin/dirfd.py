"""File operations inside one directory tree that never follow a symbolic link the tree holds.

The ``files`` target runs as root next to production, and anyone who can write to its destination
could plant ``sub -> /etc`` or a link at a temp-file name. Every operation here therefore walks
from a descriptor of the destination one component at a time (``O_NOFOLLOW | O_DIRECTORY``), writes
through a fresh ``O_EXCL`` temp file in the final directory and renames it with directory
descriptors; ``rename`` and ``unlink`` act on a link itself, never on what it points to. A link
where Git has a directory is removed and replaced by a directory; a link where Git has a file is
replaced by the rename. Only the destination itself (from setpoint.yaml, trusted) is resolved.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

#: Suffix of the temp files written next to their target (skipped when listing the destination).
TMP_SUFFIX = ".setpoint-tmp"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def split(key: str) -> tuple[list[str], str]:
    """``a/b/c`` -> (["a", "b"], "c"); refuses names that could climb out of the tree."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts):
        raise OSError(errno.EINVAL, f"unsafe path {key!r}")
    return parts[:-1], parts[-1]


def _utf8(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


class Tree:
    """An open directory tree (the destination). Use as a context manager; closes its descriptor."""

    def __init__(self, root: Path, create: bool = False) -> None:
        if create:
            root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._touched: set[tuple[str, ...]] = set()

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    # ------------------------------------------------------------------ walking

    @contextlib.contextmanager
    def directory(self, parts: list[str], create: bool = False) -> Iterator[int | None]:
        """A descriptor of the directory ``parts`` below the root, or None if it is not a real directory.

        With ``create``, missing directories are made and a symbolic link in the way is replaced by
        a directory (the link is removed, its target untouched). A regular file in the way is an
        error: it may hold data nobody asked setpoint to remove.
        """
        opened: list[int] = []
        current = self.fd
        try:
            for part in parts:
                try:
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except FileNotFoundError:
                    if not create:
                        yield None
                        return
                    os.mkdir(part, 0o755, dir_fd=current)
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    info = os.stat(part, dir_fd=current, follow_symlinks=False)
                    if not create:
                        yield None
                        return
                    if not stat.S_ISLNK(info.st_mode):
                        raise OSError(errno.ENOTDIR, f"{part} is in the way and is not a directory") from None
                    os.unlink(part, dir_fd=current)
                    os.mkdir(part, 0o755, dir_fd=current)
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                opened.append(current)
            yield current
        finally:
            for fd in opened:
                os.close(fd)

    def files(self) -> list[str]:
        """Every non-directory entry below the root (links included, never entered), as ``a/b`` keys."""
        found: list[str] = []

        def walk(fd: int, prefix: str) -> None:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if not entry.name.isprintable() and not _utf8(entry.name):
                        continue  # not valid UTF-8: never from Git (refused there), and no store can hold it
                    key = prefix + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        try:
                            child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                        except OSError:
                            continue  # replaced between listing and opening
                        try:
                            walk(child, key + "/")
                        finally:
                            os.close(child)
                    elif not entry.name.endswith(TMP_SUFFIX):
                        found.append(key)

        walk(self.fd, "")
        return found

    # ------------------------------------------------------------------ reading

    def read(self, key: str) -> tuple[os.stat_result, bytes | None] | None:
        """(lstat, content) of ``key``; content None for anything but a regular file; None if absent.

        A key below a symbolic link counts as absent: the file is not in the destination.
        """
        parts, name = split(key)
        with self.directory(parts) as parent:
            if parent is None:
                return None
            try:
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return None
            if not stat.S_ISREG(info.st_mode):
                return info, None
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
            except FileNotFoundError:
                return None
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):  # swapped after the lstat
                    return info, None
                return info, handle.read()

    # ------------------------------------------------------------------ writing

    def write(self, key: str, content: bytes, mode: int) -> None:
        """Atomically replace ``key`` with ``content`` and ``mode`` (a link there is replaced, not followed)."""
        parts, name = split(key)
        with self.directory(parts, create=True) as parent:
            assert parent is not None
            tmp = f".{name[:200]}.{secrets.token_hex(6)}{TMP_SUFFIX}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fchmod(handle.fileno(), mode)
                    os.fsync(handle.fileno())
                os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
                raise
            self._touched.add(tuple(parts))

    def sync(self) -> None:
        """fsync every folder written or removed in: renames and unlinks are durable once it is synced."""
        for parts in sorted(self._touched, key=len, reverse=True):
            with contextlib.suppress(OSError), self.directory(list(parts)) as fd:
                if fd is not None:
                    os.fsync(fd)
        self._touched.clear()

    def delete(self, key: str) -> None:
        """Remove ``key`` (a link is removed itself) and the folders it leaves empty.

        Nothing below a symbolic link is touched: such a key is not in the destination.
        """
        parts, name = split(key)
        chain: list[int] = []
        current = self.fd
        try:
            for part in parts:
                try:
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except (FileNotFoundError, NotADirectoryError):
                    return
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        return
                    raise
                chain.append(current)
            try:
                info = os.stat(name, dir_fd=current, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(info.st_mode):
                raise OSError(errno.EISDIR, f"{key} is a directory")
            os.unlink(name, dir_fd=current)
            self._touched.update(tuple(parts[:depth]) for depth in range(len(parts) + 1))
            # Remove the folders left empty, innermost first, each through its parent's descriptor.
            for depth in range(len(parts), 0, -1):
                parent = chain[depth - 2] if depth >= 2 else self.fd
                try:
                    os.rmdir(parts[depth - 1], dir_fd=parent)
                except OSError:
                    break
        finally:
            for fd in chain:
                os.close(fd)
