"""Pull/merge request webhooks trigger previews (issue 22 review, gap 1): a signed GitHub
``pull_request`` (opened, synchronize) or GitLab merge request event previews the request's head
against the live targets and posts one comment (edited on the next push) and a commit status; the
previews run off the reconcile loop, in a bounded queue where the newest event of a request wins
and a flood is refused with 503, while reconciles go on."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opshelpers import serving, write_yaml

from setpoint.state import TargetStatus
from setpoint.testing import GitRepo, make_engine

GH_SECRET, GL_SECRET = "gh-hook-secret-1a2b", "gl-token-3c4d5e"
GH_TOKEN, GL_TOKEN = "ghp_preview-T0KEN", "glpat-preview-T0KEN"


class FakeHosts:
    """GitHub's issue comments and statuses of acme/cfg, GitLab's notes and statuses of project 15;
    ``gate`` holds every answer while it is clear (a slow host keeps the preview worker busy)."""

    def __init__(self) -> None:
        self.comments: dict[int, str] = {}
        self.pr: dict[int, int] = {}  # comment -> pull request
        self.notes: dict[int, str] = {}
        self.statuses: list[tuple[str, str, dict[str, Any]]] = []
        self.auth: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                if not owner.gate.is_set():
                    owner.waiting.set()
                    owner.gate.wait(30)
                owner.auth.add(self.headers.get("Authorization") or f"PRIVATE-TOKEN {self.headers.get('PRIVATE-TOKEN')}")
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def do_GET(self) -> None:  # noqa: N802
                self._body()
                if self.path.startswith("/gh/repos/acme/cfg/issues/") and "/comments?" in self.path:
                    pr = int(self.path.split("/")[6])
                    self._answer(200, [{"id": i, "body": b} for i, b in owner.comments.items() if owner.pr[i] == pr])
                elif self.path.startswith("/gl/projects/15/merge_requests/3/notes?"):
                    self._answer(200, [{"id": i, "body": b, "system": False} for i, b in owner.notes.items()])
                else:
                    self._answer(404, {"message": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                if self.path.startswith("/gh/repos/acme/cfg/issues/") and self.path.endswith("/comments"):
                    number = 100 + len(owner.comments)
                    owner.comments[number] = body["body"]
                    owner.pr[number] = int(self.path.split("/")[6])
                    self._answer(201, {"id": number, "html_url": f"https://github.test/c{number}"})
                elif self.path == "/gl/projects/15/merge_requests/3/notes":
                    number = 200 + len(owner.notes)
                    owner.notes[number] = body["body"]
                    self._answer(201, {"id": number})
                elif self.path.startswith(("/gh/repos/acme/cfg/statuses/", "/gl/projects/15/statuses/")):
                    owner.statuses.append((self.path.split("/")[1], self.path.rsplit("/", 1)[1], body))
                    self._answer(201, {})
                else:
                    self._answer(404, {"message": "Not Found"})

            def do_PATCH(self) -> None:  # noqa: N802
                body = self._body()
                owner.comments[int(self.path.rsplit("/", 1)[1])] = body["body"]
                self._answer(200, {"id": 1, "html_url": "https://github.test/c"})

            def do_PUT(self) -> None:  # noqa: N802
                body = self._body()
                owner.notes[int(self.path.rsplit("/", 1)[1])] = body["body"]
                self._answer(200, {"id": 1})

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, check: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path: Path, git_repo: GitRepo) -> Iterator[tuple[str, Any, FakeHosts, GitRepo, Path]]:
    live = tmp_path / "live"
    git_repo.commit({"web/app.conf": "port = 80\n", "db/db.conf": "size = 1\n"}, "initial")
    for name, value in (("gh.secret", GH_SECRET), ("gl.secret", GL_SECRET), ("gh.token", GH_TOKEN),
                        ("gl.token", GL_TOKEN)):
        (tmp_path / name).write_text(value + "\n")
    hosts = FakeHosts()
    config = write_yaml(tmp_path / "setpoint.yaml", {
        "sources": {"repo": {"url": str(git_repo.path), "branch": "main", "poll_interval": "1h"}},
        "targets": [{"name": n, "kind": "files", "source": "repo", "path": n, "prune": True,
                     "files": {"destination": str(live / n)}} for n in ("web", "db")],
        "state": f"sqlite:///{tmp_path / 'state' / 'state.db'}",
        "server": {"listen": "127.0.0.1:0", "webhooks": {
            "github": {"secret_file": "gh.secret"}, "gitlab": {"secret_file": "gl.secret"},
            "previews": {"github": {"token_file": "gh.token", "api_url": f"{hosts.url}/gh"},
                         "gitlab": {"token_file": "gl.token", "api_url": f"{hosts.url}/gl"},
                         "max_pending": 1}}},
    })
    engine = make_engine(config)
    assert all(o.error is None for o in engine.sync())
    try:
        with serving(engine) as base:
            yield base, engine, hosts, git_repo, live
    finally:
        hosts.close()
        engine.close()


def push_pr(repo: GitRepo, ref: str, files: dict[str, Any], message: str) -> str:
    """A commit on a pull request's branch, kept by the host under its pull request ref."""
    repo.git("checkout", "--quiet", "-B", "pr")
    sha = repo.commit(files, message)
    repo.git("update-ref", ref, sha)
    repo.git("checkout", "--quiet", "main")
    return sha


