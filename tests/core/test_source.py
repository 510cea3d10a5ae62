"""Git source: cheap polls, unreachable remotes, force-pushes, path-scoped change detection."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from setpoint.api import SyncStatus
from setpoint.config import SourceConfig
from setpoint.source import git as git_source
from setpoint.source.git import GitSource
from setpoint.testing import FakePlugin, GitRepo

from helpers import fake_engine, resources_yaml, web


def test_poll_fetches_only_when_the_head_moved(tmp_path: Path, git_repo: GitRepo) -> None:
    first = git_repo.commit({"a.txt": "1"})
    source = GitSource("s", SourceConfig(url=str(git_repo.path)), tmp_path / "cache")
    result = source.poll()
    assert result.moved and result.head == first
    assert not source.poll().moved
    second = git_repo.commit({"a.txt": "2"})
    result = source.poll()
    assert result.moved and result.head == second and not result.forced
    revision = source.revision(second)
    assert revision.author == "Dev" and revision.message == "change"
    # each revision is an immutable tree keyed by its SHA
    tree = source.checkout(second)
    assert tree.name == second and (tree / "a.txt").read_text() == "2"
    assert not (tree / "a.txt").stat().st_mode & 0o222
    assert source.prune_trees(keep=[]) == 1 and not tree.exists()


def test_per_commit_caches_stay_bounded_as_heads_move(tmp_path: Path, git_repo: GitRepo,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon following a busy branch keeps answers for a few heads and a bounded number of
    commits, not one entry per commit it ever saw (issue 24's memory-over-time case)."""
    monkeypatch.setattr(git_source, "REVISIONS_KEPT", 5)
    source = GitSource("s", SourceConfig(url=str(git_repo.path)), tmp_path / "cache")
    heads = []
    for n in range(12):
        heads.append(git_repo.commit({f"t{n % 3}/a.txt": str(n)}))
        head = source.poll().head
        assert head == heads[-1]
        source.prime_last_changes(head, [["t0"], ["t1"], ["t2"]])
        assert source.last_change(head, ["t2"]) == (heads[-1] if n % 3 == 2 else heads[n - (n % 3) - 1] if n >= 3
                                                     else None)
        source.revision(head)
    assert len(source._last_changes) == git_source.LAST_CHANGE_HEADS
    assert list(source._last_changes)[-1] == heads[-1]
    assert len(source._revisions) == 5 and list(source._revisions) == heads[-5:]
    # an evicted head is answered again, correctly, from Git
    assert source.last_change(heads[0], ["t0"]) == heads[0]
    assert source.revision(heads[0]).sha == heads[0]


def test_unchanged_poll_is_cheap(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"a.txt": "1"})
    source = GitSource("s", SourceConfig(url=str(git_repo.path)), tmp_path / "cache")
    source.poll()
    started = time.perf_counter()
    for _ in range(10):
        source.poll()
    per_poll = (time.perf_counter() - started) / 10
    assert per_poll < 0.25, f"an unchanged poll took {per_poll * 1000:.0f} ms"


def test_unreachable_remote_keeps_last_good_revision(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"app/web.yaml": resources_yaml(web(2))})
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    cluster = fake_plugin.cluster("app")
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    moved = git_repo.path.with_name("moved-away")
    shutil.move(git_repo.path, moved)
    # the remote is gone: the target keeps its state and still checks drift at the last good revision
    cluster.manual_change("Deployment/web", replicas=9)
    out = engine.reconcile("app")
    assert out.error is None and cluster.resources["Deployment/web"]["replicas"] == 2
    assert "ls-remote" in engine.store.status("app")["source_error"], "the error is visible in status"
    engine.close()
    # a fresh process (one-shot CLI) also falls back to the last fetched head, never to "empty"
    engine = fake_engine(tmp_path, git_repo, fake_plugin, prune=True)
    out = engine.reconcile("app")
    assert out.error is None and "Deployment/web" in cluster.resources
    shutil.move(moved, git_repo.path)


