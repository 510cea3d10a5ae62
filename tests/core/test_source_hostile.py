"""The Git source against hostile configuration and repositories: credentials paths with shell
syntax, export rules in .gitattributes, absolute links, empty, missing and non-Git repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.config import Credentials, SourceConfig
from setpoint.errors import SourceError
from setpoint.source.git import GitSource


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
