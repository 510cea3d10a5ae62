"""Registers the 'sops' decryptor with setpoint."""

from __future__ import annotations

from collections.abc import Callable

from setpoint import hookimpl
from setpoint.api import DecryptedFile, Decryptor
from setpoint.errors import DecryptError


class SopsDecryptor(Decryptor):
    """Placeholder until native decryption lands: detects SOPS files and refuses to decrypt them."""

    name = "sops"

    def detect(self, relpath: str, content: bytes) -> bool:
        return b"sops" in content and (b"ENC[AES256_GCM," in content or b'"sops"' in content)

    def decrypt(self, relpath: str, content: bytes) -> DecryptedFile:
        raise DecryptError(relpath, "SOPS decryption is not implemented yet in this version of setpoint-sops-secrets")


@hookimpl
def setpoint_register_decryptors(register: Callable[[type[Decryptor]], None]) -> None:
    register(SopsDecryptor)
