"""Whole-configuration validation for ``setpoint validate``: the generic models, then every plugin-owned
block (a target kind's settings, a decryptor's ``secrets:`` block), all problems at once."""

from __future__ import annotations

from pathlib import Path

from setpoint.config import ConfigProblems, Problem, config_line_index, load_config, validate_block
from setpoint.errors import ConfigError, UnknownKindError
from setpoint.plugins import Registry, get_plugin_manager


def validate_all(config_path: str | Path | None, registry: Registry | None = None) -> list[Problem]:
    try:
        config = load_config(config_path)
    except ConfigProblems as exc:
        return exc.problems
    except ConfigError as exc:
        return [Problem(str(config_path or "setpoint.yaml"), None, "", str(exc))]
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
        for name, block in target.secrets.items():
            merged = {**config.secrets.get(name, {}), **block}
            if name in registry.decryptors:
                problems.extend(validate_block(registry.decryptors[name].Settings, merged, file, index,
                                               ("targets", number, "secrets", name))[1])
            else:
                problems.append(Problem(file, index.get(("targets", number, "secrets", name)),
                                        f"targets[{number}].secrets.{name}", f"no installed decryptor is called {name!r}"))
    for name, block in config.secrets.items():
        if name not in registry.decryptors:
            problems.append(Problem(file, index.get(("secrets", name)), f"secrets.{name}",
                                    f"no installed decryptor is called {name!r} "
                                    f"(installed: {', '.join(sorted(registry.decryptors)) or 'none'})",
                                    "install it, e.g. pip install 'setpoint[sops]'"))
            continue
        problems.extend(validate_block(registry.decryptors[name].Settings, block or {}, file, index, ("secrets", name))[1])
    return problems
