"""Control characters in data from Git or the state store, escaped for one line of text.

A leaf with no imports: ``setpoint status`` and ``audit`` (setpoint.quick) escape every cell with it,
and importing ``re`` for one character class would cost them a tenth of their start-up
(docs/benchmarks.md, case 9). :mod:`setpoint.logs` and :mod:`setpoint.render` use it too, so logs,
the CLI and the quick path escape alike.
"""

from __future__ import annotations

#: ``\\n`` and ``\\r`` by name; every other escaped character as ``\\xNN`` or ``\\uNNNN``.
_NAMED = {"\n": "\\n", "\r": "\\r"}
_table: dict[int, str] | None = None


def _escaped(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code & 0xff:02x}" if 0xDC80 <= code <= 0xDCFF or code <= 0xFF else f"\\u{code:04x}"


def _controls() -> dict[int, str]:
    """What to escape: C0 but tab, DEL and C1, the Unicode line and paragraph separators (a
    terminal or log reader would start a new line) and surrogates (undecodable bytes)."""
    global _table
    if _table is None:
        codes = [*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000)]
        _table = {code: _escaped(code) for code in codes}
    return _table


def escape_controls(value: object) -> str:
    """``value`` as one line of text with every control character escaped (``\\n``, ``\\x1b``)."""
    text = str(value)
    if text.isprintable():  # none of them (all are Cc, Cs, Zl or Zp): the usual case, no table built
        return text
    return text.translate(_controls())
