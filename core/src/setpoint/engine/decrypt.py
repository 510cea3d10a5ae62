"""The decrypt stage: find encrypted files in a target's tree by content and decrypt them all.

It runs before render, so a file that does not decrypt or verify stops the target (fail closed)
with the file named, and renderers only ever see :class:`setpoint.secrets.Secret` values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from setpoint.api import DecryptedFile, Decryptor
from setpoint.errors import DecryptError

#: Encrypted files are text or small binaries; larger files are never inspected.
MAX_ENCRYPTED_SIZE = 64 * 1024 * 1024


def decrypt_tree(root: Path, decryptors: Sequence[Decryptor]) -> Mapping[str, DecryptedFile]:
    """Decrypt every file under ``root`` that one of ``decryptors`` recognises."""
    if not decryptors or not root.is_dir():
        return {}
    found: dict[str, DecryptedFile] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_ENCRYPTED_SIZE:
                continue
            relpath = str(path.relative_to(root))
            content = path.read_bytes()
            for decryptor in decryptors:
                if decryptor.detect(relpath, content):
                    try:
                        found[relpath] = decryptor.decrypt(relpath, content)
                    except DecryptError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - any decryptor failure is a decrypt error
                        raise DecryptError(relpath, f"{decryptor.name}: {exc.__class__.__name__}") from None
                    break
    return found
