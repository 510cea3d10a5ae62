"""Registers the 'kubernetes' target kind with setpoint."""

from __future__ import annotations

from collections.abc import Callable, Collection

from setpoint import hookimpl
from setpoint.api import ApplyResult, Desired, Live, Plan, SourceTree, TargetDriver
from setpoint.errors import PermanentError

NOT_IMPLEMENTED = "the 'kubernetes' target kind is not implemented yet in this version of setpoint-kubernetes"


class KubernetesTarget(TargetDriver):
    """Placeholder: registers the kind so configs validate; every stage says it is not implemented."""

    kind = "kubernetes"

    def render(self, tree: SourceTree) -> Desired:
        raise PermanentError(NOT_IMPLEMENTED)

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        raise PermanentError(NOT_IMPLEMENTED)

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        raise PermanentError(NOT_IMPLEMENTED)


@hookimpl
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    register(KubernetesTarget)
