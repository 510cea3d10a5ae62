"""Registers the 'docker_compose' target kind with setpoint."""

from __future__ import annotations

from collections.abc import Callable

from setpoint import hookimpl
from setpoint.api import TargetDriver
from setpoint_docker_compose.target import DockerComposeTarget

__all__ = ["DockerComposeTarget"]


@hookimpl
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    register(DockerComposeTarget)
