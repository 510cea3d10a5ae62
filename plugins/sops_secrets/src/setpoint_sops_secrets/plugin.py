"""Registers the 'sops' decryptor with setpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from setpoint import hookimpl
from setpoint.api import DecryptedFile, Decryptor
from setpoint.secrets import Secret
from setpoint_sops_secrets.api import DECRYPTOR_NAME, SopsFile, coerce_settings
from setpoint_sops_secrets.keys import Keyring
from setpoint_sops_secrets.pipeline import decrypt
from setpoint_sops_secrets.settings import SopsSettings
from setpoint_sops_secrets.stores import detect_format


class SopsDecryptor(Decryptor):
    """Native SOPS decryption (age, PGP via gpg, Shamir key groups), MAC always verified; the sops
    binary only for keys it cannot use natively, when ``sops_binary`` is set."""

    name = DECRYPTOR_NAME
    Settings = SopsSettings

    def __init__(self, settings: Any = None) -> None:
        super().__init__(coerce_settings(settings))
        self._keyring: Keyring | None = None
        self._lock = threading.Lock()

    @property
    def keyring(self) -> Keyring:
        # Loaded on first use, not at construction: a config without SOPS files needs no keys.
        with self._lock:
            if self._keyring is None:
                self._keyring = Keyring.load(self.settings)
            return self._keyring

    def reload_keys(self) -> None:
        """Forget loaded identities (after key files changed)."""
        with self._lock:
            self._keyring = None

    def detect(self, relpath: str, content: bytes) -> bool:
        return detect_format(relpath, content) is not None

    def decrypt(self, relpath: str, content: bytes) -> DecryptedFile:
        result = decrypt(relpath, content, self.keyring)
        return SopsFile(
            relpath, result.format, result.documents, Secret(result.plaintext, origin=f"{relpath}:(file)"),
            result.keys_used, False, result.backend,
        ).to_decrypted_file()


@hookimpl
def setpoint_register_decryptors(register: Callable[[type[Decryptor]], None]) -> None:
    register(SopsDecryptor)
