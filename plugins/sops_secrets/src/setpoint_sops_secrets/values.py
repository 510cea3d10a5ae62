"""Typed values: turn decrypted bytes into Python values and compute the bytes sops hashes.

The MAC is over sops' ``ToBytes`` of each value, which depends on the Go type, not on the text in
the file: a float hashes as ``strconv.FormatFloat(v, 'f', -1)``, a bool as ``True``/``False``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.gofmt import format_float_f, parse_bool, parse_float, parse_int

_ZERO_OFFSET = re.compile(r"[+-]00:00$")


class Comment(str):
    """A comment's text (without the ``#``); comments are data in sops' tree but never hashed."""

    __slots__ = ()


def time_mac_text(text: str) -> str:
    """Go's ``time.MarshalText`` of a parsed RFC 3339 time prints a zero offset as ``Z``."""
    return _ZERO_OFFSET.sub("Z", text)


def decode(raw: bytes, type_tag: str, keep_bytes: bool = False) -> tuple[Any, bytes | None]:
    """Decrypted bytes of ``type_tag`` → (Python value, bytes for the MAC or None for comments).

    Time values stay strings (RFC 3339 with nanoseconds does not fit ``datetime``), exactly as sops
    prints them. ``keep_bytes`` is for the binary store, whose ``str`` payload may be any bytes.
    """
    if type_tag == "str":
        if keep_bytes:
            return raw, raw
        try:
            return raw.decode("utf-8"), raw
        except UnicodeDecodeError as exc:
            raise FormatProblem("a decrypted string is not valid UTF-8") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatProblem(f"a decrypted {type_tag} value is not valid UTF-8") from exc
    try:
        if type_tag == "int":
            number = parse_int(text)
            return number, str(number).encode()
        if type_tag == "float":
            real = parse_float(text)
            return real, format_float_f(real).encode()
        if type_tag == "bool":
            flag = parse_bool(text)
            return flag, b"True" if flag else b"False"
    except ValueError as exc:
        raise FormatProblem(f"a decrypted value does not parse as {type_tag}") from exc
    if type_tag == "time":
        return text, time_mac_text(text).encode()
    if type_tag == "comment":
        return Comment(text), None
    if type_tag == "bytes":
        return raw, raw
    raise FormatProblem(f"unknown sops value type {type_tag!r}")


def clear_mac_bytes(value: Any) -> bytes:
    """``ToBytes`` of a value that was stored in clear (Python type as the stores produce it)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return format_float_f(value).encode()
    if isinstance(value, bytes):
        return value
    raise FormatProblem(f"cannot hash a value of type {type(value).__name__}")


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
