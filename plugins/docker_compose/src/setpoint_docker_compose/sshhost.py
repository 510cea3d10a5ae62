"""``ssh://`` Docker hosts with the key and known_hosts file named in the target's settings.

Docker's Python client and the Compose CLI both reach an ``ssh://`` host by running the system
``ssh`` (``ssh -l USER -p PORT -- HOST docker system dial-stdio``) and neither takes an identity or
a known_hosts file. setpoint therefore gives such a target a host alias (``setpoint-dh-<digest>``)
and puts, first on ``PATH``, a small ``ssh`` wrapper that adds ``-F <the alias's config>`` when, and
only when, one of its arguments is such an alias; every other ``ssh`` (Git's, a user's) runs
unchanged. The alias's config names the real host, the identity file (``IdentitiesOnly``) and the
known_hosts file with ``StrictHostKeyChecking yes``: an unknown or changed host key fails the
connection, it is never accepted; sessions share one master connection per host (``ControlMaster``,
socket in the same private directory). The config holds paths only, never key material.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from setpoint.errors import PermanentError

if TYPE_CHECKING:
    from setpoint_docker_compose.sshrelay import SshRelay

_lock = threading.Lock()
_dir: Path | None = None
_real_ssh = "ssh"
ALIAS_PREFIX = "setpoint-dh-"


def _wrapper_dir() -> Path:
    """The process's wrapper directory, created once and put first on PATH."""
    global _dir, _real_ssh
    if _dir is None:
        real = shutil.which("ssh")
        if real is None:
            raise PermanentError("ssh:// Docker hosts need the OpenSSH client (`ssh`) on PATH")
        _real_ssh = real
        path = Path(tempfile.mkdtemp(prefix="setpoint-ssh-"))
        path.chmod(0o700)
        wrapper = path / "ssh"
        wrapper.write_text(
            "#!/bin/sh\n# setpoint: ssh for Docker host aliases (setpoint_docker_compose/sshhost.py)\n"
            'for a in "$@"; do\n'
            f'  case "${{a#*@}}" in {ALIAS_PREFIX}*) exec {real} -F "{path}/${{a#*@}}.conf" "$@" ;; esac\n'
            "done\n"
            f'exec {real} "$@"\n')
        wrapper.chmod(0o700)
        os.environ["PATH"] = f"{path}{os.pathsep}{os.environ.get('PATH', '')}"
        _dir = path
    return _dir


def aliased_host(host: str, identity_file: Path, known_hosts_file: Path) -> str:
    """``ssh://user@alias[:port]`` for ``host``, with the alias's ssh config written (paths only)."""
    for what, path in (("identity_file", identity_file), ("known_hosts_file", known_hosts_file)):
        if not path.is_file():
            raise PermanentError(f"docker_compose.ssh.{what}: {path} does not exist or is not a file")
    parts = urlsplit(host)
    if not parts.hostname:
        raise PermanentError(f"cannot read a host name from {host!r}")
    digest = hashlib.sha256(f"{host}\0{identity_file}\0{known_hosts_file}".encode()).hexdigest()[:16]
    alias = ALIAS_PREFIX + digest
    config = (f"Host {alias}\n  HostName {parts.hostname}\n  IdentityFile {identity_file}\n  IdentitiesOnly yes\n"
              f"  UserKnownHostsFile {known_hosts_file}\n  GlobalKnownHostsFile /dev/null\n"
              "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n  ServerAliveInterval 15\n"
              "  ServerAliveCountMax 2\n"
              # Docker's client opens one ssh session per HTTP connection: a shared master connection
              # turns each of them into a channel (milliseconds) instead of a full handshake
              # one master per alias, never per host (%C): a target with another key or known_hosts
              # file must not ride on a connection whose host key was checked against a different file
              f"  ControlMaster auto\n  ControlPath {{directory}}/cm-{alias}\n  ControlPersist 60\n")
    with _lock:
        directory = _wrapper_dir()
        config = config.replace("{directory}", str(directory))
        target = directory / f"{alias}.conf"
        if not target.exists() or target.read_text() != config:
            tmp = directory / f".{alias}.tmp"
            tmp.write_text(config)
            tmp.chmod(0o600)
            tmp.replace(target)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"ssh://{user}{alias}{port}"


def api_socket(host: str, identity_file: Path | None, known_hosts_file: Path | None) -> tuple[str, SshRelay]:
    """``unix://`` of a local relay to ``host`` for Docker's Python client (sshrelay.py), and the relay."""
    from setpoint_docker_compose.sshrelay import relay_for

    if identity_file is not None and known_hosts_file is not None:
        host = aliased_host(host, identity_file, known_hosts_file)
    parts = urlsplit(host)
    if not parts.hostname:
        raise PermanentError(f"cannot read a host name from {host!r}")
    with _lock:
        directory = _wrapper_dir()
    argv = [_real_ssh]
    if parts.hostname.startswith(ALIAS_PREFIX):
        argv += ["-F", str(directory / f"{parts.hostname}.conf")]
    if parts.username:
        argv += ["-l", parts.username]
    if parts.port:
        argv += ["-p", str(parts.port)]
    argv += ["--", parts.hostname]
    name = "relay-" + hashlib.sha256(host.encode()).hexdigest()[:16]
    relay = relay_for(name, argv, directory)
    return f"unix://{relay.path}", relay