def github_event(repo: GitRepo, number: int, sha: str, action: str = "synchronize",
                 secret: str = GH_SECRET, head_repo: str = "acme/cfg") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({
        "action": action, "number": number,
        "pull_request": {"number": number, "state": "open", "title": "go green",
                         "head": {"ref": "pr", "sha": sha, "repo": {"full_name": head_repo}},
                         "base": {"ref": "main", "sha": "0" * 40}},
        "repository": {"full_name": "acme/cfg", "clone_url": str(repo.path), "html_url": "https://github.test/acme/cfg"},
    }).encode()
    return body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
                  "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
                  "Content-Type": "application/json"}


def gitlab_event(repo: GitRepo, iid: int, sha: str, action: str, oldrev: str | None) -> tuple[bytes, dict[str, str]]:
    attributes: dict[str, Any] = {"iid": iid, "action": action, "state": "opened", "target_branch": "main",
                                  "source_branch": "pr", "source_project_id": 15, "target_project_id": 15,
                                  "last_commit": {"id": sha}}
    if oldrev:
        attributes["oldrev"] = oldrev
    body = json.dumps({"object_kind": "merge_request", "event_type": "merge_request",
                       "project": {"id": 15, "path_with_namespace": "platform/cfg", "git_http_url": str(repo.path)},
                       "object_attributes": attributes}).encode()
    event = str(uuid.uuid4())
    return body, {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": GL_SECRET, "Idempotency-Key": event,
                  "Content-Type": "application/json"}


def send(base: str, provider: str, event: tuple[bytes, dict[str, str]]) -> httpx.Response:
    return httpx.post(f"{base}/hooks/{provider}", content=event[0], headers=event[1], timeout=30)


