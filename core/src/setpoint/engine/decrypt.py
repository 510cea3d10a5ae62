"""The decrypt stage: find encrypted files in a target's tree by content and decrypt them all.

It runs before render, so a file that does not decrypt or verify stops the target (fail closed)
with the file named, and renderers only ever see :class:`setpoint.secrets.Secret` values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from setpoint.api import DecryptedFile, Decryptor
from setpoint.decryption import candidate_files
from setpoint.errors import DecryptError


def decrypt_tree(root: Path, decryptors: Sequence[Decryptor]) -> Mapping[str, DecryptedFile]:
    """Decrypt every file under ``root`` that one of ``decryptors`` recognises."""
    if not decryptors:
        return {}
    found: dict[str, DecryptedFile] = {}
    for relpath, path in candidate_files(root):
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
