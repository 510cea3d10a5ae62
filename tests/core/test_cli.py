"""The CLI end to end: the audit time window answers "what changed between 2 and 5 PM", history,
exit codes of sync/diff, approve, and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from setpoint.testing import GitRepo, write_config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True, text=True)


def local(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def test_audit_window_answers_what_changed(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/sg.conf": "open_ports = 443\n"}, "Initial rules", author="Alice <alice@example.com>")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(live)}}])
    assert cli(config, "sync").returncode == 0
    time.sleep(1.1)
    window_start = time.time()
    time.sleep(1.1)
    git_repo.commit({"etc/sg.conf": "open_ports = 443, 8443\n"}, "Open 8443 for the API", author="Bob <bob@example.com>")
    assert cli(config, "sync").returncode == 0
    (live / "sg.conf").write_text("open_ports = 22, 443, 8443\n")  # the stale laptop apply
    assert cli(config, "sync").returncode == 0
    time.sleep(1.1)
    window_end = time.time()
    time.sleep(1.1)
    git_repo.commit({"etc/sg.conf": "open_ports = 443\n"}, "Close 8443 again", author="Carol <carol@example.com>")
    assert cli(config, "sync").returncode == 0

    run = cli(config, "audit", "--since", local(window_start), "--until", local(window_end), "-o", "json")
    entries = json.loads(run.stdout)
    actions = [e["action"] for e in entries]
    assert actions == ["apply", "drift-detected", "revert-drift"], actions
    apply = entries[0]
    assert apply["author"] == "Bob <bob@example.com>" and apply["subject"] == "Open 8443 for the API"
    field = apply["details"]["changes"][0]["fields"][0]
    assert field["before"] == "open_ports = 443\n" and field["after"] == "open_ports = 443, 8443\n"
    drift = entries[1]["details"]["changes"][0]["fields"][0]
    assert drift["before"] == "open_ports = 22, 443, 8443\n", "the drift record keeps the live value seen"
    # the readable form says the same
    text = cli(config, "audit", "--since", local(window_start), "--until", local(window_end)).stdout
    assert "Open 8443 for the API" in text and "Bob" in text and "revert-drift" in text and "+open_ports = 443, 8443" in text
    assert "Close 8443" not in text and "Initial rules" not in text
    # a target filter and relative times
    assert cli(config, "audit", "--since", "1h", "--target", "nope", "-o", "json").returncode == 2, "unknown target"
    assert len(json.loads(cli(config, "audit", "--since", "1h", "--target", "edge", "-o", "json").stdout)) == 5
    assert len(json.loads(cli(config, "audit", "--since", "1h", "-o", "json").stdout)) == 5
    bad = cli(config, "audit", "--since", "last thursday")
    assert bad.returncode == 2 and "2026-11-19 14:00" in bad.stderr

    history = json.loads(cli(config, "history", "edge", "-o", "json").stdout)
    assert [h["subject"] for h in history] == ["Close 8443 again", "Open 8443 for the API", "Initial rules"]


def test_sync_and_diff_exit_codes_and_approval(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({f"etc/f{i}.conf": str(i) for i in range(6)})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "prune": True, "files": {"destination": str(live)}}])
    assert cli(config, "diff", "edge").returncode == 1, "differences: exit 1"
    assert cli(config, "sync", "--dry-run").returncode == 0 and not live.exists()
    assert cli(config, "sync", "edge").returncode == 0
    assert cli(config, "diff", "edge").returncode == 0
    git_repo.commit({"etc/f0.conf": None, "etc/f1.conf": None, "etc/f2.conf": None}, "remove three of six")
    run = cli(config, "sync", "-o", "json")
    [outcome] = json.loads(run.stdout)
    assert run.returncode == 1 and outcome["held_plan"] and outcome["sync"] == "OutOfSync"
    status = json.loads(cli(config, "status", "-o", "json").stdout)[0]
    assert status["held_plans"][0]["plan_id"] == outcome["held_plan"]
    run = cli(config, "approve", "edge", outcome["held_plan"], "--by", "lead", "--now")
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in live.iterdir()) == ["f3.conf", "f4.conf", "f5.conf"]
    assert cli(config, "approve", "edge", "deadbeef").returncode == 1
    assert cli(config, "sync", "no-such-target").returncode == 2
