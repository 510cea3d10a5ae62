"""setpoint plugin providing the 'kubernetes' target kind (Kubernetes)."""

__version__ = "0.1.0"
