"""Formatting helpers of the templates: times, short SHAs, field values and per-field diffs.

Each returns plain text (the templates escape it); diffs come as (css class, text) pairs.
"""

from __future__ import annotations

import difflib
import json
import time
from datetime import datetime
from typing import Any

#: A field diff shows at most this many lines; the rest is summarised.
MAX_DIFF_LINES = 400


def when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def ago(stamp: float | None, now: float | None = None) -> str:
    if not stamp:
        return "never"
    seconds = max(0, int((now or time.time()) - stamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def value(v: Any) -> str:
    """One field value: a secret as its fingerprint, text as is, anything else as compact JSON."""
    if v is None:
        return "(absent)"
    if isinstance(v, dict) and set(v) == {"secret"}:
        return f"secret {v['secret']}"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def field_lines(field: dict[str, Any]) -> list[tuple[str, str]]:
    """The diff of one changed field: multi-line text as a unified diff (live -> Git), anything else
    as the two values. Secrets are fingerprints already (the engine records nothing else)."""
    before, after = field.get("before"), field.get("after")
    multiline = any(isinstance(v, str) and "\n" in v for v in (before, after))
    if multiline and all(v is None or isinstance(v, str) for v in (before, after)) and not field.get("secret"):
        diff = list(difflib.unified_diff((before or "").splitlines(), (after or "").splitlines(), "live", "git",
                                         lineterm="", n=2))[2:]
        lines = [("hunk" if d.startswith("@@") else "del" if d.startswith("-") else "add" if d.startswith("+")
                  else "ctx", d) for d in diff[:MAX_DIFF_LINES]]
        if len(diff) > MAX_DIFF_LINES:
            lines.append(("hunk", f"... {len(diff) - MAX_DIFF_LINES} more lines"))
        return lines
    return [("del", f"- {value(before)}"), ("add", f"+ {value(after)}")]


def live_lines(body: Any, path: str = "") -> list[tuple[str, str]]:
    """A held deletion's live object, field by field, as the lines that will go (secrets are
    fingerprints already: the engine records nothing else)."""
    if isinstance(body, dict) and body and set(body) != {"secret"}:
        lines: list[tuple[str, str]] = []
        for key in sorted(body):
            lines += live_lines(body[key], f"{path}.{key}" if path else str(key))
        return lines[:MAX_DIFF_LINES]
    text = value(body)
    if "\n" in text:
        return [("del", f"- {path}:")] + [("del", f"-   {line}") for line in text.splitlines()]
    return [("del", f"- {path or '(value)'}: {text}")]
