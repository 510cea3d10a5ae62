"""The INI store, read the way go-ini (which sops uses) reads files.

Sections map to mappings of strings; keys before any header belong to ``DEFAULT``; ``;``/``#``
lines are comments (sops encrypts them as ``; ENC[...]``); values may be quoted with ``"``,
backticks or ``\"\"\"`` (multi-line). The ``[sops]`` section holds flattened metadata, whose
newlines are written as ``\\n`` (or, by sops 3.13.0/3.13.1, inside ``\"\"\"``).
The decrypted file is the original text with each encrypted value replaced, so alignment stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from setpoint_sops_secrets.cipher import is_enc
from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.metadata import unflatten
from setpoint_sops_secrets.stores.base import ParsedFile
from setpoint_sops_secrets.tree import LeafContext

DEFAULT = "DEFAULT"


@dataclass
class _Entry:
    line: int
    #: None for a comment line
    key: str | None
    value: str
    #: character span of a single-line value inside its line (for replacement), else None
    span: tuple[int, int] | None = None


@dataclass
class _Section:
    name: str
    header_line: int | None
    entries: list[_Entry] = field(default_factory=list)


def _unquote(raw: str) -> tuple[str, bool]:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "`\"'":
        return raw[1:-1], True
    return raw, False


def _parse(text: str) -> tuple[list[str], list[_Section]]:
    lines = text.split("\n")
    sections: dict[str, _Section] = {DEFAULT: _Section(DEFAULT, None)}
    order = [sections[DEFAULT]]
    current = sections[DEFAULT]
    number = 0
    while number < len(lines):
        line = lines[number].rstrip("\r")
        stripped = line.strip()
        if not stripped:
            number += 1
            continue
        if stripped[0] in ";#":
            current.entries.append(_Entry(number, None, stripped.lstrip("#; ")))
            number += 1
            continue
        if stripped[0] == "[":
            close = stripped.find("]")
            if close < 0:
                raise FormatProblem(f"line {number + 1}: unclosed section header")
            name = stripped[1:close].strip()
            if name not in sections:  # go-ini merges repeated sections
                sections[name] = _Section(name, number)
                order.append(sections[name])
            current = sections[name]
            number += 1
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            raise FormatProblem(f"line {number + 1} is not key = value")
        key, _ = _unquote(line[:cut].strip())
        rest = line[cut + 1 :]
        value_start = cut + 1 + (len(rest) - len(rest.lstrip()))
        raw = rest.strip()
        span: tuple[int, int] | None = None
        if raw.startswith('"""'):
            body = raw[3:]
            if body.endswith('"""') and len(body) >= 3:
                value = body[:-3]
            else:
                collected = [body]
                while True:
                    number += 1
                    if number >= len(lines):
                        raise FormatProblem('unterminated """ value')
                    follow = lines[number].rstrip("\r")
                    if follow.rstrip().endswith('"""'):
                        collected.append(follow.rstrip()[:-3])
                        break
                    collected.append(follow)
                value = "\n".join(collected)
        else:
            value, quoted = _unquote(raw)
            if not quoted:
                comment = min((i for i in (raw.find("#"), raw.find(";")) if i >= 0), default=-1)
                if comment >= 0:
                    value = raw[:comment].rstrip()
            span = (value_start, value_start + len(raw))
        current.entries.append(_Entry(number, key, value, span))
        number += 1
    return lines, order


def go_ini_value(value: str) -> str:
    """How go-ini writes a value: quoting only what would not read back."""
    if "\n" in value or "`" in value:
        return '"""' + value + '"""'
    if "#" in value or ";" in value:
        return "`" + value + "`"
    if value.strip() != value:
        return '"' + value + '"'
    return value


class IniStore:
    format = "ini"

    def parse(self, content: bytes) -> ParsedFile:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatProblem("an INI file must be UTF-8") from None
        lines, sections = _parse(text.removeprefix("\ufeff"))
        meta = [s for s in sections if s.name == "sops"]
        if not meta:
            raise FormatProblem("no [sops] section (not a sops file)")
        flat = {e.key: e.value.replace("\\n", "\n") for e in meta[0].entries if e.key is not None}
        return ParsedFile(unflatten(flat), (lines, sections))

    def _walk(self, sections: list[_Section], lines: list[str], ctx: LeafContext) -> dict[str, Any]:
        data: dict[str, Any] = {}
        matches = ctx.selection.matches
        previous: _Section | None = None
        for index, section in enumerate(sections):
            if section.name == "sops":
                continue
            values: dict[str, Any] = {}
            if section.name != DEFAULT or any(entry.key is not None for entry in section.entries):
                values = data.setdefault(section.name, {})  # go-ini's implicit DEFAULT only when used
            section_matched = matches(section.name)
            following = sections[index + 1].name if index + 1 < len(sections) else section.name
            for entry in section.entries:
                if entry.key is None:
                    # a comment right before the next header is that section's comment to go-ini
                    candidates = [(section.name,), (following,), (DEFAULT,), ()]
                    if previous is not None:
                        candidates.append((previous.name,))
                    if is_enc(entry.value):
                        decrypted = ctx.comment(entry.value, candidates)
                        if decrypted is not None:
                            line = lines[entry.line]
                            lines[entry.line] = line[: len(line) - len(line.lstrip())] + "; " + decrypted
                    continue
                where = f"{section.name}.{entry.key}"
                if entry.key in values:
                    raise FormatProblem(f"duplicate key {where}")
                tree, plain, type_tag = ctx.leaf(
                    entry.value, (section.name, entry.key), section_matched or matches(entry.key), where
                )
                values[entry.key] = tree
                if type_tag is not None and entry.span is not None:
                    line = lines[entry.line]
                    lines[entry.line] = line[: entry.span[0]] + go_ini_value(str(plain)) + line[entry.span[1] :]
            previous = section
        return data

    def decrypt(self, parsed: ParsedFile, ctx: LeafContext) -> tuple[list[Any], bytes]:
        lines, sections = parsed.payload
        lines = list(lines)
        data = self._walk(sections, lines, ctx)
        meta = next(s for s in sections if s.name == "sops")
        assert meta.header_line is not None
        end = min((s.header_line for s in sections if s.header_line is not None and s.header_line > meta.header_line),
                  default=len(lines))
        kept = lines[: meta.header_line] + lines[end:]
        while kept and not kept[-1].strip():
            kept.pop()
        return [data], ("\n".join(kept) + "\n").encode("utf-8")

    def documents_from_plaintext(self, plaintext: bytes, ctx: LeafContext) -> list[Any]:
        lines, sections = _parse(plaintext.decode("utf-8"))
        return [self._walk(sections, lines, ctx)]
