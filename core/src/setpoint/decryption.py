"""Which files are encrypted and the decryptors that read them: one builder and one walker, shared
by the reconcile's decrypt stage, ``setpoint validate`` and ``setpoint secrets check``, so the three
never disagree about which files are secrets or how a ``secrets:`` block is read."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from setpoint.api import Decryptor
from setpoint.config import Config, Problem, config_line_index, validate_block

if TYPE_CHECKING:
    from setpoint.plugins import Registry

#: Encrypted files are text or small binaries; larger files are never inspected.
MAX_ENCRYPTED_SIZE = 64 * 1024 * 1024


def build_decryptors(registry: Registry, config: Config | None,
                     overrides: Mapping[str, Mapping[str, Any]] | None = None,
                     loc: tuple[Any, ...] = ("secrets",)) -> tuple[list[Decryptor], list[Problem]]:
    """One instance of every registered decryptor, configured from the ``secrets:`` block (with a
    target's ``overrides`` merged over it), and the problems of the blocks that do not validate
    (their decryptors are left out)."""
    file = str(config.file) if config is not None else "setpoint.yaml"
    index = config_line_index(config.file) if config is not None else {}
    decryptors: list[Decryptor] = []
    problems: list[Problem] = []
    for name, cls in sorted(registry.decryptors.items()):
        block = {**(config.secrets.get(name, {}) if config is not None else {}), **(overrides or {}).get(name, {})}
        settings, found = validate_block(cls.Settings, block, file, index, (*loc, name))
        if found:
            problems.extend(found)
            continue
        decryptors.append(cls(settings))
    return decryptors, problems


def candidate_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file under ``root`` a decryptor may look at, as (path relative to ``root``, path), in a
    stable order: regular files only (a symlink is never followed), nothing inside a ``.git``
    folder, nothing larger than :data:`MAX_ENCRYPTED_SIZE`."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_ENCRYPTED_SIZE:
                continue
            yield str(path.relative_to(root)), path
