"""Example setpoint plugin (see docs/writing-plugins.md)."""
