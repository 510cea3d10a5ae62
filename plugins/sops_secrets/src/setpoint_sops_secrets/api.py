"""The public Python API: decrypt a SOPS file or bytes into Python data, with the wrapping explicit.

    >>> from setpoint_sops_secrets import decrypt_file, SopsSettings
    >>> f = decrypt_file("secrets.enc.yaml", SopsSettings(age_key_file="keys.txt"))
    >>> f.data["db"]["password"]            # a setpoint.secrets.Secret, prints as <secret>
    >>> f.data["db"]["password"].reveal()   # the clear value
    >>> decrypt_file("secrets.enc.yaml", reveal=True).data   # plain Python data, no Secret

Every call verifies the MAC; a failure raises :class:`setpoint.errors.DecryptError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.api import DecryptedFile
from setpoint.secrets import Secret, reveal_all
from setpoint_sops_secrets.errors import SopsFormatError
from setpoint_sops_secrets.keys import Keyring
from setpoint_sops_secrets.pipeline import Decrypted, decrypt
from setpoint_sops_secrets.settings import SopsSettings

DECRYPTOR_NAME = "sops"


@dataclass(frozen=True)
class SopsFile:
    """A decrypted, MAC-verified SOPS file.

    ``documents``: one parsed document per YAML document, one for JSON/dotenv/INI, none for binary.
    With ``reveal=False`` (the default) every value that was encrypted is a :class:`Secret` and
    ``plaintext`` is a ``Secret[bytes]``; with ``reveal=True`` they are plain values and bytes.
    Values stored in clear (``unencrypted_suffix`` and friends) are always plain.
    """

    path: str
    format: str
    documents: list[Any]
    plaintext: Any
    keys_used: tuple[str, ...]
    revealed: bool
    #: "native" or "sops-binary"
    backend: str = "native"

    @property
    def data(self) -> Any:
        """The first document (structured formats) or the file's bytes (binary)."""
        if self.format == "binary":
            return self.plaintext
        return self.documents[0] if self.documents else None

    def to_decrypted_file(self) -> DecryptedFile:
        """The core's :class:`DecryptedFile` (only from an unrevealed result)."""
        if self.revealed:
            raise ValueError("a revealed SopsFile cannot become a DecryptedFile; decrypt with reveal=False")
        return DecryptedFile(
            path=self.path,
            format=self.format,
            documents=self.documents,
            plaintext=self.plaintext,
            decryptor=DECRYPTOR_NAME,
            keys_used=self.keys_used,
        )


def coerce_settings(settings: SopsSettings | Mapping[str, Any] | None) -> SopsSettings:
    if settings is None:
        return SopsSettings()
    if isinstance(settings, SopsSettings):
        return settings
    return SopsSettings.model_validate(dict(settings))


def _wrap(path: str, result: Decrypted, reveal: bool) -> SopsFile:
    if reveal:
        return SopsFile(path, result.format, reveal_all(result.documents), result.plaintext, result.keys_used, True,
                        result.backend)
    plaintext = Secret(result.plaintext, origin=f"{path}:(file)")
    return SopsFile(path, result.format, result.documents, plaintext, result.keys_used, False, result.backend)


def decrypt_bytes(
    content: bytes,
    settings: SopsSettings | Mapping[str, Any] | None = None,
    *,
    format: str | None = None,
    path: str = "<bytes>",
    reveal: bool = False,
    keyring: Keyring | None = None,
) -> SopsFile:
    """Decrypt SOPS ``content``. ``format`` (yaml, json, dotenv, ini, binary) defaults to detection
    by content, with ``path`` (used in messages and origins) breaking ties. ``keyring`` lets a caller
    that decrypts many files load the keys once (:meth:`Keyring.load`)."""
    ring = keyring if keyring is not None else Keyring.load(coerce_settings(settings))
    return _wrap(path, decrypt(path, content, ring, format), reveal)


def decrypt_file(
    path: str | os.PathLike[str],
    settings: SopsSettings | Mapping[str, Any] | None = None,
    *,
    format: str | None = None,
    reveal: bool = False,
    keyring: Keyring | None = None,
) -> SopsFile:
    """Read and decrypt the SOPS file at ``path`` (see :func:`decrypt_bytes`)."""
    name = os.fspath(path)
    try:
        content = Path(name).read_bytes()
    except OSError as exc:
        raise SopsFormatError(name, f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    return decrypt_bytes(content, settings, format=format, path=name, reveal=reveal, keyring=keyring)
