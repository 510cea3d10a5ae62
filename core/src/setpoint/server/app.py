"""The ASGI application of ``setpoint run``: one Starlette app, all endpoints.

=======================================  ===========  ==============================================
path                                     auth         what
=======================================  ===========  ==============================================
GET  /healthz                            none         liveness: the process answers
GET  /readyz                             none         readiness: state store reachable, loops running
GET  /metrics                            none [1]     Prometheus exposition (no secrets, bounded labels)
POST /hooks/{provider}                   signature    github, gitlab, gitea, forgejo, bitbucket, generic
GET  /api/v1/targets[/{name}], /plans    status token read-only status, history, audit, held plans
POST /api/v1/targets/{name}/{call}       admin token  sync, approve, pause, resume (audited)
GET  /, /ui/...                          session      the web dashboard (setpoint.server.dashboard)
=======================================  ===========  ==============================================

[1] a status token with ``server.metrics_require_token: true``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from setpoint.server import dashboard, status_api
from setpoint.server.auth import STATUS, Caller, TokenAuth
from setpoint.server.http import json_response, read_body
from setpoint.server.receiver import WebhookReceiver
from setpoint.server.webhooks import PROVIDERS

if TYPE_CHECKING:
    from setpoint.builtin.metrics import MetricsPlugin
    from setpoint.engine.engine import Engine


class Loops(Protocol):
    """What the server needs from the scheduler (tests may pass a stand-in)."""

    first_pass_done: threading.Event

    @property
    def running(self) -> bool: ...

    def wake(self, name: str, reason: str) -> None: ...

    def wake_source(self, source: str, reason: str = "webhook") -> None: ...


@dataclass
class AppContext:
    engine: Engine
    loops: Loops | None
    auth: TokenAuth
    receiver: WebhookReceiver
    metrics: MetricsPlugin | None
    max_body: int
    metrics_require_token: bool = False

    def caller(self, request: Request) -> Caller | None:
        return self.auth.identify(request.headers.get("authorization"))

    def deny(self, request: Request, role: str) -> Response | None:
        """None when the request may proceed; else the 401/403 response to send."""
        if not self.auth.configured:
            return json_response({"error": "the status API is off: configure server.status_tokens or admin_tokens"}, 403)
        caller = self.caller(request)
        if caller is None:
            return json_response({"error": "a valid bearer token is required"}, 401,
                                 {"WWW-Authenticate": 'Bearer realm="setpoint"'})
        if not caller.may(role):
            return json_response({"error": f"token {caller.name} may not make this call (needs an admin token)"}, 403)
        return None


def build_app(ctx: AppContext) -> Starlette:
    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        store_ok = await run_in_threadpool(ctx.engine.store.ping)
        loops_ok = ctx.loops is not None and ctx.loops.running
        checks: dict[str, Any] = {"state_store": store_ok, "loops": loops_ok,
                                  "first_pass_done": bool(ctx.loops and ctx.loops.first_pass_done.is_set())}
        reloads = getattr(ctx.engine, "reloads", None)  # the last SIGHUP reload (setpoint.reload)
        if reloads is not None and reloads.last_result is not None:
            checks["config_reload"] = reloads.to_json()
        ready = store_ok and loops_ok
        return json_response({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)

    async def metrics(request: Request) -> Response:
        if ctx.metrics_require_token:
            denied = ctx.deny(request, STATUS)
            if denied is not None:
                return denied
        if ctx.metrics is None:
            return PlainTextResponse("metrics plugin not loaded\n", 404)
        data = await run_in_threadpool(ctx.metrics.exposition)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    async def hook(request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in PROVIDERS:
            return json_response({"error": f"unknown provider; one of {', '.join(PROVIDERS)}"}, 404)
        body = await read_body(request, ctx.max_body)
        if isinstance(body, Response):
            ctx.engine.emit("webhook_received", None, {"provider": provider, "result": "too_large"})
            return body
        headers = {k.lower(): v for k, v in request.headers.items()}
        delivery = await run_in_threadpool(ctx.receiver.handle, provider, headers, body)
        # 503: the preview queue is full; a later delivery may find room
        return json_response(delivery.to_json(), delivery.status,
                             {"Retry-After": "60"} if delivery.status == 503 else None)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/hooks/{provider}", hook, methods=["POST"]),
        *status_api.routes(ctx),
        *dashboard.routes(ctx),
    ]
    return Starlette(routes=routes)


def make_context(engine: Engine, loops: Loops | None) -> AppContext:
    """Read tokens and webhook secrets (raises ConfigError naming each missing one)."""
    from setpoint.builtin.metrics import MetricsPlugin

    server = engine.config.server
    auth = TokenAuth.from_config(server, engine.config.base_dir)
    wake_source = loops.wake_source if loops is not None else (lambda source, reason: None)
    receiver = WebhookReceiver(engine, wake_source)
    plugin = engine.registry.pm.get_plugin("metrics")
    metrics = plugin if isinstance(plugin, MetricsPlugin) else None
    return AppContext(engine, loops, auth, receiver, metrics, server.max_body_bytes, server.metrics_require_token)
