"""The CLI on a PostgreSQL state: sync, status, audit --since/--until, and `setpoint state migrate` from an
existing SQLite installation (issue 19 item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from setpoint.testing import GitRepo, write_config

pytestmark = pytest.mark.postgresql


def cli(config: Path | None, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    head = ["-c", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "setpoint.cli", *head, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_sync_on_sqlite_then_migrate_then_sync_on_postgresql(tmp_path: Path, git_repo: GitRepo,
                                                              pg_state_url: str) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    live = tmp_path / "live"
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(live)}}],
        state="sqlite:///state/state.db")
    assert cli(config, "sync").returncode == 0
    before = json.loads(cli(config, "audit", "-o", "json").stdout)
    assert before, "the SQLite installation has an audit history"

    moved = cli(None, "state", "migrate", "--from", f"sqlite:///{tmp_path / 'state' / 'state.db'}", "--to", pg_state_url)
    assert moved.returncode == 0, moved.stderr
    assert "audit" in moved.stdout
    refused = cli(None, "state", "migrate", "--from", f"sqlite:///{tmp_path / 'state' / 'state.db'}",
                  "--to", pg_state_url)
    assert refused.returncode != 0 and "already holds a state" in refused.stderr

    data = yaml.safe_load(config.read_text())
    data["state"] = pg_state_url
    config.write_text(yaml.safe_dump(data))
    assert json.loads(cli(config, "audit", "-o", "json").stdout) == before
    git_repo.commit({"etc/a.conf": "b\n"})
    synced = cli(config, "sync")
    assert synced.returncode == 0, synced.stderr
    assert (live / "a.conf").read_text() == "b\n"
    status = cli(config, "status")
    assert status.stdout.rstrip().endswith(f"state: {pg_state_url}")
    after = json.loads(cli(config, "audit", "-o", "json").stdout)
    assert after[:len(before)] == before and len(after) > len(before)
    newest = after[-1]["time"]
    window = json.loads(cli(config, "audit", "--since", time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                       time.localtime(newest - 1)), "-o", "json").stdout)
    assert window and all(e["time"] >= newest - 1 for e in window)
    assert not (tmp_path / ".setpoint" / "state.db").exists()


def test_a_state_url_with_a_password_is_refused_before_connecting(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}],
        state="postgresql://setpoint:hunter2@127.0.0.1:1/setpoint")
    result = cli(config, "status")
    assert result.returncode != 0
    assert "hunter2" not in result.stdout + result.stderr
    assert "SETPOINT_STATE_PASSWORD_FILE" in result.stderr


def test_a_one_shot_sync_of_many_targets_applies_each_under_its_own_lease(tmp_path: Path, git_repo: GitRepo,
                                                                          pg_state_url: str) -> None:
    """`setpoint sync` reconciles up to ``defaults.concurrency`` targets at once; on PostgreSQL each applies
    under a borrowed lease. Every worker must borrow through the same lease holder: one made per worker
    thread took the store's fence from the others (a target then saw "no longer holds its lease (token
    None)" and nothing was applied)."""
    names = [f"t{i:02d}" for i in range(24)]
    git_repo.commit({f"t/{n}/value.txt": f"{n}\n" for n in names})
    live = tmp_path / "live"
    config = write_config(tmp_path, git_repo.path, [
        {"name": n, "kind": "files", "path": f"t/{n}", "files": {"destination": str(live / n)}} for n in names],
        state=pg_state_url)
    data = yaml.safe_load(config.read_text())
    data.setdefault("defaults", {})["concurrency"] = 8
    config.write_text(yaml.safe_dump(data))
    synced = cli(config, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "lease" not in synced.stderr
    assert all((live / n / "value.txt").read_text() == f"{n}\n" for n in names)
    status = json.loads(cli(config, "status", "-o", "json").stdout)
    rows = status["targets"] if isinstance(status, dict) else status
    assert len(rows) == len(names)
