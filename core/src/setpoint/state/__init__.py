"""Durable state: target status, inventory, drift, held plans, drivers' memory and the audit log.

The names below are loaded on first use, so ``setpoint status`` (setpoint.quick) can import the
package's small modules (stateschema, quickstate) without the store and its dependencies."""

TYPE_CHECKING = False  # not typing's: see setpoint/__init__.py
if TYPE_CHECKING:
    from setpoint.state.status import AuditAction, PauseInfo, TargetStatus
    from setpoint.state.store import AuditEntry, DriftRecord, HeldPlan, InventoryItem, Pause, StateStore

__all__ = ["AuditAction", "AuditEntry", "DriftRecord", "HeldPlan", "InventoryItem", "Pause", "PauseInfo", "StateStore",
           "TargetStatus"]

_FROM_STATUS = {"AuditAction", "PauseInfo", "TargetStatus"}


def __getattr__(name: str) -> object:
    if name in _FROM_STATUS:
        from setpoint.state import status

        return getattr(status, name)
    if name in __all__:
        from setpoint.state import store

        return getattr(store, name)
    raise AttributeError(f"module 'setpoint.state' has no attribute {name!r}")
