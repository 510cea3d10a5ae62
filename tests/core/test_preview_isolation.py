"""A preview never touches the engine's state (issue 22 review, gap 3): it runs on a driver of its own
over a private copy of the target's folder and memory, concurrently with reconciles, and the scratch
folders of a preview that crashed are removed by the next preview."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from setpoint.builtin.files import FilesTarget
from setpoint.preview import preview
from setpoint.preview_sandbox import LOCK_NAME, STALE_AFTER
from setpoint.state import TargetStatus
from setpoint.testing import GitRepo, make_engine, write_config

NAMES = ("web", "db")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def store_state(engine: Any) -> tuple[Any, ...]:
    store = engine.store
    statuses = {n: s.without_volatile() for n, s in store.all_status().items() if isinstance(s, TargetStatus)}
    return (len(store.audit_entries()), statuses, {n: sorted(store.inventory(n)) for n in NAMES},
            {n: store.memory(n) for n in NAMES})


def test_preview_runs_beside_reconciles_on_its_own_drivers(tmp_path: Path, git_repo: GitRepo,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    live = tmp_path / "live"
    git_repo.commit({"web/app.conf": "port = 80\n", "db/db.conf": "size = 1\n", "db/keep.conf": "x\n"}, "initial")
    config = write_config(tmp_path, git_repo.path, [
        {"name": n, "kind": "files", "path": n, "prune": True, "files": {"destination": str(live / n)}}
        for n in NAMES])
    engine = make_engine(config)
    assert all(o.error is None for o in engine.sync())
    engine.runners["web"].memory.set("remembered", "by the reconciler")
    engine.runners["web"].memory.flush()
    git_repo.git("checkout", "--quiet", "-b", "feature")
    git_repo.commit({"web/app.conf": "port = 8080\n", "db/db.conf": None}, "feature")
    git_repo.git("checkout", "--quiet", "main")

    # who observes: the reconciler's driver or another instance, over which folder
    seen: list[tuple[int, Path]] = []
    original = FilesTarget.observe

    def spy(self: FilesTarget, *args: Any) -> Any:
        seen.append((id(self), self.context.state_dir))
        if id(self) not in drivers:
            self.context.memory.set("remembered", "by the preview")  # a preview's driver writing its memory
        return original(self, *args)

    monkeypatch.setattr(FilesTarget, "observe", spy)
    drivers = {id(engine.runners[n].driver) for n in NAMES}
    targets_dir = engine.state_dir / "targets"
    before_files, before_dirs, before_store = tree(live), tree(targets_dir), store_state(engine)

    errors: list[str] = []
    stop = threading.Event()

    def reconcile() -> None:
        while not stop.is_set():
            for name in NAMES:
                outcome = engine.reconcile(name, "test", lock_timeout=5, poll=False)
                if outcome.error or outcome.actions:
                    errors.append(f"{name}: {outcome.error or outcome.actions}")

    worker = threading.Thread(target=reconcile)
    worker.start()
    try:
        for _ in range(5):
            seen.clear()
            report = preview(engine, "feature")
            assert not report.failed, report.to_dict()
            changes = {t.target: sorted((c["action"], c["key"]) for c in t.changes) for t in report.targets}
            assert changes == {"web": [("update", "app.conf")], "db": [("delete", "db.conf")]}
            preview_seen = [s for s in seen if s[0] not in drivers]
            assert {d.parent.parent.parent for _, d in preview_seen} == {engine.state_dir / "preview"}
    finally:
        stop.set()
        worker.join()
    assert not errors, errors
    # the reconciler's drivers observed for the reconciles, never over a preview folder
    assert all(d == targets_dir / d.name for i, d in seen if i in drivers)
    assert tree(live) == before_files
    assert tree(targets_dir) == before_dirs
    after = store_state(engine)
    assert after == before_store, "a preview changed the store"
    assert engine.runners["web"].memory.get("remembered") == "by the reconciler"
    assert list((engine.state_dir / "preview").iterdir()) == []  # every scratch folder removed
    engine.close()


def test_a_crashed_previews_copy_is_removed_by_the_next_preview(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"web/app.conf": "port = 80\n"}, "initial")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "web", "kind": "files", "path": "web", "files": {"destination": str(tmp_path / "live")}}])
    engine = make_engine(config)
    assert all(o.error is None for o in engine.sync())
    root = engine.state_dir / "preview"
    root.mkdir(mode=0o700)
    old = time.time() - STALE_AFTER - 5

    def scratch(name: str, age: float) -> Path:
        folder = root / name
        (folder / "targets" / "web").mkdir(parents=True)
        (folder / "targets" / "web" / "state.json").write_text("{}")
        (folder / LOCK_NAME).touch()
        os.utime(folder, (age, age))
        return folder

    crashed = scratch("p-crashed", old)
    young = scratch("p-young", time.time())  # maybe a preview between creating and locking its folder
    running = scratch("p-running", old)
    fd = os.open(running / LOCK_NAME, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a preview in another process still uses it
    try:
        report = preview(engine, "main", ["web"])
        assert not report.failed
        assert not crashed.exists()
        assert young.exists() and running.exists()
    finally:
        os.close(fd)
    assert sorted(p.name for p in root.iterdir()) == ["p-running", "p-young"]
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    engine.close()
