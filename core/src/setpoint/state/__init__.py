"""Durable state: target status, inventory, drift, held plans, revisions and the audit log."""

from setpoint.state.store import AuditEntry, DriftRecord, HeldPlan, InventoryItem, Pause, StateStore

__all__ = ["AuditEntry", "DriftRecord", "HeldPlan", "InventoryItem", "Pause", "StateStore"]
