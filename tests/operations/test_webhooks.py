"""Webhook receivers over real HTTP: each Git host's signed push (payloads and headers written from
each host's documented format), a bad signature, a missing one, a replay, another branch, an
oversized body; a valid push wakes exactly the sources (and so the targets) it names."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opshelpers import FakeLoops, serving, write_yaml
from prometheus_client.parser import text_string_to_metric_families

from setpoint.server.repos import normalize_repo
from setpoint.testing import FakePlugin, make_engine

SECRETS = {"github": "gh-hook-secret-1a2b", "gitlab": "gl-token-3c4d5e", "gitea": "gitea-hook-secret-6f7a",
           "bitbucket": "bb-hook-secret-8b9c", "generic": "generic-secret-0d1e"}
BEFORE, AFTER = "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"

SOURCES = {
    # GitHub: the same repository written three ways, one of them on another branch
    "gh": ("https://github.com/acme/deploy.git", "main"),
    "gh-mirror": ("git@github.com:ACME/deploy", "main"),
    "gh-staging": ("ssh://git@github.com/acme/deploy.git", "staging"),
    "gh-other": ("https://github.com/acme/other.git", "main"),
    "gl": ("https://gitlab.example.com/platform/infra.git", "main"),
    "gt": ("ssh://git@git.example.org:2222/ops/site.git", "main"),
    "bb": ("git@bitbucket.org:acme/edge.git", "main"),
    "bbdc": ("ssh://git@bitbucket.corp.example:7999/ops/fleet.git", "main"),
}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[str, FakeLoops, Any]]:
    webhooks: dict[str, Any] = {}
    for provider, value in SECRETS.items():
        (tmp_path / f"{provider}.secret").write_text(value + "\n")
        webhooks[provider] = {"secret_file": f"{provider}.secret"}
    config = write_yaml(tmp_path / "setpoint.yaml", {
        "sources": {name: {"url": url, "branch": branch, "poll_interval": "1h"} for name, (url, branch) in SOURCES.items()},
        "targets": [{"name": f"{name}-app", "kind": "fake", "source": name} for name in SOURCES],
        "state": f"sqlite:///{tmp_path / 'state' / 'state.db'}",
        "server": {"listen": "127.0.0.1:0", "max_body_bytes": 65536, "webhooks": webhooks},
    })
    engine = make_engine(config, FakePlugin())
    loops = FakeLoops()
    with serving(engine, loops) as base:
        yield base, loops, engine
    engine.close()


def hexmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- payloads, per host


def github_push(branch: str = "main") -> tuple[dict[str, Any], dict[str, str]]:
    commit = {"id": AFTER, "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433", "distinct": True,
              "message": "Web 2", "timestamp": "2026-11-28T09:12:03+01:00",
              "url": f"https://github.com/acme/deploy/commit/{AFTER}",
              "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
              "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
              "added": [], "removed": [], "modified": ["app/web.yaml"]}
    body = {
        "ref": f"refs/heads/{branch}", "before": BEFORE, "after": AFTER,
        "repository": {"id": 812345678, "node_id": "R_kgDOMGf1Tg", "name": "deploy", "full_name": "acme/deploy",
                       "private": True, "owner": {"name": "acme", "login": "acme", "id": 9919, "type": "Organization"},
                       "html_url": "https://github.com/acme/deploy", "url": "https://github.com/acme/deploy",
                       "git_url": "git://github.com/acme/deploy.git", "ssh_url": "git@github.com:acme/deploy.git",
                       "clone_url": "https://github.com/acme/deploy.git", "svn_url": "https://github.com/acme/deploy",
                       "default_branch": "main", "master_branch": "main", "organization": "acme"},
        "pusher": {"name": "alice", "email": "alice@example.com"},
        "organization": {"login": "acme", "id": 9919},
        "sender": {"login": "alice", "id": 1123581, "type": "User"},
        "created": False, "deleted": False, "forced": False, "base_ref": None,
        "compare": f"https://github.com/acme/deploy/compare/{BEFORE[:12]}...{AFTER[:12]}",
        "commits": [commit], "head_commit": commit,
    }
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-GitHub-Hook-ID": "504829348", "X-GitHub-Hook-Installation-Target-Type": "repository",
               "X-GitHub-Hook-Installation-Target-ID": "812345678", "User-Agent": "GitHub-Hookshot/7a3f1c2"}
    return body, headers


def sign_github(body: bytes, headers: dict[str, str], secret: str) -> dict[str, str]:
    return {**headers, "X-Hub-Signature-256": "sha256=" + hexmac(secret, body),
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def gitlab_push(branch: str = "main") -> tuple[dict[str, Any], dict[str, str]]:
    project = {"id": 15, "name": "infra", "description": "", "web_url": "https://gitlab.example.com/platform/infra",
               "avatar_url": None, "git_ssh_url": "git@gitlab.example.com:platform/infra.git",
               "git_http_url": "https://gitlab.example.com/platform/infra.git", "namespace": "platform",
               "visibility_level": 0, "path_with_namespace": "platform/infra", "default_branch": "main",
               "ci_config_path": "", "homepage": "https://gitlab.example.com/platform/infra",
               "url": "git@gitlab.example.com:platform/infra.git", "ssh_url": "git@gitlab.example.com:platform/infra.git",
               "http_url": "https://gitlab.example.com/platform/infra.git"}
    body = {"object_kind": "push", "event_name": "push", "before": BEFORE, "after": AFTER,
            "ref": f"refs/heads/{branch}", "ref_protected": True, "checkout_sha": AFTER, "message": None,
            "user_id": 4, "user_name": "John Smith", "user_username": "jsmith", "user_email": "",
            "user_avatar": "https://gitlab.example.com/uploads/-/system/user/avatar/4/avatar.png",
            "project_id": 15, "project": project,
            "commits": [{"id": AFTER, "message": "Bump infra\n", "title": "Bump infra",
                         "timestamp": "2026-11-28T09:12:03+01:00",
                         "url": f"https://gitlab.example.com/platform/infra/-/commit/{AFTER}",
                         "author": {"name": "John Smith", "email": "[REDACTED]"},
                         "added": [], "modified": ["main.tf"], "removed": []}],
            "total_commits_count": 1, "push_options": {},
            "repository": {"name": "infra", "url": "git@gitlab.example.com:platform/infra.git", "description": "",
                           "homepage": "https://gitlab.example.com/platform/infra",
                           "git_http_url": "https://gitlab.example.com/platform/infra.git",
                           "git_ssh_url": "git@gitlab.example.com:platform/infra.git", "visibility_level": 0}}
    event = str(uuid.uuid4())
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Instance": "https://gitlab.example.com",
               "X-Gitlab-Webhook-UUID": "9bb4e0cf-9c2a-4b3c-a4ab-2d4a2bb0a8b9", "X-Gitlab-Event-UUID": event,
               "Idempotency-Key": event, "User-Agent": "GitLab/17.6.1"}
    return body, headers


def sign_gitlab(body: bytes, headers: dict[str, str], secret: str) -> dict[str, str]:
    return {**headers, "X-Gitlab-Token": secret}


def gitea_push(branch: str = "main") -> tuple[dict[str, Any], dict[str, str]]:
    user = {"id": 1, "login": "ops-bot", "full_name": "Ops Bot", "email": "ops-bot@example.org", "username": "ops-bot"}
    commit = {"id": AFTER, "message": "Site: new banner\n", "url": f"https://git.example.org/ops/site/commit/{AFTER}",
              "author": {"name": "Ops Bot", "email": "ops-bot@example.org", "username": "ops-bot"},
              "committer": {"name": "Ops Bot", "email": "ops-bot@example.org", "username": "ops-bot"},
              "verification": None, "timestamp": "2026-11-28T09:12:03+01:00",
              "added": [], "removed": [], "modified": ["site/banner.yaml"]}
    body = {"ref": f"refs/heads/{branch}", "before": BEFORE, "after": AFTER,
            "compare_url": f"https://git.example.org/ops/site/compare/{BEFORE}...{AFTER}",
            "commits": [commit], "total_commits": 1, "head_commit": commit,
            "repository": {"id": 7, "owner": user, "name": "site", "full_name": "ops/site", "description": "",
                           "empty": False, "private": True, "fork": False, "template": False, "parent": None,
                           "mirror": False, "size": 412, "html_url": "https://git.example.org/ops/site",
                           "ssh_url": "ssh://git@git.example.org:2222/ops/site.git",
                           "clone_url": "https://git.example.org/ops/site.git", "website": "",
                           "default_branch": "main", "archived": False},
            "pusher": user, "sender": user}
    delivery = str(uuid.uuid4())
    headers = {"X-Gitea-Event": "push", "X-Gitea-Event-Type": "push", "X-Gitea-Delivery": delivery,
               "X-Gogs-Event": "push", "X-Gogs-Delivery": delivery, "X-GitHub-Event": "push",
               "X-GitHub-Delivery": delivery, "User-Agent": "Go-http-client/1.1"}
    return body, headers


def sign_gitea(body: bytes, headers: dict[str, str], secret: str) -> dict[str, str]:
    sig = hexmac(secret, body)
    return {**headers, "X-Gitea-Signature": sig, "X-Gogs-Signature": sig, "X-Hub-Signature-256": "sha256=" + sig}


def forgejo_push(branch: str = "main") -> tuple[dict[str, Any], dict[str, str]]:
    body, headers = gitea_push(branch)
    delivery = headers["X-Gitea-Delivery"]
    return body, {**headers, "X-Forgejo-Event": "push", "X-Forgejo-Event-Type": "push", "X-Forgejo-Delivery": delivery}


def sign_forgejo(body: bytes, headers: dict[str, str], secret: str) -> dict[str, str]:
    return {**sign_gitea(body, headers, secret), "X-Forgejo-Signature": hexmac(secret, body)}


def bitbucket_push(branch: str = "main") -> tuple[dict[str, Any], dict[str, str]]:
    actor = {"display_name": "Alice", "uuid": "{d301aafa-d676-4ee0-88be-962be7417567}", "type": "user",
             "nickname": "alice", "account_id": "557058:c0b72ad0-1cb5-4018-9cdc-0cde8492c443"}
    target = {"type": "commit", "hash": AFTER, "message": "Edge: new route\n", "date": "2026-11-28T08:12:03+00:00",
              "author": {"type": "author", "raw": "Alice <alice@example.com>", "user": actor},
              "links": {"html": {"href": f"https://bitbucket.org/acme/edge/commits/{AFTER}"}}}
    body = {"push": {"changes": [{
                "old": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": BEFORE}},
                "new": {"type": "branch", "name": branch, "target": target},
                "created": False, "forced": False, "closed": False, "truncated": False,
                "commits": [target],
                "links": {"html": {"href": f"https://bitbucket.org/acme/edge/branches/compare/{AFTER}..{BEFORE}"}}}]},
            "actor": actor,
            "repository": {"type": "repository", "full_name": "acme/edge", "name": "edge", "is_private": True,
                           "uuid": "{b2a1b0c4-6b6f-4a43-9c1b-6a3e1f2a9d11}", "scm": "git",
                           "links": {"self": {"href": "https://api.bitbucket.org/2.0/repositories/acme/edge"},
                                     "html": {"href": "https://bitbucket.org/acme/edge"},
                                     "avatar": {"href": "https://bytebucket.org/ravatar/%7Bb2a1b0c4%7D?ts=default"}},
                           "workspace": {"type": "workspace", "slug": "acme", "name": "Acme"},
                           "project": {"type": "project", "key": "OPS", "name": "Operations"}}}
    headers = {"X-Event-Key": "repo:push", "X-Hook-UUID": "{a4f0e2b3-4c17-4b8e-9e54-4a8c3c9b2f10}",
               "X-Request-UUID": str(uuid.uuid4()), "X-Attempt-Number": "1", "User-Agent": "Bitbucket-Webhooks/2.0"}
    return body, headers


def bitbucket_dc_push(branch: str = "main") -> tuple[dict[str, Any], dict[str, str]]:
    body = {"eventKey": "repo:refs_changed", "date": "2026-11-28T09:12:03+0100",
            "actor": {"name": "admin", "emailAddress": "admin@example.com", "id": 1, "displayName": "Administrator",
                      "active": True, "slug": "admin", "type": "NORMAL"},
            "repository": {"slug": "fleet", "id": 84, "name": "fleet", "hierarchyId": "af05451fc3d5b0ad3b75",
                           "scmId": "git", "state": "AVAILABLE", "statusMessage": "Available", "forkable": True,
                           "project": {"key": "OPS", "id": 84, "name": "Operations", "public": False, "type": "NORMAL"},
                           "public": False},
            "changes": [{"ref": {"id": f"refs/heads/{branch}", "displayId": branch, "type": "BRANCH"},
                         "refId": f"refs/heads/{branch}", "fromHash": BEFORE, "toHash": AFTER, "type": "UPDATE"}]}
    headers = {"X-Event-Key": "repo:refs_changed", "X-Request-Id": str(uuid.uuid4())}
    return body, headers


def sign_bitbucket(body: bytes, headers: dict[str, str], secret: str) -> dict[str, str]:
    return {**headers, "X-Hub-Signature": "sha256=" + hexmac(secret, body)}


def generic_push(branch: str = "main") -> tuple[dict[str, Any], dict[str, str]]:
    return {"repository": "https://github.com/acme/deploy", "branch": branch}, {"X-Setpoint-Delivery": str(uuid.uuid4())}


def sign_generic(body: bytes, headers: dict[str, str], secret: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {**headers, "X-Setpoint-Timestamp": stamp, "X-Setpoint-Signature": "sha256=" + mac}


# provider path, payload builder, signer, secret name, the sources a push to main must wake
CASES = {
    "github": ("github", github_push, sign_github, "github", ["gh", "gh-mirror"]),
    "gitlab": ("gitlab", gitlab_push, sign_gitlab, "gitlab", ["gl"]),
    "gitea": ("gitea", gitea_push, sign_gitea, "gitea", ["gt"]),
    "forgejo": ("forgejo", forgejo_push, sign_forgejo, "gitea", ["gt"]),
    "bitbucket-cloud": ("bitbucket", bitbucket_push, sign_bitbucket, "bitbucket", ["bb"]),
    "bitbucket-dc": ("bitbucket", bitbucket_dc_push, sign_bitbucket, "bitbucket", ["bbdc"]),
    "generic": ("generic", generic_push, sign_generic, "generic", ["gh", "gh-mirror"]),
}


def post(base: str, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/hooks/{provider}", content=body, headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("case", list(CASES))
def test_signed_push_wakes_exactly_the_matching_sources(setup, case: str) -> None:  # type: ignore[no-untyped-def]
    base, loops, _engine = setup
    provider, build, sign, secret, expected = CASES[case]
    payload, headers = build()
    body = json.dumps(payload).encode()
    response = post(base, provider, body, sign(body, headers, SECRETS[secret]))
    assert response.status_code == 202, response.text
    data = response.json()
    assert data["result"] == "accepted"
    assert data["sources"] == expected
    assert data["targets"] == [f"{s}-app" for s in expected]
    assert loops.woken_sources == [(s, f"webhook:{provider}") for s in expected]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_missing_replayed_and_other_branch(setup, case: str) -> None:  # type: ignore[no-untyped-def]
    base, loops, _engine = setup
    provider, build, sign, secret, expected = CASES[case]

    # a bad signature (signed with another secret), and a good signature over a tampered body
    payload, headers = build()
    body = json.dumps(payload).encode()
    assert post(base, provider, body, sign(body, headers, "not-the-secret")).status_code == 401
    if provider != "gitlab":  # GitLab's secret token proves the sender but does not cover the body
        tampered = body.replace(b'"main"', b'"main" ', 1)
        response = post(base, provider, tampered, sign(body, headers, SECRETS[secret]))
        assert response.status_code == 401 and response.json()["result"] == "bad_signature"

    # unsigned
    response = post(base, provider, body, headers)
    assert response.status_code == 401 and response.json()["result"] == "unsigned"

    # a replay of a valid delivery
    signed = sign(body, headers, SECRETS[secret])
    assert post(base, provider, body, signed).status_code == 202
    replay = post(base, provider, body, signed)
    assert replay.status_code == 409 and replay.json()["result"] == "replayed"
    assert loops.woken_sources == [(s, f"webhook:{provider}") for s in expected]

    # a push to a branch no source follows wakes nothing
    loops.woken_sources.clear()
    payload, headers = build("feature/login")
    body = json.dumps(payload).encode()
    response = post(base, provider, body, sign(body, headers, SECRETS[secret]))
    assert response.status_code == 202 and response.json()["result"] == "unmatched"
    assert loops.woken_sources == []


def test_a_push_to_staging_wakes_only_the_staging_source(setup) -> None:  # type: ignore[no-untyped-def]
    base, loops, _engine = setup
    payload, headers = github_push("staging")
    body = json.dumps(payload).encode()
    response = post(base, "github", body, sign_github(body, headers, SECRETS["github"]))
    assert response.json()["targets"] == ["gh-staging-app"]
    assert loops.woken_sources == [("gh-staging", "webhook:github")]


def test_oversized_ignored_unknown_and_forged_forgejo(setup) -> None:  # type: ignore[no-untyped-def]
    base, loops, engine = setup
    # oversized: refused with 413 before it is read whole, whatever its signature
    payload, headers = github_push()
    payload["padding"] = "x" * 70000
    body = json.dumps(payload).encode()
    response = post(base, "github", body, sign_github(body, headers, SECRETS["github"]))
    assert response.status_code == 413 and response.json()["result"] == "too_large"

    # a signed ping and a signed tag push are accepted as deliveries but wake nothing
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 504829348}).encode()
    response = post(base, "github", ping, sign_github(ping, {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p-1"},
                                                      SECRETS["github"]))
    assert response.status_code == 202 and response.json()["result"] == "ignored"
    tag, headers = github_push()
    tag["ref"] = "refs/tags/v1.2.0"
    body = json.dumps(tag).encode()
    assert post(base, "github", body, sign_github(body, headers, SECRETS["github"])).json()["result"] == "ignored"

    # Forgejo: a bad X-Forgejo-Signature is not rescued by a good X-Gitea-Signature
    payload, headers = forgejo_push()
    body = json.dumps(payload).encode()
    forged = {**sign_gitea(body, headers, SECRETS["gitea"]), "X-Forgejo-Signature": hexmac("wrong", body)}
    assert post(base, "forgejo", body, forged).status_code == 401

    # unknown provider; a stale generic timestamp
    assert post(base, "azure", b"{}", {}).status_code == 404
    payload, headers = generic_push()
    body = json.dumps(payload).encode()
    old = str(int(time.time()) - 3600)
    mac = hmac.new(SECRETS["generic"].encode(), old.encode() + b"." + body, hashlib.sha256).hexdigest()
    response = post(base, "generic", body, {**headers, "X-Setpoint-Timestamp": old, "X-Setpoint-Signature": "sha256=" + mac})
    assert response.status_code == 401
    assert loops.woken_sources == []

    # every outcome is counted by provider and result, and no secret is in any response or metric
    text = httpx.get(f"{base}/metrics").text
    counts = {(s.labels["provider"], s.labels["result"]): s.value
              for family in text_string_to_metric_families(text) if family.name == "setpoint_webhook_deliveries"
              for s in family.samples if s.name.endswith("_total")}
    assert counts[("github", "too_large")] == 1 and counts[("github", "ignored")] == 2
    assert counts[("forgejo", "bad_signature")] == 1
    assert counts[("generic", "replayed")] == 1
    for value in SECRETS.values():
        assert value not in text


def test_provider_without_a_secret_is_refused(tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "setpoint.yaml", {
        "sources": {"gh": {"url": "https://github.com/acme/deploy.git"}},
        "targets": [{"name": "app", "kind": "fake", "source": "gh"}],
        "state": f"sqlite:///{tmp_path / 'state.db'}", "server": {"listen": "127.0.0.1:0"}})
    engine = make_engine(config, FakePlugin())
    loops = FakeLoops()
    with serving(engine, loops) as base:
        payload, headers = github_push()
        body = json.dumps(payload).encode()
        response = post(base, "github", body, sign_github(body, headers, "anything"))
        assert response.status_code == 404 and response.json()["result"] == "not_configured"
    assert loops.woken_sources == []
    engine.close()


@pytest.mark.parametrize(("url", "normalized"), [
    ("https://github.com/Acme/Deploy.git", "github.com/acme/deploy"),
    ("https://user:token@github.com/acme/deploy/", "github.com/acme/deploy"),
    ("git@github.com:acme/deploy.git", "github.com/acme/deploy"),
    ("ssh://git@git.example.org:2222/ops/site.git", "git.example.org/ops/site"),
    ("https://bitbucket.corp.example/scm/ops/fleet.git", "bitbucket.corp.example/ops/fleet"),
    ("file:///srv/git/deploy", "file:/srv/git/deploy"),
    ("/srv/git/deploy/", "file:/srv/git/deploy"),
])
def test_repository_urls_normalize(url: str, normalized: str) -> None:
    assert normalize_repo(url) == normalized



FORCED_POLL_INTERVAL = 2.0  # setpoint.server.receiver.FORCED_POLL_INTERVAL, as docs/operations.md states


def test_replays_with_fresh_delivery_ids_cost_one_poll_per_interval(setup) -> None:  # type: ignore[no-untyped-def]
    """The delivery ID is not covered by the HMAC: a captured push resent 30 times with new IDs
    passes the replay cache, but forces at most one poll per source per interval."""
    base, loops, _engine = setup
    payload, headers = github_push()
    body = json.dumps(payload).encode()
    signed = sign_github(body, headers, SECRETS["github"])
    started = time.monotonic()
    for _ in range(30):
        response = post(base, "github", body, {**signed, "X-GitHub-Delivery": str(uuid.uuid4())})
        assert response.status_code == 202 and response.json()["result"] == "accepted"
    elapsed = time.monotonic() - started
    time.sleep(FORCED_POLL_INTERVAL + 0.5)  # the last delivery is never lost: a deferred poll follows
    polls = [s for s, _reason in loops.woken_sources if s == "gh"]
    allowed = int(elapsed / FORCED_POLL_INTERVAL) + 2  # one per interval, plus the deferred one
    assert 2 <= len(polls) <= allowed, f"{len(polls)} forced polls in {elapsed:.1f}s (at most {allowed})"
    assert len(polls) < 30, "every replay forced a poll"
