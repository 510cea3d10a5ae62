"""Registers the 'kubernetes' target kind with setpoint."""

from __future__ import annotations

from collections.abc import Callable

from setpoint import hookimpl
from setpoint.api import TargetDriver
from setpoint_kubernetes.target import KubernetesTarget


@hookimpl
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    register(KubernetesTarget)


__all__ = ["KubernetesTarget", "setpoint_register_target_kinds"]
