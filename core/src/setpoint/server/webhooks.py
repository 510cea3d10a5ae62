"""Webhook receivers: verify, refuse replays, parse a push, find the sources it names.

Each Git host proves a delivery differently (docs/operations.md has the set-up steps):

===========  ============================================  ===============================  ====================
provider     proof                                         event header (push value)        delivery ID header
===========  ============================================  ===============================  ====================
github       X-Hub-Signature-256: sha256=HMAC(body)        X-GitHub-Event (push)            X-GitHub-Delivery
gitlab       X-Gitlab-Token: the secret token              X-Gitlab-Event (Push Hook)       Idempotency-Key, X-Gitlab-Event-UUID
gitea        X-Forgejo-Signature / X-Gitea-Signature:      X-Forgejo-Event / X-Gitea-Event  X-Forgejo-Delivery / X-Gitea-Delivery
             hex HMAC(body)                                (push)
bitbucket    X-Hub-Signature: sha256=HMAC(body)            X-Event-Key (repo:push, Cloud;   X-Request-UUID (Cloud),
                                                           repo:refs_changed, Data Center)  X-Request-Id (DC)
generic      X-Setpoint-Signature: sha256=HMAC(TS.body)    (none: every delivery is a push) X-Setpoint-Delivery
             with X-Setpoint-Timestamp: TS
===========  ============================================  ===============================  ====================

All HMACs are SHA-256 and every comparison is constant-time. Checks run in this order, each
before anything is parsed: size, proof, replay (a delivery ID seen before, or without one the same
body again), then the payload. A webhook never carries desired state: it only makes setpoint poll
the named sources now, so the worst a replay that slipped through could do is one extra poll.

GitHub ``pull_request`` and GitLab merge request events (same proofs) are parsed into a
:class:`PullRequest` that the receiver queues for a preview (docs/git-safety.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from setpoint.server.repos import normalize_repo, repo_path

PROVIDERS = ("github", "gitlab", "gitea", "forgejo", "bitbucket", "generic")


class Rejected(Exception):
    """A delivery refused: ``result`` is the metric label, ``status`` the HTTP status."""

    def __init__(self, status: int, result: str, message: str) -> None:
        super().__init__(message)
        self.status, self.result, self.message = status, result, message


@dataclass
class Push:
    """What a verified delivery says: repositories (normalised), branch, commit, delivery ID."""

    repositories: set[str] = field(default_factory=set)
    #: ``owner/name`` forms for payloads that name no host (Bitbucket Data Center).
    paths: set[str] = field(default_factory=set)
    branch: str | None = None
    after: str | None = None
    #: Generic receiver only: source names given directly.
    sources: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Delivery:
    status: int
    result: str
    message: str
    sources: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, "message": self.message, "sources": list(self.sources),
                "targets": list(self.targets)}


class ReplayCache:
    """Delivery IDs seen within ``window`` seconds, at most ``size`` of them (oldest forgotten)."""

    def __init__(self, window: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.size, self.clock = window, size, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            while self._seen and now - next(iter(self._seen.values())) > self.window:
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return True


# --------------------------------------------------------------------------- proofs


def hmac_hex(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _check_prefixed(given: str | None, key: bytes, body: bytes) -> None:
    if not given:
        raise Rejected(401, "unsigned", "the delivery is not signed")
    if not _same(given, "sha256=" + hmac_hex(key, body)):
        raise Rejected(401, "bad_signature", "the signature does not match")


def _first(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value
    return None


# --------------------------------------------------------------------------- payload helpers


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "bad_request", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "bad_request", "the body is not a JSON object")
    return data


def _urls(*values: Any) -> set[str]:
    return {n for v in values if isinstance(v, str) and (n := normalize_repo(v))}


def _branch(ref: Any) -> str | None:
    if isinstance(ref, str) and ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None


def _deleted(after: Any) -> bool:
    return isinstance(after, str) and set(after) == {"0"}


#: Pull request actions that put new commits up for review (GitHub; GitLab says open/reopen/update).
PULL_REQUEST_ACTIONS = ("opened", "synchronize", "reopened")
MERGE_REQUEST_ACTIONS = ("open", "reopen", "update")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_GITHUB_REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


@dataclass
class PullRequest:
    """A pull (GitHub) or merge (GitLab) request that was opened or pushed to: preview it.

    ``ref`` is built from the number, never taken from the payload: the ref the host keeps for the
    request's head (``refs/pull/N/head``, ``refs/merge-requests/N/head``), so a branch name from a
    fork cannot choose what is fetched."""

    provider: str
    repositories: set[str]
    #: The branch it asks to merge into: previewed on the sources that follow that branch.
    base: str
    number: int
    head_sha: str
    #: GitHub: owner/name; GitLab: the numeric project ID.
    project: str
    #: The head comes from another repository (a fork), or its repository is unknown (deleted fork).
    fork: bool = True

    @property
    def ref(self) -> str:
        return f"refs/pull/{self.number}/head" if self.provider == "github" else \
            f"refs/merge-requests/{self.number}/head"

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.project}#{self.number}"


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise Rejected(400, "bad_request", "the pull request number is missing or not a positive integer")
    return value


def _sha(value: Any) -> str:
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise Rejected(400, "bad_request", "the head commit is missing or not a full SHA")
    return value


def github_pull_request(data: dict[str, Any]) -> PullRequest:
    action = data.get("action")
    if action not in PULL_REQUEST_ACTIONS:
        raise Ignored(f"pull_request action {action!r} brings no new commits")
    pull = data.get("pull_request") or {}
    repo = data.get("repository") or {}
    base = (pull.get("base") or {}).get("ref")
    full_name = repo.get("full_name")
    if not isinstance(base, str) or not isinstance(full_name, str) or not _GITHUB_REPO.fullmatch(full_name):
        raise Rejected(400, "bad_request", "a pull_request needs repository.full_name and pull_request.base.ref")
    head_repo = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
    return PullRequest("github", _urls(*(repo.get(k) for k in ("clone_url", "ssh_url", "git_url", "html_url"))),
                       base, _number(data.get("number", pull.get("number"))),
                       _sha((pull.get("head") or {}).get("sha")), full_name,
                       fork=not isinstance(head_repo, str) or head_repo.lower() != full_name.lower())


def gitlab_merge_request(data: dict[str, Any]) -> PullRequest:
    attrs = data.get("object_attributes") or {}
    action = attrs.get("action")
    # an update without oldrev changed the title, labels or reviewers, not the commits
    if action not in MERGE_REQUEST_ACTIONS or (action == "update" and not attrs.get("oldrev")):
        raise Ignored(f"merge request action {action!r} brings no new commits")
    project, repo = data.get("project") or {}, data.get("repository") or {}
    base = attrs.get("target_branch")
    project_id = project.get("id", attrs.get("target_project_id"))
    if not isinstance(base, str) or isinstance(project_id, bool) or not isinstance(project_id, int):
        raise Rejected(400, "bad_request", "a merge request needs project.id and object_attributes.target_branch")
    return PullRequest("gitlab", _urls(project.get("git_http_url"), project.get("git_ssh_url"),
                                       project.get("web_url"), repo.get("git_http_url"), repo.get("git_ssh_url"),
                                       repo.get("homepage"), repo.get("url")),
                       base, _number(attrs.get("iid")), _sha((attrs.get("last_commit") or {}).get("id")),
                       str(project_id), fork=attrs.get("source_project_id") != project_id)


class Ignored(Exception):
    """A verified delivery that is not a branch push (a ping, a tag, another event)."""


# --------------------------------------------------------------------------- providers


def github(headers: Mapping[str, str], body: bytes, key: bytes) -> tuple[str | None, Push | PullRequest]:
    _check_prefixed(headers.get("x-hub-signature-256"), key, body)
    delivery = headers.get("x-github-delivery")
    event = headers.get("x-github-event", "")
    if event == "pull_request":
        return delivery, github_pull_request(_json(body))
    if event != "push":
        raise Ignored(f"event {event or '(none)'} is not a push")
    data = _json(body)
    repo = data.get("repository") or {}
    return delivery, _push(repo, data, ("clone_url", "ssh_url", "git_url", "html_url", "svn_url"))


def gitea(headers: Mapping[str, str], body: bytes, key: bytes) -> tuple[str | None, Push]:
    # Forgejo sends X-Forgejo-* and, for compatibility, the same values as X-Gitea-*; a present
    # Forgejo signature is the one checked, so a bad one is never rescued by the other header.
    given = _first(headers, "x-forgejo-signature", "x-gitea-signature")
    if given:
        if not _same(given, hmac_hex(key, body)):
            raise Rejected(401, "bad_signature", "the signature does not match")
    else:
        _check_prefixed(headers.get("x-hub-signature-256"), key, body)
    delivery = _first(headers, "x-forgejo-delivery", "x-gitea-delivery", "x-gogs-delivery", "x-github-delivery")
    event = _first(headers, "x-forgejo-event", "x-gitea-event", "x-gogs-event", "x-github-event") or ""
    if event != "push":
        raise Ignored(f"event {event or '(none)'} is not a push")
    data = _json(body)
    return delivery, _push(data.get("repository") or {}, data, ("clone_url", "ssh_url", "html_url"))


def gitlab(headers: Mapping[str, str], body: bytes, key: bytes) -> tuple[str | None, Push | PullRequest]:
    given = headers.get("x-gitlab-token")
    if not given:
        raise Rejected(401, "unsigned", "the delivery has no X-Gitlab-Token")
    if not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(key).digest()):
        raise Rejected(401, "bad_signature", "the secret token does not match")
    delivery = _first(headers, "idempotency-key", "x-gitlab-event-uuid")
    data = _json(body)
    if data.get("object_kind") == "merge_request":
        return delivery, gitlab_merge_request(data)
    # system hooks say "System Hook" in the header; the body's object_kind is what counts
    if data.get("object_kind") != "push" and data.get("event_name") != "push":
        raise Ignored(f"event {headers.get('x-gitlab-event', '(none)')} is not a push")
    project, repo = data.get("project") or {}, data.get("repository") or {}
    push = Push(_urls(project.get("git_http_url"), project.get("git_ssh_url"), project.get("web_url"),
                      repo.get("git_http_url"), repo.get("git_ssh_url"), repo.get("homepage"), repo.get("url")),
                branch=_branch(data.get("ref")), after=data.get("after"))
    if _deleted(push.after) or push.branch is None:
        raise Ignored("not a branch update")
    return delivery, push


def bitbucket(headers: Mapping[str, str], body: bytes, key: bytes) -> tuple[str | None, Push]:
    _check_prefixed(headers.get("x-hub-signature"), key, body)
    delivery = _first(headers, "x-request-uuid", "x-request-id")
    event = headers.get("x-event-key", "")
    data = _json(body) if event in ("repo:push", "repo:refs_changed") else {}
    repo = data.get("repository") or {}
    if event == "repo:push":  # Bitbucket Cloud
        links = repo.get("links") or {}
        html = (links.get("html") or {}).get("href")
        push = Push(_urls(html))
        if isinstance(repo.get("full_name"), str) and html:
            host = normalize_repo(html).split("/", 1)[0]
            push.repositories |= _urls(f"https://{host}/{repo['full_name']}")
        for change in (data.get("push") or {}).get("changes") or []:
            new = change.get("new") or {}
            if new.get("type") == "branch" and new.get("name"):
                push.branch, push.after = new["name"], (new.get("target") or {}).get("hash")
                break
    elif event == "repo:refs_changed":  # Bitbucket Data Center / Server
        clones = [c.get("href") for c in (repo.get("links") or {}).get("clone") or [] if isinstance(c, dict)]
        push = Push(_urls(*clones))
        project_key, slug = (repo.get("project") or {}).get("key"), repo.get("slug")
        if isinstance(project_key, str) and isinstance(slug, str):
            push.paths.add(f"{project_key}/{slug}".lower())
        for change in data.get("changes") or []:
            ref = change.get("ref") or {}
            if ref.get("type") == "BRANCH" and change.get("type") != "DELETE":
                push.branch, push.after = ref.get("displayId") or _branch(ref.get("id")), change.get("toHash")
                break
    else:
        raise Ignored(f"event {event or '(none)'} is not a push")
    if push.branch is None:
        raise Ignored("no branch was updated")
    return delivery, push


def generic(headers: Mapping[str, str], body: bytes, key: bytes, max_skew: float,
            clock: Callable[[], float] = time.time) -> tuple[str | None, Push]:
    given, stamp = headers.get("x-setpoint-signature"), headers.get("x-setpoint-timestamp")
    if not given or not stamp:
        raise Rejected(401, "unsigned", "X-Setpoint-Signature and X-Setpoint-Timestamp are required")
    _check_prefixed(given, key, stamp.encode() + b"." + body)
    try:
        skew = abs(clock() - float(stamp))
    except ValueError:
        raise Rejected(400, "bad_request", "X-Setpoint-Timestamp must be Unix seconds") from None
    if skew > max_skew:
        raise Rejected(401, "replayed", f"the timestamp is {skew:.0f}s away from the server's clock")
    data = _json(body)
    push = Push(_urls(data.get("repository")), branch=data.get("branch") if isinstance(data.get("branch"), str) else None)
    names = data.get("sources") or ([data["source"]] if isinstance(data.get("source"), str) else [])
    push.sources = {n for n in names if isinstance(n, str)}
    if not push.repositories and not push.sources:
        raise Rejected(400, "bad_request", "name a repository and branch, or sources")
    if push.repositories and push.branch is None:
        raise Rejected(400, "bad_request", "a repository needs its branch")
    # without its own delivery ID, the signature (which covers the timestamp) identifies a delivery
    return headers.get("x-setpoint-delivery") or given, push


def _push(repo: Mapping[str, Any], data: Mapping[str, Any], keys: Iterable[str]) -> Push:
    push = Push(_urls(*(repo.get(k) for k in keys)), branch=_branch(data.get("ref")), after=data.get("after"))
    if push.branch is None or _deleted(push.after) or data.get("deleted") is True:
        raise Ignored("not a branch update (a tag, or a deleted branch)")
    return push


def matching_sources(push: Push, sources: Mapping[str, tuple[str, str]]) -> list[str]:
    """Names of the sources (name -> (url, branch)) whose repository and branch the push names."""
    names = []
    for name, (url, branch) in sorted(sources.items()):
        if push.sources:
            if name in push.sources:
                names.append(name)
            continue
        normalized = normalize_repo(url)
        same_repo = normalized in push.repositories or (bool(push.paths) and repo_path(normalized) in push.paths)
        if same_repo and (push.branch is None or push.branch == branch):
            names.append(name)
    return names
