"""Registers the 'ansible' target kind with setpoint."""

from __future__ import annotations

from collections.abc import Callable

from setpoint import hookimpl
from setpoint.api import TargetDriver
from setpoint_ansible.target import AnsibleTarget


@hookimpl
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    register(AnsibleTarget)
