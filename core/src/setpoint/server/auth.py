"""Bearer tokens for the status API: who is calling, and may they read or also act.

Tokens are read once at startup from their file or environment variable and kept as
:class:`Secret` (the scrubber knows them, so they never reach a log line). A presented token is
compared with every configured one in constant time, without stopping at the first match, so
neither the timing nor the order of the configuration tells anything.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from setpoint.errors import ConfigError
from setpoint.opsconfig import ServerConfig, TokenConfig, read_credential
from setpoint.secrets import Secret, register_known_values

STATUS, ADMIN = "status", "admin"


@dataclass(frozen=True)
class Caller:
    name: str
    role: str

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"api:{self.name}"

    def may(self, role: str) -> bool:
        return self.role == ADMIN or role == STATUS


@dataclass(frozen=True)
class _Token:
    name: str
    role: str
    digest: Secret[bytes]


class TokenAuth:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens

    @classmethod
    def from_config(cls, server: ServerConfig, base_dir: Path) -> TokenAuth:
        tokens, problems = [], []
        entries: list[tuple[str, TokenConfig]] = [(STATUS, t) for t in server.status_tokens]
        entries += [(ADMIN, t) for t in server.admin_tokens]
        for role, entry in entries:
            try:
                value = read_credential(entry.file, entry.env, base_dir)
            except ValueError as exc:
                problems.append(f"server token {entry.name}: {exc}")
                continue
            if len(value) < 16:
                problems.append(f"server token {entry.name}: shorter than 16 characters; use e.g. openssl rand -hex 32")
                continue
            register_known_values([value])
            tokens.append(_Token(entry.name, role, Secret(cls.digest(value))))
        if problems:
            raise ConfigError("\n".join(problems))
        return cls(tokens)

    @staticmethod
    def digest(token: str) -> bytes:
        """What is kept of a token: its SHA-256 (compared in constant time, bound to sessions)."""
        return hashlib.sha256(token.strip().encode()).digest()

    def digest_of(self, caller: Caller) -> bytes | None:
        """The digest of the token configured now under ``caller``'s name and role (None: no such
        token any more; a dashboard session opened with it is over)."""
        found = [t.digest.reveal() for t in self._tokens if t.name == caller.name and t.role == caller.role]
        return found[0] if len(found) == 1 else None

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller presenting ``Authorization: Bearer TOKEN``, or None."""
        if not authorization or not authorization[:7].lower() == "bearer ":
            return None
        presented = self.digest(authorization[7:])
        found: Caller | None = None
        for token in self._tokens:
            if hmac.compare_digest(token.digest.reveal(), presented):
                found = Caller(token.name, token.role)
        return found
