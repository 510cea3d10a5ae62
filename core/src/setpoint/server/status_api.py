"""The JSON status API (/api/v1): read with a status token, act with an admin token.

Reads come from the state store, which holds no secret values; every response is scrubbed once
more before it leaves. Each mutating call is audited twice over: the engine records the action
itself (pause, resume, approve) with the caller as actor, and an ``api`` entry records the call
with the caller, its address and the result, so sync-now requests are in the audit log too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from setpoint import views
from setpoint.durations import parse_duration
from setpoint.errors import SetpointError
from setpoint.secrets import safe_error
from setpoint.server.auth import ADMIN, STATUS, Caller
from setpoint.server.http import json_response, read_json

if TYPE_CHECKING:
    from setpoint.server.app import AppContext

CALLS = ("sync", "approve", "pause", "resume")
HISTORY_LIMIT = views.HISTORY_LIMIT
AUDIT_LIMIT = 50


def _names(ctx: AppContext) -> list[str]:
    return [t.name for t in ctx.engine.config.targets]


def list_targets(ctx: AppContext) -> list[dict[str, Any]]:
    engine = ctx.engine
    return views.status_rows(engine.config, engine.store, {name: engine.source_error(name) for name in engine.sources})


def one_target(ctx: AppContext, name: str, limit: int) -> dict[str, Any]:
    store = ctx.engine.store
    target = ctx.engine.config.target(name)
    row = views.status_row(target, store.status(name), store, ctx.engine.source_error(target.source))
    row["history"] = views.history_rows(store, name, HISTORY_LIMIT)
    row["audit"] = [e.to_dict() for e in store.audit_entries(target=name, limit=limit)]
    return row


def pending_plans(ctx: AppContext) -> list[dict[str, Any]]:
    return views.held_plan_rows(ctx.engine.store)


# --------------------------------------------------------------------------- mutating calls


def perform(ctx: AppContext, caller: Caller, remote: str, call: str, name: str, body: dict[str, Any],
            via: str = "api") -> dict[str, Any]:
    """Carry out one mutating call and audit it with the caller (``via``: "api" or "dashboard").

    Raises SetpointError/ValueError (already audited as refused) when the engine refuses."""
    engine = ctx.engine
    kind = engine.config.target(name).kind
    details: dict[str, Any] = {"call": call, "remote": remote}
    if via != "api":
        details["via"] = via
    try:
        if call == "sync":
            if ctx.loops is None:
                raise SetpointError("the reconcile loops are not running in this process")
            ctx.loops.wake(name, caller.actor)
            result: dict[str, Any] = {"target": name, "queued": True}
        elif call == "approve":
            plan_id = str(body.get("plan_id") or "")
            details["plan_id"] = plan_id
            held = engine.approve(name, plan_id, caller.actor)
            result = {"target": name, "plan_id": held.plan_id, "approved_by": caller.actor}
        elif call == "pause":
            seconds = parse_duration(body["for"]) if body.get("for") else None
            details["reason"] = str(body.get("reason") or "")
            pause = engine.pause(name, str(body.get("reason") or ""), caller.actor, seconds)
            result = {"target": name, "paused_by": pause.paused_by, "until": pause.until, "reason": pause.reason}
        else:
            resumed = engine.resume(name, caller.actor)
            result = {"target": name, "resumed": resumed is not None}
    except (SetpointError, ValueError) as exc:
        details["result"] = "refused"
        details["error"] = safe_error(exc)
        engine.store.audit("api", target=name, kind=kind, actor=caller.actor, result="refused", details=details)
        raise
    engine.store.audit("api", target=name, kind=kind, actor=caller.actor, result="ok", details=details)
    return result


# --------------------------------------------------------------------------- routes


def routes(ctx: AppContext) -> list[Route]:
    async def targets(request: Request) -> Response:
        if (denied := ctx.deny(request, STATUS)) is not None:
            return denied
        return json_response(await run_in_threadpool(list_targets, ctx))

    async def target(request: Request) -> Response:
        if (denied := ctx.deny(request, STATUS)) is not None:
            return denied
        name = request.path_params["name"]
        if name not in _names(ctx):
            return json_response({"error": f"no target named {name}"}, 404)
        try:
            limit = max(1, min(int(request.query_params.get("limit", AUDIT_LIMIT)), 1000))
        except ValueError:
            return json_response({"error": "limit must be a number"}, 400)
        return json_response(await run_in_threadpool(one_target, ctx, name, limit))

    async def plans(request: Request) -> Response:
        if (denied := ctx.deny(request, STATUS)) is not None:
            return denied
        return json_response(await run_in_threadpool(pending_plans, ctx))

    async def plugins(request: Request) -> Response:
        if (denied := ctx.deny(request, STATUS)) is not None:
            return denied
        return json_response([p.to_dict() for p in ctx.engine.registry.plugins])

    async def act(request: Request) -> Response:
        if (denied := ctx.deny(request, ADMIN)) is not None:
            return denied
        caller = ctx.caller(request)
        assert caller is not None
        name, call = request.path_params["name"], request.path_params["call"]
        if call not in CALLS:
            return json_response({"error": f"unknown call {call!r}; one of {', '.join(CALLS)}"}, 404)
        if name not in ctx.engine.runners:
            return json_response({"error": f"no enabled target named {name}"}, 404)
        body = await read_json(request, ctx.max_body)
        if isinstance(body, Response):
            return body
        remote = request.client.host if request.client else "-"
        try:
            result = await run_in_threadpool(perform, ctx, caller, remote, call, name, body)
        except (SetpointError, ValueError) as exc:
            return json_response({"error": safe_error(exc)}, 409)
        return json_response(result, 202 if call == "sync" else 200)

    return [
        Route("/api/v1/targets", targets, methods=["GET"]),
        Route("/api/v1/targets/{name}", target, methods=["GET"]),
        Route("/api/v1/plans", plans, methods=["GET"]),
        Route("/api/v1/plugins", plugins, methods=["GET"]),
        Route("/api/v1/targets/{name}/{call:str}", act, methods=["POST"]),
    ]
