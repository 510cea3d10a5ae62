"""SIGHUP re-reads setpoint.yaml under a real `setpoint run` (issue 15 item 12): a valid edit is applied
(a target added starts, a removed one stops and keeps its files, a changed setting takes effect); an
edit with problems is rejected with the whole report logged once, the metric, the audit entry and
`setpoint status` saying so, while the previous configuration keeps reconciling."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opshelpers import wait_for

from setpoint.testing import GitRepo, write_config

pytestmark = pytest.mark.slow


class Daemon:
    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=dict(os.environ))

    def text(self) -> str:
        return self.log.read_text()

    def alive(self) -> None:
        assert self.proc.poll() is None, self.text()

    def hup(self) -> None:
        self.alive()
        self.proc.send_signal(signal.SIGHUP)

    def base_url(self, nth: int = 1) -> str:
        """The address the nth HTTP server of this process serves (a good reload starts a new one)."""
        def found() -> str | None:
            self.alive()
            urls = re.findall(r"serving (http://[\d.]+:\d+)", self.text())
            return urls[nth - 1] if len(urls) >= nth else None
        return str(wait_for(found, 30))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def files_target(name: str, destination: Path, path: str = "app") -> dict[str, Any]:
    return {"name": name, "kind": "files", "path": path, "interval": "1h",
            "files": {"destination": str(destination)}}


def configure(tmp_path: Path, repo: GitRepo, targets: list[dict[str, Any]]) -> Path:
    config = write_config(tmp_path, repo.path, targets)
    data = yaml.safe_load(config.read_text())
    data["sources"]["repo"]["poll_interval"] = "1h"  # only SIGHUP (or a live-state event) wakes anything
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True, timeout=60)


def reload_entries(config: Path) -> list[dict[str, Any]]:
    proc = cli(config, "audit", "--since", "1h", "--action", "config-reload", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def metric(url: str, name: str) -> str:
    body = httpx.get(f"{url}/metrics", timeout=10).text
    return "\n".join(line for line in body.splitlines() if line.startswith(name))


@pytest.fixture
def repo(git_repo: GitRepo) -> GitRepo:
    git_repo.commit({"app/app.conf": "port = 80\n", "other/other.conf": "colour = blue\n"}, "v1")
    return git_repo


def test_a_valid_edit_is_applied_added_target_starts_removed_one_stops_changed_one_moves(
        tmp_path: Path, repo: GitRepo) -> None:
    keep, gone, new, moved = (tmp_path / d for d in ("keep", "gone", "new", "moved"))
    config = configure(tmp_path, repo, [files_target("keep", keep), files_target("gone", gone, "other")])
    daemon = Daemon(config, tmp_path / "run.log")
    try:
        daemon.base_url()
        wait_for(lambda: (keep / "app.conf").exists() and (gone / "other.conf").exists(), 30)
        # the edit: "gone" removed, "new" added, "keep" writes somewhere else now
        configure(tmp_path, repo, [files_target("keep", moved), files_target("new", new, "other")])
        daemon.hup()
        wait_for(lambda: (new / "other.conf").exists() and (moved / "app.conf").exists(), 60)
        second = daemon.base_url(2)
        daemon.alive()
        # the removed target stops being managed: its files stay, and a hand edit is left alone
        assert (gone / "other.conf").read_text() == "colour = blue\n"
        (gone / "other.conf").write_text("colour = red\n")
        (moved / "app.conf").write_text("port = 8080\n")  # the changed target is watched at its new place
        wait_for(lambda: (moved / "app.conf").read_text() == "port = 80\n", 30)
        time.sleep(1.0)
        assert (gone / "other.conf").read_text() == "colour = red\n"
        [entry] = reload_entries(config)
        assert entry["result"] == "ok"
        assert entry["details"]["added"] == ["new"]
        assert entry["details"]["removed"] == ["gone"]
        assert entry["details"]["changed"] == ["keep"]
        assert 'setpoint_config_reloads_total{result="ok"} 1.0' in metric(second, "setpoint_config_reloads_total")
        assert "setpoint_config_last_reload_successful 1.0" in metric(second, "setpoint_config_last_reload")
        status = cli(config, "status")
        assert status.returncode == 0
        assert [line.split()[0] for line in status.stdout.splitlines()[1:3]] == ["keep", "new"]
        assert "rejected" not in status.stdout
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()
    assert "applied the new" in daemon.text()


def test_an_edit_with_problems_is_rejected_and_the_running_configuration_keeps_reconciling(
        tmp_path: Path, repo: GitRepo) -> None:
    live = tmp_path / "live"
    config = configure(tmp_path, repo, [files_target("web", live)])
    good = config.read_text()
    daemon = Daemon(config, tmp_path / "run.log")
    try:
        url = daemon.base_url()
        wait_for(lambda: (live / "app.conf").exists(), 30)
        # a file with three mistakes at once, the way people make them
        broken = yaml.safe_load(good)
        broken["targets"][0]["files"]["destinaton"] = broken["targets"][0]["files"].pop("destination")
        broken["targets"].append({"name": "db", "kind": "filez", "source": "repo", "path": "other"})
        broken["targets"].append({"name": "cache", "kind": "files", "source": "nowhere", "path": "other",
                                  "files": {"destination": str(tmp_path / "cache")}})
        config.write_text(yaml.safe_dump(broken, sort_keys=False))
        repo.commit({"app/app.conf": "port = 81\n"}, "v2")
        daemon.hup()
        wait_for(lambda: "NOT applied" in daemon.text(), 60)
        log = daemon.text()
        assert log.count("NOT applied") == 1
        report = log[log.index("NOT applied"):]
        for needle in ("destinaton", "filez", "nowhere"):
            assert needle in report
        # the rejected SIGHUP still polls and reconciles with the configuration that runs
        wait_for(lambda: (live / "app.conf").read_text() == "port = 81\n", 30)
        (live / "app.conf").write_text("port = 9999\n")
        wait_for(lambda: (live / "app.conf").read_text() == "port = 81\n", 30)
        assert not (tmp_path / "cache").exists()
        assert 'setpoint_config_reloads_total{result="failed"} 1.0' in metric(url, "setpoint_config_reloads_total")
        assert "setpoint_config_last_reload_successful 0.0" in metric(url, "setpoint_config_last_reload")
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        assert ready["checks"]["config_reload"]["result"] == "failed"
        config.write_text(good)  # the CLI reads the (fixed) file; the daemon has not seen it yet
        [entry] = reload_entries(config)
        assert entry["result"] == "failed"
        assert any("filez" in p for p in entry["details"]["problems"])
        status = cli(config, "status")
        assert "setpoint run rejected the reload" in status.stdout
        assert "still runs the previous configuration" in status.stdout
        # fixed and reloaded: applied, and the notice is gone
        daemon.hup()
        second = daemon.base_url(2)
        assert "setpoint_config_last_reload_successful 1.0" in metric(second, "setpoint_config_last_reload")
        assert "rejected the reload" not in cli(config, "status").stdout
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()


def test_a_reload_that_moves_the_state_is_refused(tmp_path: Path, repo: GitRepo) -> None:
    live = tmp_path / "live"
    config = configure(tmp_path, repo, [files_target("web", live)])
    daemon = Daemon(config, tmp_path / "run.log")
    try:
        daemon.base_url()
        wait_for(lambda: (live / "app.conf").exists(), 30)
        data = yaml.safe_load(config.read_text())
        data["state"] = f"sqlite:///{tmp_path / 'elsewhere' / 'state.db'}"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        daemon.hup()
        wait_for(lambda: "NOT applied" in daemon.text(), 60)
        assert "restart it to move" in daemon.text()
        daemon.alive()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()
    assert not (tmp_path / "elsewhere").exists()
