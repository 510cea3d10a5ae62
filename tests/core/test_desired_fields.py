"""What the core tells a driver about a render travels in typed ``Desired`` fields, never in ``extra``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from setpoint.api import Desired
from setpoint.testing import FakePlugin, GitRepo

from helpers import fake_engine, resources_yaml, web


def recording_apply(engine: Any) -> list[Desired]:
    driver = engine.runners["app"].driver
    seen: list[Desired] = []
    apply = driver.apply

    def record(plan: Any, desired: Desired) -> Any:
        seen.append(desired)
        return apply(plan, desired)

    driver.apply = record
    return seen


def test_apply_sees_the_rendered_revision(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    sha = git_repo.commit({"app/web.yaml": resources_yaml(web())}, "v1")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    seen = recording_apply(engine)
    engine.reconcile("app")
    assert seen and seen[0].revision == sha and seen[0].extra == {} and not seen[0].removed_from_git
    engine.close()


def test_a_folder_removed_from_git_is_a_typed_flag(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web()), "other/readme": "x"})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True, allow_empty=True)
    engine.reconcile("app")
    retired = git_repo.commit({"app/web.yaml": None}, "retire the app")
    seen = recording_apply(engine)
    held = engine.reconcile("app").held_plan_id
    engine.approve("app", held, "lead")
    assert engine.reconcile("app").error is None
    assert seen[-1].removed_from_git and seen[-1].resources == {} and seen[-1].revision == retired
    assert seen[-1].extra == {}, "the core puts nothing in the driver's untyped dict"
    engine.close()
