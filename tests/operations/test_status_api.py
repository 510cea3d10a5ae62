"""The status API over real HTTP: reads need a status (or admin) token, mutating calls need an
admin token and land in the audit log with the caller; health endpoints; no secret in any answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opshelpers import CANARY, CanaryPlugin, FakeLoops, serving

from setpoint.errors import ConfigError, TemporaryError
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

STATUS_TOKEN = "status-tok-0123456789abcdef"
ADMIN_TOKEN = "admin-tok-fedcba9876543210"


def item(kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, **fields}


@pytest.fixture
def api(tmp_path: Path, git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "status.token").write_text(STATUS_TOKEN + "\n")
    monkeypatch.setenv("TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    git_repo.commit({"app/web.yaml": "CANARY-ENC\n" + yaml.safe_dump([item("Deployment", "web", config=CANARY)]),
                     "app/api.yaml": yaml.safe_dump([item("Deployment", "api", replicas=1)])}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app", "prune": True,
                                                     "hold_deletions": True}],
                          server={"listen": "127.0.0.1:0",
                                  "status_tokens": [{"name": "grafana", "file": "status.token"}],
                                  "admin_tokens": [{"name": "alice", "env": "TEST_ADMIN_TOKEN"}]})
    plugin = FakePlugin()
    engine = make_engine(config, plugin, CanaryPlugin())
    loops = FakeLoops()
    loops.first_pass_done.set()
    with serving(engine, loops) as base:
        yield base, engine, loops, plugin, git_repo
    engine.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_reads_need_a_token(api: Any) -> None:
    base, engine, _loops, plugin, _repo = api
    engine.reconcile("app")
    plugin.cluster("app").fail_next("observe", TemporaryError(f"login failed for {CANARY}"))
    engine.reconcile("app")
    answers = []
    for path in ("/api/v1/targets", "/api/v1/targets/app", "/api/v1/plans", "/api/v1/plugins"):
        assert httpx.get(base + path).status_code == 401
        assert httpx.get(base + path, headers=auth("status-tok-0123456789abcdeX")).status_code == 401
        assert httpx.get(base + path, headers={"Authorization": STATUS_TOKEN}).status_code == 401
        for token in (STATUS_TOKEN, ADMIN_TOKEN):
            response = httpx.get(base + path, headers=auth(token))
            assert response.status_code == 200, (path, response.text)
            answers.append(response.text)
    (row,) = httpx.get(base + "/api/v1/targets", headers=auth(STATUS_TOKEN)).json()
    assert row["target"] == "app" and row["sync"] == "Synced" and row["error_stage"] == "observe"
    assert row["last_error"] == "login failed for <secret>"
    detail = httpx.get(base + "/api/v1/targets/app?limit=5", headers=auth(STATUS_TOKEN)).json()
    assert detail["history"][0]["revision"] == row["applied_revision"]
    assert 0 < len(detail["audit"]) <= 5
    assert httpx.get(base + "/api/v1/targets/nope", headers=auth(STATUS_TOKEN)).status_code == 404
    for text in answers:
        assert CANARY not in text and STATUS_TOKEN not in text and ADMIN_TOKEN not in text


def test_mutating_calls_need_the_admin_token_and_are_audited(api: Any) -> None:
    base, engine, loops, _plugin, repo = api
    engine.reconcile("app")
    for call in ("sync", "pause", "resume", "approve"):
        assert httpx.post(f"{base}/api/v1/targets/app/{call}").status_code == 401
        response = httpx.post(f"{base}/api/v1/targets/app/{call}", headers=auth(STATUS_TOKEN), json={})
        assert response.status_code == 403, call
    assert loops.woken_targets == [] and engine.store.get_pause("app") is None

    # sync now
    response = httpx.post(f"{base}/api/v1/targets/app/sync", headers=auth(ADMIN_TOKEN))
    assert response.status_code == 202 and loops.woken_targets == [("app", "api:alice")]

    # pause: a reason is required; then pause and resume
    refused = httpx.post(f"{base}/api/v1/targets/app/pause", headers=auth(ADMIN_TOKEN), json={"reason": " "})
    assert refused.status_code == 409 and "reason" in refused.json()["error"]
    response = httpx.post(f"{base}/api/v1/targets/app/pause", headers=auth(ADMIN_TOKEN),
                          json={"reason": "database migration", "for": "2h"})
    assert response.status_code == 200 and response.json()["paused_by"] == "api:alice"
    row = httpx.get(f"{base}/api/v1/targets/app", headers=auth(STATUS_TOKEN)).json()
    assert row["paused"]["by"] == "api:alice" and row["paused"]["reason"] == "database migration"
    assert httpx.post(f"{base}/api/v1/targets/app/resume", headers=auth(ADMIN_TOKEN)).json()["resumed"] is True

    # approve a held plan (a deletion, held because this target holds every deletion)
    repo.commit({"app/api.yaml": None}, "drop api")
    held = engine.reconcile("app").held_plan_id
    plans = httpx.get(f"{base}/api/v1/plans", headers=auth(STATUS_TOKEN)).json()
    assert [(p["target"], p["plan_id"]) for p in plans] == [("app", held)]
    wrong = httpx.post(f"{base}/api/v1/targets/app/approve", headers=auth(ADMIN_TOKEN), json={"plan_id": "nope"})
    assert wrong.status_code == 409
    response = httpx.post(f"{base}/api/v1/targets/app/approve", headers=auth(ADMIN_TOKEN), json={"plan_id": held})
    assert response.status_code == 200 and response.json()["approved_by"] == "api:alice"
    assert engine.reconcile("app").sync.value == "Synced"

    # the audit log names the caller for every call, refused ones included
    api_entries = engine.store.audit_entries(actions=("api",))
    assert [(e.details["call"], e.result, e.actor) for e in api_entries] == [
        ("sync", "ok", "api:alice"), ("pause", "refused", "api:alice"), ("pause", "ok", "api:alice"),
        ("resume", "ok", "api:alice"), ("approve", "refused", "api:alice"), ("approve", "ok", "api:alice")]
    assert all(e.details["remote"] == "127.0.0.1" for e in api_entries)
    actions = {e.action: e.actor for e in engine.store.audit_entries(actions=("pause", "resume", "approve"))}
    assert actions == {"pause": "api:alice", "resume": "api:alice", "approve": "api:alice"}

    # unknown calls and targets
    assert httpx.post(f"{base}/api/v1/targets/app/delete", headers=auth(ADMIN_TOKEN)).status_code == 404
    assert httpx.post(f"{base}/api/v1/targets/nope/sync", headers=auth(ADMIN_TOKEN)).status_code == 404


def test_health_and_readiness(api: Any) -> None:
    base, engine, loops, _plugin, _repo = api
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"state_store": True, "loops": True,
                                                                    "first_pass_done": True}
    loops.is_running = False
    stopped = httpx.get(f"{base}/readyz")
    assert stopped.status_code == 503 and stopped.json()["checks"]["loops"] is False


def test_the_api_is_off_without_tokens(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"app/web.yaml": yaml.safe_dump([item("Deployment", "web")])}, "v1")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"listen": "127.0.0.1:0"})
    engine = make_engine(config, FakePlugin())
    with serving(engine, None) as base:
        response = httpx.get(f"{base}/api/v1/targets", headers=auth("anything-at-all-000"))
        assert response.status_code == 403 and "status_tokens" in response.json()["error"]
        assert httpx.get(f"{base}/readyz").status_code == 503
    engine.close()


def test_tokens_must_come_from_files_or_env_and_be_long(tmp_path: Path, git_repo: GitRepo,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from setpoint.config import ConfigProblems, load_config
    from setpoint.server.runtime import start_operations

    git_repo.commit({"app/web.yaml": yaml.safe_dump([item("Deployment", "web")])}, "v1")
    inline = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"admin_tokens": [{"name": "alice", "token": "inline-secret-value"}]})
    with pytest.raises(ConfigProblems) as info:
        load_config(inline)
    assert "token" in str(info.value)
    monkeypatch.setenv("TEST_SHORT", "short")
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                          server={"listen": "127.0.0.1:0", "admin_tokens": [{"name": "alice", "env": "TEST_SHORT"}]})
    engine = make_engine(config, FakePlugin())
    with pytest.raises(ConfigError, match="shorter than 16"):
        start_operations(engine, None)
    engine.close()


def test_metrics_can_require_a_token(tmp_path: Path, git_repo: GitRepo) -> None:
    (tmp_path / "status.token").write_text(STATUS_TOKEN + "\n")
    git_repo.commit({"app/web.yaml": yaml.safe_dump([item("Deployment", "web")])}, "v1")
    server = {"listen": "127.0.0.1:0", "metrics_require_token": True,
              "status_tokens": [{"name": "prometheus", "file": "status.token"}]}
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}], server=server)
    engine = make_engine(config, FakePlugin())
    with serving(engine, None) as base:
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.get(f"{base}/metrics", headers=auth("not-the-token-000000000")).status_code == 401
        scraped = httpx.get(f"{base}/metrics", headers=auth(STATUS_TOKEN))
        assert scraped.status_code == 200 and "setpoint_target_info" in scraped.text
        assert httpx.get(f"{base}/healthz").status_code == 200, "probes stay open"
    engine.close()

    without_tokens = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}],
                                  server={"listen": "127.0.0.1:0", "metrics_require_token": True})
    with pytest.raises(ConfigError, match="metrics_require_token needs at least one status_tokens"):
        make_engine(without_tokens, FakePlugin())


def test_an_unreachable_remote_shows_in_the_api(api: Any, tmp_path: Path) -> None:
    import shutil

    base, engine, _loops, _plugin, repo = api
    engine.reconcile("app")
    answer = httpx.get(base + "/api/v1/targets/app", headers=auth(STATUS_TOKEN)).json()
    assert answer.get("source_error") is None
    shutil.move(repo.path, tmp_path / "moved-away")
    engine.reconcile("app")
    for path in ("/api/v1/targets/app", "/api/v1/targets"):
        answer = httpx.get(base + path, headers=auth(STATUS_TOKEN)).json()
        row = answer[0] if isinstance(answer, list) else answer
        assert "does not exist" in (row.get("source_error") or ""), row