def test_never_reachable_remote_is_an_error_not_an_empty_state(tmp_path: Path, fake_plugin: FakePlugin) -> None:
    engine = fake_engine(tmp_path, GitRepo(tmp_path / "empty-dir-not-a-repo"), fake_plugin)
    shutil.rmtree(tmp_path / "empty-dir-not-a-repo")
    out = engine.reconcile("app")
    assert out.error_stage == "source" and fake_plugin.cluster("app").writes == 0
    # what is wrong, not git's closing advice ("Please make sure ... and the repository exists.")
    assert "does not exist (check sources.repo.url)" in out.error, out.error
    assert "and the repository exists" not in out.error


def test_force_push_is_detected_and_recorded(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    base = git_repo.commit({"app/web.yaml": resources_yaml(web(2))}, "base")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    engine.reconcile("app")
    git_repo.commit({"app/web.yaml": resources_yaml(web(3))}, "to be rewritten")
    engine.reconcile("app")
    git_repo.reset_hard(base)
    rewritten = git_repo.commit({"app/web.yaml": resources_yaml(web(4))}, "rewritten history")
    out = engine.reconcile("app")
    assert out.revision.sha == rewritten and fake_plugin.cluster("app").resources["Deployment/web"]["replicas"] == 4
    forced = engine.store.audit_entries(actions=("force-push",))
    assert len(forced) == 1 and forced[0].details["new_head"] == rewritten


def test_commit_outside_the_target_path_does_not_rerender(tmp_path: Path, git_repo: GitRepo,
                                                         fake_plugin: FakePlugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    v1 = git_repo.commit({"app/web.yaml": resources_yaml(web(2)), "docs/readme.md": "hi"})
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    driver = engine.runners["app"].driver
    renders = []
    original = driver.render
    monkeypatch.setattr(driver, "render", lambda tree: renders.append(tree.revision.sha) or original(tree))
    engine.reconcile("app")
    git_repo.commit({"docs/readme.md": "changed"}, "docs only")
    out = engine.reconcile("app")
    assert renders == [v1], "a commit that touches none of the target's files does not re-render it"
    assert out.revision.sha == v1, "the target's revision is the last commit that changed its files"
    # drift checks go on
    fake_plugin.cluster("app").manual_change("Deployment/web", replicas=8)
    engine.reconcile("app")
    assert fake_plugin.cluster("app").resources["Deployment/web"]["replicas"] == 2
    v3 = git_repo.commit({"app/web.yaml": resources_yaml(web(5))}, "app change")
    engine.reconcile("app")
    assert renders == [v1, v3]


def test_two_processes_previewing_at_once_each_get_their_own_commit(tmp_path: Path, git_repo: GitRepo) -> None:
    """A daemon's webhook preview and an operator's `setpoint preview` resolve refs in one cache
    repository from two processes (two GitSource objects, two locks). The second fetch lands between
    the first's fetch and its read: each must still get the commit of the ref it asked for."""
    main = git_repo.commit({"a.txt": "main"})
    git_repo.git("branch", "feature-a")
    git_repo.git("branch", "feature-b")
    git_repo.git("checkout", "--quiet", "feature-a")
    commit_a = git_repo.commit({"a.txt": "a"}, "a")
    git_repo.git("checkout", "--quiet", "feature-b")
    commit_b = git_repo.commit({"a.txt": "b"}, "b")
    daemon = GitSource("s", SourceConfig(url=str(git_repo.path)), tmp_path / "cache")
    shell = GitSource("s", SourceConfig(url=str(git_repo.path)), tmp_path / "cache")
    assert daemon.poll().head == shell.poll().head
    real_git = daemon._git
    seen_by_shell: list[str] = []

    def git_with_a_second_preview_after_the_fetch(*args: str, **kwargs: object) -> bytes:
        out = real_git(*args, **kwargs)  # type: ignore[arg-type]
        if args[0] == "fetch" and not seen_by_shell:
            seen_by_shell.append(shell.resolve_ref("feature-b"))
        return out

    daemon._git = git_with_a_second_preview_after_the_fetch  # type: ignore[method-assign]
    assert daemon.resolve_ref("feature-a") == commit_a
    assert seen_by_shell == [commit_b]
    # nothing is left named: the refs were the previews' own, and the deployed head did not move
    refs = real_git("for-each-ref", "--format=%(refname)", "refs/setpoint/").decode().split()
    assert not [ref for ref in refs if "preview" in ref], refs
    assert daemon.poll().head == main
