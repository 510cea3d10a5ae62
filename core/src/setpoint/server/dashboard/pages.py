"""Request handlers of the dashboard (see the package docstring for the routes)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from setpoint import views
from setpoint.errors import SetpointError
from setpoint.secrets import safe_error, scrub
from setpoint.server import status_api
from setpoint.server.auth import ADMIN, Caller
from setpoint.server.dashboard import render
from setpoint.server.dashboard.session import COOKIE, Session, Sessions, cookie_header
from setpoint.server.dashboard.throttle import LoginThrottle
from setpoint.server.dashboard.windows import Window, WindowError, parse_window, presets
from setpoint.server.http import json_response, read_body, scrubbed
from setpoint.state import AuditAction

if TYPE_CHECKING:
    from setpoint.server.app import AppContext

HERE = Path(__file__).parent
#: Pages say "no-store": they show live state, and a shared machine's back button should not.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
STATUS_FILTERS = ("Synced", "OutOfSync", "Unknown", "failing", "paused", "held", "degraded")
#: How often the event stream looks for changes, and how often it says it is still there.
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
AUDIT_PAGE_LIMIT = 5000
ACTION_FIELDS = ("reason", "for", "plan_id")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = render.when
    env.filters["ago"] = render.ago
    env.filters["short"] = render.short
    env.filters["value"] = render.value
    env.globals["field_lines"] = render.field_lines
    env.globals["live_lines"] = render.live_lines
    return env


def _matches(row: dict[str, Any], kind: str, status: str, name: str) -> bool:
    if kind and row["kind"] != kind:
        return False
    if name and name.lower() not in row["target"].lower():
        return False
    if not status:
        return True
    return {"failing": row["consecutive_failures"] > 0 or bool(row["last_error"]),
            "paused": row["paused"] is not None, "held": bool(row["held_plans"]),
            "degraded": row["health"] not in ("Healthy", "Unknown")}.get(status, row["sync"] == status)


class Dashboard:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.sessions = Sessions(ctx.engine.store, ctx.auth)
        self.throttle = LoginThrottle()
        self.secure = ctx.engine.config.server.tls is not None
        self.env = _environment()
        self._version_lock = threading.Lock()
        self._version: tuple[float, str] = (-1e9, "")

    # ---------------------------------------------------------------- plumbing

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    async def session_async(self, request: Request) -> Session | None:
        """The request's session, read from the state store off the event loop."""
        return await run_in_threadpool(self.session, request)

    def page(self, template: str, request: Request, session: Session | None, code: int = 200,
             headers: dict[str, str] | None = None, **context: Any) -> Response:
        html = self.env.get_template(template).render(
            session=session, admin=bool(session and session.caller.may(ADMIN)), path=request.url.path,
            **scrubbed(context))
        return HTMLResponse(scrub(html), code, headers={**HEADERS, **(headers or {})})

    async def form(self, request: Request) -> dict[str, str]:
        """The urlencoded form of a POST, read up to server.max_body_bytes (empty when too large or
        not a form: every handler then refuses for a missing field)."""
        body = await read_body(request, self.ctx.max_body)
        if isinstance(body, Response) or not request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):
            return {}
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            return {}
        return dict(pairs)

    def login_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303, headers=HEADERS)

    def refuse(self, request: Request, session: Session | None, code: int, message: str) -> Response:
        return self.page("error.html", request, session, code, message=message)

    # ---------------------------------------------------------------- login

    async def login_form(self, request: Request) -> Response:
        if await self.session_async(request) is not None:
            return RedirectResponse("/ui/", 303, headers=HEADERS)
        return self.page("login.html", request, None, next=_safe_next(request.query_params.get("next")),
                         configured=self.ctx.auth.configured)

    async def login(self, request: Request) -> Response:
        remote = _remote(request)
        wait = self.throttle.retry_after(remote)
        if wait:
            await run_in_threadpool(self._audit_login, "refused", None, remote, "too many failed logins")
            return self.page("login.html", request, None, 429, next="/ui/", configured=self.ctx.auth.configured,
                             error=f"Too many failed logins from {remote}; try again in {wait} s.",
                             headers={"Retry-After": str(wait)})
        form = await self.form(request)
        next_path = _safe_next(str(form.get("next") or ""))
        token = str(form.get("token") or "").strip()
        caller = self.ctx.auth.identify(f"Bearer {token}") if token else None
        if caller is None:
            self.throttle.failed(remote)
            await run_in_threadpool(self._audit_login, "failed", None, remote,
                                    "no token given" if not token else "unknown token")
            return self.page("login.html", request, None, 401, next=next_path, configured=self.ctx.auth.configured,
                             error="That token is not one of server.status_tokens or server.admin_tokens.")
        session = await run_in_threadpool(self.sessions.create, caller, token)
        await run_in_threadpool(self._audit_login, "ok", caller, remote, None)
        response = RedirectResponse(next_path, 303, headers=HEADERS)
        response.headers["set-cookie"] = cookie_header(session, self.secure)
        return response

    def _audit_login(self, result: str, caller: Caller | None, remote: str, why: str | None) -> None:
        """An ``api`` entry like every call of the API, so `setpoint audit --action api` lists
        logins, failed and refused ones too (never with the token presented)."""
        details: dict[str, Any] = {"call": "login", "via": "dashboard", "remote": remote}
        if caller is not None:
            details["role"] = caller.role
        if why:
            details["reason"] = why
        self.ctx.engine.store.audit(AuditAction.API, actor=caller.actor if caller else f"anonymous@{remote}",
                                    result=result, details=details)

    async def logout(self, request: Request) -> Response:
        session = await self.session_async(request)
        form = await self.form(request)
        if session is not None and not session.csrf_ok(str(form.get("csrf") or "")):
            return self.refuse(request, session, 403, "The form's CSRF token is missing or wrong; reload the page.")
        await run_in_threadpool(self.sessions.end, request.cookies.get(COOKIE))
        response = RedirectResponse("/ui/login", 303, headers=HEADERS)
        response.headers["set-cookie"] = cookie_header(None, self.secure)
        return response

    # ---------------------------------------------------------------- overview and live updates

    def overview_rows(self, kind: str, status: str, name: str) -> tuple[list[dict[str, Any]], list[str]]:
        rows = status_api.list_targets(self.ctx)
        kinds = sorted({r["kind"] for r in rows})
        return [r for r in rows if _matches(r, kind, status, name)], kinds

    async def overview(self, request: Request) -> Response:
        session = await self.session_async(request)
        if session is None:
            return self.login_redirect(request)
        started = time.perf_counter()
        q = request.query_params
        kind, status, name = q.get("kind", ""), q.get("status", ""), q.get("q", "")
        rows, kinds = await run_in_threadpool(self.overview_rows, kind, status, name)
        template = "overview_rows.html" if q.get("fragment") else "overview.html"
        response = self.page(template, request, session, rows=rows, kinds=kinds, kind=kind, status=status, q=name,
                             statuses=STATUS_FILTERS, now=time.time())
        # the server's own time for this page (rows from the store and the template): what the
        # benchmark holds to 300 ms for 1,000 targets, apart from the network and the client
        response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    def version(self) -> str:
        """Changes whenever anything a page shows may have changed: every pause, resume, held or
        approved plan, apply and drift writes an audit entry, and the status rows cover the rest.
        Computed at most once per poll interval for all open streams together."""
        with self._version_lock:
            stamp, value = self._version
            if time.monotonic() - stamp < POLL_SECONDS * 0.8:
                return value
            store = self.ctx.engine.store
            latest = store.audit_entries(limit=1)
            states = store.all_status()
            value = f"{latest[0].id if latest else 0}:{hash(repr(sorted(states.items())))}"
            self._version = (time.monotonic(), value)
            return value

    async def events(self, request: Request) -> Response:
        if await self.session_async(request) is None:
            return json_response({"error": "log in first"}, 401)

        async def stream() -> Any:
            last = await run_in_threadpool(self.version)
            quiet = 0.0
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                await asyncio.sleep(POLL_SECONDS)
                current = await run_in_threadpool(self.version)
                if current != last or quiet + POLL_SECONDS >= KEEPALIVE_SECONDS:
                    if await self.session_async(request) is None:
                        return  # logged out, expired or revoked: the stream ends with the session
                if current != last:
                    last, quiet = current, 0.0
                    yield f"event: change\ndata: {current}\n\n"
                else:
                    quiet += POLL_SECONDS
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        yield ": still here\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={**HEADERS, "X-Accel-Buffering": "no"})

    # ---------------------------------------------------------------- target and plan pages

    def target_context(self, name: str) -> dict[str, Any]:
        ctx, store = self.ctx, self.ctx.engine.store
        target = ctx.engine.config.target(name)
        row = views.status_row(target, store.status(name), store, ctx.engine.source_error(target.source))
        return {"row": row, "resources": views.resource_rows(store, name), "drift": views.drift_rows(store, name),
                "history": views.history_rows(store, name), "deps": views.dependency_rows(ctx.engine.config, name),
                "audit": list(reversed(store.audit_entries(target=name, limit=status_api.AUDIT_LIMIT))),
                "enabled": name in ctx.engine.runners}

    async def target(self, request: Request) -> Response:
        session = await self.session_async(request)
        if session is None:
            return self.login_redirect(request)
        name = request.path_params["name"]
        if name not in {t.name for t in self.ctx.engine.config.targets}:
            return self.refuse(request, session, 404, f"There is no target named {name}.")
        context = await run_in_threadpool(self.target_context, name)
        template = "target_live.html" if request.query_params.get("fragment") else "target.html"
        return self.page(template, request, session, done=request.query_params.get("done"),
                         error=request.query_params.get("error"), now=time.time(), **context)

    async def plan(self, request: Request) -> Response:
        session = await self.session_async(request)
        if session is None:
            return self.login_redirect(request)
        name, plan_id = request.path_params["name"], request.path_params["plan_id"]
        held = next((h for h in await run_in_threadpool(self.ctx.engine.store.held_plans, name,
                                                          ("pending", "approved", "applied", "superseded"))
                     if h.plan_id == plan_id), None)
        if held is None:
            return self.refuse(request, session, 404, f"Target {name} has no held plan {plan_id}.")
        return self.page("plan.html", request, session, name=name, plan=views.held_plan_row(held),
                         status=held.status, decided_by=held.decided_by)

    # ---------------------------------------------------------------- actions

    async def act(self, request: Request) -> Response:
        session = await self.session_async(request)
        if session is None:
            return self.refuse(request, None, 401, "Log in first.")
        form = await self.form(request)
        if not session.csrf_ok(str(form.get("csrf") or "")):
            return self.refuse(request, session, 403, "The form's CSRF token is missing or wrong; reload the page.")
        if not session.caller.may(ADMIN):
            return self.refuse(request, session, 403,
                               f"Token {session.caller.name} is read-only; actions need an admin token.")
        name, call = request.path_params["name"], request.path_params["call"]
        if call not in status_api.CALLS:
            return self.refuse(request, session, 404, f"Unknown action {call}.")
        if name not in self.ctx.engine.runners:
            return self.refuse(request, session, 404, f"There is no enabled target named {name}.")
        body = {k: str(form[k]) for k in ACTION_FIELDS if form.get(k)}
        back = f"/ui/targets/{quote(name)}"
        try:
            await run_in_threadpool(status_api.perform, self.ctx, session.caller, _remote(request), call, name, body,
                                    "dashboard")
        except (SetpointError, ValueError) as exc:
            return RedirectResponse(f"{back}?{urlencode({'error': safe_error(exc)})}", 303, headers=HEADERS)
        return RedirectResponse(f"{back}?{urlencode({'done': call})}", 303, headers=HEADERS)

    # ---------------------------------------------------------------- audit

    def window(self, request: Request) -> Window:
        q = request.query_params
        if q.get("since"):
            return parse_window(f"{q['since']} - {q.get('until') or datetime.now().isoformat(timespec='minutes')}")
        return parse_window(q.get("window") or "last 24h")

    def audit_entries(self, window: Window, target: str) -> list[Any]:
        return self.ctx.engine.store.audit_entries(window.since.timestamp(), window.until.timestamp(),
                                                   target or None, limit=AUDIT_PAGE_LIMIT)

    async def audit(self, request: Request) -> Response:
        session = await self.session_async(request)
        if session is None:
            return self.login_redirect(request)
        q = request.query_params
        target = q.get("target", "")
        try:
            window = self.window(request)
        except WindowError as exc:
            return self.page("audit.html", request, session, 400, error=str(exc), presets=presets(),
                             typed=q.get("window", ""), groups=[], window=None, target=target,
                             targets=[t.name for t in self.ctx.engine.config.targets])
        entries = await run_in_threadpool(self.audit_entries, window, target)
        fmt = request.url.path.rsplit(".", 1)[-1] if "." in request.url.path else "html"
        link = {"since": window.since.isoformat(timespec="minutes"), "until": window.until.isoformat(timespec="minutes")}
        if target:
            link["target"] = target
        if fmt == "json":
            rows = [{**e.to_dict(), "time_iso": datetime.fromtimestamp(e.time).astimezone().isoformat()} for e in entries]
            response = json_response(rows)
            response.headers["content-disposition"] = 'attachment; filename="setpoint-audit.json"'
            return response
        if fmt == "csv":
            return _csv(entries)
        return self.page("audit.html", request, session, groups=views.audit_groups(entries), window=window,
                         typed=q.get("window", ""), presets=presets(), target=target, count=len(entries),
                         limited=len(entries) >= AUDIT_PAGE_LIMIT, query=urlencode(link),
                         targets=[t.name for t in self.ctx.engine.config.targets])


