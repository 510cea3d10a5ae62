"""setpoint plugin providing the 'docker_compose' target kind (Docker Compose)."""

__version__ = "0.1.0"
