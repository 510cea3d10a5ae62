"""The ``setpoint`` command line. Exit codes (docs/cli.md):

0  success (for ``sync``: every named target ended Synced)
1  a target failed, is out of sync, or a plan is held; ``secrets check`` found a bad file
2  usage or configuration error
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from setpoint import __version__
from setpoint.api import Outcome, Plan, SyncStatus
from setpoint.completion import SHELLS, complete_targets, completion_script
from setpoint.config import DEFAULT_CONFIG, ConfigProblems, load_config
from setpoint.durations import format_duration, parse_duration
from setpoint.errors import SetpointError
from setpoint.logs import escape_controls, setup_logging
from setpoint.render import Output, audit_json, parse_time, print_audit, print_status
from setpoint.render import field_lines as _field_lines
from setpoint.render import plain as _plain
from setpoint.render import sync_style as _sync_style
from setpoint.render import when as _when
from setpoint.secrets import scrub, to_jsonable
from setpoint.state.status import AuditAction
from setpoint.suggest import unknown_target

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

class _LazyConsole:
    """rich's Console, imported on first use: rich costs ~0.15 s of start-up that commands printing
    plain lines (and --help, completion) should not pay."""

    _console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # Not a terminal (a pipe, CI logs): wide enough that tables never truncate names.
            type(self)._console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
        return getattr(self._console, name)


console = _LazyConsole()


def Table(**kwargs: Any) -> Any:  # noqa: N802 - stands in for rich.table.Table, imported when a table is drawn
    from rich.table import Table as RichTable

    return RichTable(**kwargs)


def _actor() -> str:
    explicit = os.environ.get("SETPOINT_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(to_jsonable(data), indent=2, sort_keys=False))


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"error: {escape_controls(message)}", err=True)
    sys.exit(code)


def _says(exc: BaseException) -> str:
    """What went wrong, for a person: the message (secret-free), never the Python class name."""
    return scrub(str(exc)) or "an unexpected error (run with --log-level DEBUG for details)"


class Context:
    def __init__(self, config_path: str | None) -> None:
        # -c may come before the command (setpoint -c F status) or after it (setpoint status -c F)
        root = click.get_current_context(silent=True)
        self.config_path = config_path or (root.find_root().params.get("config_path") if root else None)
        self._engine: Any = None
        self._config: Any = None

    def config(self) -> Any:
        if self._config is None:
            self._config = self._load()
        return self._config

    def _load(self) -> Any:
        from setpoint import configcache

        path = Path(self.config_path or os.environ.get("SETPOINT_CONFIG") or DEFAULT_CONFIG)
        before = _read(path)
        try:
            config = load_config(self.config_path)
            if before is not None and _read(path) == before:  # the bytes that were validated
                configcache.store(config, before)  # status and audit start from it (setpoint.quick)
            return config
        except ConfigProblems as exc:
            click.echo(f"{len(exc.problems)} problem(s) in the configuration:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(EXIT_USAGE)
        except SetpointError as exc:
            _fail(_says(exc))

    def require_targets(self, names: tuple[str, ...] | list[str]) -> None:
        """Exit 2 with a suggestion when a name is not a configured target."""
        known = [t.name for t in self.config().targets]
        for name in names:
            if name not in known:
                _fail(unknown_target(name, known))

    def engine(self) -> Any:
        if self._engine is None:
            from setpoint.engine import Engine
            from setpoint.plugins import get_plugin_manager

            try:
                config = self.config()
                # a one-shot command: no metrics or notifications (setpoint run has its own engine)
                self._engine = Engine(config, get_plugin_manager(needed_kinds={t.kind for t in config.targets},
                                                                 observers=False))
            except SetpointError as exc:
                _fail(_says(exc))
        return self._engine

    def store(self) -> Any:
        from setpoint.state import StateStore

        try:
            return StateStore(self.config().state_location)
        except SetpointError as exc:
            _fail(_says(exc))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("-c", "--config", "config_path", envvar="SETPOINT_CONFIG", default=None,
                      help="Configuration file (default ./setpoint.yaml, or $SETPOINT_CONFIG).")(fn)
    return fn


def output_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
                        help="Output format.")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="setpoint")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default=None, envvar="SETPOINT_LOG_FORMAT",
              help="Log lines as plain text or JSON (default: plain).")
@click.option("--log-level", default=None, envvar="SETPOINT_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
@click.option("-c", "--config", "config_path", envvar="SETPOINT_CONFIG", default=None,
              help="Configuration file (default ./setpoint.yaml, or $SETPOINT_CONFIG).")
def main(log_format: str | None, log_level: str | None, config_path: str | None) -> None:
    """setpoint: Git is the desired state; setpoint makes the live state match and records every change."""
    setup_logging(log_format or "plain", log_level or "INFO")


# --------------------------------------------------------------------------- run / sync / diff


@main.command()
@common
def run(config_path: str | None) -> None:
    """Reconcile continuously until SIGTERM/SIGINT (running applies finish within lifecycle.shutdown_grace;
    a second signal stops at once). SIGHUP re-reads setpoint.yaml: a valid file is applied once the
    reconciles in flight finish, a file with problems is rejected and the running configuration stays."""
    from setpoint.lifecycle import Shutdown
    from setpoint.reload import Reloader, ReloadStatus, describe_changes, mark_started
    from setpoint.state.owner import StateOwner

    log = logging.getLogger("setpoint")
    ctx = Context(config_path)
    config = ctx.config()
    owner = StateOwner(config.state_dir)
    try:
        owner.acquire()  # one setpoint run per state (docs/architecture.md)
    except SetpointError as exc:
        _fail(_says(exc))
    reloads = ReloadStatus()
    try:
        engine, scheduler, operations = _start_daemon(config, reloads)
    except SetpointError as exc:
        _fail(_says(exc))
    mark_started(engine.store)
    # SIGTERM/SIGINT: finish running applies within lifecycle.shutdown_grace (setpoint.lifecycle)
    shutdown = Shutdown(engine, scheduler, engine.config.lifecycle.shutdown_grace)
    reloader = Reloader(config.file, reloads)

    def stop(signum: int, _frame: Any) -> None:
        shutdown.request(signal.Signals(signum).name)

    def reload(_signum: int, _frame: Any) -> None:
        if reloader.pending is not None:  # a new configuration is being applied: check again after it
            reloader.again = True
            return
        running = shutdown.scheduler
        reloader.request(shutdown.engine.config, shutdown.engine.store, apply=running.stop,
                         keep_running=lambda: running.wake_all("sighup"))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    log.info("setpoint %s running %d target(s) from %s, state %s", __version__,
             len(engine.runners), engine.config.base_dir, engine.config.state_display)
    try:
        while not shutdown.requested:
            scheduler.run()
            new = reloader.pending
            if new is None or shutdown.requested:
                break
            # a good new file: the old engine finished its reconciles; start one with the new file
            old = engine.config
            changes = describe_changes(old, new)
            scheduler.join_pollers(10.0)
            operations.stop()
            engine.close()
            try:
                engine, scheduler, operations = _start_daemon(new, reloads)
                reloader.applied(engine.store, changes)
            except SetpointError as exc:  # checked, yet it did not start (e.g. server.listen is taken)
                log.error("the new configuration did not start (%s); going back to the previous one", _says(exc))
                engine, scheduler, operations = _start_daemon(old, reloads)
                reloader.rejected(engine.store, [_says(exc)])
            shutdown.engine, shutdown.scheduler = engine, scheduler
            shutdown.grace = engine.config.lifecycle.shutdown_grace
            reloader.pending = None
            if reloader.again:
                reloader.again = False
                reload(signal.SIGHUP, None)
        shutdown.finished()
    except SetpointError as exc:  # the previous configuration no longer starts either
        _fail(_says(exc))
    finally:
        operations.stop()
        engine.close()
        owner.release()


def _start_daemon(config: Any, reloads: Any) -> tuple[Any, Any, Any]:
    """An engine for ``config``, its scheduler, and metrics, notifications and the HTTP server
    (docs/operations.md). Raises SetpointError with nothing left running."""
    from setpoint.engine import Engine
    from setpoint.engine.cluster import join_cluster
    from setpoint.engine.scheduler import Scheduler
    from setpoint.server.runtime import start_operations

    engine = Engine(config)
    engine.reloads = reloads
    scheduler = Scheduler(engine)
    replicas = None
    try:
        replicas = join_cluster(scheduler)  # a postgresql:// state: targets divided by leases
        operations = start_operations(engine, scheduler)
    except BaseException:
        if replicas is not None:
            replicas.stop()
        engine.close()
        raise
    if replicas is not None:
        operations.also_stop(replicas.stop)  # hand the leases over now rather than after the TTL
    return engine, scheduler, operations


def _print_outcomes(outcomes: list[Outcome], output: str, plans: dict[str, Plan | None] | None = None) -> None:
    """The outcome of each target; ``plans`` (a dry run): the changes each one would make, below."""
    if output == "json":
        rows = [_outcome_dict(o) for o in outcomes]
        if plans is not None:
            for row in rows:
                plan = plans.get(row["target"])
                row["changes"] = plan.to_record() if plan is not None else []
        _emit_json(rows)
        return
    out = Output()
    cells = []
    for o in outcomes:
        actions = ", ".join(f"{a['action']}" + (f" x{a['count']}" if "count" in a else "") for a in o.actions) or "-"
        message = f"{o.error_stage}: {o.error}" if o.error else o.message
        cells.append([_plain(o.target.name), _sync_style(o.sync.value), o.health.value,
                      o.revision.short if o.revision else "-", _plain(actions), _plain(message)])
    out.table(["TARGET", "SYNC", "HEALTH", "REVISION", "ACTIONS", "MESSAGE"], cells)
    for name, plan in (plans or {}).items():
        if plan is not None and plan.changes:
            out.line(f"\n[bold]{_plain(name)}[/] would change:")
            _print_changes(plan.to_record(), out)


def _print_changes(changes: list[dict[str, Any]], out: Output | None = None) -> None:
    out = out or Output()
    for change in changes:
        tag = " (drift)" if change["drift"] else ""
        out.line(f"[bold]{change['action']}[/] {_plain(change['key'])}{tag}")
        for line in _field_lines(change["fields"], colour=out.is_terminal):
            out.line("    " + line, soft_wrap=True)


def _outcome_dict(o: Outcome) -> dict[str, Any]:
    return {
        "target": o.target.name, "kind": o.target.kind, "sync": o.sync.value, "health": o.health.value,
        "revision": o.revision.sha if o.revision else None, "trigger": o.trigger, "actions": list(o.actions),
        "drift": [c.to_record() for c in o.drift], "error_stage": o.error_stage, "error": o.error,
        "held_plan": o.held_plan_id, "paused": o.paused, "message": o.message,
        "duration_seconds": round(o.duration_seconds, 4),
    }


@main.command()
@common
@click.argument("targets", nargs=-1, shell_complete=complete_targets)
@click.option("--dry-run", is_flag=True, help="Compute and show the plan; apply nothing.")
@output_option
def sync(config_path: str | None, targets: tuple[str, ...], dry_run: bool, output: str) -> None:
    """Reconcile TARGETS (default: all) once. Exit 0 only if every one ends Synced."""
    ctx = Context(config_path)
    ctx.require_targets(targets)
    engine = ctx.engine()
    try:
        with console.status("reconciling...") if output == "table" and sys.stdout.isatty() else _null():
            outcomes = engine.sync(targets or None, dry_run=dry_run)
        plans = {o.target.name: engine.runners[o.target.name].last_plan for o in outcomes} if dry_run else None
    except SetpointError as exc:
        _fail(_says(exc))
    finally:
        engine.close()
    _print_outcomes(outcomes, output, plans)
    ok = all(o.sync == SyncStatus.SYNCED and not o.failed for o in outcomes)
    if dry_run:
        ok = all(not o.failed for o in outcomes)
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


@main.command()
@common
@click.argument("target", shell_complete=complete_targets)
@output_option
def diff(config_path: str | None, target: str, output: str) -> None:
    """Show what a sync of TARGET would change (drift marked). Exit 1 if anything differs."""
    ctx = Context(config_path)
    ctx.require_targets([target])
    engine = ctx.engine()
    try:
        result = engine.run_target(target, trigger="diff", dry_run=True)
    except SetpointError as exc:
        _fail(_says(exc))
    finally:
        engine.close()
    outcome, plan = result.outcome, result.plan
    if outcome.failed:
        _fail(f"{outcome.error_stage}: {outcome.error}", EXIT_FAILED)
    changes = plan.to_record() if plan is not None else []
    if output == "json":
        _emit_json({"target": target, "revision": outcome.revision.sha if outcome.revision else None, "changes": changes})
    else:
        if not changes:
            console.print(f"{_plain(target)}: no differences at {outcome.revision.short if outcome.revision else '-'}")
        _print_changes(changes)
    sys.exit(EXIT_FAILED if changes else EXIT_OK)


@main.command()
@common
@click.option("--revision", "ref", required=True,
              help="Branch, tag, ref (refs/pull/7/merge) or commit of the source to preview.")
@click.option("--target", "targets", multiple=True, shell_complete=complete_targets,
              help="Preview this target whatever changed (repeatable); default: every target the revision affects.")
@click.option("--output", "-o", "output", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True, help="markdown: a pull-request comment.")
@click.option("--github-pr", type=int, help="Also post the markdown on this GitHub pull request (one comment, "
              "edited in place) and a setpoint/preview commit status.")
@click.option("--github-repository", envvar="GITHUB_REPOSITORY", help="owner/name (default $GITHUB_REPOSITORY).")
@click.option("--github-token-env", default="GITHUB_TOKEN", show_default=True,
              help="Environment variable holding the token.")
@click.option("--github-api-url", envvar="GITHUB_API_URL", default="https://api.github.com", show_default=True)
@click.option("--github-status-sha", help="Commit that gets the status (default: the previewed commit; give the "
              "pull request's head when previewing refs/pull/N/merge).")
@click.option("--gitlab-mr", type=int, help="Also post the markdown on this GitLab merge request (IID; one note, "
              "edited in place) and a setpoint/preview commit status.")
@click.option("--gitlab-project", envvar="CI_PROJECT_ID", help="Project ID or group/name (default $CI_PROJECT_ID).")
@click.option("--gitlab-token-file", type=click.Path(dir_okay=False), help="File holding the token (api scope).")
@click.option("--gitlab-token-env", default="GITLAB_TOKEN", show_default=True,
              help="Environment variable holding the token (without --gitlab-token-file).")
@click.option("--gitlab-api-url", envvar="CI_API_V4_URL", default="https://gitlab.com/api/v4", show_default=True)
@click.option("--gitlab-status-sha", help="Commit that gets the status (default: the previewed commit).")
def preview(config_path: str | None, ref: str, targets: tuple[str, ...], output: str, github_pr: int | None,
            github_repository: str | None, github_token_env: str, github_api_url: str,
            github_status_sha: str | None, gitlab_mr: int | None, gitlab_project: str | None,
            gitlab_token_file: str | None, gitlab_token_env: str, gitlab_api_url: str,
            gitlab_status_sha: str | None) -> None:
    """What REVISION would change on the live targets; nothing is applied or recorded.

    Exit 0 when every preview was computed, 1 when one failed."""
    from setpoint.preview import preview as run_preview
    from setpoint.preview import to_markdown
    from setpoint.preview_post import post

    ctx = Context(config_path)
    ctx.require_targets(targets)
    if github_pr is not None and gitlab_mr is not None:
        _fail("--github-pr and --gitlab-mr: choose one")
    poster = _github_poster(github_pr, github_repository, github_token_env, github_api_url) if github_pr is not None \
        else _gitlab_poster(gitlab_mr, gitlab_project, gitlab_token_file, gitlab_token_env, gitlab_api_url)
    engine = ctx.engine()
    try:
        report = run_preview(engine, ref, targets)
    except SetpointError as exc:
        _fail(_says(exc), EXIT_FAILED)
    finally:
        engine.close()
    if poster is not None:
        status_sha = github_status_sha if github_pr is not None else gitlab_status_sha
        try:
            url = post(poster, report, [status_sha] if status_sha else [])
        except SetpointError as exc:
            _fail(_says(exc), EXIT_FAILED)
        finally:
            poster.close()
        where = f"pull request {github_pr}" if github_pr is not None else f"merge request !{gitlab_mr}"
        click.echo(f"posted on {where}: {url}", err=True)
    if output == "json":
        _emit_json(report.to_dict())
    elif output == "markdown":
        click.echo(to_markdown(report), nl=False)
    else:
        commits = ", ".join(sorted({sha[:12] for sha in report.commits.values()}))
        console.print(f"preview of {_plain(ref)} ({commits}): {report.changes} change(s)")
        for item in report.targets:
            if not item.affected:
                console.print(f"{_plain(item.target)}: not affected")
            elif item.error:
                console.print(f"{_plain(item.target)}: [red]preview failed[/]: {_plain(item.error)}")
            elif not item.changes:
                note = f" ({_plain(item.message)})" if item.message else ""
                console.print(f"{_plain(item.target)}: no change{note}")
            else:
                note = f" ({_plain(item.message)})" if item.message else ""
                console.print(f"\n[bold]{_plain(item.target)}[/] would change{note}:")
                _print_changes(item.changes)
    sys.exit(EXIT_FAILED if report.failed else EXIT_OK)


def _github_poster(number: int | None, repository: str | None, token_env: str, api_url: str) -> Any:
    """The GitHub poster of ``preview --github-pr``, checked before anything is previewed."""
    if number is None:
        return None
    from setpoint.preview_github import GitHubPoster, GitHubPullRequest
    from setpoint.secrets import Secret

    if not repository or not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        _fail("--github-pr needs --github-repository OWNER/NAME (or $GITHUB_REPOSITORY)")
    token = os.environ.get(token_env)
    if not token:
        _fail(f"--github-pr needs a token in ${token_env} (--github-token-env)")
    return GitHubPoster(GitHubPullRequest(str(repository), number, Secret(str(token), token_env), api_url))


def _gitlab_poster(iid: int | None, project: str | None, token_file: str | None, token_env: str,
                   api_url: str) -> Any:
    """The GitLab poster of ``preview --gitlab-mr``, checked before anything is previewed."""
    if iid is None:
        return None
    from pathlib import Path

    from setpoint.opsconfig import read_credential
    from setpoint.preview_gitlab import GitLabMergeRequest, GitLabPoster
    from setpoint.secrets import Secret, register_known_values

    if not project or not re.fullmatch(r"[0-9]+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", project):
        _fail("--gitlab-mr needs --gitlab-project ID or GROUP/NAME (or $CI_PROJECT_ID)")
    try:
        token = read_credential(Path(token_file) if token_file else None, token_env, Path.cwd())
    except ValueError as exc:
        _fail(f"--gitlab-mr needs a token (--gitlab-token-file, or ${token_env}): {exc}")
    register_known_values([token])
    return GitLabPoster(GitLabMergeRequest(str(project), iid, Secret(token, "GitLab token"), api_url))


#: A value longer than this is not printed as ``before -> after`` on one line but as an inline diff.
# --------------------------------------------------------------------------- status / history / audit


@main.command()
@common
@output_option
def status(config_path: str | None, output: str) -> None:
    """Sync and health of every target, with revision, last error, pause and held plans."""
    from setpoint.reload import read_last
    from setpoint.views import status_rows

    ctx = Context(config_path)
    store = ctx.store()
    rows = status_rows(ctx.config(), store)
    if output == "json":
        _emit_json(rows)
        return
    print_status(Output(), rows, ctx.config().state_display, read_last(store))


def _parse_time(text: str) -> float:
    """Local time ("2026-11-19 14:00", ISO 8601 with zone), or a duration meaning that long ago ("2h")."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


