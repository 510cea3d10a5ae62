"""The smallest part of the plugin API, importable without the rest: the status values and
:class:`Revision`. :mod:`setpoint.api` re-exports them (plugins import them from there); the state
store reads them from here, so ``setpoint status`` and ``audit`` never load the whole API."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class SyncStatus(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class HealthStatus(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MISSING = "Missing"
    UNKNOWN = "Unknown"

    @classmethod
    def worst(cls, statuses: Collection[HealthStatus]) -> HealthStatus:
        """The most severe of several statuses (an empty collection is Healthy)."""
        order = [cls.DEGRADED, cls.MISSING, cls.PROGRESSING, cls.UNKNOWN, cls.HEALTHY]
        for status in order:
            if status in statuses:
                return status
        return cls.HEALTHY


@dataclass(frozen=True)
class Revision:
    """One Git commit as the core saw it."""

    sha: str
    author: str = ""
    author_email: str = ""
    committer: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    message: str = ""

    @property
    def short(self) -> str:
        return self.sha[:12]

    @property
    def subject(self) -> str:
        return self.message.splitlines()[0] if self.message else ""
