"""setpoint plugin that decrypts SOPS files."""

__version__ = "0.1.0"
