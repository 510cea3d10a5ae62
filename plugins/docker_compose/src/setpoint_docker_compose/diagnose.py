"""Compose's render errors, pointed at the file and line in the repository.

``docker compose config`` runs on a private copy of the folder (/dev/shm/setpoint-tree-…), so its
messages name paths nobody can open, and its YAML parser reports the line where the enclosing
mapping began ("yaml: line 2: did not find expected key" for a mistake on line 47). A rejected
project is therefore explained again from the user's own files: the private paths are replaced by
the repository path, a YAML error is located by PyYAML (line and column, never the text of the
line, which may hold a decrypted value), and an undefined ``depends_on`` names the file and line of
the service that declares it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

#: Compose's default file names, in its lookup order (used when the target names no files).
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml",
                 "compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
                 "docker-compose.override.yaml")

_SERVICE_REF = re.compile(r'service "([^"]+)" (?:depends on|refers to) undefined')


def compose_files(project_dir: Path, named: Iterable[Path]) -> list[Path]:
    files = list(named)
    if files:
        return files
    return [project_dir / name for name in DEFAULT_FILES if (project_dir / name).is_file()]


def explain(message: str, files: list[tuple[str, str]], private_roots: Iterable[str], repo_folder: str) -> str:
    """A better message for a failed ``docker compose config``.

    ``files`` are the compose files as (repository path, text) pairs -- plain files only, so no
    secret is parsed here; ``private_roots`` are the private copy's paths, replaced by ``repo_folder``.
    """
    for root in sorted(set(private_roots), key=len, reverse=True):
        message = message.replace(root.rstrip("/") + "/", f"{repo_folder}/").replace(root, repo_folder)
    if "yaml:" in message:  # Compose's parser failed: find the real line (its own is the mapping's start)
        for relpath, text in files:
            located = _yaml_error(relpath, text)
            if located:
                return located
    match = _SERVICE_REF.search(message)
    if match:
        for relpath, text in files:
            line = _service_line(text, match[1])
            if line:
                return f"{relpath}:{line}: {message}"
    return message


def _yaml_error(relpath: str, text: str) -> str | None:
    try:
        for _ in yaml.compose_all(text, Loader=yaml.SafeLoader):
            pass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{relpath}:{mark.line + 1}:{mark.column + 1}" if mark else relpath
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        return f"{where}: invalid YAML: {what}"
    except yaml.YAMLError as exc:
        return f"{relpath}: invalid YAML: {type(exc).__name__}"
    return None


def _service_line(text: str, service: str) -> int | None:
    """The line (1-based) of ``services.<service>`` in a compose file, None when not declared there."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if key.value == "services" and isinstance(value, yaml.MappingNode):
            for name, spec in value.value:
                if name.value == service:
                    for field, _ in spec.value if isinstance(spec, yaml.MappingNode) else []:
                        if field.value == "depends_on":
                            return int(field.start_mark.line) + 1
                    return int(name.start_mark.line) + 1
    return None