AUDIT_ACTIONS = tuple(action.value for action in AuditAction)


@main.command()
@common
@click.option("--since", help="Start of the window: '2026-11-19 14:00' (local time), ISO 8601, or '3h' (ago).")
@click.option("--until", help="End of the window (exclusive); default now.")
@click.option("--target", "target", help="Only this target.", shell_complete=complete_targets)
@click.option("--action", "actions", multiple=True, type=click.Choice(AUDIT_ACTIONS), help="Only these actions.")
@output_option
def audit(config_path: str | None, since: str | None, until: str | None, target: str | None,
          actions: tuple[str, ...], output: str) -> None:
    """What changed, who changed it in Git, and every drift seen, in a time window."""
    ctx = Context(config_path)
    if target:
        ctx.require_targets([target])
    store = ctx.store()
    entries = store.audit_entries(_parse_time(since) if since else None, _parse_time(until) if until else None,
                                  target, actions or None)
    if output == "json":
        _emit_json(audit_json(entries))
        return
    print_audit(Output(), entries)


@main.command()
@common
@click.argument("target", shell_complete=complete_targets)
@click.option("--limit", default=20, show_default=True)
@output_option
def history(config_path: str | None, target: str, limit: int, output: str) -> None:
    """Revisions applied to TARGET, newest first."""
    from setpoint.views import history_rows

    ctx = Context(config_path)
    ctx.require_targets([target])
    rows = history_rows(ctx.store(), target, limit)
    if output == "json":
        _emit_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("APPLIED", "REVISION", "AUTHOR", "SUBJECT", "CHANGES"):
        table.add_column(column)
    for r in rows:
        table.add_row(_when(r["time"]), (r["revision"] or "-")[:12], _plain(r["author"] or "-"), _plain(r["subject"] or "-"),
                      str(r["changes"]))
    console.print(table)


