"""Durable state: target status, inventory, drift, held plans, drivers' memory and the audit log."""

from setpoint.state.status import AuditAction, PauseInfo, TargetStatus
from setpoint.state.store import AuditEntry, DriftRecord, HeldPlan, InventoryItem, Pause, StateStore

__all__ = ["AuditAction", "AuditEntry", "DriftRecord", "HeldPlan", "InventoryItem", "Pause", "PauseInfo", "StateStore",
           "TargetStatus"]
