"""The dotenv store as sops reads it: ``KEY=VALUE`` lines split at the first ``=``, ``#`` comments,
``\\n`` escapes, and nothing else (no quotes, no ``export``: this is not Compose's grammar).
Metadata is flattened into ``sops_*`` keys."""

from __future__ import annotations

from typing import Any

from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.metadata import unflatten
from setpoint_sops_secrets.stores.base import ParsedFile
from setpoint_sops_secrets.tree import LeafContext

#: (key or None for a comment, value or comment text)
Item = tuple[str | None, str]


def _parse(content: bytes) -> tuple[list[Item], dict[str, str]]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatProblem("a dotenv file must be UTF-8") from None
    items: list[Item] = []
    flat: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        if line.startswith("#"):
            items.append((None, line[1:]))
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise FormatProblem(f"line {number} is not KEY=VALUE")
        value = value.replace("\\n", "\n")
        if key.startswith("sops_"):
            flat[key[len("sops_") :]] = value
        else:
            items.append((key, value))
    return items, flat


class DotenvStore:
    format = "dotenv"

    def parse(self, content: bytes) -> ParsedFile:
        items, flat = _parse(content)
        if not flat:
            raise FormatProblem("no sops_* metadata (not a sops file)")
        return ParsedFile(unflatten(flat), items)

    def _walk(self, items: list[Item], ctx: LeafContext) -> tuple[dict[str, Any], list[str]]:
        data: dict[str, Any] = {}
        lines: list[str] = []
        matches = ctx.selection.matches
        for key, value in items:
            if key is None:
                decrypted = ctx.comment(value, [()])
                lines.append("#" + (decrypted if decrypted is not None else value))
                continue
            if key in data:
                raise FormatProblem(f"duplicate key {key}")
            tree, plain, _ = ctx.leaf(value, (key,), matches(key), key)
            data[key] = tree
            lines.append(f"{key}={plain.replace(chr(10), chr(92) + 'n')}")
        return data, lines

    def decrypt(self, parsed: ParsedFile, ctx: LeafContext) -> tuple[list[Any], bytes]:
        data, lines = self._walk(parsed.payload, ctx)
        return [data], "".join(line + "\n" for line in lines).encode("utf-8")

    def documents_from_plaintext(self, plaintext: bytes, ctx: LeafContext) -> list[Any]:
        items, _ = _parse(plaintext)
        return [self._walk(items, ctx)[0]]
