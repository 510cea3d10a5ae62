"""``setpoint demo``: a Git repository, a setpoint.yaml with a ``files`` target, and a live directory."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

#: The address of `setpoint run`'s HTTP server (status API, metrics) when it is free.
DEFAULT_LISTEN = "127.0.0.1:9464"
_LISTEN_LINE = re.compile(r"^(  listen: ).*$", re.MULTILINE)

DEMO_FILES = {
    "hosts/web/etc/app.conf": "# Managed by setpoint: edit in Git, not here.\nlisten_port = 8080\nworkers = 4\n",
    "hosts/web/etc/motd": "Welcome. This host's configuration comes from Git.\n",
    "hosts/web/etc/conf.d/limits.conf": "max_connections = 512\n",
}

DEMO_CONFIG = """\
# yaml-language-server: $schema=./setpoint.schema.json
# A demo: the files under hosts/web/etc in ./repo are kept in ./live.
# setpoint.schema.json (from `setpoint schema`) gives editors completion and checks for every setting.
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
server:
  listen: {listen}
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def port_is_free(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    with socket.socket(socket.AF_INET6 if host.startswith("[") else socket.AF_INET) as sock:
        try:
            sock.bind((host.strip("[]"), int(port)))
        except OSError:
            return False
    return True


def free_listen() -> str:
    """A loopback address with a port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _configured_listen(config_text: str) -> str | None:
    match = _LISTEN_LINE.search(config_text)
    return match.group(0).split(": ", 1)[1].strip() if match else None


def create_demo(directory: Path, listen: str | None = None) -> tuple[Path, str | None]:
    """Create what is missing (never overwrites Git content); returns the config path and the HTTP address.

    The server address is ``listen`` when given, else 9464 on loopback when free, else any free port;
    a demo config written earlier gets only its ``listen`` line changed when that port is taken."""
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
        chosen = listen or (DEFAULT_LISTEN if port_is_free(DEFAULT_LISTEN) else free_listen())
        config.write_text(DEMO_CONFIG.format(listen=chosen))
        return config, chosen
    text = config.read_text()
    current = _configured_listen(text)
    if current is None:  # a demo config from an older setpoint, or edited by hand: leave it
        return config, None
    wanted = listen or (current if port_is_free(current) else free_listen())
    if wanted != current:
        config.write_text(_LISTEN_LINE.sub(lambda m: m.group(1) + wanted, text, count=1))
    return config, wanted
