"""The files target against a hostile destination: links planted by someone who can write there
never make setpoint write, truncate, chmod or delete anything outside the destination; decrypted
content is written 0600. A property test feeds random trees through render/observe/diff/apply."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.api import DecryptedFile, Revision, SourceTree, SyncStatus, TargetContext, TargetSpec
from setpoint.builtin.files import FilesSettings, FilesTarget
from setpoint.secrets import Secret
from setpoint.testing import GitRepo, make_engine, write_config


def files_engine(tmp_path: Path, repo: GitRepo, live: Path, **settings: Any) -> Any:
    return make_engine(write_config(tmp_path, repo.path, [
        {"name": "web", "kind": "files", "path": "etc", "prune": True,
         "files": {"destination": str(live), **settings},
         "deletion_budget": {"max_count": 100, "max_percent": 100}}]))


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every entry below ``root`` with its mode and content (link target for links)."""
    seen: dict[str, tuple[int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                seen[str(path.relative_to(root))] = (info.st_mode, os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                seen[str(path.relative_to(root))] = (info.st_mode, path.read_bytes())
            else:
                seen[str(path.relative_to(root))] = (info.st_mode, None)
    return seen


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Files outside the destination that a planted link points at."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "x").write_text("precious\n")
    (folder / "x").chmod(0o640)
    (folder / "passwd").write_text("root:x:0:0\n")
    return folder


def test_a_directory_link_in_the_destination_is_replaced_not_followed(tmp_path: Path, git_repo: GitRepo,
                                                                      victim: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    (live / "sub").symlink_to(victim)
    git_repo.commit({"etc/sub/x": "from git\n", "etc/app.conf": "a = 1\n"}, "v1")
    before = snapshot(victim)
    engine = files_engine(tmp_path, git_repo, live)
    assert engine.reconcile("web").sync == SyncStatus.SYNCED
    assert snapshot(victim) == before, "a file outside the destination changed"
    assert not (live / "sub").is_symlink() and (live / "sub" / "x").read_text() == "from git\n"
    engine.close()


def test_a_planted_temp_file_link_is_never_opened(tmp_path: Path, git_repo: GitRepo, victim: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    (live / ".app.conf.setpoint-tmp").symlink_to(victim / "passwd")
    (live / "app.conf").symlink_to(victim / "x")  # a link where Git has a file
    git_repo.commit({"etc/app.conf": "a = 1\n"}, "v1")
    before = snapshot(victim)
    engine = files_engine(tmp_path, git_repo, live)
    assert engine.reconcile("web").sync == SyncStatus.SYNCED
    assert snapshot(victim) == before, "a file outside the destination changed"
    assert not (live / "app.conf").is_symlink() and (live / "app.conf").read_text() == "a = 1\n"
    engine.close()


def test_prune_never_deletes_through_a_link(tmp_path: Path, git_repo: GitRepo, victim: Path) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/sub/x": "from git\n", "etc/keep.conf": "k\n"}, "v1")
    engine = files_engine(tmp_path, git_repo, live)
    assert engine.reconcile("web").sync == SyncStatus.SYNCED
    # Someone swaps the managed folder for a link to a folder holding a file of the same name.
    shutil.rmtree(live / "sub")
    (live / "sub").symlink_to(victim)
    git_repo.commit({"etc/sub/x": None}, "remove sub/x")
    before = snapshot(victim)
    engine.reconcile("web")
    assert snapshot(victim) == before, "prune deleted a file outside the destination"
    assert (live / "keep.conf").read_text() == "k\n"
    engine.close()


# --------------------------------------------------------------------------- the driver alone


def driver(live: Path, **settings: Any) -> FilesTarget:
    spec = TargetSpec(name="t", kind="files", source="repo", path=".", prune=True, allow_empty=True,
                      interval_seconds=60)
    context = TargetContext(spec=spec, settings=FilesSettings(destination=live, **settings), state_dir=live.parent,
                            logger=logging.getLogger("test"), trigger=lambda reason: None)
    return FilesTarget(context)


REVISION = Revision("0" * 40)


def tree_of(root: Path, decrypted: dict[str, bytes] | None = None) -> SourceTree:
    files = {k: DecryptedFile(k, "binary", [], Secret(v, k)) for k, v in (decrypted or {}).items()}
    return SourceTree(root=root, checkout=root, revision=REVISION, decrypted=files)


def reconcile(target: FilesTarget, tree: SourceTree, managed: set[str]) -> tuple[set[str], set[str]]:
    """One render/observe/diff/apply round like the core's; returns the new inventory and failed keys."""
    desired = target.render(tree)
    live = target.observe(desired, managed)
    plan = target.diff(desired, live)
    plan.changes = [c for c in plan.changes if c.action.value != "delete" or c.key in managed]
    result = target.apply(plan, desired)
    return set(desired.resources), set(result.failed)


@pytest.mark.parametrize(("file_mode", "executable", "expected"),
                         [(None, False, 0o600), (None, True, 0o700), ("0640", False, 0o640)])
def test_decrypted_content_is_written_owner_only_unless_the_target_says_otherwise(
        tmp_path: Path, file_mode: str | None, executable: bool, expected: int) -> None:
    source, live = tmp_path / "src", tmp_path / "live"
    source.mkdir()
    (source / "db.env").write_bytes(b"ENC[...]")
    (source / "db.env").chmod(0o755 if executable else 0o644)
    target = driver(live, **({"file_mode": file_mode} if file_mode else {}))
    assert not reconcile(target, tree_of(source, {"db.env": b"PASSWORD=hunter2\n"}), set())[1]
    assert stat.S_IMODE((live / "db.env").stat().st_mode) == expected
    assert (live / "db.env").read_bytes() == b"PASSWORD=hunter2\n"


# A name is one of a few odd-but-legal spellings; trees are up to two levels deep.
NAMES = st.sampled_from(["a", "b", "x", "passwd", ".hidden", "sp ace", "ünï", "[/]", "-n", "a.setpoint", "\tt"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
CONTENT = st.binary(max_size=64)
MODE = st.sampled_from([0o644, 0o755])
TREE = st.dictionaries(PATHS, st.tuples(CONTENT, MODE), max_size=8)
#: Links planted in the destination before a round: (where, points at "victim" or "victim/x" or a loop).
PLANT = st.lists(st.tuples(PATHS, st.sampled_from(["dir", "file", "loop", "tmp"])), max_size=4)


def write_tree(root: Path, files: dict[str, tuple[bytes, int]]) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    for key, (content, mode) in files.items():
        path = root / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(mode)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # "a" as a file and "a/b" in one tree: Git cannot hold both either


def plant(live: Path, victim: Path, links: list[tuple[str, str]]) -> None:
    for where, kind in links:
        path = live / where
        # plant only where the path stays inside live: a link planted earlier on an ancestor would make
        # this helper itself delete or replace the victim's files (a false failure of the driver)
        if not path.parent.is_dir() or not path.parent.resolve().is_relative_to(live.resolve()):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            if kind == "tmp":
                path = path.with_name(f".{path.name}.setpoint-tmp")
            target = {"dir": victim, "file": victim / "x", "loop": path, "tmp": victim / "x"}[kind]
            path.symlink_to(target)
        except OSError:
            continue  # a planted link on the path of another one


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rounds=st.lists(st.tuples(TREE, PLANT), min_size=1, max_size=3))
def test_random_trees_and_planted_links_never_change_anything_outside_the_destination(
        tmp_path_factory: Any, rounds: list[tuple[dict[str, tuple[bytes, int]], list[tuple[str, str]]]]) -> None:
    base = tmp_path_factory.mktemp("prop")
    victim, source, live = base / "victim", base / "src", base / "live"
    victim.mkdir()
    (victim / "x").write_bytes(b"precious")
    (victim / "x").chmod(0o600)
    (victim / "a").mkdir()
    (victim / "a" / "b").write_bytes(b"deep")
    outside = SimpleNamespace(before=snapshot(base / "victim"))
    target = driver(live)
    managed: set[str] = set()
    for files, links in rounds:
        write_tree(source, files)
        if live.exists():
            plant(live, victim, links)
        managed, failed = reconcile(target, tree_of(source), managed)
        assert snapshot(victim) == outside.before, "something outside the destination changed"
        # Every file from Git is in the destination as a regular file with its content and mode,
        # except where a folder of the destination is in the way of a file (reported, not forced).
        for key in tree_of(source).files():
            if key in failed:
                assert (live / key).is_dir() and not (live / key).is_symlink()
                continue
            path = live / key
            assert not any(p.is_symlink() for p in [path, *path.parents] if live in p.parents or p == path)
            assert path.read_bytes() == (source / key).read_bytes()
            assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((source / key).stat().st_mode)
    shutil.rmtree(base)


def test_a_non_utf8_name_planted_in_the_destination_does_not_crash_a_reconcile(tmp_path: Path,
                                                                                git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    live.mkdir()
    with open(bytes(live) + b"/planted\xff.conf", "w") as handle:
        handle.write("x\n")
    git_repo.commit({"etc/app.conf": "a = 1\n"}, "v1")
    engine = files_engine(tmp_path, git_repo, live)
    out = engine.reconcile("web")
    assert out.error is None and out.sync == SyncStatus.SYNCED, out.error
    assert os.path.exists(bytes(live) + b"/planted\xff.conf"), "a file setpoint did not write is never removed"
    engine.close()
