"""Render: the target's folder at one revision as an Ansible project (a private copy), its digest,
its extra vars and the secret values that must never show in a diff."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from setpoint.api import SourceTree
from setpoint.errors import RenderError
from setpoint.secrets import Secret, iter_secrets, register_known_values, reveal_all
from setpoint_ansible.runner import Project
from setpoint_ansible.settings import AnsibleSettings

#: Values shorter than this are only redacted where a whole field equals them (a one-character
#: secret would otherwise hide every diff).
MIN_SECRET_LENGTH = 4


@dataclass
class Snapshot:
    """One revision of the project: where its private copy is, and what identifies it."""

    project: Project
    digest: str
    secret_texts: frozenset[str] = field(default_factory=frozenset)

    def remove(self) -> None:
        shutil.rmtree(self.project.directory.parent, ignore_errors=True)


def build(tree: SourceTree, settings: AnsibleSettings) -> Snapshot:
    """Check the playbook, inventory and vars files, copy the folder (decrypted files in clear, 0600,
    on tmpfs) to a private directory, and compute the digest of everything a run depends on."""
    playbook = _parse_yaml(tree, settings.playbook, "playbook")
    if not isinstance(playbook, list) or not playbook:
        raise RenderError(f"{settings.playbook}: a playbook is a YAML list of plays")
    if settings.inventory is not None and not (tree.root / settings.inventory).exists():
        raise RenderError(f"inventory {settings.inventory} does not exist in the target's folder at "
                          f"{tree.revision.short}")
    extra: list[Mapping[str, Any]] = []
    for path in settings.vars_files:
        data = _parse_yaml(tree, path, "vars file")
        if not isinstance(data, Mapping):
            raise RenderError(f"{path}: a vars file must be a YAML mapping of variable names")
        extra.append(reveal_all(data))
    if settings.extra_vars:
        extra.append(dict(settings.extra_vars))
    secrets: set[str] = set()
    for decrypted in tree.decrypted.values():
        for secret in iter_secrets(decrypted.documents):
            value = secret.reveal()
            if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
                secrets.add(str(value))
    register_known_values(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
    digest = _digest(tree, settings)
    scratch = private_tempdir("setpoint-ansible-project-")
    try:
        with tree.materialize() as clear:
            shutil.copytree(clear, scratch / "project", symlinks=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    project = Project(scratch / "project", settings.playbook, settings.inventory, settings.hosts, extra)
    return Snapshot(project, digest, frozenset(secrets))


def private_tempdir(prefix: str) -> Path:
    """A 0700 directory on tmpfs (/dev/shm) where there is one: decrypted files stay off disk."""
    shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a private 0700 directory in it
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o700)
    return path


def _parse_yaml(tree: SourceTree, path: str, what: str) -> Any:
    if not (tree.root / path).is_file():
        raise RenderError(f"{what} {path} does not exist in the target's folder at {tree.revision.short}")
    if tree.is_encrypted(path):
        decrypted = tree.decrypted[path]
        return decrypted.data
    try:
        return yaml.safe_load(tree.read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RenderError(f"{path}{where}: {problem}") from None


def _digest(tree: SourceTree, settings: AnsibleSettings) -> str:
    """Changes with any file of the folder, any decrypted value (by salted fingerprint) and the settings."""
    h = hashlib.sha256()
    for relpath in tree.files():
        h.update(relpath.encode() + b"\0")
        if tree.is_encrypted(relpath):
            h.update(tree.decrypted[relpath].plaintext.fingerprint().encode())
        else:
            h.update(hashlib.sha256((tree.root / relpath).read_bytes()).digest())
    h.update(json.dumps(settings.model_dump(mode="json"), sort_keys=True, default=str).encode())
    return h.hexdigest()


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every string that is or contains a secret value wrapped as a :class:`Secret`."""
    texts = list(secrets)
    if isinstance(value, Mapping):
        return {k: redact(v, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, texts) for v in value]
    if isinstance(value, str) and any(value == s or (len(s) >= MIN_SECRET_LENGTH and s in value) for s in texts):
        return Secret(value)
    return value
