"""Smoke tests: the PostgreSQL server of dev/services (dev/services up postgresql)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

pytestmark = pytest.mark.postgresql


def test_loopback_only_with_a_private_password_file(postgresql_url: str) -> None:
    password_file = Path(os.environ["SETPOINT_STATE_PASSWORD_FILE"])
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert urlsplit(postgresql_url).password is None
    with psycopg.connect(postgresql_url, password=password_file.read_text().strip()) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        assert listen is not None and listen[0] == "127.0.0.1"
        assert conn.execute("SHOW fsync").fetchone() == ("on",)


def test_a_wrong_password_is_refused(postgresql_url: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgresql_url, password="not-the-password", connect_timeout=5)
