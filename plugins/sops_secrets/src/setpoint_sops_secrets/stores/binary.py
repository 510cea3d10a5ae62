"""The binary store: any file, kept whole as one string under ``data`` in a JSON envelope.

The payload is raw bytes (it may not be UTF-8 even though sops types it ``str``).
"""

from __future__ import annotations

import json
from typing import Any

from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.stores.base import ParsedFile
from setpoint_sops_secrets.tree import LeafContext


class BinaryStore:
    format = "binary"

    def parse(self, content: bytes) -> ParsedFile:
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            raise FormatProblem("a sops binary file is a JSON envelope, and this is not JSON") from None
        if not isinstance(data, dict) or "sops" not in data:
            raise FormatProblem("no sops metadata block (not a sops file)")
        if not isinstance(data.get("data"), str):
            raise FormatProblem("a sops binary file needs a string 'data' entry")
        return ParsedFile(data["sops"], data["data"])

    def decrypt(self, parsed: ParsedFile, ctx: LeafContext) -> tuple[list[Any], bytes]:
        tree, plain, _ = ctx.leaf(parsed.payload, ("data",), ctx.selection.matches("data"), "data")
        if isinstance(plain, str):  # left in clear by a selection rule
            plain = plain.encode("utf-8")
        del tree  # the binary store has no documents: the payload is the plaintext
        return [], bytes(plain)

    def documents_from_plaintext(self, plaintext: bytes, ctx: LeafContext) -> list[Any]:
        return []


