"""Shell completion for the CLI: scripts for bash, zsh and fish (click's), and target names read from
setpoint.yaml without validating it (completion must be instant and must work on a broken file)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import yaml
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_SETPOINT_COMPLETE"


def completion_script(shell: str, command: click.Command) -> str:
    cls = get_completion_class(shell)
    if cls is None:  # click.Choice keeps this from happening
        raise click.UsageError(f"no completion for {shell}; use one of {', '.join(SHELLS)}")
    return cls(command, {}, "setpoint", COMPLETE_VAR).source()


def _config_path(ctx: click.Context) -> Path:
    for current in (ctx, *_parents(ctx)):
        if current.params.get("config_path"):
            return Path(current.params["config_path"])
    return Path(os.environ.get("SETPOINT_CONFIG") or "setpoint.yaml")


def _parents(ctx: click.Context) -> list[click.Context]:
    found = []
    while ctx.parent is not None:
        ctx = ctx.parent
        found.append(ctx)
    return found


def target_names(path: Path) -> list[str]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    targets = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(targets, list):
        return []
    return [str(t["name"]) for t in targets if isinstance(t, dict) and isinstance(t.get("name"), str)]


def complete_targets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Target names of the configuration in effect (-c, $SETPOINT_CONFIG or ./setpoint.yaml)."""
    del param
    return [CompletionItem(name) for name in target_names(_config_path(ctx)) if name.startswith(incomplete)]


