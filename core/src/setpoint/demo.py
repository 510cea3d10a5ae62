"""``setpoint demo``: a Git repository, a setpoint.yaml with a ``files`` target, and a live directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

DEMO_FILES = {
    "hosts/web/etc/app.conf": "# Managed by setpoint: edit in Git, not here.\nlisten_port = 8080\nworkers = 4\n",
    "hosts/web/etc/motd": "Welcome. This host's configuration comes from Git.\n",
    "hosts/web/etc/conf.d/limits.conf": "max_connections = 512\n",
}

DEMO_CONFIG = """\
# A demo: the files under hosts/web/etc in ./repo are kept in ./live.
sources:
  demo:
    url: ./repo
    branch: main
    poll_interval: 2s
targets:
  - name: web-config
    kind: files
    source: demo
    path: hosts/web/etc
    interval: 30s
    prune: true
    self_heal: true
    files:
      destination: ./live
state: sqlite:///.setpoint/state.db
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def create_demo(directory: Path) -> Path:
    """Create what is missing (never overwrites); returns the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    repo = directory / "repo"
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "--quiet", "--initial-branch", "main")
        for relpath, text in DEMO_FILES.items():
            path = repo / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "-c", "user.name=setpoint demo", "-c", "user.email=demo@setpoint.invalid", "commit", "--quiet",
             "-m", "Initial web host configuration")
    config = directory / "setpoint.yaml"
    if not config.exists():
        config.write_text(DEMO_CONFIG)
    return config
