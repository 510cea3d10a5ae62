"""go-yaml v3's view of scalars: how it resolves plain scalars and how it writes strings.

sops reads and writes YAML with go-yaml v3 (indent 4, no line wrapping). Matching its typing keeps
the MAC right for clear values (``1e+21`` is a float to Go, a string to PyYAML), and matching its
scalar styles lets decrypted output look like ``sops decrypt``'s.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any

from setpoint_sops_secrets.gofmt import format_float_yaml

_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
}  # fmt: skip
_OLD_BOOLS = frozenset("y Y yes Yes YES on On ON n N no No NO off Off OFF".split())
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2}))"
    r"|(?: [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?))?"
)
_GO_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)")


class Timestamp(str):
    """A clear YAML timestamp, kept as its text (sops ≥ 3.10 writes RFC 3339, which is also what it hashes)."""

    __slots__ = ()


def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(s, 0, 64)`` (then ParseUint) after go-yaml removed underscores."""
    if not _GO_INT.fullmatch(text):
        return None
    sign = -1 if text[0] == "-" else 1
    body = text.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        number = int(body[2:], 16)
    elif body[:2] in ("0b", "0B"):
        number = int(body[2:], 2)
    elif body[:2] in ("0o", "0O"):
        number = int(body[2:], 8)
    elif len(body) > 1 and body[0] == "0":
        number = int(body[1:], 8)  # Go's base-0 parsing reads a leading 0 as octal
    else:
        number = int(body)
    number *= sign
    if -(2**63) <= number < 2**64:
        return number
    return None


def resolve_plain(text: str) -> Any:
    """The value go-yaml v3 gives a plain (unquoted, untagged) scalar."""
    if not text:
        return None
    first = text[0]
    if first in "yYnNtTfFoO~":
        if text in _NULLS:
            return None
        if text in _BOOLS:
            return _BOOLS[text]
        return text
    if first == ".":
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        try:
            return float(text) if _YAML_FLOAT.fullmatch(text) else text
        except ValueError:
            return text
    if first in "+-0123456789":
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        if _TIMESTAMP.fullmatch(text):
            return Timestamp(text)
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return number
        if _YAML_FLOAT.fullmatch(plain):
            return float(plain)
        return text
    return text


def _printable(code: int) -> bool:
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


_BREAKS = "\r\n\x85\u2028\u2029"
_BLANKZ = " \t" + _BREAKS


def _analyze(text: str) -> tuple[bool, bool, bool]:
    """libyaml's scalar analysis as go-yaml does it: (plain allowed in block context, single quotes
    allowed, literal block allowed)."""
    block_indicators = text.startswith(("---", "...")) and (len(text) == 3 or text[3] in _BLANKZ)
    special = line_breaks = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = previous_space = previous_break = False
    preceded_ws = True
    last = len(text) - 1
    for index, char in enumerate(text):
        followed_ws = index + 1 > last or text[index + 1] in _BLANKZ
        if index == 0:
            if char in "#,[]{}&*!|>'\"%@`":
                block_indicators = True
            elif char in "?:":
                if followed_ws:
                    block_indicators = True
            elif char == "-" and followed_ws:
                block_indicators = True
        else:
            if char == ":" and followed_ws:
                block_indicators = True
            elif char == "#" and preceded_ws:
                block_indicators = True
        if not _printable(ord(char)):
            special = True
        if char in _BREAKS:
            line_breaks = True
        if char == " ":
            if index == 0:
                leading_space = True
            if index == last:
                trailing_space = True
            if previous_break:
                break_space = True
            previous_space, previous_break = True, False
        elif char in _BREAKS:
            if index == 0:
                leading_break = True
            if index == last:
                trailing_break = True
            if previous_space:
                space_break = True
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_ws = char in _BLANKZ
    plain = single = block = True
    if leading_space or leading_break or trailing_space or trailing_break:
        plain = False
    if trailing_space:
        block = False
    if break_space:
        plain = single = False
    if space_break or special:
        plain = single = block = False
    if line_breaks:
        plain = False
    if block_indicators:
        plain = False
    return plain, single, block


_ESCAPES = {
    0x00: "0", 0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f", 0x0D: "r",
    0x1B: "e", 0x22: '"', 0x5C: "\\", 0x85: "N", 0xA0: "_", 0x2028: "L", 0x2029: "P",
}  # fmt: skip


def double_quoted(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if not _printable(code) or code == 0xFEFF or char in _BREAKS or char in '"\\':
            short = _ESCAPES.get(code)
            if short is not None:
                out.append("\\" + short)
            elif code <= 0xFF:
                out.append(f"\\x{code:02X}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04X}")
            else:
                out.append(f"\\U{code:08X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _literal(text: str, indent: int) -> str:
    if text.endswith("\n"):
        body = text[:-1]
        chomp = "+" if body == "" or body.endswith("\n") else ""
    else:
        body, chomp = text, "-"
    pad = " " * indent
    lines = [pad + line if line else "" for line in body.split("\n")]
    return "|" + chomp + "\n" + "\n".join(lines)


def _plain_is_string(text: str) -> bool:
    resolved = resolve_plain(text)
    return type(resolved) is str and not _BASE60_FLOAT.fullmatch(text) and text not in _OLD_BOOLS


# Printable ASCII that starts with a character no indicator rule looks at: plain unless it holds
# ": " or " #" or ends in ":" or a space. Checking that first skips the full analysis for most values.
_SIMPLE = re.compile(r"[A-Za-z0-9_./(][\x20-\x7e]*")


def _simple_plain(text: str) -> bool:
    return (
        _SIMPLE.fullmatch(text) is not None
        and not text.endswith((" ", ":"))
        and ": " not in text
        and " #" not in text
        and not text.startswith(("---", "..."))
    )


def render_string(text: str, indent: int | None) -> str:
    """A string value as go-yaml writes it in block context; ``indent`` is the column a literal
    block's lines start at, or None where a block scalar cannot go."""
    if "\n" in text:
        plain_ok, single_ok, block_ok = _analyze(text)
        if block_ok and indent is not None and text[0] not in " \n":
            return _literal(text, indent)
        return double_quoted(text)
    if not _plain_is_string(text):
        return double_quoted(text)
    if _simple_plain(text):
        return text
    plain_ok, single_ok, _ = _analyze(text)
    if plain_ok:
        return text
    if single_ok:
        return "'" + text.replace("'", "''") + "'"
    return double_quoted(text)


def render_value(value: Any, type_tag: str, indent: int | None) -> str:
    """A decrypted value of sops type ``type_tag`` as go-yaml writes it."""
    if type_tag == "str":
        if isinstance(value, bytes):
            return "!!binary " + base64.b64encode(value).decode()
        return render_string(value, indent)
    if type_tag == "int":
        return str(value)
    if type_tag == "float":
        return format_float_yaml(value)
    if type_tag == "bool":
        return "true" if value else "false"
    if type_tag == "time":
        return str(value)
    if type_tag == "bytes":
        return "!!binary " + base64.b64encode(value).decode()
    return double_quoted(str(value))
