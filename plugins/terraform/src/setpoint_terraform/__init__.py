"""setpoint plugin providing the 'terraform' target kind (Terraform/OpenTofu)."""

__version__ = "0.1.0"
