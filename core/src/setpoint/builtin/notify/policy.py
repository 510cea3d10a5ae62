"""Noise control: which outcomes and events become messages, decided without any I/O.

The rules (docs/operations.md, "Noise control"), learnt from the complaints about Flux and Argo CD
notifications (a message per sync, timestamps defeating de-duplication, no thresholds):

* a failing target alerts once, after ``threshold`` consecutive failures, then stays quiet (an
  unverified commit, stage ``verify``, alerts on its first failure);
* at most one message per (target, revision, event) (again only after ``repeat_after``, if set);
* a target that alerted sends one recovery message when it heals, and may alert again later;
* deployments of one commit are gathered into one digest across targets, sent ``window``
  seconds after the first target deployed it.

Every text goes through :func:`clean`: known secret values are replaced and length is capped.
Errors come from ``Outcome.error``, which the core already sanitised; raw exceptions never do.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from setpoint.api import Notification, Outcome, Revision, TargetInfo
from setpoint.secrets import scrub

#: Sent keys remembered at most (oldest forgotten first).
MAX_KEYS = 4096


def clean(text: Any, limit: int = 500) -> str:
    """Message-safe text: known secret values replaced, one paragraph at most ``limit`` long."""
    value = scrub(str(text)).strip()
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _describe(revision: Revision | None) -> str:
    if revision is None:
        return "an unknown revision"
    subject = f' "{clean(revision.subject, 80)}"' if revision.subject else ""
    author = f" by {clean(revision.author, 60)}" if revision.author else ""
    return f"{revision.short}{subject}{author}"


@dataclass
class _TargetState:
    failures: int = 0
    alerted: bool = False


@dataclass
class _Digest:
    started: float
    revision: Revision
    targets: dict[str, str] = field(default_factory=dict)


class NoisePolicy:
    """Turns outcomes and events into notifications. Thread-safe; the clock is injectable for tests."""

    def __init__(self, threshold: int = 3, repeat_after: float | None = None, digest: bool = True,
                 digest_window: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 remember: Callable[[list[tuple[str, str, str]]], None] | None = None) -> None:
        self.threshold = threshold
        self.repeat_after = repeat_after
        self.digest = digest
        self.digest_window = digest_window
        self.clock = clock
        self._targets: dict[str, _TargetState] = {}
        self._sent: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._digests: dict[str, _Digest] = {}
        self._lock = threading.Lock()
        #: Called with every remembered key after a new one is added, to keep them over a restart.
        self._remember = remember

    def restore(self, keys: list[tuple[str, str, str]]) -> None:
        """Keys a previous process sent (from ``remember``): not sent again by this one. With
        ``repeat_after`` their age counts from now."""
        with self._lock:
            now = self.clock()
            for key in keys[-MAX_KEYS:]:
                self._sent[key] = now

    def resume_from(self, target: str, failures: int, revision: str | None) -> None:
        """Carry a failure streak over a restart (from the stored status): a streak already past the
        threshold was alerted by the previous process, so it is not alerted again, and its
        recovery is still announced."""
        with self._lock:
            state = self._targets.setdefault(target, _TargetState())
            state.failures = failures
            if failures >= self.threshold:
                state.alerted = True
                self._first(target, revision or "-", "failed")

    # ------------------------------------------------------------------ de-duplication

    def _first(self, target: str, revision: str, event: str) -> bool:
        """True (and remembered) when this (target, revision, event) was not sent yet."""
        key, now = (target, revision, event), self.clock()
        sent = self._sent.get(key)
        if sent is not None and (self.repeat_after is None or now - sent < self.repeat_after):
            return False
        self._sent[key] = now
        self._sent.move_to_end(key)
        while len(self._sent) > MAX_KEYS:
            self._sent.popitem(last=False)
        if self._remember is not None:
            self._remember(list(self._sent))
        return True

    def _forget(self, target: str, event: str) -> None:
        forgotten = [k for k in self._sent if k[0] == target and k[2] == event]
        for key in forgotten:
            del self._sent[key]
        if forgotten and self._remember is not None:
            self._remember(list(self._sent))

    # ------------------------------------------------------------------ outcomes

    def outcome(self, outcome: Outcome) -> list[Notification]:
        with self._lock:
            return self._outcome(outcome)

    def _outcome(self, o: Outcome) -> list[Notification]:
        info, name = o.target, o.target.name
        rev = o.revision.sha if o.revision else "-"
        state = self._targets.setdefault(name, _TargetState())
        out: list[Notification] = []
        deployed = [a for a in o.actions if a.get("action") == "apply"]
        if o.failed:
            state.failures += 1
            # a refused signature is a security event, not a flaky target: it alerts on the first
            # failure, still once per (target, revision)
            due = state.failures >= self.threshold or o.error_stage == "verify"
            if due and self._first(name, rev, "failed"):
                state.alerted = True
                out.append(self._failed(o, state.failures))
            # a failed deploy joins its commit's digest only if other targets deployed that commit:
            # a lone failure is the threshold's business, not a digest of its own
            if deployed and o.revision is not None and o.revision.sha in self._digests:
                self._digests[o.revision.sha].targets[name] = "failed"
            return out
        if state.alerted:
            out.append(self._message("recovered", "info", info, o.revision,
                                     f"{name}: recovered",
                                     f"Target {name} ({info.kind}) reconciles again at {_describe(o.revision)} "
                                     f"after {state.failures} failed attempt(s); it is {o.sync.value} and {o.health.value}."))
            # a later failure streak, even at this same revision, must alert again
            self._forget(name, "failed")
        state.failures, state.alerted = 0, False
        out.extend(self._drift(o, rev))
        held = [a for a in o.actions if a.get("action") == "held"]
        if held and self._first(name, f"{rev}:{held[0].get('plan_id')}", "held"):
            plan_id = clean(held[0].get("plan_id", ""), 40)
            out.append(self._message("held", "warning", info, o.revision, f"{name}: plan {plan_id} held for approval",
                                     f"A plan for {name} at {_describe(o.revision)} waits for approval: "
                                     f"{clean(held[0].get('reason', ''))}. Approve with: setpoint approve {name} {plan_id}",
                                     {"plan": plan_id}))
        if any(a.get("result") == "ok" for a in deployed):
            self._add_to_digest(o, "deployed", out)
        return out

    def _failed(self, o: Outcome, failures: int) -> Notification:
        name, info = o.target.name, o.target
        text = (f"Target {name} ({info.kind}) failed {failures} reconciles in a row at {_describe(o.revision)}. "
                f"Stage: {o.error_stage or 'unknown'}. Error: {clean(o.error or 'unknown')}. "
                "No further message until it recovers.")
        return self._message("failed", "error", info, o.revision, f"{name}: reconcile failing", text,
                             {"stage": o.error_stage or "unknown", "failures": str(failures)})

    def _drift(self, o: Outcome, rev: str) -> list[Notification]:
        name, info = o.target.name, o.target
        detected = [str(a.get("key")) for a in o.actions if a.get("action") == "drift-detected"]
        repaired = sum(int(a.get("count") or 0) for a in o.actions
                       if a.get("action") == "revert-drift" and a.get("result") == "ok")
        keys = ", ".join(clean(k, 80) for k in detected[:5]) + (f" and {len(detected) - 5} more" if len(detected) > 5 else "")
        if repaired and self._first(name, rev, "drift_repaired"):
            return [self._message("drift_repaired", "warning", info, o.revision, f"{name}: drift reverted",
                                  f"{repaired} object(s) of {name} had been changed outside Git"
                                  + (f" ({keys})" if keys else "") + f" and were reverted to {_describe(o.revision)}.",
                                  {"objects": str(repaired)})]
        if detected and not repaired and self._first(name, rev, "drift_detected"):
            why = "the target is paused" if o.paused else "self-heal is off or within its grace period"
            return [self._message("drift_detected", "warning", info, o.revision, f"{name}: drift detected",
                                  f"{len(detected)} object(s) of {name} differ from Git ({keys}); not reverted "
                                  f"because {why}.", {"objects": str(len(detected))})]
        return []

    # ------------------------------------------------------------------ digests

    def _add_to_digest(self, o: Outcome, result: str, out: list[Notification]) -> None:
        if o.revision is None:
            return
        if not self.digest:
            if result == "deployed" and self._first(o.target.name, o.revision.sha, "deployed"):
                out.append(self._message("deployed", "info", o.target, o.revision, f"{o.target.name}: deployed",
                                         f"{o.target.name} now runs {_describe(o.revision)}."))
            return
        digest = self._digests.setdefault(o.revision.sha, _Digest(self.clock(), o.revision))
        digest.targets[o.target.name] = result

    def due_digests(self, force: bool = False) -> list[Notification]:
        """Digests whose window has passed (all of them with ``force``, at shutdown)."""
        with self._lock:
            now, out = self.clock(), []
            for sha, digest in list(self._digests.items()):
                if force or now - digest.started >= self.digest_window:
                    del self._digests[sha]
                    if self._first("*", sha, "digest"):
                        out.append(self._digest(digest))
            return out

    def _digest(self, digest: _Digest) -> Notification:
        ok = sorted(t for t, r in digest.targets.items() if r == "deployed")
        failed = sorted(t for t, r in digest.targets.items() if r != "deployed")
        parts = [f"deployed to {', '.join(ok)}"] if ok else []
        if failed:
            parts.append(f"failed on {', '.join(failed)}")
        return Notification("digest", "error" if failed else "info",
                            f"{digest.revision.short}: {len(ok)} target(s) deployed" + (f", {len(failed)} failed" if failed else ""),
                            f"Commit {_describe(digest.revision)}: {'; '.join(parts)}.",
                            revision=digest.revision.sha, targets=dict(sorted(digest.targets.items())))

    # ------------------------------------------------------------------ operator events

    def event(self, name: str, target: TargetInfo | None, details: Mapping[str, Any]) -> list[Notification]:
        if target is None or name not in ("paused", "resumed"):
            return []
        who = clean(details.get("by") or details.get("reason") or "setpoint", 80)
        if name == "paused":
            until = details.get("until")
            when = f" until {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(until))}" if until else ""
            return [self._message("paused", "warning", target, None, f"{target.name}: paused",
                                  f"{target.name} was paused by {who}{when}: {clean(details.get('reason', ''))}. "
                                  "Drift is still detected but nothing is applied.")]
        return [self._message("resumed", "info", target, None, f"{target.name}: resumed",
                              f"{target.name} was resumed by {who}; it reconciles again.")]

    @staticmethod
    def _message(event: str, severity: str, info: TargetInfo, revision: Revision | None, title: str, text: str,
                 fields: Mapping[str, str] | None = None) -> Notification:
        base = {"target": info.name, "kind": info.kind}
        if revision is not None:
            base["revision"] = revision.short
        return Notification(event, severity, clean(title, 150), clean(text, 1500), info.name, info.kind,
                            revision.sha if revision else None, {**base, **(fields or {})})
