"""``setpoint preview``: what a branch or pull request would change on the live targets.

Each target the revision affects is rendered at that commit and compared with its live state by the
target's own driver, exactly as a dry run does (Terraform: a real ``plan``; Kubernetes: a server-side
dry-run apply), so deletions of what setpoint manages (its inventory) are shown too. Nothing is
applied, no status, inventory or audit entry is written, and the branch head setpoint deploys does
not move: the revision is fetched into a ref of its own. Each target is previewed by a driver of its
own over a private copy of the target's folder and memory (:mod:`setpoint.preview_sandbox`), without
the target's run lock: a preview neither waits for reconciles (but for the moment of the copy) nor
changes what the reconciler's driver holds.

A target is affected when a file under its path (or a file its last render read, such as a
Kustomize base) differs between the revision and the point where it left the deployed branch
(``git merge-base``); ``--target`` previews the named targets whatever changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from setpoint.engine import Engine
from setpoint.engine.reconcile import Reconciler
from setpoint.errors import SetpointError
from setpoint.preview_sandbox import Sandbox
from setpoint.secrets import safe_error, scrub

#: A value longer than this is cut in the markdown output (a PR comment has a size limit).
MARKDOWN_VALUE = 160
#: Changes listed per target in the markdown output; the rest are counted.
MARKDOWN_CHANGES = 50


@dataclass
class TargetPreview:
    target: str
    kind: str
    source: str
    #: The commit of the target's files at the revision (None: not rendered, unaffected).
    revision: str | None = None
    affected: bool = True
    changes: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    message: str = ""

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change["action"]] = counts.get(change["action"], 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "source": self.source, "affected": self.affected,
                "revision": self.revision, "changes": self.changes, "error": self.error, "message": self.message}


@dataclass
class Preview:
    ref: str
    #: source name -> the commit ``ref`` resolved to there
    commits: dict[str, str]
    targets: list[TargetPreview]

    @property
    def failed(self) -> bool:
        return any(t.error for t in self.targets)

    @property
    def changes(self) -> int:
        return sum(len(t.changes) for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "commits": self.commits, "changes": self.changes, "failed": self.failed,
                "targets": [t.to_dict() for t in self.targets]}


def preview(engine: Engine, ref: str, targets: Iterable[str] = (), *, sources: Iterable[str] = ()) -> Preview:
    """Preview ``ref`` on ``targets`` (default: every target the revision affects, among the targets
    of ``sources`` when given: a pull request's ref exists only in its own repository)."""
    named = list(targets)
    for name in named:
        engine.runner(name)  # unknown names fail before anything is fetched
    only = set(sources)
    chosen = named or [n for n, r in engine.runners.items() if not only or r.target.source in only]
    commits: dict[str, str] = {}
    bases: dict[str, str | None] = {}
    for source_name in sorted({engine.runners[n].target.source for n in chosen}):
        source = engine.sources[source_name]
        commits[source_name] = source.resolve_ref(ref)
        try:
            head: str | None = engine.current_head(source_name, poll=True)
        except SetpointError:
            head = None  # the branch cannot be read: every target counts as affected
        bases[source_name] = source.merge_base(head, commits[source_name]) if head else None
    with Sandbox(engine) as sandbox:
        return Preview(ref, commits, _run(engine, sandbox, chosen, named, commits, bases))


def _run(engine: Engine, sandbox: Sandbox, chosen: list[str], named: list[str], commits: dict[str, str],
         bases: dict[str, str | None]) -> list[TargetPreview]:
    results = []
    for name in engine.ordered(chosen):
        runner = engine.runners[name]
        target, source_name = runner.target, runner.target.source
        source = engine.sources[source_name]
        item = TargetPreview(name, target.kind, source_name)
        base, commit = bases[source_name], commits[source_name]
        paths = [target.path, *runner.watched_paths]
        if not named and base is not None and not source.changed(base, commit, paths):
            item.affected = False
            results.append(item)
            continue
        try:
            result = Reconciler(engine, sandbox.runner(name)).run("preview", dry_run=True, poll=False, pinned=commit)
        except SetpointError as exc:
            item.error = safe_error(exc)
            results.append(item)
            continue
        outcome = result.outcome
        item.revision = outcome.revision.sha if outcome.revision else commit
        item.message = scrub(outcome.message or "")
        if outcome.failed:
            item.error = f"{outcome.error_stage}: {outcome.error}"
        elif result.plan is not None:
            item.changes = result.plan.to_record()
        results.append(item)
    return results


# ---------------------------------------------------------------------------- markdown (a PR comment)


def to_markdown(report: Preview) -> str:
    commits = ", ".join(f"`{sha[:12]}`" for sha in sorted(set(report.commits.values())))
    affected = [t for t in report.targets if t.affected]
    lines = [f"### setpoint preview of {_code(report.ref)} ({commits})", ""]
    if not affected:
        lines.append("No target is affected by this revision.")
        return "\n".join(lines) + "\n"
    verdict = "would change" if report.changes else "changes nothing on"
    lines += [f"This revision {verdict} the live targets"
              + (f": {report.changes} change(s) in {sum(1 for t in affected if t.changes)} target(s)."
                 if report.changes else "."), "",
              "| target | kind | result |", "| --- | --- | --- |"]
    for item in affected:
        lines.append(f"| {_cell(item.target)} | {_cell(item.kind)} | {_cell(_summary(item))} |")
    unaffected = [t.target for t in report.targets if not t.affected]
    if unaffected:
        lines += ["", f"Not affected: {', '.join(_code(n) for n in unaffected)}."]
    for item in affected:
        if not item.changes:
            continue
        lines += ["", f"<details><summary><b>{_html(item.target)}</b>: {_html(_summary(item))}</summary>", ""]
        for change in item.changes[:MARKDOWN_CHANGES]:
            drift = " (live drift, not from Git)" if change.get("drift") else ""
            lines.append(f"- **{_html(change['action'])}** {_code(change['key'])}{drift}")
            for f in change.get("fields", []):
                if f.get("secret"):
                    lines.append(f"  - {_code(f['path'])}: secret value changed (not shown)")
                else:
                    lines.append(f"  - {_code(f['path'])}: {_value(f.get('before'))} → {_value(f.get('after'))}")
        if len(item.changes) > MARKDOWN_CHANGES:
            lines.append(f"- ... and {len(item.changes) - MARKDOWN_CHANGES} more")
        lines += ["", "</details>"]
    lines += ["", "<sub>Rendered at the revision and compared with the live state by each target's driver; "
              "nothing was applied.</sub>"]
    return "\n".join(lines) + "\n"


def _summary(item: TargetPreview) -> str:
    if item.error:
        return f"preview failed: {item.error}"
    if not item.changes:
        return "no change" + (f" ({item.message})" if item.message else "")
    return ", ".join(f"{n} {action}" for action, n in sorted(item.counts.items())) + \
        (f" ({item.message})" if item.message else "")


def _value(value: Any) -> str:
    if value is None:
        return "*(none)*"
    text = str(value)
    if len(text) > MARKDOWN_VALUE:
        text = text[:MARKDOWN_VALUE - 3] + "..."
    return _code(text)


def _code(text: str) -> str:
    """Inline code that no backtick or newline in ``text`` can break out of."""
    text = scrub(str(text)).replace("\n", "⏎")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def _html(text: str) -> str:
    return scrub(str(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return _html(text).replace("|", "\\|").replace("\n", " ")
