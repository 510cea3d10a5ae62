"""The user's five phases, with the fake target and with the built-in files target:
initial deploy; no-op; manual drift reverted; new version from a new commit; rollback by git revert."""

from __future__ import annotations

from pathlib import Path

from setpoint.api import SyncStatus
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import fake_engine, resources_yaml, web


def test_five_phases_fake_target(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    v1 = git_repo.commit({"app/web.yaml": resources_yaml(web(2, "web:1"))}, "Deploy web 1", author="Alice <alice@example.com>")
    engine = fake_engine(tmp_path, git_repo, fake_plugin)
    cluster = fake_plugin.cluster("app")

    # 1. initial deploy
    out = engine.reconcile("app")
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None)
    assert cluster.resources["Deployment/web"] == {"replicas": 2, "image": "web:1"}
    assert out.revision.sha == v1 and out.revision.author == "Alice"
    assert cluster.writes == 1

    # 2. no-op: nothing written, nothing audited
    before = len(engine.store.audit_entries())
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and cluster.writes == 1 and not out.actions
    assert len(engine.store.audit_entries()) == before

    # 3. manual drift (kubectl scale) is detected, reverted and recorded with the live value seen
    cluster.manual_change("Deployment/web", replicas=5)
    out = engine.reconcile("app")
    assert cluster.resources["Deployment/web"]["replicas"] == 2
    assert [c.key for c in out.drift] == ["Deployment/web"]
    reverts = engine.store.audit_entries(actions=("revert-drift",))
    assert len(reverts) == 1
    field = reverts[0].details["changes"][0]["fields"][0]
    assert field == {"path": "replicas", "before": 5, "after": 2}
    assert engine.store.audit_entries(actions=("drift-detected",))

    # 4. new version from a new commit
    v2 = git_repo.commit({"app/web.yaml": resources_yaml(web(3, "web:2"))}, "Web 2", author="Bob <bob@example.com>")
    out = engine.reconcile("app")
    assert cluster.resources["Deployment/web"] == {"replicas": 3, "image": "web:2"}
    assert out.revision.sha == v2 and not out.drift
    applies = engine.store.audit_entries(actions=("apply",))
    assert applies[-1].revision == v2 and applies[-1].author == "Bob <bob@example.com>"

    # 5. rollback by git revert
    v3 = git_repo.revert(v2)
    out = engine.reconcile("app")
    assert cluster.resources["Deployment/web"] == {"replicas": 2, "image": "web:1"}
    assert out.revision.sha == v3 and out.sync == SyncStatus.SYNCED
    assert [e.revision for e in engine.store.audit_entries(actions=("apply",))] == [v1, v2, v3]
    engine.close()


def test_five_phases_files_target(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    v1 = git_repo.commit({"etc/app.conf": "port = 80\n", "etc/run.sh": "#!/bin/sh\necho hi\n"}, "v1",
                         mode={"etc/run.sh": 0o755})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "web-config", "kind": "files", "path": "etc", "prune": True, "files": {"destination": str(live)},
         "deletion_budget": {"max_count": 10, "max_percent": 100}}])
    engine = make_engine(config)

    # 1. initial deploy, modes from Git
    assert engine.reconcile("web-config").sync == SyncStatus.SYNCED
    assert (live / "app.conf").read_text() == "port = 80\n"
    assert (live / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (live / "app.conf").stat().st_mode & 0o777 == 0o644

    # 2. no-op: the file is not rewritten
    inode = (live / "app.conf").stat().st_ino
    out = engine.reconcile("web-config")
    assert not out.actions and (live / "app.conf").stat().st_ino == inode

    # 3. drift: an edit, a deletion, a mode change and a stray file, all by hand
    (live / "app.conf").write_text("port = 22\n")
    (live / "run.sh").unlink()
    (live / "stray.txt").write_text("not from git")
    out = engine.reconcile("web-config")
    assert sorted(c.key for c in out.drift) == ["app.conf", "run.sh", "stray.txt"]
    assert (live / "app.conf").read_text() == "port = 80\n"
    assert (live / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (live / "stray.txt").exists(), "a file setpoint never wrote is never removed"
    assert "not from Git" in engine.store.status("web-config")["message"]
    (live / "stray.txt").unlink()
    (live / "app.conf").chmod(0o666)
    out = engine.reconcile("web-config")
    assert [c.key for c in out.drift] == ["app.conf"] and (live / "app.conf").stat().st_mode & 0o777 == 0o644

    # 4. a new commit: change one file, remove another (prune), add a third
    v2 = git_repo.commit({"etc/app.conf": "port = 8080\n", "etc/run.sh": None, "etc/new.conf": "x = 1\n"}, "v2")
    out = engine.reconcile("web-config")
    assert out.sync == SyncStatus.SYNCED and out.revision.sha == v2
    assert (live / "app.conf").read_text() == "port = 8080\n"
    assert not (live / "run.sh").exists() and (live / "new.conf").exists()

    # 5. git revert restores v1 exactly
    git_repo.revert(v2)
    assert engine.reconcile("web-config").sync == SyncStatus.SYNCED
    assert (live / "app.conf").read_text() == "port = 80\n" and (live / "run.sh").exists()
    assert not (live / "new.conf").exists()
    assert engine.store.audit_entries(actions=("apply",))[0].revision == v1
    engine.close()