def _csv(entries: list[Any]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "target", "kind", "action", "result", "revision", "author", "subject", "actor",
                     "trigger", "details"])
    for e in entries:
        writer.writerow([_cell(value) for value in (
            datetime.fromtimestamp(e.time).astimezone().isoformat(), e.target, e.kind, e.action, e.result,
            e.revision, e.author, e.subject, e.actor, e.trigger, json.dumps(scrubbed(e.details), sort_keys=True))])
    return Response(scrub(out.getvalue()), media_type="text/csv; charset=utf-8",
                    headers={**HEADERS, "content-disposition": 'attachment; filename="setpoint-audit.csv"'})


# A spreadsheet runs a cell that starts with one of these as a formula. Commit subjects and author
# names come from whoever can push, so an export opened by an auditor must not run them: such a
# cell gets a leading apostrophe, which spreadsheets show as text (OWASP's CSV injection advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _remote(request: Request) -> str:
    return request.client.host if request.client else "-"


def _safe_next(path: str | None) -> str:
    """Only a path of this dashboard: never an open redirect to another site."""
    if path and path.startswith("/ui/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/ui/"


def routes(ctx: AppContext) -> list[Route | Mount]:
    board = Dashboard(ctx)

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", 303)

    return [
        Route("/", home, methods=["GET"]),
        Route("/ui", home, methods=["GET"]),
        Route("/ui/login", board.login_form, methods=["GET"]),
        Route("/ui/login", board.login, methods=["POST"]),
        Route("/ui/logout", board.logout, methods=["POST"]),
        Route("/ui/", board.overview, methods=["GET"]),
        Route("/ui/events", board.events, methods=["GET"]),
        Route("/ui/audit", board.audit, methods=["GET"]),
        Route("/ui/audit.csv", board.audit, methods=["GET"]),
        Route("/ui/audit.json", board.audit, methods=["GET"]),
        Route("/ui/targets/{name}", board.target, methods=["GET"]),
        Route("/ui/targets/{name}/plans/{plan_id}", board.plan, methods=["GET"]),
        Route("/ui/targets/{name}/{call}", board.act, methods=["POST"]),
        Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
