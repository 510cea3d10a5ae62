"""The core's safety rules: fail closed, empty-render guard, deletion budget and approval,
hold-all-deletions policy, review veto, pause with expiry, grace-period and report-only drift."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from setpoint import hookimpl
from setpoint.api import Denial, HealthStatus, SyncStatus
from setpoint.errors import PermanentError
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import fake_engine, resources_yaml, web


def many(n: int, prefix: str = "cm") -> str:
    return resources_yaml(*({"kind": "ConfigMap", "name": f"{prefix}{i}", "config": {"i": i}} for i in range(n)))


def test_broken_commit_fails_closed_and_next_good_commit_recovers(tmp_path: Path, git_repo: GitRepo,
                                                                  fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2)), "app/db.yaml": resources_yaml({"kind": "DB", "name": "db"})})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    cluster = fake_plugin.cluster("app")
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    # a commit that changes web and breaks db.yaml: nothing is applied, nothing pruned
    git_repo.commit({"app/web.yaml": resources_yaml(web(9)), "app/db.yaml": "kind: [unclosed"}, "broken")
    out = engine.reconcile("app")
    assert out.error_stage == "render" and "db.yaml" in out.error
    assert cluster.resources["Deployment/web"]["replicas"] == 2 and "DB/db" in cluster.resources
    status = engine.store.status("app")
    # the broken commit was never applied: the target is behind its head, not Synced
    assert status["last_error"] and status["error_stage"] == "render" and status["sync"] == "OutOfSync"
    assert engine.store.audit_entries(actions=("error",))[-1].details["stage"] == "render"
    # the failure is audited once, not at every retry
    engine.reconcile("app")
    assert len(engine.store.audit_entries(actions=("error",))) == 1
    # the next good commit recovers
    git_repo.commit({"app/db.yaml": resources_yaml({"kind": "DB", "name": "db"})}, "fix")
    out = engine.reconcile("app")
    assert out.error is None and cluster.resources["Deployment/web"]["replicas"] == 9
    assert engine.store.status("app")["last_error"] is None
    assert engine.store.audit_entries(actions=("recovered",))


@pytest.mark.parametrize("stage", ["observe", "apply"])
def test_errors_in_later_stages_are_reported_with_their_stage(tmp_path: Path, git_repo: GitRepo,
                                                              fake_plugin: FakePlugin, stage: str) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    fake_plugin.cluster("app").fail_next(stage, PermanentError("boom"))
    out = engine.reconcile("app")
    assert out.error_stage == stage and "boom" in out.error
    assert engine.reconcile("app").error is None


def test_empty_render_never_prunes_unless_allowed(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    git_repo.commit({"app/web.yaml": "# everything commented out\n", "app/keep": "x"}, "oops")
    out = engine.reconcile("app")
    assert out.error_stage == "review" and "allow_empty" in out.error
    assert "Deployment/web" in cluster.resources and cluster.deletes == 0
    engine.close()
    # with allow_empty the same commit empties the target (the budget would still hold it, so raise it)
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, allow_empty=True,
                         deletion_budget={"max_count": 10, "max_percent": 100})
    out = engine.reconcile("app")
    assert out.error is None and cluster.resources == {}


def test_deletions_over_budget_are_held_until_approved(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/cms.yaml": many(20)})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    assert len(cluster.resources) == 20
    # 11 deletions > 10: held
    git_repo.commit({"app/cms.yaml": many(9)}, "remove 11")
    out = engine.reconcile("app")
    assert out.held_plan_id and out.sync == SyncStatus.OUT_OF_SYNC and len(cluster.resources) == 20
    held = engine.store.held_plans("app")
    assert [h.plan_id for h in held] == [out.held_plan_id] and "deletion budget" in held[0].reason
    # the same plan is not held twice
    assert engine.reconcile("app").held_plan_id == out.held_plan_id
    assert len(engine.store.audit_entries(actions=("held",))) == 1
    # approving a wrong id is an error; the right one applies at the next reconcile
    with pytest.raises(Exception, match="no pending plan"):
        engine.approve("app", "nope", "carol")
    engine.approve("app", out.held_plan_id, "carol")
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and len(cluster.resources) == 9
    assert engine.store.audit_entries(actions=("approve",))[0].actor == "carol"
    assert engine.store.held_plans("app") == []


def test_approved_plan_that_no_longer_matches_is_held_again(tmp_path: Path, git_repo: GitRepo,
                                                            fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/cms.yaml": many(20)})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    engine.reconcile("app")
    git_repo.commit({"app/cms.yaml": many(9)}, "remove 11")
    first = engine.reconcile("app").held_plan_id
    engine.approve("app", first, "carol")
    git_repo.commit({"app/cms.yaml": many(5)}, "remove 15")  # Git moved after the approval
    out = engine.reconcile("app")
    assert out.held_plan_id and out.held_plan_id != first
    assert len(fake_plugin.cluster("app").resources) == 20


def test_percentage_budget_and_hold_deletions_policy(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/cms.yaml": many(6)})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    engine.reconcile("app")
    git_repo.commit({"app/cms.yaml": many(3)}, "remove half")  # 3 of 6 = 50 % > 25 %, 3 >= min_count
    assert engine.reconcile("app").held_plan_id
    engine.close()
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, hold_deletions=True,
                         deletion_budget={"max_count": 100, "max_percent": 100})
    out = engine.reconcile("app")
    assert out.held_plan_id and "holds every deletion" in engine.store.held_plans("app")[-1].reason


def test_prune_off_keeps_removed_objects_and_says_so(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/cms.yaml": many(3)})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=False)
    engine.reconcile("app")
    git_repo.commit({"app/cms.yaml": many(2)}, "remove one")
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and "ConfigMap/cm2" in fake_plugin.cluster("app").resources
    assert "prune is off" in engine.store.status("app")["message"]


def test_objects_setpoint_did_not_create_are_never_deleted(tmp_path: Path, git_repo: GitRepo,
                                                           fake_plugin: FakePlugin) -> None:
    cluster = fake_plugin.cluster("app")
    cluster.manual_create("ConfigMap/handmade", {"config": {"x": 1}})
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    out = engine.reconcile("app")
    assert out.error is None and "ConfigMap/handmade" in cluster.resources and cluster.deletes == 0
    assert [c.key for c in out.drift] == ["ConfigMap/handmade"]
    assert "not from Git" in engine.store.status("app")["message"]
    # still there after the deployment leaves Git entirely (allow_empty), while web is pruned
    git_repo.commit({"app/web.yaml": "[]"}, "empty")
    engine.close()
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, allow_empty=True,
                         deletion_budget={"max_count": 10, "max_percent": 100})
    engine.reconcile("app")
    assert list(cluster.resources) == ["ConfigMap/handmade"]


def test_review_hook_can_veto_a_plan(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    class NoBigReplicas:
        __name__ = "no-big-replicas"

        @hookimpl
        def setpoint_review_plan(self, target, plan, drift):  # type: ignore[no-untyped-def]
            for change in plan.changes:
                for field in change.fields:
                    if field.path == "replicas" and (field.after or 0) > 10:
                        return Denial("more than 10 replicas needs a human", plugin="no-big-replicas")
            return None

    git_repo.commit({"app/web.yaml": resources_yaml(web(50))})
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}])
    engine = make_engine(config, fake_plugin, NoBigReplicas())
    out = engine.reconcile("app")
    assert out.held_plan_id and fake_plugin.cluster("app").resources == {}
    assert "more than 10 replicas" in engine.store.held_plans("app")[0].reason


def test_pause_stops_applying_records_drift_and_expires(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    with pytest.raises(Exception, match="reason"):
        engine.pause("app", "  ", "dave", None)
    engine.pause("app", "incident 42: hotfix by hand", "dave", 0.6)
    cluster.manual_change("Deployment/web", replicas=7)  # the emergency fix
    git_repo.commit({"app/web.yaml": resources_yaml(web(3))}, "meanwhile in Git")
    out = engine.reconcile("app")
    assert out.paused and cluster.resources["Deployment/web"]["replicas"] == 7
    assert [c.key for c in out.drift] == ["Deployment/web"] or out.sync == SyncStatus.OUT_OF_SYNC
    status = engine.store.status("app")
    assert status["paused"]["reason"] == "incident 42: hotfix by hand" and status["paused"]["by"] == "dave"
    time.sleep(0.7)
    out = engine.reconcile("app")
    assert not out.paused and cluster.resources["Deployment/web"]["replicas"] == 3
    resumes = engine.store.audit_entries(actions=("resume",))
    assert resumes and resumes[0].actor == "setpoint (pause expired)"
    pauses = engine.store.audit_entries(actions=("pause",))
    assert pauses[0].actor == "dave" and pauses[0].details["reason"] == "incident 42: hotfix by hand"


def test_resume_by_hand(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    engine.pause("app", "maintenance", "erin", None)
    assert engine.reconcile("app").paused and fake_plugin.cluster("app").resources == {}
    engine.resume("app", "erin")
    assert not engine.reconcile("app").paused and fake_plugin.cluster("app").resources


def test_grace_period_holds_drift_then_reverts(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal={"grace": "1s"})
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    cluster.manual_change("Deployment/web", replicas=6)
    out = engine.reconcile("app")
    assert cluster.resources["Deployment/web"]["replicas"] == 6, "kept during the grace period"
    assert out.sync == SyncStatus.OUT_OF_SYNC and [c.key for c in out.drift] == ["Deployment/web"]
    assert len(engine.store.audit_entries(actions=("drift-detected",))) == 1, "recorded at once"
    assert engine.runners["app"].wake_at is not None, "the engine knows when the grace ends"
    engine.reconcile("app")
    assert len(engine.store.audit_entries(actions=("drift-detected",))) == 1, "not recorded again"
    time.sleep(1.05)
    engine.reconcile("app")
    assert cluster.resources["Deployment/web"]["replicas"] == 2
    assert engine.store.audit_entries(actions=("revert-drift",))


def test_grace_period_drift_accepted_when_git_catches_up(tmp_path: Path, git_repo: GitRepo,
                                                         fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal={"grace": "1h"})
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    cluster.manual_change("Deployment/web", replicas=6)
    engine.reconcile("app")
    git_repo.commit({"app/web.yaml": resources_yaml(web(6))}, "commit the emergency fix")
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and cluster.writes == 1
    assert engine.store.drift("app") == {}
    assert engine.store.audit_entries(actions=("drift-resolved",))


def test_self_heal_false_reports_only(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, self_heal=False)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    cluster.manual_delete("Deployment/web")
    out = engine.reconcile("app")
    assert "Deployment/web" not in cluster.resources and out.sync == SyncStatus.OUT_OF_SYNC
    assert out.health == HealthStatus.MISSING
    assert engine.store.audit_entries(actions=("drift-detected",))
    assert not engine.store.audit_entries(actions=("revert-drift",))
    # a new commit still deploys (only drift is left alone)
    git_repo.commit({"app/web.yaml": resources_yaml(web(4))}, "scale")
    engine.reconcile("app")
    assert cluster.resources["Deployment/web"]["replicas"] == 4


def test_dry_run_changes_nothing(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    out = engine.reconcile("app", dry_run=True)
    assert out.sync == SyncStatus.OUT_OF_SYNC and fake_plugin.cluster("app").resources == {}
    assert engine.store.audit_entries() == [] and engine.store.status("app") is None
    assert [c.key for c in engine.runners["app"].last_plan.changes] == ["Deployment/web"]


def test_a_missing_target_path_is_an_error_and_prunes_nothing(tmp_path: Path, git_repo: GitRepo,
                                                              fake_plugin: FakePlugin) -> None:
    """Issue 14 item 7: every file under the folder deleted in Git, or a typo in ``path``, is an error:
    nothing applied, nothing pruned, however generous the budget."""
    git_repo.commit({"app/web.yaml": resources_yaml(web()), "app/db.yaml": resources_yaml({"kind": "DB", "name": "db"}),
                     "other/readme": "x"})
    budget = {"max_count": 100, "max_percent": 100}
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, deletion_budget=budget)
    cluster = fake_plugin.cluster("app")
    assert engine.reconcile("app").error is None
    git_repo.commit({"app/web.yaml": None, "app/db.yaml": None}, "delete every file of the app")
    for _ in range(2):
        out = engine.reconcile("app")
        assert out.error_stage == "render" and "deleted in Git" in out.error and "allow_empty" in out.error
        assert out.held_plan_id is None and set(cluster.resources) == {"Deployment/web", "DB/db"}
    assert cluster.deletes == 0 and len(engine.store.inventory("app")) == 2
    engine.close()
    # a typo in path (the folder never existed at the applied revision) is an error even with allow_empty
    engine = fake_engine(tmp_path, git_repo, fake_plugin, path="ap", prune=True, allow_empty=True,
                         deletion_budget=budget)
    out = engine.reconcile("app")
    assert out.error_stage == "render" and "does not exist" in out.error and "'ap'" in out.error
    assert cluster.deletes == 0 and len(engine.store.inventory("app")) == 2
    engine.close()


def test_removing_the_target_folder_from_git_needs_allow_empty_and_approval(tmp_path: Path, git_repo: GitRepo,
                                                                           fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web()), "other/readme": "x"})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, allow_empty=True)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    git_repo.commit({"app/web.yaml": None}, "retire the app")
    out = engine.reconcile("app")
    assert out.held_plan_id and "Deployment/web" in cluster.resources, "a whole target goes only after approval"
    engine.approve("app", out.held_plan_id, "lead")
    out = engine.reconcile("app")
    assert out.error is None and cluster.resources == {}
    engine.close()
    # with prune off, a missing folder is an error, never a removal
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=False, allow_empty=True)
    assert engine.reconcile("app").error_stage == "render"


def test_a_driver_apply_policy_holds_plans(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    cluster = fake_plugin.cluster("app")
    cluster.hold_reason = "apply policy is manual"
    out = engine.reconcile("app")
    assert out.held_plan_id and cluster.resources == {}
    assert engine.store.held_plans("app")[0].reason == "apply policy is manual"
    engine.approve("app", out.held_plan_id, "lead")
    assert engine.reconcile("app").sync == SyncStatus.SYNCED and cluster.resources


def test_failed_drift_repair_is_out_of_sync_and_never_logged_as_reverted(
        tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 18, item 3: the status was the previous Synced, and "reverted drift" was logged first."""
    import logging

    caplog.set_level(logging.INFO)
    git_repo.commit({"app/web.yaml": resources_yaml(web())})
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    cluster = fake_plugin.cluster("app")
    assert engine.reconcile("app").sync.value == "Synced"
    cluster.manual_change("Deployment/web", replicas=7)
    cluster.fail_next("apply", PermanentError("422 Invalid: spec.ports[0].name: Required value"))
    caplog.clear()
    out = engine.reconcile("app")
    assert out.error_stage == "apply" and out.sync.value == "OutOfSync"
    status = engine.store.status("app")
    assert status["sync"] == "OutOfSync" and status["drift"] == ["Deployment/web"] and "Required value" in status["last_error"]
    assert "reverted drift" not in caplog.text
    out = engine.reconcile("app")  # the next repair works
    assert out.error is None and out.sync.value == "Synced" and cluster.resources["Deployment/web"]["replicas"] == 2
    assert "reverted drift on Deployment/web" in caplog.text
