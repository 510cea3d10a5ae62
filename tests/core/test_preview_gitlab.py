"""``setpoint preview --gitlab-mr`` (issue 22 review, gap 2): one merge request note edited in place
and a commit status, with GitLab REST API v4's documented paths, headers and payloads, checked by a
local HTTP receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from setpoint.preview_gitlab import GitLabMergeRequest, GitLabPoster
from setpoint.secrets import Secret
from setpoint.testing import GitRepo, write_config

PROJECT = "/api/v4/projects/acme%2Fplatform%2Fcfg"


class FakeGitLab:
    """Merge request 7's notes and the project's commit statuses; anything else is a 404."""

    def __init__(self) -> None:
        # a system note and a human's note that must be left alone
        self.notes: dict[int, dict[str, Any]] = {
            1: {"id": 1, "body": "<!-- setpoint-preview --> mentioned in a system note", "system": True},
            2: {"id": 2, "body": "looks good to me", "system": False}}
        self.statuses: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
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
                owner.requests.append((self.command, self.path, dict(self.headers)))
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if raw:
                    assert self.headers.get("Content-Type") == "application/json"
                return json.loads(raw or b"{}")

            def do_GET(self) -> None:  # noqa: N802
                self._body()
                if self.path.startswith(f"{PROJECT}/merge_requests/7/notes?") and "per_page=100" in self.path:
                    self._answer(200, list(owner.notes.values()) if "page=1" in self.path else [])
                else:
                    self._answer(404, {"message": "404 Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                if self.path == f"{PROJECT}/merge_requests/7/notes" and set(body) == {"body"}:
                    number = 100 + len(owner.notes)
                    owner.notes[number] = {"id": number, "body": body["body"], "system": False}
                    self._answer(201, owner.notes[number])
                elif self.path.startswith(f"{PROJECT}/statuses/") and body.get("state") in (
                        "pending", "running", "success", "failed", "canceled"):
                    owner.statuses.append((self.path.rsplit("/", 1)[1], body))
                    self._answer(201, {"id": 1, **body})
                else:
                    self._answer(400 if self.path.startswith(PROJECT) else 404, {"message": "bad request"})

            def do_PUT(self) -> None:  # noqa: N802
                body = self._body()
                prefix = f"{PROJECT}/merge_requests/7/notes/"
                number = int(self.path.removeprefix(prefix)) if self.path.startswith(prefix) else -1
                if number in owner.notes and set(body) == {"body"}:
                    owner.notes[number]["body"] = body["body"]
                    self._answer(200, owner.notes[number])
                else:
                    self._answer(404, {"message": "404 Not Found"})

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v4"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_preview_posts_one_note_per_merge_request_and_a_status(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({"web/app.conf": "port = 80\n"}, "initial")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "web", "kind": "files", "path": "web", "files": {"destination": str(live)}}])
    token = "glpat-T0KEN-must-not-be-printed"
    token_file = tmp_path / "gitlab-token"
    token_file.write_text(token + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "GITLAB_"))}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args],
                              capture_output=True, text=True, env=env)

    assert cli("sync").returncode == 0
    git_repo.git("checkout", "--quiet", "-b", "mr")
    first = git_repo.commit({"web/app.conf": "port = 81\n"}, "first push")
    gitlab = FakeGitLab()
    post = ("preview", "--revision", "mr", "--gitlab-mr", "7", "--gitlab-project", "acme/platform/cfg",
            "--gitlab-token-file", str(token_file), "--gitlab-api-url", gitlab.url)
    try:
        done = cli(*post)
        assert done.returncode == 0, done.stderr
        assert "posted on merge request !7: merge request !7 note 102" in done.stderr
        assert gitlab.notes[1]["body"].endswith("system note") and gitlab.notes[2]["body"] == "looks good to me"
        body = gitlab.notes[102]["body"]
        assert body.startswith("<!-- setpoint-preview -->\n### setpoint preview of `mr`") and "port = 81" in body
        assert gitlab.statuses == [(first, {"state": "success", "name": "setpoint/preview",
                                            "description": "1 change(s) in 1 target(s)"})]
        # a second push: the same note is edited (PUT), a status goes on the given commit
        second = git_repo.commit({"web/app.conf": "port = 82\n"}, "second push")
        again = cli(*post, "--gitlab-status-sha", second)
        assert again.returncode == 0, again.stderr
        assert sorted(gitlab.notes) == [1, 2, 102] and "port = 82" in gitlab.notes[102]["body"]
        assert ("PUT", f"{PROJECT}/merge_requests/7/notes/102") in [(m, p) for m, p, _ in gitlab.requests]
        assert gitlab.statuses[-1][0] == second
        # the token went in PRIVATE-TOKEN, and only there
        assert {h.get("PRIVATE-TOKEN") for _, _, h in gitlab.requests} == {token}
        assert all("Authorization" not in h for _, _, h in gitlab.requests)
        assert token not in done.stdout + done.stderr + again.stdout + again.stderr
        # a failed preview's status is GitLab's "failed" (GitHub says "failure")
        poster = GitLabPoster(GitLabMergeRequest("acme/platform/cfg", 7, Secret(token), gitlab.url))
        poster.status(second, "failure", "the preview failed for a target " + "x" * 300)
        poster.close()
        assert gitlab.statuses[-1][1]["state"] == "failed" and len(gitlab.statuses[-1][1]["description"]) == 255
        # token from the environment; none at all is refused before anything is previewed
        env["GL_TOKEN"] = token
        assert cli(*post[:-4], "--gitlab-token-env", "GL_TOKEN", "--gitlab-api-url", gitlab.url).returncode == 0
        env.pop("GL_TOKEN")
        refused = cli(*post[:-4], "--gitlab-token-env", "GL_TOKEN")
        assert refused.returncode == 2 and "needs a token" in refused.stderr and "GL_TOKEN" in refused.stderr
        # both hosts at once is a usage error
        both = cli(*post, "--github-pr", "7")
        assert both.returncode == 2 and "choose one" in both.stderr
    finally:
        gitlab.close()
    assert (live / "app.conf").read_text() == "port = 80\n"
