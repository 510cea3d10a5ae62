"""What setpoint compares: Compose's config hash (with the env_file workaround) and content fingerprints.

**The config hash.** Compose stores ``com.docker.compose.config-hash`` on each container and recreates
it when the hash of the loaded service differs. ``docker compose config --hash`` is meant to print the
same value, but from v2.22 until v5.5.0 it hashed services using ``env_file`` *before* merging the env
files into ``environment`` (docker/compose#14001), so a naive comparison reports drift forever; what
enters the hash also moved between releases. setpoint therefore never asks Compose to hash the
user's files: it hashes the *normalised* model (``docker compose config`` output, in which env files
are already merged and ``env_file`` is gone) and deploys from that very same normalised file. Both
sides then come from one loader on every Compose version, with nothing for the bug to disagree about.

**Content fingerprints.** Compose does not hash the content of bind-mounted files or of
``configs:``/``secrets:`` files. setpoint puts an HMAC of those files (keyed per target, so a label
never discloses a guessable hash of a secret file) into a label of its own, ``io.setpoint.content``.
The label enters the config hash, so a content change in Git recreates the container; comparing the
label with the files on the host finds edits made there by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

CONTENT_LABEL = "io.setpoint.content"
#: Fingerprint of a service's build context (and Dockerfile) in Git: a label, so a change to them
#: changes the service's config hash and Compose rebuilds and recreates it (up --build).
BUILD_LABEL = "io.setpoint.build"
TARGET_LABEL = "io.setpoint.target"


def parse_hashes(output: str) -> dict[str, str]:
    """``<service> <hash>`` lines as printed by ``docker compose config --hash``."""
    hashes = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


def content_key(state_dir: Path) -> bytes:
    """The target's fingerprint key, created once (0600) in its state directory."""
    path = state_dir / "content.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process (a CLI beside the daemon) created it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key


def _walk(path: Path) -> Iterable[Path]:
    if path.is_dir():
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                yield sub
    elif path.is_file():
        yield path


def fingerprint(key: bytes, root: Path, relpaths: Iterable[str]) -> str:
    """HMAC over the names and bytes of the files (or directory trees) at ``relpaths`` under ``root``.

    A path that does not exist counts as such, so deleting a mounted file on the host is content drift
    too, and so does a script that lost its executable bit there."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for relpath in sorted(set(relpaths)):
        base = root / relpath
        mac.update(b"P" + relpath.encode() + b"\0")
        if not base.exists():
            mac.update(b"-missing\0")
            continue
        for file in _walk(base):
            mac.update(b"F" + str(file.relative_to(root)).encode() + b"\0")
            try:
                if file.stat().st_mode & 0o100:
                    # Git's executable bit counts (a `chmod +x` commit must reach the host); added only
                    # for executables, so the fingerprints of other files are what they always were
                    mac.update(b"X\0")
                mac.update(file.read_bytes())
            except OSError:
                mac.update(b"-unreadable\0")
    return mac.hexdigest()[:32]
