"""The deletion budget holds only a plan's deletions where the target kind can apply in part, the
percentage rule counts from a minimum number of deletions, and both are configurable (issue 15 item 19)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from setpoint.api import SyncStatus
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import fake_engine, resources_yaml


def files_engine(tmp_path: Path, repo: GitRepo, **target: Any) -> Any:
    spec = {"name": "edge", "kind": "files", "path": "etc", "prune": True,
            "files": {"destination": str(tmp_path / "live")}, **target}
    return make_engine(write_config(tmp_path, repo.path, [spec]))


def conf(n: int, changed: str = "") -> dict[str, str]:
    return {f"etc/f{i}.conf": f"value {i}{changed if i == 0 else ''}\n" for i in range(n)}


def test_removing_one_of_three_files_is_not_over_the_budget(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit(conf(3))
    engine = files_engine(tmp_path, git_repo)
    engine.reconcile("edge")
    git_repo.commit({**conf(2, " changed"), "etc/f2.conf": None}, "drop f2, change f0")
    out = engine.reconcile("edge")
    assert out.sync == SyncStatus.SYNCED and out.held_plan_id is None, out.message
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == ["f0.conf", "f1.conf"]
    assert (tmp_path / "live" / "f0.conf").read_text() == "value 0 changed\n"


def test_held_deletions_do_not_block_the_rest_of_the_commit(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit(conf(12))
    engine = files_engine(tmp_path, git_repo)
    live = tmp_path / "live"
    engine.reconcile("edge")
    git_repo.commit({**conf(1, " changed"), **{f"etc/f{i}.conf": None for i in range(1, 12)}}, "drop 11, change f0")
    out = engine.reconcile("edge")
    assert (live / "f0.conf").read_text() == "value 0 changed\n", "the update went ahead"
    assert len(list(live.iterdir())) == 12, "the deletions wait"
    assert out.held_plan_id and out.sync == SyncStatus.OUT_OF_SYNC
    [held] = engine.store.held_plans("edge")
    assert {c["action"] for c in held.changes} == {"delete"} and len(held.changes) == 11
    assert out.message.startswith(f"plan {held.plan_id} held for approval: the plan deletes 11 of 12")
    assert engine.reconcile("edge").held_plan_id == held.plan_id
    assert len(engine.store.audit_entries(actions=("held",))) == 1, "held once, not again on every run"
    engine.approve("edge", held.plan_id, "carol")
    out = engine.reconcile("edge")
    assert out.sync == SyncStatus.SYNCED and [p.name for p in live.iterdir()] == ["f0.conf"]
    assert engine.store.held_plans("edge") == []


def test_hold_plan_and_min_count_are_configurable(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit(conf(12))
    engine = files_engine(tmp_path, git_repo, deletion_budget={"hold": "plan", "min_count": 1, "max_percent": 5})
    engine.reconcile("edge")
    git_repo.commit({**conf(1, " changed"), "etc/f11.conf": None}, "drop 1 of 12 (8 %), change f0")
    out = engine.reconcile("edge")
    assert out.held_plan_id and (tmp_path / "live" / "f0.conf").read_text() == "value 0\n", "the whole plan waits"


def test_a_kind_that_applies_only_whole_plans_holds_all_and_says_why(tmp_path: Path, git_repo: GitRepo,
                                                                     fake_plugin: FakePlugin) -> None:
    items = [{"kind": "ConfigMap", "name": f"cm{i}", "config": {"i": i}} for i in range(12)]
    git_repo.commit({"app/cms.yaml": resources_yaml(*items)})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    cluster = fake_plugin.cluster("app")
    engine.reconcile("app")
    git_repo.commit({"app/cms.yaml": resources_yaml({**items[0], "config": {"i": 99}})}, "drop 11, change cm0")
    out = engine.reconcile("app")
    assert out.held_plan_id and cluster.resources["ConfigMap/cm0"]["config"] == {"i": 0}
    assert "the other changes wait with them: this target kind applies a plan only whole" in out.message


def test_deleting_every_managed_object_is_held_however_few(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({**conf(2), "etc/keep/x.conf": "x\n"})
    engine = files_engine(tmp_path, git_repo, path="etc/keep")
    engine.reconcile("edge")
    git_repo.commit({"etc/keep/x.conf": None, "etc/keep/y.conf": "y\n"}, "replace x by y")
    out = engine.reconcile("edge")
    assert out.held_plan_id, "1 of 1 is every managed object: held although under min_count"
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == ["x.conf", "y.conf"], "y arrives, x waits"
