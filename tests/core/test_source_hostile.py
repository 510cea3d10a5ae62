"""The Git source against hostile configuration and repositories: credentials paths with shell
syntax, export rules in .gitattributes, absolute links, empty, missing and non-Git repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from setpoint.api import SyncStatus
from setpoint.config import Credentials, SourceConfig
from setpoint.errors import SourceError
from setpoint.source.git import GitSource
from setpoint.testing import GitRepo, make_engine, write_config


def test_ssh_credential_paths_are_never_run_by_a_shell(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    key = f"{tmp_path}/k;touch {pwned}"
    known = f"{tmp_path}/known $(touch {pwned}-2)"
    config = SourceConfig(url="ssh://git@127.0.0.1:1/repo.git",
                          credentials=Credentials(ssh_key_file=Path(key), ssh_known_hosts_file=Path(known)))
    source = GitSource("s", config, tmp_path / "cache")
    with pytest.raises(SourceError):
        source.poll()  # nothing listens on port 1
    assert not pwned.exists() and not Path(f"{pwned}-2").exists(), "a credentials path ran as a command"


def test_gitattributes_export_rules_do_not_change_what_is_deployed(tmp_path: Path, git_repo: GitRepo) -> None:
    files = {"etc/hidden.conf": "important\n", "etc/version.txt": "v $Format:%H$\n",
             "etc/crlf.txt": "a\nb\n", "etc/ident.id": "x $Id$\n"}
    attributes = ("etc/hidden.conf export-ignore\netc/version.txt export-subst\n"
                  "etc/crlf.txt eol=crlf text\n*.id ident\n")
    head = git_repo.commit({**files, ".gitattributes": attributes}, "attributes")
    source = GitSource("s", SourceConfig(url=str(git_repo.path)), tmp_path / "cache")
    source.poll()
    tree = source.checkout(head)
    assert {k: (tree / k).read_text() for k in files} == files, "the export differs from the committed tree"


def test_an_absolute_link_stops_only_the_targets_that_hold_it(tmp_path: Path, git_repo: GitRepo) -> None:
    live_ok, live_bad = tmp_path / "ok", tmp_path / "bad"
    (git_repo.path / "bad").mkdir()
    (git_repo.path / "bad" / "key").symlink_to("/etc/passwd")
    (git_repo.path / "bad" / "up").symlink_to("../../..")
    git_repo.commit({"ok/app.conf": "a = 1\n", "bad/app.conf": "b = 1\n"}, "links")
    engine = make_engine(write_config(tmp_path, git_repo.path, [
        {"name": "ok", "kind": "files", "path": "ok", "files": {"destination": str(live_ok)}},
        {"name": "bad", "kind": "files", "path": "bad", "files": {"destination": str(live_bad)}}]))
    assert engine.reconcile("ok").sync == SyncStatus.SYNCED
    assert (live_ok / "app.conf").read_text() == "a = 1\n"
    out = engine.reconcile("bad")
    assert out.error_stage == "render" and "/etc/passwd" in (out.error or "") and "outside the repository" in (out.error or "")
    assert not live_bad.exists(), "nothing of a refused target is applied"
    engine.close()


def test_an_empty_tree_with_allow_empty_applies(tmp_path: Path, git_repo: GitRepo) -> None:
    live = tmp_path / "live"
    git_repo.commit({"a.conf": "a\n"}, "first")
    engine = make_engine(write_config(tmp_path, git_repo.path, [
        {"name": "all", "kind": "files", "path": ".", "prune": True, "allow_empty": True,
         "deletion_budget": {"max_count": 10, "max_percent": 100},
         "files": {"destination": str(live)}}]))
    assert engine.reconcile("all").sync == SyncStatus.SYNCED and (live / "a.conf").exists()
    git_repo.commit({"a.conf": None}, "empty the repository")
    out = engine.reconcile("all")
    assert out.error is None and out.sync == SyncStatus.SYNCED, out.error
    assert not (live / "a.conf").exists()
    engine.close()


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "exists but is not a Git repository"),
    (lambda p: GitRepo(p), "no branches yet"),
])
def test_missing_non_git_and_empty_repositories_say_what_is_wrong(tmp_path: Path, make: Any, expected: str) -> None:
    url = tmp_path / "repo"
    make(url)
    source = GitSource("s", SourceConfig(url=str(url)), tmp_path / "cache")
    with pytest.raises(SourceError) as raised:
        source.poll()
    assert expected in str(raised.value) and "repository exists." not in str(raised.value)


def test_a_non_utf8_name_is_refused_before_decrypt_for_any_driver(tmp_path: Path, git_repo: GitRepo,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 item 12: a name Git allows but that is not UTF-8 is refused by the core before decrypt
    and render, with the name shown escaped, whichever decryptor or driver would have read it; the
    error is audited and nothing is applied."""
    from test_canary import TOY
    from test_plugins import install_plugin

    from setpoint.testing import FakePlugin, make_engine, write_config

    from helpers import resources_yaml, web

    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "setpoint-toy", "toy", "setpoint_toy_mod", TOY)
    monkeypatch.syspath_prepend(str(site))
    (git_repo.path / "app").mkdir()
    (git_repo.path / "app" / "web.yaml").write_text(resources_yaml(web()))
    with open(bytes(git_repo.path / "app") + b"/db\xff.yaml", "wb") as handle:
        handle.write(b"TOYENC:not base64 at all")
    git_repo.commit(message="a name Git allows")
    plugin = FakePlugin()
    engine = make_engine(write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}]),
                         plugin, load_entrypoints=True)
    out = engine.reconcile("app")
    assert out.error_stage == "source" and "not a valid UTF-8 file name" in out.error and "db\\xff.yaml" in out.error
    assert plugin.cluster("app").resources == {}
    (error,) = engine.store.audit_entries(actions=("error",))
    assert "db\\xff.yaml" in error.details["error"]
    engine.close()
