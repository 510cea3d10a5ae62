"""What ``setpoint run`` starts beside the scheduler: metrics, notifications and the HTTP server.

uvicorn serves the Starlette app from a background thread on a socket bound here first, so a
port already in use is a clear startup error rather than a dying thread, and port 0 works (the
chosen address is logged and available as :attr:`Operations.address`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import uvicorn

from setpoint.errors import ConfigError, SetpointError
from setpoint.opsconfig import split_listen

if TYPE_CHECKING:
    from setpoint.engine.engine import Engine
    from setpoint.server.app import Loops
    from setpoint.server.receiver import WebhookReceiver

log = logging.getLogger("setpoint.server")

STARTUP_TIMEOUT = 15.0


def _bind(listen: str) -> socket.socket:
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SetpointError(f"server.listen {listen}: cannot bind ({exc.strerror or exc}); is another setpoint "
                            "running? Set server.listen in setpoint.yaml to a free port (127.0.0.1:0 picks one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class HttpServer:
    def __init__(self, app: Any, listen: str, cert_file: str | None = None, key_file: str | None = None) -> None:
        self.sock = _bind(listen)
        self.tls = cert_file is not None
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False,
                                ssl_certfile=cert_file, ssl_keyfile=key_file, timeout_keep_alive=5,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="setpoint-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.sock.close()
                raise SetpointError("the HTTP server did not start (see the log above; check server.tls files)")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.sock.close()


class Operations:
    """Start with :meth:`start` (raises ConfigError/SetpointError), stop with :meth:`stop`."""

    def __init__(self, engine: Engine, loops: Loops | None) -> None:
        self.engine = engine
        self.loops = loops
        self.http: HttpServer | None = None
        self._notify: object | None = None
        self._receiver: WebhookReceiver | None = None
        self._then: list[Callable[[], None]] = []

    def also_stop(self, stop: Callable[[], None]) -> None:
        """Run ``stop`` after the server and notifications stop (e.g. hand this replica's leases over)."""
        self._then.append(stop)

    @property
    def address(self) -> tuple[str, int] | None:
        return self.http.address if self.http else None

    def start(self) -> None:
        from setpoint.builtin.metrics import MetricsPlugin
        from setpoint.builtin.notify import NotifyPlugin

        metrics = self.engine.registry.pm.get_plugin("metrics")
        if isinstance(metrics, MetricsPlugin):
            metrics.bind(self.engine)
        notify = self.engine.registry.pm.get_plugin("notify")
        if isinstance(notify, NotifyPlugin):
            notify.start(self.engine)
            self._notify = notify
        server = self.engine.config.server
        if not server.enabled:
            return
        try:
            self._start_http()
        except BaseException:
            self.stop()
            raise

    def _start_http(self) -> None:
        from setpoint.server.app import build_app, make_context

        server = self.engine.config.server
        tls = server.tls
        cert = key = None
        if tls is not None:
            cert, key = str(self.engine.config.resolve(tls.cert_file)), str(self.engine.config.resolve(tls.key_file))
            for path in (cert, key):
                try:
                    open(path, "rb").close()
                except OSError as exc:
                    raise ConfigError(f"server.tls: cannot read {path}: {exc.strerror}") from None
        ctx = make_context(self.engine, self.loops)
        self._receiver = ctx.receiver
        self.http = HttpServer(build_app(ctx), server.listen, cert, key)
        self.http.start()
        host, port = self.http.address
        scheme = "https" if self.http.tls else "http"
        where = f"[{host}]" if ":" in host else host
        log.info("serving %s://%s:%d (webhooks: %s; status API: %s)", scheme, where, port,
                 ", ".join(ctx.receiver.providers) or "none configured",
                 "on" if ctx.auth.configured else "off, no tokens configured")

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self._receiver is not None:
            self._receiver.close()  # before the engine closes: a preview uses its sources
            self._receiver = None
        notify = self._notify
        self._notify = None
        if notify is not None:
            notify.stop()  # type: ignore[attr-defined]
        then, self._then = self._then, []
        for stop in then:
            stop()


def start_operations(engine: Engine, loops: Loops | None) -> Operations:
    ops = Operations(engine, loops)
    ops.start()
    return ops
