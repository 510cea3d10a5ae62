"""The plugin's error types: all are :class:`setpoint.errors.DecryptError`, so the core treats them alike.

Reasons never contain a decrypted value, a key, or key material; they name the file, the key path
and what went wrong, so an operator can act on them.
"""

from __future__ import annotations

from setpoint.errors import DecryptError


class SopsIntegrityError(DecryptError):
    """The file failed authentication: a value, the MAC or lastmodified was changed, or no MAC."""


class SopsKeyError(DecryptError):
    """No configured key could recover the file's data key."""


class SopsFormatError(DecryptError):
    """The file is not a well-formed SOPS file (bad metadata, unparsable store)."""


class FormatProblem(Exception):
    """Raised inside parsers, which do not know the file's path; turned into :class:`SopsFormatError`."""