def test_pull_and_merge_request_events_are_previewed_and_posted(world: Any) -> None:
    base, engine, hosts, repo, live = world
    before_live = {p.name: p.read_text() for p in live.rglob("*") if p.is_file()}
    audit = len(engine.store.audit_entries())
    first = push_pr(repo, "refs/pull/7/head", {"web/app.conf": "port = 8080\n"}, "first push")
    answer = send(base, "github", github_event(repo, 7, first, "opened"))
    assert answer.status_code == 202 and answer.json()["result"] == "preview_queued", answer.text
    assert answer.json()["sources"] == ["repo"]
    hosts.wait_for(lambda: hosts.statuses)
    [(comment, body)] = hosts.comments.items()
    assert body.startswith("<!-- setpoint-preview -->\n### setpoint preview of `refs/pull/7/head`")
    assert "port = 8080" in body and "| web | files | 1 update |" in body and "`db`" in body  # db: not affected
    assert hosts.statuses == [("gh", first, {"state": "success", "context": "setpoint/preview",
                                             "description": "1 change(s) in 1 target(s)"})]
    # a new push (synchronize): the same comment is edited, the status goes on the new head
    second = push_pr(repo, "refs/pull/7/head", {"web/app.conf": "port = 9090\n"}, "second push")
    assert send(base, "github", github_event(repo, 7, second)).status_code == 202
    hosts.wait_for(lambda: len(hosts.statuses) == 2)
    assert list(hosts.comments) == [comment] and "port = 9090" in hosts.comments[comment]
    assert hosts.statuses[-1][1] == second
    # actions that bring no commits, a forged signature, another base branch: no preview
    assert send(base, "github", github_event(repo, 7, second, "labeled")).json()["result"] == "ignored"
    assert send(base, "github", github_event(repo, 7, second, secret="wrong")).status_code == 401
    # a fork's request is not previewed unless server.webhooks.previews.forks says so
    fork = send(base, "github", github_event(repo, 7, second, head_repo="mallory/cfg"))
    assert fork.json()["result"] == "ignored" and "fork" in fork.json()["message"]
    # GitLab: an update that pushed commits (oldrev) is previewed as a merge request note
    third = push_pr(repo, "refs/merge-requests/3/head", {"db/db.conf": None, "db/new.conf": "x\n"}, "mr")
    assert send(base, "gitlab", gitlab_event(repo, 3, third, "update", None)).json()["result"] == "ignored"
    assert send(base, "gitlab", gitlab_event(repo, 3, third, "update", second)).status_code == 202
    hosts.wait_for(lambda: len(hosts.statuses) == 3)
    [note] = hosts.notes.values()
    assert note.startswith("<!-- setpoint-preview -->") and "| db | files | 1 create, 1 delete |" in note, note
    assert hosts.statuses[-1] == ("gl", third, {"state": "success", "name": "setpoint/preview",
                                                "description": "2 change(s) in 1 target(s)"})
    assert hosts.auth == {f"Bearer {GH_TOKEN}", f"PRIVATE-TOKEN {GL_TOKEN}"}
    time.sleep(0.3)
    assert len(hosts.statuses) == 3  # nothing was previewed for the refused deliveries
    # nothing applied or recorded
    assert {p.name: p.read_text() for p in live.rglob("*") if p.is_file()} == before_live
    assert len(engine.store.audit_entries()) == audit


def test_a_flood_of_pull_request_events_is_bounded_and_never_holds_reconciles(world: Any) -> None:
    base, engine, hosts, repo, live = world
    sha = push_pr(repo, "refs/pull/7/head", {"web/app.conf": "port = 8080\n"}, "pr 7")
    pr8 = push_pr(repo, "refs/pull/8/head", {"web/app.conf": "port = 8888\n"}, "pr 8")
    statuses = {n: s.without_volatile() for n, s in engine.store.all_status().items() if isinstance(s, TargetStatus)}
    hosts.gate.clear()  # the host answers nothing: the first preview blocks while posting
    assert send(base, "github", github_event(repo, 7, sha, "opened")).json()["result"] == "preview_queued"
    assert hosts.waiting.wait(30)  # the worker is busy with pull request 7
    assert send(base, "github", github_event(repo, 8, sha, "opened")).json()["result"] == "preview_queued"
    # the newest event of a waiting request replaces it; a further request finds the queue full
    assert send(base, "github", github_event(repo, 8, pr8)).json()["result"] == "preview_replaced"
    refused = send(base, "github", github_event(repo, 9, sha, "opened"))
    assert refused.status_code == 503 and refused.json()["result"] == "overloaded"
    assert refused.headers["Retry-After"] == "60" and "max_pending" in refused.json()["message"]
    # meanwhile the reconciler works as usual, without waiting for the previews
    started = time.monotonic()
    outcomes = [engine.reconcile(name, "test", lock_timeout=5, poll=False) for name in ("web", "db")]
    assert all(o.error is None and not o.actions for o in outcomes)
    assert time.monotonic() - started < 5
    hosts.gate.set()
    # pull request 7, then 8 once (its two events folded into one preview); 9 never
    hosts.wait_for(lambda: len(hosts.statuses) == 2)
    time.sleep(0.5)
    assert [(sha_, body["state"]) for _, sha_, body in hosts.statuses] == [(sha, "success"), (pr8, "success")]
    assert sorted(hosts.pr.values()) == [7, 8] and "port = 8888" in hosts.comments[max(hosts.pr)]
    assert (live / "web" / "app.conf").read_text() == "port = 80\n"
    assert {n: s.without_volatile() for n, s in engine.store.all_status().items()
            if isinstance(s, TargetStatus)} == statuses
