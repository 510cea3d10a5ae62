"""The JSON store: one top-level object, key order kept; output indented with tabs like sops."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from setpoint.secrets import Secret
from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.gofmt import format_float_json
from setpoint_sops_secrets.stores.base import ParsedFile
from setpoint_sops_secrets.tree import LeafContext

# Go's encoding/json escapes control characters, HTML-sensitive characters and U+2028/U+2029.
_GO_ESCAPE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def go_json_string(text: str) -> str:
    return '"' + _GO_ESCAPE.sub(_escape, text) + '"'


def emit(value: Any, depth: int = 0) -> str:
    """Go's ``json.MarshalIndent(v, "", "\\t")`` of a tree (secrets revealed: the result is the
    decrypted file, which the caller wraps in a Secret)."""
    if isinstance(value, Secret):
        value = value.reveal()
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = "\t" * (depth + 1)
        items = [f"{pad}{go_json_string(str(k))}: {emit(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "\t" * depth + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        pad = "\t" * (depth + 1)
        return "[\n" + ",\n".join(pad + emit(v, depth + 1) for v in value) + "\n" + "\t" * depth + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float_json(value)
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode() + '"'
    return go_json_string(str(value))


def _load(content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise FormatProblem("not valid JSON" + (f" at line {line}" if line else "")) from None
    if not isinstance(data, dict):
        raise FormatProblem("the top level of a sops JSON file must be an object")
    return data


class _Walker:
    def __init__(self, ctx: LeafContext) -> None:
        self.ctx = ctx

    def value(self, value: Any, path: tuple[str, ...], matched: bool, where: str) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            matches = self.ctx.selection.matches
            for key, child in value.items():
                out[key] = self.value(
                    child, path + (key,), matched or matches(key), f"{where}.{key}" if where else key
                )
            return out
        if isinstance(value, list):
            items = [self.value(item, path, matched, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not _COMMENT]
        tree, _plain, type_tag = self.ctx.leaf(value, path, matched, where)
        return _COMMENT if type_tag == "comment" else tree


_COMMENT = object()


class JsonStore:
    format = "json"

    def parse(self, content: bytes) -> ParsedFile:
        data = _load(content)
        if "sops" not in data:
            raise FormatProblem("no sops metadata block (not a sops file)")
        metadata = data.pop("sops")
        return ParsedFile(metadata, data)

    def decrypt(self, parsed: ParsedFile, ctx: LeafContext) -> tuple[list[Any], bytes]:
        tree = _Walker(ctx).value(parsed.payload, (), False, "")
        return [tree], (emit(tree) + "\n").encode("utf-8")

    def documents_from_plaintext(self, plaintext: bytes, ctx: LeafContext) -> list[Any]:
        return [_Walker(ctx).value(_load(plaintext), (), False, "")]
