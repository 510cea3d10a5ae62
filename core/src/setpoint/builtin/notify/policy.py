"""Noise control: which outcomes and events become messages.

What was sent and the digests being gathered live in a :class:`NoiseMemory`: this process's
(:class:`LocalMemory`, no I/O) or the state store's, shared by every replica
(``setpoint.builtin.notify.shared``); the rules below are the same with either.

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
from typing import Any, Protocol

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


#: A due digest: the commit and each target's result.
DueDigest = tuple[Revision, dict[str, str]]


class NoiseMemory(Protocol):
    """What was sent, and the digests being gathered: in this process (:class:`LocalMemory`) or in the
    state store, shared by every replica (``setpoint.builtin.notify.shared``)."""

    #: True when the memory is this process's alone: a restart may claim a streak's alert for the
    #: previous process, and a stop may send the digests not yet due.
    local: bool

    def claim(self, key: tuple[str, str, str], repeat_after: float | None) -> bool:
        """True (and remembered) when ``key`` was not sent yet: the caller sends it."""
        ...

    def release(self, target: str, event: str) -> bool:
        """Forget the target's ``event`` keys; True when there were any."""
        ...

    def add_to_digest(self, revision: Revision, target: str, result: str, only_if_open: bool) -> None: ...

    def due_digests(self, window: float, force: bool, repeat_after: float | None) -> list[DueDigest]:
        """Digests opened at least ``window`` seconds ago (all of them with ``force``), each with its
        ("*", sha, "digest") key claimed, removed from the memory."""
        ...


class LocalMemory:
    """The memory of one process, kept over a restart through ``remember`` (every key after a new one)."""

    local = True

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 remember: Callable[[list[tuple[str, str, str]]], None] | None = None) -> None:
        self.clock = clock
        self._sent: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._digests: dict[str, _Digest] = {}
        self._remember = remember

    def restore(self, keys: list[tuple[str, str, str]]) -> None:
        now = self.clock()
        for key in keys[-MAX_KEYS:]:
            self._sent[key] = now

    def claim(self, key: tuple[str, str, str], repeat_after: float | None) -> bool:
        now = self.clock()
        sent = self._sent.get(key)
        if sent is not None and (repeat_after is None or now - sent < repeat_after):
            return False
        self._sent[key] = now
        self._sent.move_to_end(key)
        while len(self._sent) > MAX_KEYS:
            self._sent.popitem(last=False)
        if self._remember is not None:
            self._remember(list(self._sent))
        return True

    def release(self, target: str, event: str) -> bool:
        forgotten = [k for k in self._sent if k[0] == target and k[2] == event]
        for key in forgotten:
            del self._sent[key]
        if forgotten and self._remember is not None:
            self._remember(list(self._sent))
        return bool(forgotten)

    def add_to_digest(self, revision: Revision, target: str, result: str, only_if_open: bool) -> None:
        if only_if_open and revision.sha not in self._digests:
            return
        self._digests.setdefault(revision.sha, _Digest(self.clock(), revision)).targets[target] = result

    def due_digests(self, window: float, force: bool, repeat_after: float | None) -> list[DueDigest]:
        now, out = self.clock(), []
        for sha, digest in list(self._digests.items()):
            if force or now - digest.started >= window:
                del self._digests[sha]
                if self.claim(("*", sha, "digest"), repeat_after):
                    out.append((digest.revision, digest.targets))
        return out


class NoisePolicy:
    """Turns outcomes and events into notifications. Thread-safe; the clock is injectable for tests."""

    def __init__(self, threshold: int = 3, repeat_after: float | None = None, digest: bool = True,
                 digest_window: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 remember: Callable[[list[tuple[str, str, str]]], None] | None = None,
                 memory: NoiseMemory | None = None) -> None:
        self.threshold = threshold
        self.repeat_after = repeat_after
        self.digest = digest
        self.digest_window = digest_window
        self.clock = clock
        self._targets: dict[str, _TargetState] = {}
        self._lock = threading.Lock()
        self.memory: NoiseMemory = memory if memory is not None else LocalMemory(clock, remember)

    def restore(self, keys: list[tuple[str, str, str]]) -> None:
        """Keys a previous process sent (from ``remember``): not sent again by this one. With
        ``repeat_after`` their age counts from now."""
        with self._lock:
            if isinstance(self.memory, LocalMemory):
                self.memory.restore(keys)

    def resume_from(self, target: str, failures: int, revision: str | None) -> None:
        """Carry a failure streak over a restart (from the stored status): a streak already past the
        threshold was alerted by the previous process, so it is not alerted again, and its
        recovery is still announced. A shared memory knows that itself (the alert's key is there or
        not): claiming it here could swallow the alert another replica is about to send."""
        with self._lock:
            state = self._targets.setdefault(target, _TargetState())
            state.failures = failures
            if failures >= self.threshold and self.memory.local:
                state.alerted = True
                self._first(target, revision or "-", "failed")

    # ------------------------------------------------------------------ de-duplication

    def _first(self, target: str, revision: str, event: str) -> bool:
        """True (and remembered) when this (target, revision, event) was not sent yet."""
        return self.memory.claim((target, revision, event), self.repeat_after)

    def _forget(self, target: str, event: str) -> bool:
        return self.memory.release(target, event)

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
            if deployed and o.revision is not None and self.digest:
                self.memory.add_to_digest(o.revision, name, "failed", only_if_open=True)
            return out
        # forgetting the alert's keys ends the streak, so a later failure alerts again. A shared memory
        # alone knows whether an alert went out (maybe from another replica, before a takeover), and
        # of two replicas only the one that removes the keys announces the recovery
        if self.memory.local:
            recovered = state.alerted
            if recovered:
                self._forget(name, "failed")
        else:
            recovered = self._forget(name, "failed")
        if recovered:
            out.append(self._message("recovered", "info", info, o.revision,
                                     f"{name}: recovered",
                                     f"Target {name} ({info.kind}) reconciles again at {_describe(o.revision)} "
                                     f"after {state.failures} failed attempt(s); it is {o.sync.value} and {o.health.value}."))
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
        self.memory.add_to_digest(o.revision, o.target.name, result, only_if_open=False)

    def due_digests(self, force: bool = False) -> list[Notification]:
        """Digests whose window has passed (all of them with ``force``, at shutdown)."""
        with self._lock:
            return [self._digest(revision, targets)
                    for revision, targets in self.memory.due_digests(self.digest_window, force, self.repeat_after)]

    @staticmethod
    def _digest(revision: Revision, targets: dict[str, str]) -> Notification:
        ok = sorted(t for t, r in targets.items() if r == "deployed")
        failed = sorted(t for t, r in targets.items() if r != "deployed")
        parts = [f"deployed to {', '.join(ok)}"] if ok else []
        if failed:
            parts.append(f"failed on {', '.join(failed)}")
        return Notification("digest", "error" if failed else "info",
                            f"{revision.short}: {len(ok)} target(s) deployed" + (f", {len(failed)} failed" if failed else ""),
                            f"Commit {_describe(revision)}: {'; '.join(parts)}.",
                            revision=revision.sha, targets=dict(sorted(targets.items())))

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
