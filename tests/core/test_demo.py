"""`setpoint demo` runs even when its default port is taken: it picks a free one and says which."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

from setpoint.demo import DEFAULT_LISTEN, create_demo


def _occupy(listen: str) -> socket.socket | None:
    host, _, port = listen.rpartition(":")
    sock = socket.socket()
    try:
        sock.bind((host, int(port)))
        sock.listen(1)
    except OSError:  # someone else holds it already: taken either way
        sock.close()
        return None
    return sock


def test_create_demo_avoids_a_taken_port_and_keeps_git_content(tmp_path: Path) -> None:
    holder = _occupy(DEFAULT_LISTEN)
    try:
        config, address = create_demo(tmp_path / "demo")
        assert address and address != DEFAULT_LISTEN
        assert f"listen: {address}" in config.read_text()
        # a second start with the port now free elsewhere keeps the config; --listen changes only that line
        _, again = create_demo(tmp_path / "demo", "127.0.0.1:0")
        assert again == "127.0.0.1:0" and "listen: 127.0.0.1:0" in config.read_text()
        assert "hosts/web/etc" in config.read_text()
    finally:
        if holder:
            holder.close()


def test_demo_daemon_starts_when_9464_is_taken(tmp_path: Path) -> None:
    holder = _occupy(DEFAULT_LISTEN)
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "demo", str(tmp_path / "demo")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        address = None
        deadline = time.monotonic() + 60
        while address is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"demo exited early with {proc.poll()}"
            if match := re.search(r"on http://(\S+) ", line):
                address = match.group(1)
        assert address and address != DEFAULT_LISTEN
        while time.monotonic() < deadline:
            with suppress(OSError):
                with urllib.request.urlopen(f"http://{address}/healthz", timeout=2) as response:  # noqa: S310
                    assert response.status == 200
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the demo's server never answered on {address}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if holder:
            holder.close()
