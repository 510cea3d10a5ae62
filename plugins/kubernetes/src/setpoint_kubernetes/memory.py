"""What the driver remembers across restarts: small JSON documents in its state directory.

Each document is one file, replaced atomically. The names (``applied-digests``, ``watched-paths``)
are the keys they would have in a per-target key-value memory kept by the core.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any


class DriverMemory:
    def __init__(self, directory: Path, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self.directory = directory
        self.logger = logger

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def get(self, name: str) -> Any:
        """The stored document, or None when there is none (or it cannot be read)."""
        try:
            return json.loads(self._path(name).read_text())
        except (OSError, ValueError):
            return None

    def put(self, name: str, value: Any) -> None:
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(value, sort_keys=True))
            os.replace(tmp, path)
        except OSError as exc:
            self.logger.warning("could not save %s: %s", path, exc)
