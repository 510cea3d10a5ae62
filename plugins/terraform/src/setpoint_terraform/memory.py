"""What the driver remembers across restarts (next to the working directory, no secrets)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Memory:
    #: Snapshot digest of the last revision that was fully applied (or planned with no changes):
    #: with the same digest, any change Terraform plans is drift.
    synced_digest: str | None = None
    #: State serial/lineage setpoint last left the state at; another serial means someone else wrote it.
    serial: int | None = None
    lineage: str | None = None
    #: Plan ids terraform refused as stale: a re-plan with the same content gets a new id.
    stale_ids: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Memory:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)
