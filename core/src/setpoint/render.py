"""Output of ``setpoint status`` and ``audit`` without importing click, rich or pydantic.

Lines are written in rich's markup (``[red]...[/]``; user text escaped with :func:`escape`). In a
terminal rich draws them (colours, tables fitted to the width); anywhere else (a pipe, a file, CI
logs) the markup is stripped here and a table is laid out as rich lays out ``box=None,
pad_edge=False``: columns two spaces apart, never wrapped, so one target is one line for grep.
Not importing rich there saves a tenth of a second of every scripted call (docs/benchmarks.md, case 9).
"""

from __future__ import annotations

import sys
from datetime import datetime

from setpoint.escapes import escape_controls

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

# Markup is scanned with str.find, not re: a tag is ``[`` then a lower-case letter, ``#``, ``/`` or
# ``@``, up to the first ``]`` with no ``[`` before it, with the backslashes just before it (rich's
# pattern ``((\\*)\[([a-z#/@][^[]*?)])``); importing re would cost setpoint.quick a tenth of its start-up.
_TAG_START = frozenset("abcdefghijklmnopqrstuvwxyz#/@")

#: A value longer than this is shown as an inline diff, not as ``before -> after``.
LONG_VALUE = 120
#: Unchanged text kept around a change in an inline diff.
UNCHANGED_KEPT = 60


