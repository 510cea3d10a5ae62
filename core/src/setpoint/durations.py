"""Human durations in configuration and on the command line: ``30s``, ``5m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import math

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
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
    if hasattr(value, "total_seconds"):  # a timedelta (not imported here: datetime is, by whoever made it)
        return float(value.total_seconds())
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
    # ``\d+(\.\d+)?`` then a unit, repeated; scanned by hand (``re`` costs setpoint.quick's
    # ``audit --since 1h`` a tenth of its start-up); \d is any Unicode decimal digit, as isdecimal()
    if text and _number_end(text, 0) == len(text):
        return float(text)
    pos, total = 0, 0.0
    while pos < len(text):
        end = _number_end(text, pos)
        unit = "ms" if text.startswith("ms", end) else text[end:end + 1]
        if end == pos or unit not in _UNITS:
            break
        total += float(text[pos:end]) * _UNITS[unit]
        pos = end + len(unit)
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h30m, 2d")
    return total


def _number_end(text: str, pos: int) -> int:
    r"""Where ``\d+(\.\d+)?`` starting at ``pos`` ends (``pos`` if there is no number there)."""
    end = pos
    while end < len(text) and text[end].isdecimal():
        end += 1
    if end > pos and end + 1 < len(text) and text[end] == "." and text[end + 1].isdecimal():
        end += 1
        while end < len(text) and text[end].isdecimal():
            end += 1
    return end


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
