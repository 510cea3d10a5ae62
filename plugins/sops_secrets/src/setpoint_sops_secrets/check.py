"""``setpoint secrets check [PATH]``: does every SOPS file under a path decrypt and verify?

Results carry file names, formats, key labels and reasons, never values, so they can be printed
and used as a pre-merge check (any ``ok=False`` → non-zero exit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.errors import DecryptError
from setpoint_sops_secrets.api import coerce_settings
from setpoint_sops_secrets.keys import Keyring
from setpoint_sops_secrets.pipeline import decrypt
from setpoint_sops_secrets.settings import SopsSettings
from setpoint_sops_secrets.stores import detect_format

#: Directories never searched.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "__pycache__", ".terraform"})
#: Files larger than this are not read (sops files are small; this avoids reading build artefacts).
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CheckResult:
    path: str
    ok: bool
    format: str = ""
    keys_used: tuple[str, ...] = ()
    reason: str = ""

    def to_record(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "format": self.format, "keys_used": list(self.keys_used),
                "reason": self.reason}

    def describe(self) -> str:
        """One line for a terminal: ``OK  path (yaml; age:age1...)`` or ``FAIL path: reason``."""
        if self.ok:
            return f"OK    {self.path} ({self.format}; {', '.join(self.keys_used)})"
        return f"FAIL  {self.path}: {self.reason}"


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            yield Path(directory) / name


def check_tree(
    path: str | os.PathLike[str], settings: SopsSettings | Mapping[str, Any] | None = None
) -> list[CheckResult]:
    """Decrypt every SOPS file (found by content) under ``path`` and verify its MAC.

    Paths in the results are relative to ``path`` (or the file name when ``path`` is a file).
    Files that are not SOPS files are skipped. Decrypted data is discarded immediately.
    """
    root = Path(path)
    keyring = Keyring.load(coerce_settings(settings))
    results: list[CheckResult] = []
    for file in _walk(root):
        rel = file.name if root.is_file() else str(file.relative_to(root))
        try:
            if file.is_symlink() or not file.is_file() or file.stat().st_size > MAX_FILE_BYTES:
                continue
            content = file.read_bytes()
        except OSError:
            continue
        store_format = detect_format(rel, content)
        if store_format is None:
            continue
        try:
            result = decrypt(rel, content, keyring, store_format)
        except DecryptError as exc:
            results.append(CheckResult(rel, False, store_format, (), exc.reason))
            continue
        results.append(CheckResult(rel, True, result.format, result.keys_used))
        del result
    return results