@main.command()
@common
@click.argument("targets", nargs=-1, required=True, shell_complete=complete_targets)
@click.option("--revision", help="Commit (full or abbreviated SHA) that must be applied; default: the "
              "source branch's head on the remote when the wait starts. A later commit that includes it counts.")
@click.option("--health", is_flag=True, help="Also wait until the target is Healthy.")
@click.option("--timeout", default="5m", show_default=True, help="Give up after this long (e.g. 90s, 10m).")
def wait(config_path: str | None, targets: tuple[str, ...], revision: str | None, health: bool, timeout: str) -> None:
    """Wait until TARGETS are synced (and healthy with --health) at a revision; for CI jobs.

    Reads the state store, so it works next to a running `setpoint run`; it never applies anything.
    Exit 0 when done, 1 on timeout (with what is still missing), 2 for an unknown target or bad option."""
    from setpoint.wait import wait_for

    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        _fail(f"--timeout: {_says(exc)}")
    if revision is not None and not (4 <= len(revision) <= 64 and all(c in "0123456789abcdef" for c in revision.lower())):
        _fail(f"--revision {revision!r} is not a commit SHA (4 to 40 hexadecimal digits)")
    ctx = Context(config_path)
    ctx.require_targets(targets)
    store = ctx.store()
    try:
        done, wanted, verdicts = wait_for(ctx.config(), store, list(targets), revision and revision.lower(),
                                          health, seconds)
    except SetpointError as exc:
        _fail(_says(exc), EXIT_FAILED)
    finally:
        store.close()
    goal = "synced and healthy" if health else "synced"
    if done:
        click.echo(f"{', '.join(targets)} {goal} at {wanted[:12]}")
        sys.exit(EXIT_OK)
    click.echo(f"error: timed out after {format_duration(seconds)} waiting for {', '.join(targets)} to be {goal} "
               f"at {wanted[:12]}:", err=True)
    for verdict in verdicts:
        if not verdict.done:
            click.echo(escape_controls(f"  {verdict.target}: {verdict.reason}"), err=True)
    sys.exit(EXIT_FAILED)


