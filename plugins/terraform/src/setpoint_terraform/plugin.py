"""Registers the 'terraform' target kind (Terraform or OpenTofu) with setpoint."""

from __future__ import annotations

from collections.abc import Callable

from setpoint import hookimpl
from setpoint.api import TargetDriver
from setpoint_terraform.target import TerraformTarget


@hookimpl
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    register(TerraformTarget)
