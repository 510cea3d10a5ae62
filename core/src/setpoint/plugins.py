"""Plugin discovery and registration: pluggy, plus a loader that isolates broken plugins.

Built-in plugins (``setpoint.builtin.*``) are registered through the same hooks as external ones;
external plugins come from the ``setpoint`` entry-point group. A plugin that fails to import or
register is recorded with its error and skipped: only targets of the kinds it would have
provided fail (with that reason); everything else runs.

Environment switches:

``SETPOINT_DISABLE_PLUGINS=a,b``  block these plugin names (entry-point names)
``SETPOINT_LOAD_PLUGINS=a,b``     load only these external plugins (built-ins always load)
``SETPOINT_STRICT_PLUGINS=1``     re-raise the first load error instead of continuing
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from setpoint import hookspecs
from setpoint.api import Decryptor, TargetDriver
from setpoint.errors import DuplicateKindError, PluginLoadError, UnknownKindError
from setpoint.secrets import safe_error
from setpoint.suggest import close_match

log = logging.getLogger("setpoint.plugins")

ENTRY_POINT_GROUP = "setpoint"
BUILTIN_PLUGINS = ("setpoint.builtin.files", "setpoint.builtin.metrics", "setpoint.builtin.notify")
#: Built-ins that only watch a running daemon (see ``observers`` of :func:`get_plugin_manager`).
OBSERVER_PLUGINS = ("setpoint.builtin.metrics", "setpoint.builtin.notify")


@dataclass
class PluginRecord:
    name: str
    distribution: str
    version: str
    module: str
    builtin: bool = False
    kinds: list[str] = field(default_factory=list)
    decryptors: list[str] = field(default_factory=list)
    #: Notifier kinds (validated and built when ``setpoint run`` starts its notifications).
    notifiers: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version, "module": self.module,
            "builtin": self.builtin, "kinds": self.kinds, "decryptors": self.decryptors, "notifiers": self.notifiers,
            "hooks": self.hooks, "error": self.error,
        }


@dataclass
class Registry:
    """What the loaded plugins provide, and what failed to load."""

    pm: pluggy.PluginManager
    kinds: dict[str, type[TargetDriver]] = field(default_factory=dict)
    decryptors: dict[str, type[Decryptor]] = field(default_factory=dict)
    plugins: list[PluginRecord] = field(default_factory=list)
    #: kind name -> why it is unavailable (its plugin failed to load), when known.
    failed_kinds: dict[str, str] = field(default_factory=dict)

    def driver_class(self, kind: str) -> type[TargetDriver]:
        if kind in self.kinds:
            return self.kinds[kind]
        if kind in self.failed_kinds:
            raise UnknownKindError(self.failed_kinds[kind])
        failures = [f"{p.name}: {p.error}" for p in self.plugins if p.error]
        hint = f" (plugins that failed to load: {'; '.join(failures)})" if failures else ""
        installed = f"installed kinds: {', '.join(sorted(self.kinds)) or 'none'}{hint}"
        typo = close_match(kind, self.kinds)
        if typo:  # a spelling mistake, not a missing distribution
            raise UnknownKindError(f"unknown target kind {kind!r} (did you mean {typo!r}?); {installed}")
        raise UnknownKindError(
            f"no plugin provides target kind {kind!r}; {installed}. "
            f"Install it, e.g. pip install 'setpoint[{kind.replace('_', '-')}]'"
        )

    @property
    def hook(self) -> Any:
        return self.pm.hook


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("setpoint")
    pm.add_hookspecs(hookspecs)
    return pm


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


def _register(registry: Registry, record: PluginRecord, plugin: ModuleType | object) -> None:
    """Register one plugin object and collect what it provides; roll back on failure."""
    pm = registry.pm
    kinds: dict[str, type[TargetDriver]] = {}
    decryptors: dict[str, type[Decryptor]] = {}

    def register_kind(cls: type[TargetDriver]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, TargetDriver)):
            raise PluginLoadError(f"register() expects a TargetDriver subclass, got {cls!r}")
        kind = getattr(cls, "kind", None)
        if not kind:
            raise PluginLoadError(f"{cls.__name__} has no 'kind'")
        if kind in registry.kinds or kind in kinds:
            owner = next((p.name for p in registry.plugins if kind in p.kinds), "another plugin")
            raise DuplicateKindError(f"target kind {kind!r} is already provided by {owner}")
        kinds[kind] = cls

    def register_decryptor(cls: type[Decryptor]) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Decryptor)):
            raise PluginLoadError(f"register() expects a Decryptor subclass, got {cls!r}")
        name = getattr(cls, "name", None)
        if not name:
            raise PluginLoadError(f"{cls.__name__} has no 'name'")
        if name in registry.decryptors or name in decryptors:
            raise DuplicateKindError(f"decryptor {name!r} is registered twice")
        decryptors[name] = cls

    pm.register(plugin, name=record.name)
    try:
        caller = pm.subset_hook_caller("setpoint_register_target_kinds", remove_plugins=[
            p for p in pm.get_plugins() if p is not plugin])
        caller(register=register_kind)
        caller = pm.subset_hook_caller("setpoint_register_decryptors", remove_plugins=[
            p for p in pm.get_plugins() if p is not plugin])
        caller(register=register_decryptor)
        pm.check_pending()
    except BaseException:
        pm.unregister(plugin)
        raise
    registry.kinds.update(kinds)
    registry.decryptors.update(decryptors)
    record.kinds = sorted(kinds)
    record.decryptors = sorted(decryptors)
    record.notifiers = _notifier_kinds(pm, plugin)
    record.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])


def _notifier_kinds(pm: pluggy.PluginManager, plugin: ModuleType | object) -> list[str]:
    """The notifier kinds a plugin registers, for listings only: a bad registration is reported
    when notifications start (setpoint.builtin.notify.setup), not here."""
    found: list[str] = []
    caller = pm.subset_hook_caller("setpoint_register_notifiers",
                                   remove_plugins=[p for p in pm.get_plugins() if p is not plugin])
    try:
        caller(register=lambda cls: found.append(str(getattr(cls, "kind", "?"))))
    except Exception:  # noqa: BLE001 - a listing must not fail a plugin that loaded
        return []
    return sorted(found)


def _declared_kinds(entry_point: metadata.EntryPoint) -> list[str]:
    """The kinds a broken plugin would have provided: by convention its entry-point name."""
    return [entry_point.name]


def _provides_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "setpoint" / "plugin-provides.json"


def _read_provides() -> dict[str, Any]:
    try:
        data = json.loads(_provides_cache().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_provides(data: dict[str, Any]) -> None:
    try:
        path = _provides_cache()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: every run loads every plugin, as before


def _only_unused_kinds(record: dict[str, Any] | None, needed: set[str]) -> bool:
    """True when a plugin is known (from an earlier load of the same version) to provide nothing but
    target kinds this configuration does not use: no decryptor, notifier or other hook."""
    if not isinstance(record, dict):
        return False
    kinds = set(record.get("kinds") or [])
    hooks = set(record.get("hooks") or []) - {"setpoint_register_target_kinds"}
    return bool(kinds) and not (kinds & needed) and not record.get("decryptors") and not record.get("notifiers") \
        and not hooks


def get_plugin_manager(load_entrypoints: bool = True, extra_plugins: Iterable[object] = (),
                       needed_kinds: Iterable[str] | None = None, observers: bool = True) -> Registry:
    """Build a fresh registry: built-ins, then entry points, then ``extra_plugins`` (for tests).

    Never a module global: every caller (CLI, engine, a test) gets its own.

    ``needed_kinds`` (the kinds a configuration uses) skips the import of plugins known to provide only
    other kinds: importing a plugin (kubernetes' client, terraform's HCL parser) is most of a short
    command's start-up. What each plugin version provides is learnt on its first load and kept in
    ``~/.cache/setpoint/plugin-provides.json``; an unknown plugin, or one with decryptors (encrypted
    files are found by content), notifiers or other hooks, always loads.

    ``observers=False`` leaves out the built-in metrics and notifications: only ``setpoint run``
    serves the one and starts the other, so a one-shot command (sync, diff, approve) would import
    prometheus_client and every notifier's model for nothing.
    """
    registry = Registry(_new_manager())
    strict = os.environ.get("SETPOINT_STRICT_PLUGINS") == "1"
    blocked = _env_list("SETPOINT_DISABLE_PLUGINS") or set()
    allowed = _env_list("SETPOINT_LOAD_PLUGINS")
    for name in blocked:
        registry.pm.set_blocked(name)

    setpoint_version = metadata.version("setpoint") if _has_dist("setpoint") else "0"
    for module_name in BUILTIN_PLUGINS:
        if not observers and module_name in OBSERVER_PLUGINS:
            continue
        short = module_name.rsplit(".", 1)[-1]
        record = PluginRecord(short, "setpoint", setpoint_version, module_name, builtin=True)
        # A broken built-in is a broken installation: fail loudly.
        module = importlib.import_module(module_name)
        # A built-in with per-engine state (metrics, notification noise control) has make_plugin():
        # every registry gets its own instance, so two engines in one process never share state.
        plugin = module.make_plugin() if hasattr(module, "make_plugin") else module
        _register(registry, record, plugin)
        registry.plugins.append(record)

    needed = set(needed_kinds) if needed_kinds is not None else None
    provides = _read_provides() if load_entrypoints else {}
    provides_changed = False
    if load_entrypoints:
        for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if entry_point.name in blocked or (allowed is not None and entry_point.name not in allowed):
                continue
            dist = entry_point.dist
            record = PluginRecord(entry_point.name, dist.name if dist else "?", dist.version if dist else "?", entry_point.value)
            cache_key = f"{entry_point.name}={entry_point.value}@{record.distribution}=={record.version}"
            if needed is not None and _only_unused_kinds(provides.get(cache_key), needed):
                continue
            try:
                plugin = entry_point.load()
                _register(registry, record, plugin)
                if provides.get(cache_key) != record.to_dict():
                    provides[cache_key] = record.to_dict()
                    provides_changed = True
            except Exception as exc:  # noqa: BLE001 - isolate any plugin failure
                if strict:
                    raise PluginLoadError(f"plugin {entry_point.name!r} failed to load: {safe_error(exc)}") from exc
                record.error = safe_error(exc)
                log.error("plugin %s (%s %s) failed to load: %s", record.name, record.distribution, record.version, record.error)
                log.debug("plugin load traceback", exc_info=True)
                for kind in _declared_kinds(entry_point):
                    registry.failed_kinds.setdefault(kind, f"plugin {entry_point.name!r} failed to load: {record.error}")
            registry.plugins.append(record)

    if provides_changed:
        _write_provides(provides)
    for index, plugin in enumerate(extra_plugins):
        name = getattr(plugin, "__name__", None) or f"extra-{index}-{type(plugin).__name__}"
        record = PluginRecord(name, "(test)", "0", name)
        _register(registry, record, plugin)
        registry.plugins.append(record)
    return registry


def _has_dist(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False
