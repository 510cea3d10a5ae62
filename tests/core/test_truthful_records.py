"""Audit records and status say exactly what happened (issue 15): a commit that overwrites a hand
edit is not "resolved", reverted drift leaves status at once, paused/grace/held runs say why."""

from __future__ import annotations

import time
from pathlib import Path

from setpoint.api import SyncStatus
from setpoint.testing import FakePlugin, GitRepo

from helpers import fake_engine, resources_yaml, web


def test_a_commit_overwriting_a_hand_edit_is_recorded_as_overwritten(tmp_path: Path, git_repo: GitRepo,
                                                                     fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal=False)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    cluster.manual_change("Deployment/web", replicas=6)  # the hand edit, reported only
    engine.reconcile("app")
    sha = git_repo.commit({"app/web.yaml": resources_yaml(web(4))}, "scale to 4")
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and cluster.resources["Deployment/web"]["replicas"] == 4
    assert engine.store.audit_entries(actions=("drift-resolved",)) == [], "live never matched Git again"
    [entry] = engine.store.audit_entries(actions=("drift-overwritten",))
    assert entry.details["key"] == "Deployment/web" and entry.details["overwritten_by"] == sha
    assert entry.details["how"].startswith(f"the change made outside setpoint was overwritten by commit {sha[:12]}")
    assert engine.store.drift("app") == {}


def test_drift_held_back_by_a_pause_is_not_resolved_by_a_commit_it_did_not_apply(
        tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal=False)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    cluster.manual_change("Deployment/web", replicas=6)
    engine.reconcile("app")
    engine.pause("app", "incident", "dave", None)
    git_repo.commit({"app/web.yaml": resources_yaml(web(4))}, "scale to 4")
    engine.reconcile("app")
    assert cluster.resources["Deployment/web"]["replicas"] == 6
    assert not engine.store.audit_entries(actions=("drift-resolved",))
    assert not engine.store.audit_entries(actions=("drift-overwritten",))
    engine.resume("app", "dave")
    engine.reconcile("app")
    assert [e.details["key"] for e in engine.store.audit_entries(actions=("drift-overwritten",))] == ["Deployment/web"]


def test_git_catching_up_with_the_hand_edit_is_still_resolved(tmp_path: Path, git_repo: GitRepo,
                                                             fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal=False)
    fake_plugin.cluster("app")
    engine.reconcile("app")
    fake_plugin.cluster("app").manual_change("Deployment/web", replicas=6)
    engine.reconcile("app")
    git_repo.commit({"app/web.yaml": resources_yaml(web(6))}, "keep the fix")
    engine.reconcile("app")
    assert [e.details["how"] for e in engine.store.audit_entries(actions=("drift-resolved",))] == [
        "live state matches Git again"]
    assert not engine.store.audit_entries(actions=("drift-overwritten",))


def test_reverted_drift_leaves_the_status_at_once(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal=True)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    cluster.manual_change("Deployment/web", replicas=6)
    out = engine.reconcile("app")
    assert cluster.resources["Deployment/web"]["replicas"] == 2 and [c.key for c in out.drift] == ["Deployment/web"]
    status = engine.store.status("app")
    assert status is not None and status.drift == () and status.sync == SyncStatus.SYNCED


def test_paused_grace_and_held_runs_say_why(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal={"grace": "1h"}, prune=True,
                         deletion_budget={"max_count": 0})
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    cluster.manual_change("Deployment/web", replicas=6)
    out = engine.reconcile("app")
    due = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(engine.store.drift("app")["Deployment/web"].first_seen + 3600))
    expected = f"1 drifted object(s) within their grace period; reverted at {due} unless Git changes them first"
    assert out.message == expected
    assert engine.store.status("app")["message"] == expected

    engine.pause("app", "incident 7", "dave", None)
    out = engine.reconcile("app")
    assert out.message == "paused by dave: incident 7"
    engine.resume("app", "dave")

    git_repo.commit({"app/web.yaml": resources_yaml(web(6), {"kind": "ConfigMap", "name": "x"})}, "add x")
    engine.reconcile("app")
    git_repo.commit({"app/web.yaml": resources_yaml(web(6))}, "drop x")
    out = engine.reconcile("app")
    assert out.held_plan_id and out.message.startswith(f"plan {out.held_plan_id} held for approval: ")
    assert out.message.endswith(f"Approve with: setpoint approve app {out.held_plan_id}")
