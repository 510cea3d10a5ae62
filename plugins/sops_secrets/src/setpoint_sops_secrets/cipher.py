"""The ``ENC[AES256_GCM,...]`` value encoding and AES-256-GCM with the file's data key."""

from __future__ import annotations

import binascii
from binascii import a2b_base64
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from setpoint_sops_secrets.errors import FormatProblem

ENC_PREFIX = "ENC[AES256_GCM,"

__all__ = ["ENC_PREFIX", "DataKeyCipher", "EncValue", "InvalidTag", "aad_for", "is_enc", "parse_enc"]


@dataclass(frozen=True, slots=True)
class EncValue:
    """One encrypted value: ciphertext with the GCM tag appended (what AESGCM wants), IV, type tag."""

    sealed: bytes
    iv: bytes
    type: str


def is_enc(value: object) -> bool:
    return isinstance(value, str) and value.startswith(ENC_PREFIX) and value.endswith("]")


def parse_enc(text: str) -> EncValue:
    """Parse ``ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<t>]``.

    A split on commas is enough (base64 has none) and is much faster than a regular expression,
    which matters with tens of thousands of values per file.
    """
    if not is_enc(text):
        raise FormatProblem("not a sops encrypted value")
    parts = text[15:-1].split(",")  # 15 == len(ENC_PREFIX)
    if len(parts) != 4:
        raise FormatProblem("malformed sops encrypted value")
    data, iv, tag, type_tag = parts
    if data[:5] != "data:" or iv[:3] != "iv:" or tag[:4] != "tag:" or type_tag[:5] != "type:":
        raise FormatProblem("malformed sops encrypted value")
    try:
        raw_tag = a2b_base64(tag[4:])
        raw_iv = a2b_base64(iv[3:])
        sealed = a2b_base64(data[5:]) + raw_tag
    except binascii.Error as exc:
        raise FormatProblem("malformed base64 in a sops encrypted value") from exc
    if len(raw_tag) != 16 or not raw_iv:
        raise FormatProblem("malformed sops encrypted value (tag or IV length)")
    return EncValue(sealed, raw_iv, type_tag[5:])


def aad_for(path: tuple[str, ...]) -> bytes:
    """sops binds each value to its tree path: map keys joined by ':' plus a trailing ':'.

    List indices are not part of it, so all items of a list share their list's path.
    """
    return (":".join(path) + ":").encode()


class DataKeyCipher:
    """AES-256-GCM with one data key; a single AESGCM object serves every value of a file."""

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("a sops data key is 32 bytes")
        self._aead = AESGCM(data_key)

    def decrypt(self, value: EncValue, aad: bytes) -> bytes:
        """Decrypt and authenticate; raises :class:`InvalidTag` when the value, its path or the key differ."""
        return self._aead.decrypt(value.iv, value.sealed, aad)

    def decrypt_text(self, text: str, aad: bytes) -> tuple[bytes, str]:
        value = parse_enc(text)
        return self.decrypt(value, aad), value.type