def _tags(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, bracket, end) of each tag in ``text``, left to right and not overlapping, as
    ``re.finditer`` with rich's pattern finds them: ``text[start:bracket]`` are the backslashes before
    the tag, ``text[bracket:end]`` the tag."""
    position = 0
    bracket = text.find("[")
    while bracket >= 0:
        close = text.find("]", bracket + 2)
        if bracket + 1 < len(text) and text[bracket + 1] in _TAG_START and close >= 0 \
                and text.find("[", bracket + 1, close) < 0:
            start = bracket
            while start > position and text[start - 1] == "\\":
                start -= 1
            yield start, bracket, close + 1
            position = close + 1
            bracket = text.find("[", position)
        else:
            bracket = text.find("[", bracket + 1)


def escape(text: str) -> str:
    """Text that rich markup shows as it is (the same escaping as ``rich.markup.escape``)."""
    if "[" in text:
        out, position = [], 0
        for start, bracket, end in _tags(text):
            backslashes = text[start:bracket]
            out.append(f"{text[position:start]}{backslashes}{backslashes}\\{text[bracket:end]}")
            position = end
        out.append(text[position:])
        text = "".join(out)
    if text.endswith("\\") and not text.endswith("\\\\"):
        return text + "\\"
    return text


def plain(value: object) -> str:
    """User data for a markup string: control characters escaped, ``[...]`` never read as markup."""
    return escape(escape_controls(value))


def strip(markup: str) -> str:
    """The text rich would print for ``markup`` without colours."""
    if "[" not in markup:
        return markup
    out, position = [], 0
    for start, bracket, end in _tags(markup):
        if start > position:
            out.append(markup[position:start].replace("\\[", "["))
        if bracket > start:
            backslashes, escaped = divmod(bracket - start, 2)
            out.append("\\" * backslashes)
            if escaped:
                out.append(markup[bracket:end])
        position = end
    if position < len(markup):
        out.append(markup[position:].replace("\\[", "["))
    return "".join(out)


class Output:
    """Where markup lines and tables go: rich in a terminal, plain text elsewhere."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream
        self._rich: Any = None

    @property
    def _out(self) -> Any:
        return self.stream if self.stream is not None else sys.stdout

    @property
    def is_terminal(self) -> bool:
        isatty = getattr(self._out, "isatty", None)
        return bool(isatty and isatty())

    def _console(self) -> Any:
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(file=self._out, highlight=False)
        return self._rich

    def line(self, markup: str, soft_wrap: bool = False) -> None:
        if self.is_terminal:
            self._console().print(markup, soft_wrap=soft_wrap)
        else:
            self._out.write(strip(markup) + "\n")

    def table(self, columns: list[str], rows: list[list[str]]) -> None:
        """Rows of markup cells under plain column titles."""
        if self.is_terminal:
            from rich.table import Table

            table = Table(box=None, pad_edge=False)
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*row)
            self._console().print(table)
            return
        cells = [columns, *[[strip(cell) for cell in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        for row in cells:
            self._out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + "\n")


def emit_json(data: Any) -> None:
    import json

    from setpoint.secrets import to_jsonable

    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


def when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def parse_time(text: str) -> float:
    """Local time ("2026-11-19 14:00", ISO 8601 with zone), or a duration meaning that long ago ("2h").
    Raises ValueError saying how to write it."""
    import time

    from setpoint.durations import parse_duration

    text = text.strip()
    if text == "now":
        return time.time()
    try:
        return time.time() - parse_duration(text.removesuffix(" ago").removesuffix("ago"))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: use a time like '2026-11-19 14:00' (local), ISO 8601, or '2h' for 2 hours ago") from None
    return moment.timestamp()  # naive = local time


def sync_style(value: str) -> str:
    return {"Synced": "[green]Synced[/]", "OutOfSync": "[yellow]OutOfSync[/]"}.get(value, value)


# --------------------------------------------------------------------------- status


STATUS_COLUMNS = ["TARGET", "KIND", "SYNC", "HEALTH", "REVISION", "LAST RUN", "NOTE"]


def status_cells(r: dict[str, Any]) -> list[str]:
    """One status row (setpoint.views) as table cells."""
    note = ""
    if r["last_error"]:
        note = f"[red]{plain(r['error_stage'])}: {plain(r['last_error'])}[/]"
    elif r["paused"]:
        p = r["paused"]
        until = f" until {when(p['until'])}" if p["until"] else ""
        note = plain(f"paused by {p['by']}{until}: {p['reason']}")
    elif r["held_plans"]:
        note = plain(f"plan {r['held_plans'][-1]['plan_id']} held: {r['held_plans'][-1]['reason']}")
    elif r["source_error"]:
        note = f"[red]{plain(r['source_error'])}[/] (the last fetched revision stays in force)"
    elif r["message"]:
        note = plain(r["message"])
    if r["health"] in ("Progressing", "Degraded", "Missing") and r["health_message"] and not r["last_error"]:
        # which object and why (e.g. "Degraded: Deployment.apps/shop/web: progress deadline exceeded")
        note = f"{note}; {plain(r['health_message'])}" if note else plain(r["health_message"])
    return [plain(r["target"]), r["kind"], sync_style(r["sync"]), r["health"], (r["revision"] or "-")[:12],
            when(r["last_run"]) if r["last_run"] else "never", note]


def print_status(out: Output, rows: list[dict[str, Any]], state_path: object, last_reload: dict[str, Any] | None) -> None:
    out.table(STATUS_COLUMNS, [status_cells(r) for r in rows])
    out.line(f"state: {plain(state_path)}")
    if last_reload and last_reload.get("result") == "failed":
        # a running `setpoint run` refused the last edit of setpoint.yaml (SIGHUP, setpoint.reload)
        problems = [str(p) for p in last_reload.get("problems") or []]
        out.line(f"[red]config: setpoint run rejected the reload at {when(last_reload.get('at'))} and still runs the "
                 f"previous configuration; {len(problems)} problem(s), the first: "
                 f"{plain(problems[0] if problems else '?')} (setpoint validate shows them all)[/]")


# --------------------------------------------------------------------------- audit


#: Entries about a live object that moved away from Git: their revision is the one Git wanted, and
#: its author is labelled as the committer, never as the one who made the change.
DRIFT_ACTIONS = ("drift-detected", "revert-drift", "drift-resolved", "drift-overwritten")


def print_audit(out: Output, entries: list[Any]) -> None:
    if not entries:
        out.line("no audit entries in this window")
        return
    for e in entries:
        head = f"[bold]{when(e.time)}[/] {plain(e.target or '-')} [cyan]{plain(e.action)}[/]"
        if e.result and e.result != "ok":
            head += f" [red]{plain(e.result)}[/]"
        if e.action == "drift-detected":
            # the revision's author did not make this change: say who did, or that nobody knows
            head += plain(f" changed by {e.actor}" if e.actor else " changed outside setpoint")
        if e.revision and e.action in DRIFT_ACTIONS:
            head += f"; Git revision {plain(e.revision[:12])} (committed by {plain(e.author)}: {plain(e.subject)})"
        elif e.revision:
            head += f" at {plain(e.revision[:12])} by {plain(e.author)}: {plain(e.subject)}"
        if e.actor and e.action != "drift-detected":
            head += f" (by {plain(e.actor)})"
        if e.trigger:
            head += f" [dim]trigger={plain(e.trigger)}[/]"
        out.line(head)
        for line in audit_lines(e.details, colour=out.is_terminal):
            out.line("    " + line, soft_wrap=True)


def audit_json(entries: list[Any]) -> list[dict[str, Any]]:
    return [{**e.to_dict(), "time_iso": datetime.fromtimestamp(e.time).astimezone().isoformat()} for e in entries]


def audit_lines(details: dict[str, Any], colour: bool = False) -> list[str]:
    """The details of an audit entry as lines of rich markup (user text escaped)."""
    lines = []
    for key in ("reason", "error", "how", "plan_id", "note", "stage"):
        if details.get(key):
            lines.append(plain(f"{key}: {details[key]}"))
    changes = details.get("changes") or ([details["change"]] if "change" in details else [])
    for change in changes:
        tag = " (drift)" if change.get("drift") else ""
        lines.append(plain(f"{change['action']} {change['key']}{tag}"))
        lines.extend("    " + line for line in field_lines(change.get("fields", [])[:50], colour))
    return lines


def show(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"secret"}:
        return f"<secret {value['secret']}>"
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if type(value) is int:
        return str(value)  # what json.dumps writes, without importing json (it imports re)
    import json

    return json.dumps(value)


def field_lines(fields: list[dict[str, Any]], colour: bool = False) -> list[str]:
    """One entry per changed field, as rich markup (user text escaped): multi-line text as a unified
    diff, a long single-line value as an inline diff, anything else as ``before -> after``."""
    lines = []
    for f in fields:
        before, after = f["before"], f["after"]
        path = plain(f["path"])
        multiline = any(isinstance(v, str) and "\n" in v for v in (before, after))
        if multiline and all(v is None or isinstance(v, str) for v in (before, after)):
            import difflib

            before, after = before or "", after or ""
            lines.append(f"{path}:")
            diff = difflib.unified_diff(before.splitlines(), after.splitlines(), "live", "git", lineterm="", n=1)
            lines.extend("  " + plain(d) for d in list(diff)[2:])
            continue
        old, new = show(before), show(after)
        secret = any(isinstance(v, dict) and set(v) == {"secret"} for v in (before, after))
        if (len(old) > LONG_VALUE or len(new) > LONG_VALUE) and before is not None and after is not None \
                and not secret:
            lines.append(f"{path}: ({len(old)} -> {len(new)} characters)")
            lines.append("  " + inline_diff(old, new, colour))
        else:
            lines.append(f"{path}: {plain(old)} -> {plain(new)}")
    return lines


def inline_diff(before: str, after: str, colour: bool) -> str:
    """``before`` and ``after`` in one line of rich markup: unchanged text (long runs shortened),
    removed text as ``[-...-]``, added text as ``{+...+}``; red and green as well in a terminal."""
    import difflib

    def run(text: str, style: str, open_: str, close: str) -> str:
        shown = plain(f"{open_}{text}{close}")
        return f"[{style}]{shown}[/]" if colour else shown

    parts = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for op, b1, b2, a1, a2 in matcher.get_opcodes():
        if op == "equal":
            same = before[b1:b2]
            if len(same) > UNCHANGED_KEPT:
                keep = UNCHANGED_KEPT // 2
                same = f"{same[:keep]}…({len(same) - 2 * keep} unchanged)…{same[-keep:]}"
            parts.append(plain(same))
            continue
        if b2 > b1:
            parts.append(run(before[b1:b2], "red", "[-", "-]"))
        if a2 > a1:
            parts.append(run(after[a1:a2], "green", "{+", "+}"))
    return "".join(parts)
