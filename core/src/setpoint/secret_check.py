"""``setpoint secrets check``: every encrypted file under a path must decrypt and verify.

Works with any registered decryptor; prints names, key identities and results, never values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from setpoint.config import Config
from setpoint.decryption import build_decryptors, candidate_files
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
    """Decrypt every encrypted file under ``root`` (or ``root`` itself, a file) with the configured
    decryptors; the files considered are exactly those a reconcile would decrypt."""
    decryptors, problems = build_decryptors(get_plugin_manager(), config)
    if problems:
        raise DecryptError(problems[0].path, "; ".join(p.message for p in problems))
    results: list[CheckResult] = []
    if root.is_file() and not root.is_symlink():
        candidates = [(str(root), root)]
    else:
        candidates = [(str(root / relpath), path) for relpath, path in candidate_files(root)]
    for relpath, path in candidates:
        content = path.read_bytes()
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
