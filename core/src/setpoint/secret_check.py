"""``setpoint secrets check``: every encrypted file under a path must decrypt and verify.

Works with any registered decryptor; prints names, key identities and results, never values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.config import Config, validate_block
from setpoint.errors import DecryptError
from setpoint.plugins import get_plugin_manager
from setpoint.secrets import safe_error


@dataclass
class CheckResult:
    path: str
    decryptor: str
    ok: bool
    keys_used: list[str] = field(default_factory=list)
    reason: str = ""


def check_path(root: Path, config: Config | None) -> list[CheckResult]:
    registry = get_plugin_manager()
    decryptors: list[Any] = []
    for name, cls in sorted(registry.decryptors.items()):
        block = config.secrets.get(name, {}) if config is not None else {}
        settings, problems = validate_block(cls.Settings, block, "setpoint.yaml", {}, ("secrets", name))
        if problems:
            raise DecryptError(name, "; ".join(p.message for p in problems))
        decryptors.append(cls(settings))
    results: list[CheckResult] = []
    paths = [root] if root.is_file() else sorted(
        Path(d, f) for d, dirs, files in os.walk(root) for f in files if ".git" not in Path(d).parts)
    for path in paths:
        if path.is_symlink() or not path.is_file():
            continue
        content = path.read_bytes()
        relpath = str(path)
        for decryptor in decryptors:
            if not decryptor.detect(relpath, content):
                continue
            try:
                decrypted = decryptor.decrypt(relpath, content)
                results.append(CheckResult(relpath, decryptor.name, True, list(decrypted.keys_used)))
            except DecryptError as exc:
                results.append(CheckResult(relpath, decryptor.name, False, reason=exc.reason))
            except Exception as exc:  # noqa: BLE001
                results.append(CheckResult(relpath, decryptor.name, False, reason=safe_error(exc)))
            break
    return results
