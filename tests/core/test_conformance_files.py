"""The built-in ``files`` target passes the driver conformance suite (setpoint.testing.conformance)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from setpoint.testing.conformance import ConformanceAdapter, Encrypt, TargetConformance, corrupt_encrypted


class FilesAdapter(ConformanceAdapter):
    """One file per resource, named after it, holding its value; a README the target excludes keeps
    the folder in Git when there are no resources."""

    kind = "files"

    def __init__(self, workdir: Path) -> None:
        self.destination = workdir / "live"

    def settings(self) -> dict[str, Any]:
        return {"destination": str(self.destination), "exclude": ["README.md"]}

    def files(self, values: Mapping[str, str]) -> dict[str, str | bytes]:
        return {"README.md": "managed by setpoint\n", **{f"{name}.conf": value for name, value in values.items()}}

    def secret_files(self, values: Mapping[str, str], secret_name: str, encrypt: Encrypt) -> dict[str, str | bytes]:
        files: dict[str, str | bytes] = dict(self.files({k: v for k, v in values.items() if k != secret_name}))
        files[f"{secret_name}.conf"] = encrypt(values[secret_name])
        return files

    def broken_files(self) -> dict[str, str | bytes]:
        return {"broken.conf": corrupt_encrypted()}  # every file is valid input to this kind

    def read_live(self) -> dict[str, str]:
        if not self.destination.exists():
            return {}
        return {p.name.removesuffix(".conf"): p.read_text() for p in self.destination.glob("*.conf")}

    def change_by_hand(self, name: str, value: str) -> None:
        (self.destination / f"{name}.conf").write_text(value)

    def delete_by_hand(self, name: str) -> None:
        (self.destination / f"{name}.conf").unlink()

    def create_by_hand(self, name: str, value: str) -> None:
        self.destination.mkdir(parents=True, exist_ok=True)
        (self.destination / f"{name}.conf").write_text(value)


class TestFilesConformance(TargetConformance):
    @pytest.fixture
    def adapter(self, tmp_path: Path) -> FilesAdapter:
        return FilesAdapter(tmp_path)
