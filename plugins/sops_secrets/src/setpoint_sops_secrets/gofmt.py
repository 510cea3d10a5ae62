"""Go's number formatting and parsing, as sops relies on it.

sops hashes and re-emits numbers with Go's ``strconv``; a Python ``str(float)`` differs (``1e+21``
vs ``1000000000000000000000``), and a single differing byte breaks the MAC. Python's ``repr`` of a
float yields the same shortest round-trip digits as Go's ``-1`` precision, so only the layout of
those digits has to be reproduced here.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_INT = re.compile(r"[+-]?[0-9]+")


def _digits(value: float) -> tuple[bool, str, int]:
    """Shortest digits of a finite non-zero float: (negative, digits, decimal point position)."""
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    assert isinstance(exponent, int)
    point = len(digit_tuple) + exponent  # value = 0.<digit_tuple> * 10**point
    return bool(sign), digits, point


def _special(value: float, inf: str, ninf: str, nan: str) -> str | None:
    if math.isnan(value):
        return nan
    if math.isinf(value):
        return inf if value > 0 else ninf
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    return None


def _layout_f(negative: bool, digits: str, point: int) -> str:
    if point <= 0:
        text = "0." + "0" * -point + digits
    elif point >= len(digits):
        text = digits + "0" * (point - len(digits))
    else:
        text = digits[:point] + "." + digits[point:]
    return ("-" if negative else "") + text


def _layout_e(negative: bool, digits: str, point: int, min_exp_digits: int = 2) -> str:
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return ("-" if negative else "") + mantissa + "e" + sign + str(abs(exp)).rjust(min_exp_digits, "0")


def format_float_f(value: float) -> str:
    """``strconv.FormatFloat(v, 'f', -1, 64)``: what sops hashes for a float (never an exponent)."""
    special = _special(value, "+Inf", "-Inf", "NaN")
    if special is not None:
        return special
    return _layout_f(*_digits(value))


def format_float_g(value: float) -> str:
    """``strconv.FormatFloat(v, 'g', -1, 64)``: with shortest precision Go switches to the exponent
    form below 1e-4 and from 1e6 on (so 1234568000 prints as ``1.234568e+09``)."""
    special = _special(value, "+Inf", "-Inf", "NaN")
    if special is not None:
        return special
    negative, digits, point = _digits(value)
    exp = point - 1
    if exp < -4 or exp >= 6:
        return _layout_e(negative, digits, point)
    return _layout_f(negative, digits, point)


def format_float_yaml(value: float) -> str:
    """How go-yaml v3 writes a float64 (``.inf``, ``-.inf``, ``.nan`` for the specials)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return format_float_g(value)


def format_float_json(value: float) -> str:
    """How Go's encoding/json writes a float64."""
    special = _special(value, "+Inf", "-Inf", "NaN")
    if special is not None:
        return special  # Go refuses NaN/Inf; sops never stores them in JSON
    negative, digits, point = _digits(value)
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        text = _layout_e(negative, digits, point, min_exp_digits=1)
        return text
    return _layout_f(negative, digits, point)


def parse_int(text: str) -> int:
    """``strconv.Atoi``: optional sign and decimal digits only (Python's int() is more lenient)."""
    if not _INT.fullmatch(text):
        raise ValueError("not an integer")
    return int(text)


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool:
    """``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean")


def parse_float(text: str) -> float:
    """``strconv.ParseFloat`` for the forms sops writes (Python rejects nothing Go would write)."""
    stripped = text.strip()
    if stripped != text or not text:
        raise ValueError("not a float")
    return float(text.replace("Inf", "inf"))
