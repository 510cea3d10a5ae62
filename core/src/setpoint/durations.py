"""Human durations in configuration and on the command line: ``30s``, ``5m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
#: The longest duration accepted anywhere (pauses, intervals, grace periods): ten years. Longer
#: values are typos, and past a point they overflow date arithmetic and JSON (inf, nan).
MAX_SECONDS = 10 * 365 * 86400.0


def parse_duration(value: str | int | float | timedelta) -> float:
    """Seconds in ``value``; a bare number is seconds. Raises ValueError with a hint otherwise.

    Every result is finite and between 0 and :data:`MAX_SECONDS`."""
    seconds = _parse(value)
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"{value!r} is out of range; a duration is at most 10 years (e.g. 2h, 30d)")
    return seconds


def _parse(value: str | int | float | timedelta) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise ValueError("a duration cannot be true/false; write e.g. 30s, 5m, 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        try:
            return float(value)
        except OverflowError:  # an int too large for a float
            return math.inf
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h30m, 2d")
    return total


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration`, rounded to whole seconds (``1h5m``)."""
    seconds = int(round(seconds))
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)
