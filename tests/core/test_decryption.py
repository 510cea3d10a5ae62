"""One decryptor builder and one candidate-file walker: a reconcile, ``setpoint validate`` and
``setpoint secrets check`` agree on which files are secrets and on what a ``secrets:`` block means."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from setpoint import hookimpl, secret_check
from setpoint.api import DecryptedFile, Decryptor
from setpoint.config import load_config
from setpoint.decryption import build_decryptors
from setpoint.engine.decrypt import decrypt_tree
from setpoint.errors import ConfigError
from setpoint.plugins import Registry, get_plugin_manager
from setpoint.secrets import Secret
from setpoint.testing import GitRepo, make_engine, write_config
from setpoint.validation import validate_all


class MarkerSettings(BaseModel, extra="forbid"):
    marker: str = "ENC:"


class Marker(Decryptor):
    name = "marker"
    Settings = MarkerSettings

    def detect(self, relpath: str, content: bytes) -> bool:
        return content.startswith(self.settings.marker.encode())

    def decrypt(self, relpath: str, content: bytes) -> DecryptedFile:
        return DecryptedFile(relpath, "binary", [], Secret(content, relpath), "marker", ("marker-key",))


class MarkerPlugin:
    @hookimpl
    def setpoint_register_decryptors(self, register: Any) -> None:
        register(Marker)


def registry() -> Registry:
    return get_plugin_manager(load_entrypoints=False, extra_plugins=[MarkerPlugin()])


def test_secrets_check_and_the_decrypt_stage_see_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("setpoint.decryption.MAX_ENCRYPTED_SIZE", 100)
    monkeypatch.setattr(secret_check, "get_plugin_manager", registry)
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "app" / "db.enc").write_bytes(b"ENC:password")
    (root / "app" / "plain.txt").write_bytes(b"hello")
    (root / "app" / "dump.enc").write_bytes(b"ENC:" + b"x" * 200)  # over the size limit: never inspected
    (root / ".git" / "stash.enc").write_bytes(b"ENC:old")
    os.symlink(root / "app" / "db.enc", root / "app" / "link.enc")  # a symlink is never followed
    decryptors, problems = build_decryptors(registry(), None)
    assert problems == []
    staged = set(decrypt_tree(root, decryptors))
    checked = {str(Path(r.path).relative_to(root)) for r in secret_check.check_path(root, None)}
    assert staged == checked == {"app/db.enc"}


def test_validate_and_the_engine_read_a_secrets_block_the_same_way(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"app/x": "1"}, "v1")
    config_path = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "files", "path": "app",
                                                          "files": {"destination": str(tmp_path / "live")}}],
                               secrets={"marker": {"markr": "X:"}})
    problems = [str(p) for p in validate_all(config_path, registry())]
    assert len(problems) == 1 and "markr" in problems[0]
    built = [str(p) for p in build_decryptors(registry(), load_config(config_path))[1]]
    assert built == problems
    with pytest.raises(ConfigError) as raised:
        make_engine(config_path, MarkerPlugin())
    assert str(raised.value) == problems[0]
