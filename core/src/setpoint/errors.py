"""Exceptions shared by the core and plugins. Messages never contain secret values."""

from __future__ import annotations


class SetpointError(Exception):
    """Base class of every error setpoint raises on purpose."""


class ConfigError(SetpointError):
    """The configuration file is invalid."""


class StateError(SetpointError):
    """The state store cannot be opened or used (corrupt, truncated, not a setpoint database)."""


class SourceError(SetpointError):
    """Git could not be read, or a path in it is invalid."""


class DecryptError(SetpointError):
    """An encrypted file could not be decrypted or verified (bad MAC, missing key)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RenderError(SetpointError):
    """The desired state at this revision is invalid (a broken manifest, bad HCL)."""


class TemporaryError(SetpointError):
    """Worth retrying: the target or its host is unreachable, a lock is held."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(SetpointError):
    """Retrying without a change in Git or configuration will not help."""


class PluginLoadError(SetpointError):
    """A plugin failed to import or register."""


class DuplicateKindError(PluginLoadError):
    """Two plugins registered the same target kind or decryptor name."""


class UnknownKindError(SetpointError):
    """No loaded plugin provides a target kind."""