# --------------------------------------------------------------------------- operator actions


@main.command()
@common
@click.argument("target", shell_complete=complete_targets)
@click.option("--reason", required=True, help="Why (recorded in status and the audit log).")
@click.option("--for", "duration", help="Resume by itself after this long (e.g. 2h).")
@click.option("--by", default=None, help="Who pauses (default $SETPOINT_ACTOR or user@host).")
def pause(config_path: str | None, target: str, reason: str, duration: str | None, by: str | None) -> None:
    """Stop applying to TARGET (drift is still detected and recorded)."""
    ctx = Context(config_path)
    ctx.require_targets([target])
    try:
        seconds = parse_duration(duration) if duration else None
    except ValueError as exc:
        _fail(f"--for: {_says(exc)}")
    engine = ctx.engine()
    try:
        p = engine.pause(target, reason, by or _actor(), seconds)
    except SetpointError as exc:
        _fail(_says(exc))
    finally:
        engine.close()
    until = f" until {_when(p.until)} ({format_duration(p.until - time.time())})" if p.until else " until resumed"
    click.echo(escape_controls(f"{target} paused by {p.paused_by}{until}: {p.reason}"))


@main.command()
@common
@click.argument("target", shell_complete=complete_targets)
@click.option("--by", default=None, help="Who resumes (default $SETPOINT_ACTOR or user@host).")
def resume(config_path: str | None, target: str, by: str | None) -> None:
    """Resume applying to TARGET."""
    ctx = Context(config_path)
    ctx.require_targets([target])
    engine = ctx.engine()
    try:
        p = engine.resume(target, by or _actor())
    except SetpointError as exc:
        _fail(_says(exc))
    finally:
        engine.close()
    click.echo(f"{target} resumed" if p else f"{target} was not paused")


