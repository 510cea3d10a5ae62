"""The sops MAC: SHA-512 over the values in tree order, encrypted with the data key.

It covers values only (no keys, no separators), skips comments and nulls, and with
``mac_only_encrypted`` only the encrypted values after a fixed prefix. It is always verified:
there is no switch to skip it.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from cryptography.exceptions import InvalidTag

from setpoint_sops_secrets.cipher import DataKeyCipher, is_enc, parse_enc
from setpoint_sops_secrets.errors import FormatProblem

# sha256(b"sops"): the prefix sops (>= 3.9) hashes first when mac_only_encrypted is set.
MAC_ONLY_ENCRYPTED_PREFIX = hashlib.sha256(b"sops").digest()

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})")


class MacMismatch(Exception):
    """The recomputed MAC differs from the stored one (reason in the message, no values)."""


class MacAccumulator:
    def __init__(self, mac_only_encrypted: bool) -> None:
        self._hash = hashlib.sha512()
        if mac_only_encrypted:
            self._hash.update(MAC_ONLY_ENCRYPTED_PREFIX)
        self.update = self._hash.update

    def hexdigest(self) -> str:
        return self._hash.hexdigest().upper()


def normalize_lastmodified(text: str) -> str:
    """The MAC's AAD is Go's ``time.Parse(RFC3339)`` then ``Format(RFC3339)`` of ``lastmodified``:
    fractional seconds are dropped and a zero offset becomes ``Z``."""
    match = _RFC3339.fullmatch(text.strip())
    if not match:
        raise FormatProblem("sops.lastmodified is not an RFC 3339 time")
    zone = match.group(3)
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return match.group(1) + zone


def verify_mac(cipher: DataKeyCipher, stored: str | None, lastmodified: str, computed: str) -> None:
    """Raise :class:`MacMismatch` unless ``stored`` decrypts to ``computed`` (constant-time compare)."""
    if not stored:
        raise MacMismatch("the file has no MAC")
    if not is_enc(stored):
        raise MacMismatch("the MAC is not encrypted")
    try:
        value = parse_enc(stored)
        expected = cipher.decrypt(value, normalize_lastmodified(lastmodified).encode())
    except InvalidTag:
        raise MacMismatch("the MAC does not authenticate (mac or lastmodified was changed)") from None
    if not hmac.compare_digest(expected, computed.encode()):
        raise MacMismatch("MAC mismatch (the file was changed after it was encrypted)")
