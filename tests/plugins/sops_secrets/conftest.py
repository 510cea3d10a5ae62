"""Fixtures for the SOPS decryptor tests: the shared vectors, a GnuPG home with their keys, the sops binary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sops_expect import VECTORS


def _require(what: str, hint: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI ({hint})")
    pytest.skip(f"{what} is missing: {hint}")


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not (VECTORS / "index.json").is_file():
        pytest.fail(f"the SOPS vectors are missing from the repository ({VECTORS})")
    return VECTORS


@pytest.fixture(scope="session")
def gpg_binary() -> str:
    gpg = shutil.which("gpg")
    if gpg is None:
        _require("gpg", "apt-get install gnupg, or run dev/services up sops")
    assert gpg is not None
    return gpg


@pytest.fixture(scope="session")
def vector_gnupg_home(tmp_path_factory: pytest.TempPathFactory, vectors: Path, gpg_binary: str) -> Any:
    """A GnuPG home holding every PGP test key of the vectors (none has a passphrase)."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    for key in sorted(vectors.glob("*/keys/*.asc")):
        subprocess.run([gpg_binary, "--homedir", str(home), "--batch", "--import", str(key)],
                       capture_output=True, check=True, timeout=60)
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False, timeout=30)


@pytest.fixture(scope="session")
def sops_binary() -> str:
    """The real sops, from SETPOINT_SOPS_BIN (dev/services up sops) or PATH."""
    candidate = os.environ.get("SETPOINT_SOPS_BIN") or shutil.which("sops")
    if not candidate or not os.access(candidate, os.X_OK):
        _require("the sops binary", "run dev/services up sops")
    assert candidate is not None
    return candidate
