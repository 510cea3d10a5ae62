"""setpoint: a GitOps engine. Public names for plugin authors live here and in setpoint.api."""

from __future__ import annotations

# not `from typing import ...`: typing costs `setpoint status` a third of its start-up (setpoint.quick);
# mypy and ruff read a module-level TYPE_CHECKING as typing's
TYPE_CHECKING = False

__version__ = "0.1.0"

if TYPE_CHECKING:
    from typing import Any

    import pluggy

    #: Mark a function in a plugin module as a hook implementation: ``@setpoint.hookimpl``.
    hookimpl: pluggy.HookimplMarker


def __getattr__(name: str) -> Any:
    # pluggy is imported when a plugin asks for hookimpl, not by every `setpoint status`
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker("setpoint")
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module 'setpoint' has no attribute {name!r}")


__all__ = ["__version__", "hookimpl"]
