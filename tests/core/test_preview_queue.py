"""The webhook preview queue (issue 22 review, gap 1) and the parsing of pull/merge request events:
one worker, a bounded line where the newest event of a request replaces the waiting one, overflow
refused, a failing preview never stops the worker, and hostile payloads refused before queueing."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from setpoint.server.previews import PreviewJob, PreviewQueue, QueueFull
from setpoint.server.webhooks import Ignored, PullRequest, Rejected, github_pull_request, gitlab_merge_request

SHA = "a" * 40


def job(number: int, sha: str = SHA) -> PreviewJob:
    return PreviewJob(PullRequest("github", {"github.com/acme/cfg"}, "main", number, sha, "acme/cfg"), ("repo",))


def test_one_worker_bounded_newest_wins_and_survives_failures() -> None:
    started, release, ran = threading.Event(), threading.Event(), []

    def run(j: PreviewJob) -> None:
        ran.append((j.request.number, j.request.head_sha))
        if j.request.number == 1:
            started.set()
            release.wait(10)
            raise RuntimeError("a preview that crashes")

    queue = PreviewQueue(run, max_pending=2)
    try:
        assert queue.submit(job(1)) == "queued"
        assert started.wait(10)
        assert queue.submit(job(2)) == "queued" and queue.submit(job(3)) == "queued"
        assert queue.submit(job(2, "b" * 40)) == "replaced"
        with pytest.raises(QueueFull):
            queue.submit(job(4))
        assert queue.pending() == ["github:acme/cfg#2", "github:acme/cfg#3"]  # 2 kept its place
        release.set()
        assert queue.wait_idle(10)
        assert ran == [(1, SHA), (2, "b" * 40), (3, SHA)]
        assert queue.submit(job(4)) == "queued" and queue.wait_idle(10)
    finally:
        queue.stop()
    with pytest.raises(QueueFull):
        queue.submit(job(5))


def test_stop_drops_what_waits() -> None:
    gate = threading.Event()
    ran: list[int] = []
    queue = PreviewQueue(lambda j: (gate.wait(10), ran.append(j.request.number)), max_pending=5)
    queue.submit(job(1))
    queue.submit(job(2))
    gate.set()
    queue.stop()
    assert 2 not in ran or ran == [1, 2]  # 2 was dropped unless the worker had taken it already
    assert queue.pending() == []


def github(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"action": "opened", "number": 7,
                            "pull_request": {"head": {"sha": SHA, "ref": "x; rm -rf /"}, "base": {"ref": "main"}},
                            "repository": {"full_name": "acme/cfg", "clone_url": "https://github.com/acme/cfg.git"}}
    data.update(changes)
    return data


def test_pull_request_payloads() -> None:
    request = github_pull_request(github())
    assert request.ref == "refs/pull/7/head" and request.key == "github:acme/cfg#7"  # never the head's branch name
    assert request.fork  # no head repository: a deleted fork
    same = github(pull_request={"head": {"sha": SHA, "repo": {"full_name": "ACME/cfg"}}, "base": {"ref": "main"}})
    assert not github_pull_request(same).fork
    assert request.repositories == {"github.com/acme/cfg"} and request.base == "main"
    with pytest.raises(Ignored):
        github_pull_request(github(action="closed"))
    for bad in ({"number": -1}, {"number": True}, {"number": "7"}, {"repository": {"full_name": "../../x"}},
                {"pull_request": {"head": {"sha": "HEAD"}, "base": {"ref": "main"}}}):
        with pytest.raises(Rejected):
            github_pull_request(github(**bad))
    merge = {"object_kind": "merge_request", "project": {"id": 15, "git_http_url": "https://gitlab.example.com/p/c.git"},
             "object_attributes": {"iid": 3, "action": "update", "oldrev": SHA, "target_branch": "main",
                                   "last_commit": {"id": SHA}}}
    request = gitlab_merge_request(merge)
    assert request.ref == "refs/merge-requests/3/head" and request.project == "15" and request.fork
    merge["object_attributes"]["source_project_id"] = 15
    assert not gitlab_merge_request(merge).fork
    merge["object_attributes"].pop("oldrev")
    with pytest.raises(Ignored):  # a title edit brings no commits
        gitlab_merge_request(merge)
