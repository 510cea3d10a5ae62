"""What the driver remembers across restarts, kept in setpoint's state store (``context.memory``; no secrets)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from setpoint.api import TargetMemory

#: The context.memory key (a file ``setpoint.json`` in the working directory before).
MEMORY_KEY = "terraform"


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
    def load(cls, memory: TargetMemory) -> Memory:
        data = memory.get(MEMORY_KEY)
        if not isinstance(data, dict):
            return cls()
        try:
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except TypeError:
            return cls()

    def save(self, memory: TargetMemory) -> None:
        memory.set(MEMORY_KEY, asdict(self))
