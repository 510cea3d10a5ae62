"""``setpoint preview`` on files targets (issue 22 item 2): a branch is rendered and compared with
the live state; nothing is applied or recorded, the deployed branch does not move."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from setpoint.preview import preview, to_markdown
from setpoint.state import TargetStatus
from setpoint.testing import GitRepo, make_engine, write_config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), *args], capture_output=True,
                          text=True)


def snapshot(engine: object, live: Path) -> tuple[object, ...]:
    store = engine.store  # type: ignore[attr-defined]
    files = {str(p.relative_to(live)): p.read_text() for p in sorted(live.rglob("*")) if p.is_file()}
    statuses = {n: s.without_volatile() for n, s in store.all_status().items() if isinstance(s, TargetStatus)}
    return (files, len(store.audit_entries()), statuses,
            {n: sorted(store.inventory(n)) for n in ("web", "db", "cache")})


def setup(tmp_path: Path, git_repo: GitRepo) -> tuple[Path, Path]:
    live = tmp_path / "live"
    git_repo.commit({"web/app.conf": "port = 80\n", "web/old.conf": "legacy\n", "db/db.conf": "size = 1\n",
                     "cache/c.conf": "ttl = 5\n"}, "initial")
    config = write_config(tmp_path, git_repo.path, [
        {"name": t, "kind": "files", "path": t, "prune": True, "files": {"destination": str(live / t)}}
        for t in ("web", "db", "cache")])
    return config, live


def test_preview_shows_changes_and_deletions_and_records_nothing(tmp_path: Path, git_repo: GitRepo) -> None:
    config, live = setup(tmp_path, git_repo)
    engine = make_engine(config)
    assert all(o.error is None for o in engine.sync())
    main_head = git_repo.head()
    git_repo.git("checkout", "--quiet", "-b", "feature")
    feature = git_repo.commit({"web/app.conf": "port = 8080\n", "web/old.conf": None, "db/db.conf": "size = 2\n"},
                              "feature")
    git_repo.git("checkout", "--quiet", "main")
    git_repo.commit({"cache/c.conf": "ttl = 9\n"}, "main moved on")  # not the branch's change
    (live / "db" / "db.conf").write_text("size = 7\n")  # live drift on db
    before = snapshot(engine, live)

    report = preview(engine, "feature")
    assert report.commits == {"repo": feature}
    by_name = {t.target: t for t in report.targets}
    assert not by_name["cache"].affected and by_name["cache"].changes == []
    web = {c["key"]: c for c in by_name["web"].changes}
    assert web["app.conf"]["action"] == "update" and web["old.conf"]["action"] == "delete"
    assert [f["after"] for f in web["app.conf"]["fields"]] == ["port = 8080\n"]
    [db] = by_name["db"].changes
    assert db["fields"][0]["before"] == "size = 7\n" and db["fields"][0]["after"] == "size = 2\n", \
        "compared with the live state, not with Git"
    assert not report.failed and report.changes == 3

    # nothing applied, recorded or moved: live files, audit, status and inventory are as before
    assert snapshot(engine, live) == before
    assert engine.sources["repo"].head != feature
    out = engine.reconcile("web")  # the next real run deploys main, not the previewed branch
    assert out.revision is not None and out.revision.sha == main_head and (live / "web" / "old.conf").exists()
    engine.close()


def test_preview_cli_outputs(tmp_path: Path, git_repo: GitRepo) -> None:
    config, live = setup(tmp_path, git_repo)
    assert cli(config, "sync").returncode == 0
    git_repo.git("checkout", "--quiet", "-b", "pr")
    sha = git_repo.commit({"web/app.conf": "port = `443` | <b>x</b>\n"}, "hostile values")
    git_repo.git("checkout", "--quiet", "main")
    audit_before = cli(config, "audit", "-o", "json").stdout

    as_json = cli(config, "preview", "--revision", "pr", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["commits"] == {"repo": sha} and data["changes"] == 1
    assert [t["target"] for t in data["targets"] if t["affected"]] == ["web"]

    markdown = cli(config, "preview", "--revision", sha[:10], "--output", "markdown")
    assert markdown.returncode == 0, markdown.stderr
    text = markdown.stdout
    assert text.startswith("### setpoint preview of ") and "| web | files | 1 update |" in text
    # a value is shown in a code span (no HTML or table syntax inside one), fenced longer than its backticks
    assert "→ `` port = `443` | <b>x</b>⏎ ``" in text
    assert text.count("<b>x</b>") == 1

    # --target previews a target whatever changed; an unknown ref fails clearly
    named = json.loads(cli(config, "preview", "--revision", "pr", "--target", "db", "-o", "json").stdout)
    assert [(t["target"], t["affected"], t["changes"]) for t in named["targets"]] == [("db", True, [])]
    missing = cli(config, "preview", "--revision", "no-such-branch")
    assert missing.returncode == 1 and "no-such-branch" in missing.stderr
    hostile = cli(config, "preview", "--revision", "--upload-pack=touch /tmp/x")
    assert hostile.returncode != 0 and "not a commit or ref name" in hostile.stderr
    assert cli(config, "audit", "-o", "json").stdout == audit_before
    assert (live / "web" / "app.conf").read_text() == "port = 80\n"


def test_markdown_without_affected_targets(tmp_path: Path, git_repo: GitRepo) -> None:
    config, _ = setup(tmp_path, git_repo)
    engine = make_engine(config)
    engine.sync()
    git_repo.git("checkout", "--quiet", "-b", "docs")
    git_repo.commit({"README.md": "docs only\n"}, "docs")
    report = preview(engine, "docs")
    assert all(not t.affected for t in report.targets)
    assert "No target is affected" in to_markdown(report)
    engine.close()


class FakeGitHub:
    """Just enough of GitHub's REST API for the preview poster: a pull request's comments and
    commit statuses, recorded with their headers."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.comments: dict[int, str] = {}
        self.statuses: list[tuple[str, dict[str, str]]] = []
        self.auth: set[str] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, str]:
                owner.auth.add(self.headers.get("Authorization", ""))
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def do_GET(self) -> None:  # noqa: N802
                self._body()
                if self.path.startswith("/api/v3/repos/acme/cfg/issues/7/comments?"):
                    self._answer(200, [{"id": i, "body": b} for i, b in owner.comments.items()])
                else:
                    self._answer(404, {"message": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                if self.path == "/api/v3/repos/acme/cfg/issues/7/comments":
                    number = 100 + len(owner.comments)
                    owner.comments[number] = body["body"]
                    self._answer(201, {"id": number, "html_url": f"https://github.test/acme/cfg/pull/7#c{number}"})
                elif self.path.startswith("/api/v3/repos/acme/cfg/statuses/"):
                    owner.statuses.append((self.path.rsplit("/", 1)[1], body))
                    self._answer(201, {})
                else:
                    self._answer(404, {"message": "Not Found"})

            def do_PATCH(self) -> None:  # noqa: N802
                body = self._body()
                number = int(self.path.rsplit("/", 1)[1])
                owner.comments[number] = body["body"]
                self._answer(200, {"id": number, "html_url": f"https://github.test/acme/cfg/pull/7#c{number}"})

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v3"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_preview_posts_one_comment_per_pull_request_and_a_status(tmp_path: Path, git_repo: GitRepo) -> None:
    import os

    config, live = setup(tmp_path, git_repo)
    assert cli(config, "sync").returncode == 0
    git_repo.git("checkout", "--quiet", "-b", "pr")
    first = git_repo.commit({"web/app.conf": "port = 81\n"}, "first push")
    github = FakeGitHub()
    token = "ghp_T0KEN-must-not-be-printed"
    env = {**os.environ, "PR_TOKEN": token}

    def post() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "preview", "--revision", "pr",
                               "--github-pr", "7", "--github-repository", "acme/cfg", "--github-token-env", "PR_TOKEN",
                               "--github-api-url", github.url], capture_output=True, text=True, env=env)

    try:
        done = post()
        assert done.returncode == 0, done.stderr
        assert "posted on pull request 7: https://github.test/acme/cfg/pull/7#c100" in done.stderr
        [(number, body)] = github.comments.items()
        assert body.startswith("<!-- setpoint-preview -->\n### setpoint preview of `pr`") and "port = 81" in body
        assert github.statuses == [(first, {"state": "success", "context": "setpoint/preview",
                                            "description": "1 change(s) in 1 target(s)"})]
        # a second push: the same comment is edited, a new status is set on the new commit
        second = git_repo.commit({"web/app.conf": "port = 82\n"}, "second push")
        assert post().returncode == 0
        assert list(github.comments) == [number] and "port = 82" in github.comments[number]
        assert github.statuses[-1][0] == second
        assert github.auth == {f"Bearer {token}"}
        assert token not in done.stdout + done.stderr
        # no token: refused before anything is previewed
        env.pop("PR_TOKEN")
        refused = post()
        assert refused.returncode == 2 and "needs a token in $PR_TOKEN" in refused.stderr
    finally:
        github.close()
    assert (live / "web" / "app.conf").read_text() == "port = 80\n"
