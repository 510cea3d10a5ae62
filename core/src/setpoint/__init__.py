"""setpoint: a GitOps engine. Public names for plugin authors live here and in setpoint.api."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Mark a function in a plugin module as a hook implementation: ``@setpoint.hookimpl``.
hookimpl = pluggy.HookimplMarker("setpoint")

__all__ = ["__version__", "hookimpl"]
