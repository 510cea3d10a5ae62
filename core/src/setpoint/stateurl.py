"""Where the state lives, as setpoint.yaml names it: the PostgreSQL URL rules shared by the config models and
the state backends (a module of its own so the state store loads without the config models' pydantic)."""

from __future__ import annotations

from urllib.parse import urlsplit

from setpoint.errors import ConfigError

PASSWORD_FILE_ENV = "SETPOINT_STATE_PASSWORD_FILE"  # noqa: S105 - a variable name
PASSWORD_ENV = "SETPOINT_STATE_PASSWORD"  # noqa: S105 - a variable name


def is_postgresql_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def check_postgresql_url(url: str) -> None:
    """A ConfigError for a URL that cannot be used (a password in it, above all)."""
    parts = urlsplit(url)
    if parts.password is not None or "password=" in parts.query:
        raise ConfigError(
            "state: the PostgreSQL URL carries a password; setpoint.yaml must not hold credentials. Remove it "
            f"and give it in {PASSWORD_FILE_ENV} (a file holding the password), {PASSWORD_ENV}, or libpq's "
            "PGPASSFILE/passfile= (docs/operations.md)")
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError("state: the PostgreSQL URL names no host; e.g. "
                          "postgresql://setpoint@db.example.com:5432/setpoint")
