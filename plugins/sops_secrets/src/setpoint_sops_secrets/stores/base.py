"""What every store offers the decryption pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from setpoint_sops_secrets.tree import LeafContext


@dataclass
class ParsedFile:
    """A parsed encrypted file: the raw ``sops`` metadata plus whatever the store needs to walk it."""

    metadata: Any
    payload: Any


class Store(Protocol):
    #: sops' name for the store: yaml, json, dotenv, ini, binary.
    format: str

    def parse(self, content: bytes) -> ParsedFile:
        """Parse an encrypted file; raise FormatProblem when it is not well-formed."""
        ...

    def decrypt(self, parsed: ParsedFile, ctx: LeafContext) -> tuple[list[Any], bytes]:
        """Walk every value through ``ctx``; return the documents and the whole decrypted file."""
        ...

    def documents_from_plaintext(self, plaintext: bytes, ctx: LeafContext) -> list[Any]:
        """Documents of a file the sops binary decrypted (``ctx`` is in trusted mode)."""
        ...