@main.command()
@common
@click.argument("target", shell_complete=complete_targets)
@click.argument("plan_id")
@click.option("--by", default=None, help="Who approves (default $SETPOINT_ACTOR or user@host).")
@click.option("--now", "apply_now", is_flag=True, help="Reconcile TARGET right away in this process.")
def approve(config_path: str | None, target: str, plan_id: str, by: str | None, apply_now: bool) -> None:
    """Approve a held plan; it is applied at the next reconcile if Git and live state still give that plan."""
    ctx = Context(config_path)
    ctx.require_targets([target])
    engine = ctx.engine()
    try:
        engine.approve(target, plan_id, by or _actor())
        click.echo(f"plan {plan_id} of {target} approved")
        if apply_now:
            outcome = engine.reconcile(target, trigger="approve")
            _print_outcomes([outcome], "table")
            if outcome.failed or outcome.sync != SyncStatus.SYNCED:
                sys.exit(EXIT_FAILED)
    except SetpointError as exc:
        _fail(_says(exc), EXIT_FAILED)
    finally:
        engine.close()


# --------------------------------------------------------------------------- plugins / validate / secrets / demo


@main.command()
@output_option
def plugins(output: str) -> None:
    """Installed plugins: distribution, version, kinds, decryptors, hooks and load errors."""
    from setpoint.plugins import get_plugin_manager

    registry = get_plugin_manager()
    records = [p.to_dict() for p in registry.plugins]
    if output == "json":
        _emit_json(records)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES", "HOOKS", "STATUS"):
        table.add_column(column)
    for p in records:
        provides = ", ".join([f"kind:{k}" for k in p["kinds"]] + [f"decryptor:{d}" for d in p["decryptors"]]
                             + [f"notifier:{n}" for n in p["notifiers"]]) or "-"
        state = f"[red]failed: {_plain(p['error'])}[/]" if p["error"] else ("built-in" if p["builtin"] else "loaded")
        table.add_row(_plain(p["name"]), _plain(p["distribution"]), _plain(p["version"]), _plain(provides),
                      ", ".join(p["hooks"]) or "-", state)
    console.print(table)
    if any(p["error"] for p in records):
        sys.exit(EXIT_FAILED)


