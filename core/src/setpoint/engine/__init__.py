"""The reconcile engine: per-target reconcile, scheduling and the decrypt stage (core-internal)."""

from setpoint.engine.engine import Engine

__all__ = ["Engine"]
