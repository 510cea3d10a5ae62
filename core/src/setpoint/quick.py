"""The ``setpoint`` command's entry point: ``status`` and ``audit`` answered without click, pydantic,
PyYAML or pluggy when they can be, everything else by the full command line (setpoint.cli).

The quick path serves only the plain forms (``[-c FILE] status|audit [options] [-o table|json]``)
of a configuration whose validated form is cached (setpoint.configcache), and read the SQLite state
with plain sqlite3 (setpoint.state.quickstate, by the names in setpoint.state.stateschema, which the
store checks too). Its output is the full command's, byte for byte: setpoint.statusrow builds every
status row and setpoint.render draws both. Any other form, an option it does not know, a value it
cannot parse, an unknown target, a cache miss, a PostgreSQL state or a database the reader cannot
answer for hands the whole command line to setpoint.cli unchanged, which also reports every error.

What it imports is kept to sqlite3 and setpoint's small modules (no typing, logging, pathlib,
dataclasses, json or re on the table path: tests/core/test_quick_start.py checks); these cost more
than half of its start-up before (docs/benchmarks.md, case 9).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from setpoint.state.quickstate import QuickState

#: Options that take a value, by command (the quick path knows no others).
_VALUED = {"status": {"-o", "--output"},
           "audit": {"-o", "--output", "--since", "--until", "--target", "--action"}}


def main() -> None:
    code = serve(sys.argv[1:])
    if code is None:
        from setpoint.cli import main as full

        full()
    sys.exit(code)


def parse(argv: list[str]) -> tuple[str, str | None, dict[str, list[str]]] | None:
    """(command, config path, options) of a command line the quick path serves, else None."""
    config: str | None = None
    command: str | None = None
    options: dict[str, list[str]] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=")
        if not arg.startswith("--"):
            name, eq, inline = arg, "", ""
        if name in ("-c", "--config"):
            if not eq:
                if not args:
                    return None
                inline = args.pop(0)
            config = inline
        elif command is None and arg in _VALUED:
            command = arg
        elif command is not None and name in _VALUED[command]:
            if not eq:
                if not args:
                    return None
                inline = args.pop(0)
            options.setdefault("--output" if name == "-o" else name, []).append(inline)
        else:
            return None  # --help, another command, an option we do not know: the full command line
    if command is None:
        return None
    for name, values in options.items():
        if name != "--action" and len(values) > 1:
            return None
    if options.get("--output", ["table"])[0] not in ("table", "json"):
        return None
    return command, config, options


def serve(argv: list[str]) -> int | None:
    """Run the command if the quick path can; its exit status, or None to hand it to setpoint.cli."""
    parsed = parse(argv)
    if parsed is None:
        return None
    command, config_arg, options = parsed
    from setpoint import configcache

    cached = configcache.lookup(config_arg or os.environ.get("SETPOINT_CONFIG") or "setpoint.yaml")
    if cached is None:
        return None
    output = options.get("--output", ["table"])[0]
    try:
        if command == "status":
            return _status(cached, output)
        return _audit(cached, options, output)
    except _Unserved:
        return None


class _Unserved(Exception):
    """The full command line answers this one (an error to report, a value to explain)."""


def _state(cached: Any) -> QuickState:
    from setpoint.state.quickstate import QuickState, Unreadable

    try:
        return QuickState(cached.state_path)
    except Unreadable:
        raise _Unserved from None


def _status(cached: Any, output: str) -> int:
    from setpoint import render, statusrow
    from setpoint.state.quickstate import Unreadable
    from setpoint.state.stateschema import CONFIG_RELOAD_META

    state = _state(cached)
    try:  # everything is read before anything is printed: a fall-through prints nothing twice
        statuses, pauses = state.statuses(), state.pauses()
        pending: dict[str, list[dict[str, Any]]] = {}
        for plan in state.pending_plans():
            pending.setdefault(plan["target"], []).append(
                statusrow.held_plan_row(plan["target"], plan["plan_id"], plan["revision"], plan["reason"],
                                        plan["created_at"]))
        last_reload = state.meta_json(CONFIG_RELOAD_META)
        rows = [statusrow.status_row(t.name, t.kind, t.source, t.path,
                                     statusrow.normalise(statuses[t.name]) if t.name in statuses else None,
                                     pauses.get(t.name), pending.get(t.name, []))
                for t in cached.targets]
    except (Unreadable, ValueError, TypeError):
        raise _Unserved from None
    finally:
        state.close()
    if output == "json":
        render.emit_json(rows)
    else:
        render.print_status(render.Output(), rows, cached.state_path,
                            last_reload if isinstance(last_reload, dict) else None)
    return 0


def _audit(cached: Any, options: dict[str, list[str]], output: str) -> int:
    from setpoint import render
    from setpoint.state.quickstate import Unreadable

    target = options.get("--target", [None])[0]
    if target is not None and target not in [t.name for t in cached.targets]:
        raise _Unserved  # exit 2 with a suggestion
    actions = options.get("--action", [])
    if any(a not in AUDIT_ACTIONS for a in actions):
        raise _Unserved
    try:
        since = render.parse_time(options["--since"][0]) if "--since" in options else None
        until = render.parse_time(options["--until"][0]) if "--until" in options else None
    except ValueError:
        raise _Unserved from None
    state = _state(cached)
    try:
        entries = state.audit(since, until, target, tuple(actions) or None)
    except Unreadable:
        raise _Unserved from None
    finally:
        state.close()
    if output == "json":
        render.emit_json(render.audit_json(entries))
    else:
        render.print_audit(render.Output(), entries)
    return 0


#: setpoint.state.status.AuditAction's values (a test keeps them equal): another is the full CLI's to refuse.
AUDIT_ACTIONS = frozenset({
    "apply", "revert-drift", "drift-detected", "drift-resolved", "drift-overwritten", "held", "approve", "pause",
    "resume", "error", "recovered", "force-push", "api", "interrupted", "shutdown", "config-reload"})
