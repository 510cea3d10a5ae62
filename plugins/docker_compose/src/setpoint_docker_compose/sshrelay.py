"""A local socket for an ``ssh://`` Docker host, so Docker's Python client keeps its connections.

Docker's Python client reaches an ``ssh://`` host through one ``ssh … docker system dial-stdio``
process per HTTP connection, and never reuses that connection (urllib3 sees the unconnected socket
object it wraps as dropped), so every API request paid an SSH session and a ``docker`` process on the
host: about 0.2 s per request there, a no-op observe (three list requests) slower than a whole
``docker compose up -d`` over the same SSH. Instead, setpoint listens on a unix socket in its private
ssh directory and gives the client ``unix://`` that socket: each connection the client opens (it
keeps them alive) becomes one ``ssh ALIAS docker system dial-stdio`` whose streams are relayed both
ways. That is how the ``docker`` CLI itself uses SSH, and the events stream is one such connection.

When ssh fails (the host is down, its key is unknown) the relay closes the client's connection and
ssh's last message is kept for the error the target reports (paths and host names only: ssh never
prints key material).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path

_relays: dict[str, SshRelay] = {}
_lock = threading.Lock()


class SshRelay:
    def __init__(self, ssh_argv: list[str], socket_path: Path) -> None:
        self.argv = [*ssh_argv, "docker system dial-stdio"]
        self.path = socket_path
        self.last_error = ""
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        self._server.bind(str(socket_path))
        socket_path.chmod(0o600)
        self._server.listen(64)
        threading.Thread(target=self._accept, name=f"ssh-relay-{socket_path.stem}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            self.last_error = f"cannot run ssh: {exc.strerror}"
            client.close()
            return
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

        def upstream() -> None:  # client -> ssh
            try:
                while data := client.recv(65536):
                    proc.stdin.write(data)  # type: ignore[union-attr]
            except OSError:
                pass
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]

        threading.Thread(target=upstream, daemon=True).start()
        try:
            while data := os.read(proc.stdout.fileno(), 65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            # ssh's reason first, then the client's connection: whoever sees the closed connection
            # finds the reason already recorded
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err = proc.stderr.read().decode(errors="replace").strip()
            if proc.returncode not in (0, -15) and err:
                self.last_error = err.splitlines()[-1][:300]
            elif proc.returncode == 0:
                self.last_error = ""
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()


def relay_for(name: str, ssh_argv: list[str], directory: Path) -> SshRelay:
    """The process's relay for one host (one listening socket, shared by the target's clients)."""
    with _lock:
        relay = _relays.get(name)
        if relay is None:
            relay = SshRelay(ssh_argv, directory / f"{name}.sock")
            _relays[name] = relay
        return relay