@main.command()
@common
@output_option
def validate(config_path: str | None, output: str) -> None:
    """Check the configuration, kind blocks included; report every problem at once."""
    from setpoint.validation import validate_all, validate_warnings

    problems = validate_all(Context(config_path).config_path)
    warnings = [] if problems else validate_warnings(Context(config_path).config_path)
    if output == "json":
        report: dict[str, Any] = {"valid": not problems, "problems": [
            {"file": p.file, "line": p.line, "path": p.path, "message": p.message, "hint": p.hint or None}
            for p in problems]}
        if warnings:
            report["warnings"] = [{"file": w.file, "line": w.line, "path": w.path, "message": w.message,
                                   "hint": w.hint or None} for w in warnings]
        _emit_json(report)
        sys.exit(EXIT_USAGE if problems else EXIT_OK)
    for warning in warnings:  # valid, but unsafe: said, never failing the check
        click.echo(f"warning: {warning}", err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in the configuration:", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo("configuration is valid")


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (commands, options and target names).

    \b
    bash:  eval "$(setpoint completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(setpoint completion zsh)"       (in ~/.zshrc)
    fish:  setpoint completion fish > ~/.config/fish/completions/setpoint.fish
    """
    click.echo(completion_script(shell, main))


@main.command()
def schema() -> None:
    """Print the JSON Schema of setpoint.yaml, with the settings of every installed kind and decryptor."""
    from setpoint.plugins import get_plugin_manager
    from setpoint.schema import config_schema

    _emit_json(config_schema(get_plugin_manager()))


@main.group()
def secrets() -> None:
    """Encrypted files in the repository."""


@secrets.command("check")
@common
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@output_option
def secrets_check(config_path: str | None, path: Path | None, output: str) -> None:
    """Verify that every encrypted file under PATH decrypts with the configured keys (values never shown)."""
    from setpoint.secret_check import check_path

    config = None
    context = Context(config_path)  # -c before or after the command
    if context.config_path or os.path.exists("setpoint.yaml") or os.environ.get("SETPOINT_CONFIG"):
        config = context.config()
    results = check_path(path or Path("."), config)
    if output == "json":
        _emit_json([r.__dict__ for r in results])
    else:
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
            keys = f" keys: {', '.join(r.keys_used)}" if r.keys_used else ""
            console.print(f"{mark} {_plain(r.path)} ({_plain(r.decryptor)}){_plain(keys)}"
                          + (f": {_plain(r.reason)}" if r.reason else ""))
        if not results:
            console.print("no encrypted files found")
    sys.exit(EXIT_FAILED if any(not r.ok for r in results) else EXIT_OK)


@main.group()
def state() -> None:
    """The state database (status, inventory, held plans, audit log)."""


@state.command("migrate")
@click.option("--from", "source", required=True, metavar="URL", help="sqlite:///PATH or postgresql://USER@HOST/DB")
@click.option("--to", "destination", required=True, metavar="URL", help="an empty database to copy into")
def state_migrate(source: str, destination: str) -> None:
    """Copy a whole state, audit log included, e.g. from SQLite to PostgreSQL.

    Stop `setpoint run` first. The destination must be empty; the password of a PostgreSQL URL comes from
    SETPOINT_STATE_PASSWORD_FILE or SETPOINT_STATE_PASSWORD (never the URL)."""
    from setpoint.state.owner import StateOwner
    from setpoint.state.transfer import copy_state, open_location
    from setpoint.stateurl import check_postgresql_url, is_postgresql_url

    try:
        for url in (source, destination):
            if is_postgresql_url(url):
                check_postgresql_url(url)
        owner = None
        if source.startswith("sqlite:///"):  # a running daemon would keep writing to what we copy
            owner = StateOwner(Path(source.removeprefix("sqlite:///")).expanduser().resolve().parent)
            owner.acquire()
        try:
            src = open_location(source, must_exist=True)
            dst = open_location(destination, must_exist=False)
            try:
                copied = copy_state(src, dst)
            finally:
                src.close()
                dst.close()
        finally:
            if owner is not None:
                owner.release()
    except SetpointError as exc:
        _fail(_says(exc))
    rows = ", ".join(f"{table} {count}" for table, count in copied.rows.items())
    click.echo(f"copied the state to {destination}: {rows}")


@main.group()
def plugin() -> None:
    """Write new plugins (see docs/writing-plugins.md)."""


@plugin.command("new")
@click.argument("name")
@click.option("--directory", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where to create the setpoint-NAME folder.")
def plugin_new(name: str, directory: Path) -> None:
    """Write a working skeleton distribution for a new target kind NAME, with its conformance test."""
    from setpoint.scaffold import ScaffoldError, write_skeleton

    try:
        folder = write_skeleton(name, directory)
    except ScaffoldError as exc:
        _fail(str(exc))
    click.echo(f"wrote {folder}/")
    click.echo(f"  cd {folder} && pip install -e '.[test]' && pytest")


@main.command()
@click.argument("directory", default="setpoint-demo", type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Reconcile once and exit instead of running continuously.")
@click.option("--listen", default=None, help="host:port of the status API and metrics (default 127.0.0.1:9464, "
              "or a free port when that one is taken).")
def demo(directory: Path, once: bool, listen: str | None) -> None:
    """Create (if needed) a demo Git repo + setpoint.yaml in DIRECTORY with a `files` target, and run it."""
    from setpoint.demo import create_demo

    config_path, address = create_demo(directory, listen)
    from setpoint.plugins import get_plugin_manager
    from setpoint.schema import config_schema

    # the editor schema the demo config points at, for the plugins installed here
    (directory / "setpoint.schema.json").write_text(json.dumps(config_schema(get_plugin_manager()), indent=2) + "\n")
    click.echo(f"demo ready in {directory}/: repository {directory}/repo, config {config_path}")
    if address and not once:
        click.echo(f"  status API and metrics on http://{address} (/api/v1/targets, /metrics)")
    click.echo(f"  live files are written to {directory}/live; edit one by hand and watch it revert")
    click.echo(f"  commit to {directory}/repo to deploy; 'setpoint -c {config_path} audit' shows what happened")
    ctx = click.get_current_context()
    if once:
        ctx.invoke(sync, config_path=str(config_path), targets=(), dry_run=False, output="table")
    else:
        ctx.invoke(run, config_path=str(config_path))


if __name__ == "__main__":  # pragma: no cover
    main()
