"""Build the configured notifiers: kinds from the ``setpoint_register_notifiers`` hook, URLs read
from their file or environment variable (they are credentials), settings checked by the kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from setpoint.api import Notifier
from setpoint.builtin.notify.dispatcher import Route
from setpoint.config import config_line_index, validate_block
from setpoint.errors import ConfigError, PluginLoadError
from setpoint.opsconfig import read_credential
from setpoint.secrets import Secret, register_known_values

if TYPE_CHECKING:
    from setpoint.config import Config
    from setpoint.plugins import Registry


def notifier_kinds(registry: Registry) -> dict[str, type[Notifier]]:
    kinds: dict[str, type[Notifier]] = {}

    def register(cls: type[Notifier]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Notifier)) or not getattr(cls, "kind", None):
            raise PluginLoadError(f"register() expects a Notifier subclass with a kind, got {cls!r}")
        if cls.kind in kinds:
            raise PluginLoadError(f"notifier kind {cls.kind!r} is registered twice")
        kinds[cls.kind] = cls

    registry.hook.setpoint_register_notifiers(register=register)
    return kinds


def build_routes(config: Config, registry: Registry) -> list[Route]:
    """One route per configured notifier; every problem is reported at once as a ConfigError."""
    kinds = notifier_kinds(registry)
    index = config_line_index(config.file)
    routes, problems = [], []
    for number, nc in enumerate(config.notifications.notifiers):
        where = f"notifications.notifiers[{number}] ({nc.name})"
        cls = kinds.get(nc.kind)
        if cls is None:
            problems.append(f"{where}: no notifier kind {nc.kind!r} (installed: {', '.join(sorted(kinds)) or 'none'})")
            continue
        settings, issues = validate_block(cls.Settings, nc.settings_block, str(config.file), index,
                                          ("notifications", "notifiers", number, nc.kind))
        problems.extend(str(p) for p in issues)
        url = None
        if cls.needs_url:
            if nc.url_file is None and nc.url_env is None:
                problems.append(f"{where}: kind {nc.kind} needs url_file or url_env")
                continue
            try:
                value = read_credential(nc.url_file, nc.url_env, config.base_dir)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            # the URL embeds a token: from now on the scrubber blanks it wherever it might appear
            register_known_values([value])
            url = Secret(value, f"notifier {nc.name} url")
        if issues:
            continue
        notifier = cls(nc.name, url, settings)
        if hasattr(notifier, "base_dir"):
            notifier.base_dir = config.base_dir  # type: ignore[attr-defined]
        routes.append(Route(nc.name, notifier, frozenset(nc.events), frozenset(nc.targets)))
    unknown = sorted({t for nc in config.notifications.notifiers for t in nc.targets} - {t.name for t in config.targets})
    if unknown:
        problems.append(f"notifications: unknown target(s) in a notifier's targets: {', '.join(unknown)}")
    if problems:
        raise ConfigError("\n".join(problems))
    return routes
