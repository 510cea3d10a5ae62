"""Whole-configuration validation for ``setpoint validate``: the generic models, then every plugin-owned
block (a target kind's settings, a decryptor's ``secrets:`` block), all problems at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from setpoint import yamlsafe
from setpoint.config import (
    DEFAULT_CONFIG,
    Config,
    ConfigProblems,
    Problem,
    config_line_index,
    load_config,
    validate_block,
)
from setpoint.decryption import build_decryptors
from setpoint.errors import ConfigError, UnknownKindError
from setpoint.plugins import Registry, get_plugin_manager


def validate_all(config_path: str | Path | None, registry: Registry | None = None) -> list[Problem]:
    return check_config(config_path, registry)[1]


def check_config(config_path: str | Path | None, registry: Registry | None = None) -> tuple[Config | None, list[Problem]]:
    """The configuration and every problem in it (the configuration is None when the generic models fail)."""
    try:
        config = load_config(config_path)
    except ConfigProblems as exc:
        # keep going: the kind blocks are checked from the raw file, so one run shows every problem
        registry = registry or get_plugin_manager()
        return None, _by_line(_with_kind_problems(exc.problems, config_path, registry))
    except ConfigError as exc:
        return None, [Problem(str(config_path or "setpoint.yaml"), None, "", str(exc))]
    registry = registry or get_plugin_manager()
    file = str(config.file)
    index = config_line_index(config.file)
    problems: list[Problem] = []
    for number, target in enumerate(config.targets):
        loc = ("targets", number, target.kind)
        try:
            cls = registry.driver_class(target.kind)
        except UnknownKindError as exc:
            problems.append(Problem(file, index.get(("targets", number, "kind")), f"targets[{number}].kind", str(exc)))
            continue
        problems.extend(validate_block(cls.Settings, target.settings_block, file, index, loc)[1])
        for name in target.secrets:
            if name not in registry.decryptors:
                problems.append(Problem(file, index.get(("targets", number, "secrets", name)),
                                        f"targets[{number}].secrets.{name}", f"no installed decryptor is called {name!r}"))
        if target.secrets:
            # the same builder the engine uses for this target's decryptors
            overrides = {n: b for n, b in target.secrets.items() if n in registry.decryptors}
            problems.extend(_target_decryptor_problems(registry, config, overrides, number))
    for name in config.secrets:
        if name not in registry.decryptors:
            problems.append(Problem(file, index.get(("secrets", name)), f"secrets.{name}",
                                    f"no installed decryptor is called {name!r} "
                                    f"(installed: {', '.join(sorted(registry.decryptors)) or 'none'})",
                                    "install it, e.g. pip install 'setpoint[sops]'"))
    problems.extend(build_decryptors(registry, config)[1])
    problems.extend(_verify_key_problems(config, index))
    return config, _by_line(problems)


def _verify_key_problems(config: Config, index: Mapping[tuple[Any, ...], int]) -> list[Problem]:
    """Key files of ``verify`` blocks that cannot be read: every commit would be refused."""
    problems = []
    for name, source in config.sources.items():
        if source.verify is None:
            continue
        files: list[tuple[tuple[str | int, ...], Path]] = [(("gpg_keys", i), path)
                                                            for i, path in enumerate(source.verify.gpg_keys)]
        if source.verify.ssh_allowed_signers is not None:
            files.append((("ssh_allowed_signers",), source.verify.ssh_allowed_signers))
        for loc, path in files:
            resolved = config.resolve(path)
            if not resolved.is_file() or not os.access(resolved, os.R_OK):
                dotted = f"{loc[0]}[{loc[1]}]" if len(loc) == 2 else str(loc[0])
                problems.append(Problem(str(config.file), index.get(("sources", name, "verify", *loc))
                                        or index.get(("sources", name, "verify", loc[0])),
                                        f"sources.{name}.verify.{dotted}",
                                        f"{resolved} cannot be read: no commit of this source "
                                        "could be verified", "check the path (relative to setpoint.yaml)"))
    return problems


def validate_warnings(config_path: str | Path | None) -> list[Problem]:
    """What is valid but unsafe (printed by ``setpoint validate``, never failing it): a production
    source that follows a branch without signature verification (docs/git-safety.md)."""
    try:
        config = load_config(config_path)
    except ConfigError:
        return []  # validate_all reports it
    file, index = str(config.file), config_line_index(config.file)
    warnings = []
    for name, source in config.sources.items():
        if not source.production:
            continue
        line = index.get(("sources", name, "production"))
        if source.verify is None:
            warnings.append(Problem(
                file, line, f"sources.{name}",
                f"production source follows branch {source.branch!r} without verify: anyone who can push to "
                "it deploys to production",
                "add verify: {mode: every-commit, gpg_keys: [...]} or ssh_allowed_signers (docs/git-safety.md), "
                "and protect the branch on the Git server"))
        elif source.verify.mode == "head":
            warnings.append(Problem(
                file, index.get(("sources", name, "verify", "mode")) or line, f"sources.{name}.verify.mode",
                "production source verifies only the head commit: an unsigned commit can arrive under a "
                "signed merge", "use mode: every-commit (docs/git-safety.md)"))
    return warnings


def _by_line(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line or 0))


def _with_kind_problems(problems: list[Problem], config_path: str | Path | None, registry: Registry) -> list[Problem]:
    """The generic model failed: still check each target's kind and kind block from the raw file.
    A misspelled ``kind:`` with its settings block present is named (not "unknown key 'files'")."""
    path = Path(config_path or os.environ.get("SETPOINT_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yamlsafe.load(path.read_text())
    except Exception:  # noqa: BLE001 - not YAML at all: the problems already say so
        return problems
    targets = raw.get("targets") if isinstance(raw, dict) else None
    if not isinstance(targets, list):
        return problems
    file = str(path)
    index = config_line_index(path)
    out = list(problems)
    for number, target in enumerate(targets):
        if not isinstance(target, dict) or not isinstance(target.get("kind"), str):
            continue
        kind = target["kind"]
        block = target.get(kind)
        if kind not in registry.kinds:
            try:
                registry.driver_class(kind)
            except UnknownKindError as exc:
                # a settings block named after an installed kind is the kind the user meant
                blocks = [key for key in target if key in registry.kinds]
                hint = f"the settings block is '{blocks[0]}:'; write kind: {blocks[0]}" if blocks else ""
                out = [p for p in out if not any(p.path == f"targets[{number}].{b}" for b in blocks)]
                out.append(Problem(file, index.get(("targets", number, "kind")), f"targets[{number}].kind", str(exc), hint))
            continue
        out.extend(validate_block(registry.kinds[kind].Settings, block if isinstance(block, dict) else {},
                                  file, index, ("targets", number, kind))[1])
    return out


def _target_decryptor_problems(registry: Registry, config: Config, overrides: dict[str, Any],
                               number: int) -> list[Problem]:
    """Problems of a target's own ``secrets:`` blocks (merged over the top-level ones), only for the
    decryptors it overrides: the others are reported once, at the top level."""
    problems = build_decryptors(registry, config, overrides, ("targets", number, "secrets"))[1]
    return [p for p in problems if any(p.path.startswith(f"targets[{number}].secrets.{name}") for name in overrides)]
