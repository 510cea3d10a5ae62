"""Helpers for the operations tests: a local HTTP receiver for notifications, a stand-in for the
scheduler's loops, an in-process server on a free port, and a toy decryptor for canary secrets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from setpoint import hookimpl
from setpoint.api import DecryptedFile, Decryptor
from setpoint.secrets import Secret

CANARY = "CANARY-5e1d-ops-never-leak"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


# --------------------------------------------------------------------------- notification receiver


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST (and can fail the first N)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fail_next = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if owner.fail_next > 0:
                    owner.fail_next -= 1
                    self.send_response(503)
                else:
                    owner.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- scheduler stand-in


@dataclass
class FakeLoops:
    """Records wake-ups instead of reconciling (the real scheduler is tested end to end)."""

    woken_sources: list[tuple[str, str]] = field(default_factory=list)
    woken_targets: list[tuple[str, str]] = field(default_factory=list)
    first_pass_done: threading.Event = field(default_factory=threading.Event)
    is_running: bool = True

    @property
    def running(self) -> bool:
        return self.is_running

    def wake(self, name: str, reason: str) -> None:
        self.woken_targets.append((name, reason))

    def wake_source(self, source: str, reason: str = "webhook") -> None:
        self.woken_sources.append((source, reason))


@contextmanager
def serving(engine: Any, loops: Any = None) -> Iterator[str]:
    """Start metrics, notifications and the HTTP server for ``engine``; yields the base URL."""
    from setpoint.server.runtime import start_operations

    ops = start_operations(engine, loops)
    try:
        assert ops.address is not None
        host, port = ops.address
        yield f"http://{host}:{port}"
    finally:
        ops.stop()


def notify_plugin(engine: Any) -> Any:
    return engine.registry.pm.get_plugin("notify")


# --------------------------------------------------------------------------- canary decryptor


class CanaryDecryptor(Decryptor):
    """``CANARY-ENC`` on the first line, YAML after it; every ``config`` value becomes a Secret."""

    name = "canary"

    def detect(self, relpath: str, content: bytes) -> bool:
        return content.startswith(b"CANARY-ENC\n")

    def decrypt(self, relpath: str, content: bytes) -> DecryptedFile:
        text = content.decode().split("\n", 1)[1]
        docs = []
        for doc in yaml.safe_load_all(text):
            items = doc if isinstance(doc, list) else [doc]
            docs.append([{**i, "config": Secret(i["config"], f"{relpath}:config")} if "config" in i else i
                         for i in items])
        return DecryptedFile(relpath, "yaml", docs, Secret(text.encode(), relpath), self.name)


class CanaryPlugin:
    __name__ = "canary"

    @hookimpl
    def setpoint_register_decryptors(self, register: Callable[[type[Decryptor]], None]) -> None:
        register(CanaryDecryptor)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
