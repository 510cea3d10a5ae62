"""The status row is typed (frozen, JSON round trip, old rows still read); audit actions are a
closed vocabulary; the CLI and the HTTP status API build the same rows with the same names."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from setpoint.api import HealthStatus, SyncStatus
from setpoint.server import status_api
from setpoint.state import AuditAction, PauseInfo, TargetStatus
from setpoint.testing import FakePlugin, GitRepo

from helpers import fake_engine, resources_yaml, web


def full_status() -> TargetStatus:
    return TargetStatus(
        target="app", kind="fake", sync=SyncStatus.OUT_OF_SYNC, health=HealthStatus.DEGRADED,
        health_message="2 of 3 ready", message="plan p1 held", head="a" * 40, revision="b" * 40,
        revision_author="Alice", revision_subject="Scale up", applied_revision="c" * 40, applied_head="d" * 40,
        last_error="boom", error_stage="apply", source_error="ls-remote failed", consecutive_failures=3,
        drift=("Deployment/web",), held_plan="p1", paused=PauseInfo("incident", "alice", 10.0, 20.0),
        last_applied_at=25.0, last_applied_revision="c" * 40, last_run=30.0, last_trigger="git", duration=0.5)


def test_target_status_round_trips_through_json_and_is_frozen() -> None:
    status = full_status()
    assert TargetStatus.from_json(json.loads(json.dumps(status.to_json()))) == status
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.sync = SyncStatus.SYNCED  # type: ignore[misc]
    assert status["message"] == "plan p1 held" and status["drift"] == ["Deployment/web"]


def test_a_row_written_by_an_older_version_still_reads() -> None:
    old = {"target": "app", "kind": "fake", "sync": "Synced", "health": "Healthy", "message": "",
           "drift": [], "paused": None, "some_field_we_dropped": 1}
    status = TargetStatus.from_json(old)
    assert status.sync == SyncStatus.SYNCED and status.consecutive_failures == 0 and status.last_error is None
    assert TargetStatus.from_json({"target": "x"}).sync == SyncStatus.UNKNOWN


def test_every_audited_action_is_in_the_vocabulary(tmp_path: Path, git_repo: GitRepo,
                                                   fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal=True)
    engine.reconcile("app")
    fake_plugin.cluster("app").manual_change("Deployment/web", replicas=9)
    engine.reconcile("app")
    engine.pause("app", "incident", "alice", None)
    engine.resume("app", "alice")
    actions = {e.action for e in engine.store.audit_entries()}
    assert {"apply", "drift-detected", "revert-drift", "pause", "resume"} <= actions
    assert actions <= {a.value for a in AuditAction}
    engine.close()


def test_cli_and_status_api_show_the_same_rows(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    cache = {"kind": "ConfigMap", "name": "cache", "config": "x"}
    git_repo.commit({"app/web.yaml": resources_yaml(web(), cache)}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, hold_deletions=True)
    engine.reconcile("app")
    git_repo.commit({"app/web.yaml": resources_yaml(web())}, "remove the cache")  # a deletion: held
    held = engine.reconcile("app").held_plan_id
    assert held
    ctx = SimpleNamespace(engine=engine)
    api_rows = status_api.list_targets(ctx)  # type: ignore[arg-type]
    api_detail = status_api.one_target(ctx, "app", 10)  # type: ignore[arg-type]
    api_plans = status_api.pending_plans(ctx)  # type: ignore[arg-type]
    engine.close()

    def cli(*args: str) -> object:
        proc = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(tmp_path / "setpoint.yaml"), *args,
                               "-o", "json"], capture_output=True, text=True)
        return json.loads(proc.stdout)

    assert cli("status") == api_rows
    assert api_rows[0]["last_applied"]["revision"] == api_rows[0]["applied_revision"]
    assert cli("history", "app") == api_detail["history"]
    assert api_rows[0]["held_plans"][0]["plan_id"] == held == api_plans[0]["plan_id"]
    assert set(api_plans[0]) >= set(api_rows[0]["held_plans"][0])


def test_last_applied_moves_with_each_successful_apply_only(tmp_path: Path, git_repo: GitRepo,
                                                           fake_plugin: FakePlugin) -> None:
    """``last_applied`` (issue 20: the overview's "last apply"): when a run last applied changes
    without error and which revision; a quiet run, a failed apply and a held plan leave it alone."""
    cache = {"kind": "ConfigMap", "name": "cache", "config": "x"}
    first = git_repo.commit({"app/web.yaml": resources_yaml(web(), cache)}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, hold_deletions=True)
    assert status_api.list_targets(SimpleNamespace(engine=engine))[0]["last_applied"] is None  # type: ignore[arg-type]

    def last_applied() -> dict[str, object]:
        (row,) = status_api.list_targets(SimpleNamespace(engine=engine))  # type: ignore[arg-type]
        return dict(row["last_applied"])

    engine.reconcile("app")
    applied = last_applied()
    assert applied["revision"] == first and isinstance(applied["time"], float)
    engine.reconcile("app")  # nothing to do
    assert last_applied() == applied
    second = git_repo.commit({"app/web.yaml": resources_yaml(web(replicas=3), cache)}, "v2")
    fake_plugin.cluster("app").fail_next("apply")
    engine.reconcile("app")
    assert last_applied() == applied, "a failed apply is not a last apply"
    engine.reconcile("app")
    assert last_applied()["revision"] == second and float(last_applied()["time"]) > float(applied["time"])  # type: ignore[arg-type]
    git_repo.commit({"app/web.yaml": resources_yaml(web(replicas=3))}, "v3: drop the cache")
    now = last_applied()
    assert engine.reconcile("app").held_plan_id
    assert last_applied() == now, "a held plan applied nothing"
    engine.close()


def test_a_held_deletion_records_its_live_object_with_secrets_as_fingerprints() -> None:
    """What the approve page shows of a deletion (issue 20 item 2): the live object, where a field
    that is a Secret, or held one when setpoint applied it (sticky), is a fingerprint only."""
    from setpoint.api import Action, Live, Plan, Resource, ResourceChange
    from setpoint.engine.review import held_changes
    from setpoint.secrets import Secret
    from setpoint.state import InventoryItem

    body = {"replicas": 2, "env": {"DB_PASSWORD": "plain-now-0123", "MODE": "x"}, "token": Secret("tok-4567"),
            "notes": "a\nb"}
    live = Live.of([Resource("Deployment/web", "Deployment", "web", body)])
    plan = Plan([ResourceChange("Deployment/web", "Deployment", "web", Action.DELETE),
                 ResourceChange("Deployment/api", "Deployment", "api", Action.DELETE),
                 ResourceChange("ConfigMap/c", "ConfigMap", "c", Action.UPDATE)])
    inventory = {"Deployment/web": InventoryItem("Deployment/web", "Deployment", "web", None, "r", "d", 0.0,
                                                 ("env.DB_PASSWORD",))}
    web, api, update = held_changes(plan, live, inventory)
    recorded = web["live"]["body"]
    assert recorded["replicas"] == 2 and recorded["env"]["MODE"] == "x" and recorded["notes"] == "a\nb"
    assert set(recorded["env"]["DB_PASSWORD"]) == {"secret"} and set(recorded["token"]) == {"secret"}
    assert "plain-now-0123" not in json.dumps(web) and "tok-4567" not in json.dumps(web)
    assert api["live"] is None, "already gone live"
    assert "live" not in update
    web.pop("live"), api.pop("live")
    assert [web, api, update] == plan.to_record(), "otherwise the plan's own record"
