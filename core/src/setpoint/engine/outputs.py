"""Outputs of one target used by another: ``${setpoint:TARGET.OUTPUT}`` in a dependant's files.

A Terraform target publishes ``db_host``; a Compose or Kubernetes target that ``depends_on`` it
writes ``${setpoint:prod-network.db_host}`` in its files. Before render the core substitutes the
values into a private copy of the target's folder. A value that is a :class:`Secret` (a sensitive
output) never reaches disk: the file keeps its placeholder on disk and the substituted text is
handed to the driver as a decrypted file, with the affected YAML/JSON leaves wrapped as secrets.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from setpoint.api import DecryptedFile, _private_tempdir
from setpoint.errors import RenderError
from setpoint.secrets import Secret, to_jsonable

PATTERN = re.compile(rb"\$\{setpoint:([a-z0-9][a-z0-9._-]*?)\.([A-Za-z0-9_][A-Za-z0-9_-]*)\}")
#: Only text files up to this size are searched for references.
MAX_SIZE = 4 * 1024 * 1024


def outputs_digest(outputs: Mapping[str, Mapping[str, Any]]) -> str:
    """Changes when any dependency output changes (secrets by fingerprint)."""
    blob = json.dumps(to_jsonable(outputs), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def is_stored_secret(value: Any) -> bool:
    """A sensitive output as the state store keeps it: only its fingerprint, not usable as a value."""
    return isinstance(value, dict) and set(value) == {"secret"}


def has_stored_secrets(outputs: Mapping[str, Any]) -> bool:
    return any(is_stored_secret(v) for v in outputs.values())


def _text(value: Any) -> tuple[str, bool]:
    if isinstance(value, Secret):
        inner, _ = _text(value.reveal())
        return inner, True
    if isinstance(value, str):
        return value, False
    return json.dumps(value), False


def _wrap_secret_leaves(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _wrap_secret_leaves(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap_secret_leaves(v, secrets) for v in value]
    if isinstance(value, str) and any(s and s in value for s in secrets):
        return Secret(value, origin="output")
    return value


def substitute(root: Path, target: str, dependencies: tuple[str, ...],
               outputs: Mapping[str, Mapping[str, Any]]) -> tuple[Path, dict[str, DecryptedFile]] | None:
    """Substitute references under ``root``. Returns ``(private copy, secret files)``, or None when
    no file references an output (the checkout is then used as is). The caller removes the copy."""
    replacements: dict[str, bytes] = {}
    secret_files: dict[str, DecryptedFile] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.stat().st_size > MAX_SIZE:
            continue
        content = path.read_bytes()
        if b"${setpoint:" not in content or b"\0" in content:
            continue
        relpath = str(path.relative_to(root))
        secrets_used: list[str] = []

        def replace(match: re.Match[bytes], relpath: str = relpath, secrets_used: list[str] = secrets_used) -> bytes:
            dep, name = match.group(1).decode(), match.group(2).decode()
            if dep not in dependencies:
                raise RenderError(f"{relpath}: ${{setpoint:{dep}.{name}}} refers to {dep!r}, which target "
                                  f"{target!r} does not depend on (add it to depends_on)")
            values = outputs.get(dep) or {}
            if name not in values:
                known = ", ".join(sorted(values)) or "none yet"
                raise RenderError(f"{relpath}: target {dep!r} has no output {name!r} (outputs: {known})")
            value = values[name]
            if is_stored_secret(value):
                raise RenderError(f"{relpath}: the sensitive output {dep}.{name} is only available after {dep!r} "
                                  "was reconciled by this process; sync it first")
            text, secret = _text(value)
            if secret:
                secrets_used.append(text)
            return text.encode()

        substituted = PATTERN.sub(replace, content)
        if secrets_used:
            documents: list[Any] = []
            if path.suffix in (".yaml", ".yml", ".json"):
                try:
                    documents = [_wrap_secret_leaves(d, secrets_used) for d in yaml.safe_load_all(substituted)]
                except yaml.YAMLError:
                    documents = []
            secret_files[relpath] = DecryptedFile(relpath, "text", documents, Secret(substituted, relpath), "outputs")
        else:
            replacements[relpath] = substituted
    if not replacements and not secret_files:
        return None
    copy = _private_tempdir("setpoint-outputs-") / "tree"
    shutil.copytree(root, copy, symlinks=True)
    for relpath, data in replacements.items():
        target_path = copy / relpath
        target_path.chmod(0o600)
        target_path.write_bytes(data)
    return copy, secret_files
