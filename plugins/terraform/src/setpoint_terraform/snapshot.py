"""Render: the module at one revision, as an immutable snapshot held in memory.

The snapshot keeps file contents (decrypted ones as :class:`Secret`), not paths: the core may hand
the driver a temporary copy of the tree (output substitution) that is gone after render, and a
snapshot can be written into a fresh private directory whenever the working copy must be rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from setpoint.api import SourceTree
from setpoint.errors import RenderError
from setpoint.secrets import Secret, iter_secrets
from setpoint_terraform.hcl import HclSyntaxError, ModuleScan, scan, unquote
from setpoint_terraform.settings import TerraformSettings

#: Never copied from Git into the working copy: terraform's own data and stray local state.
_SKIP_PARTS = {".terraform", ".git"}


@dataclass(frozen=True)
class ModuleSnapshot:
    #: The root module's directory, relative to the checkout ("" for the checkout root).
    root: str
    #: Plain files, checkout-relative path -> content.
    files: Mapping[str, bytes]
    #: Decrypted files (SOPS var files, files with substituted sensitive outputs).
    secret_files: Mapping[str, Secret[bytes]]
    #: ``-var-file`` arguments, checkout-relative, in order (settings.variables come last).
    var_files: tuple[str, ...]
    variables: Mapping[str, Any]
    #: Clear texts of every decrypted value, to redact them wherever terraform echoes them.
    secret_texts: frozenset[str]
    scan: ModuleScan
    #: Changes when anything that decides the plan changes (secrets by fingerprint).
    digest: str
    revision: str
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _join(*parts: str) -> str:
    path = posixpath.normpath(posixpath.join(*[p for p in parts if p not in ("", ".")] or ["."]))
    return "" if path == "." else path


def _skip(relpath: str) -> bool:
    return any(part in _SKIP_PARTS for part in relpath.split("/"))


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _secret_texts(relpath: str, documents: list[Any], plaintext: Secret[bytes]) -> set[str]:
    """Every clear value a decrypted file holds: its secret leaves, or for a whole-file encrypted
    ``.tfvars`` (sops' binary store) the values python-hcl2 finds in it."""
    texts = {str(s.reveal()) for s in iter_secrets(documents)}
    if not texts and relpath.endswith(".tfvars"):
        try:
            parsed = hcl2.loads(plaintext.reveal().decode("utf-8", errors="replace"))
        except Exception:  # noqa: BLE001 - terraform reports a broken var file itself
            parsed = {}
        texts = {str(unquote(v)) for v in _leaves(parsed) if v is not None and not isinstance(v, bool)}
    return {t for t in texts if t}


def build(tree: SourceTree, target_path: str, settings: TerraformSettings,
          confirm_syntax: Callable[[str, bytes], str | None],
          dependency_secrets: Iterable[str] = ()) -> ModuleSnapshot:
    """Read the module (and its local modules) at ``tree``'s revision; raise RenderError for
    syntax errors (file and line), a missing module or var file, or a module outside the repo."""
    base = _join(target_path)
    root = _join(base, settings.module)
    files: dict[str, bytes] = {}
    secret_files: dict[str, Secret[bytes]] = {}
    texts: set[str] = set(dependency_secrets)
    for rel in tree.files():
        path = _join(base, rel)
        if _skip(path):
            continue
        if tree.is_encrypted(rel):
            decrypted = tree.decrypted[rel]
            secret_files[path] = decrypted.plaintext
            texts |= _secret_texts(rel, decrypted.documents, decrypted.plaintext)
        else:
            files[path] = tree.read_bytes(rel)
    prefix = root + "/" if root else ""
    if not any(p.startswith(prefix) and "/" not in p[len(prefix):] and (p.endswith(".tf") or p.endswith(".tf.json"))
               for p in [*files, *secret_files]):
        raise RenderError(f"no Terraform files (*.tf) in module {root or '.'} at revision {tree.revision.short}")
    for path, secret in secret_files.items():
        if path.endswith(".tf") or path.endswith(".tf.json"):
            files.setdefault(path, secret.reveal())  # parsed for discovery only; written from secret_files
    try:
        result = scan(root, files, confirm_syntax)
    except HclSyntaxError as exc:
        raise RenderError(str(exc)) from None
    for path in list(files):
        if path in secret_files:
            del files[path]
    # local modules outside the target's folder come from the checkout (the core decrypts only the target)
    checkout = Path(tree.checkout)
    for directory in result.local_modules:
        inside = not base or directory == base or directory.startswith(base + "/")
        if inside:
            continue
        source = checkout / directory
        if not source.is_dir():
            raise RenderError(f"local module {directory} does not exist at revision {tree.revision.short}")
        for item in sorted(source.rglob("*")):
            rel = item.relative_to(checkout).as_posix()
            if item.is_file() and not _skip(rel):
                files[rel] = item.read_bytes()
    var_files = []
    for name in settings.var_files:
        path = _join(root, name)
        if path not in files and path not in secret_files:
            raise RenderError(f"var file {name} (terraform.var_files) does not exist in {root or '.'} "
                              f"at revision {tree.revision.short}")
        var_files.append(path)
    digest = _digest(root, files, secret_files, var_files, settings)
    warnings = tuple(f"{p}: python-hcl2 could not parse it (terraform accepts it); local modules found by pattern"
                     for p in result.unparsed)
    return ModuleSnapshot(root, files, secret_files, tuple(var_files), dict(settings.variables),
                          frozenset(t for t in texts if t), result, digest, tree.revision.sha, warnings)


def _digest(root: str, files: Mapping[str, bytes], secret_files: Mapping[str, Secret[bytes]],
            var_files: list[str], settings: TerraformSettings) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\0".encode())
    for path in sorted(secret_files):
        h.update(f"{path}\0{secret_files[path].fingerprint()}\0".encode())
    h.update(json.dumps({"root": root, "var_files": var_files, "variables": settings.variables,
                         "workspace": settings.workspace, "backend_config": settings.backend_config},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()
