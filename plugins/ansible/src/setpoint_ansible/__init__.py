"""setpoint plugin providing the 'ansible' target kind (hosts configured by Ansible playbooks)."""

__version__ = "0.1.0"
