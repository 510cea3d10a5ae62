"""Reviewed plan files, kept in the target's state folder so that an approval survives a restart.

A plan that may wait for approval is pinned under its id: the saved plan file plus a record of what
it was made against (state serial and lineage, the module snapshot's digest) and the file's SHA-256,
the record signed with an HMAC key kept beside it. ``setpoint approve`` then ``setpoint sync`` in a
new process applies exactly that file, after checking that

* the record and the file are intact (a changed or swapped file is never applied), and
* the state and the module are still those the plan was reviewed against (else it is stale).

Saved plans hold sensitive values in clear, like the state: the folder is 0700, files are 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: How many reviewed plan files to keep for approval.
KEEP = 8


class TamperedPlan(Exception):
    """A pinned plan's record or file does not match its signature or digest."""


@dataclass(frozen=True)
class Pinned:
    plan_id: str
    content_id: str
    sha256: str
    serial: int | None
    lineage: str | None
    snapshot_digest: str
    pinned_at: float

    def stale_reason(self, serial: int | None, lineage: str | None, snapshot_digest: str) -> str | None:
        """Why this reviewed plan no longer applies to the current state and module, if it does not."""
        if lineage != self.lineage:
            return f"the state's lineage changed after plan {self.plan_id} was reviewed (another state?)"
        if serial != self.serial:
            return (f"the state changed after plan {self.plan_id} was reviewed (serial {self.serial} -> {serial}; "
                    "another apply against the same state?)")
        if snapshot_digest != self.snapshot_digest:
            return (f"the module or its inputs changed after plan {self.plan_id} was reviewed "
                    "(a new revision, var file, variable or secret)")
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class HeldPlans:
    """``<state_dir>/terraform/plans``: ``<id>.tfplan`` and its signed record ``<id>.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _ensure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)

    def _key(self) -> bytes:
        path = self.folder / ".key"
        try:
            key = path.read_bytes()
            if len(key) >= 32:
                return key
        except FileNotFoundError:
            pass
        self._ensure()
        key = secrets.token_bytes(32)
        _write_private(path, key)
        return key

    def _sign(self, record: dict[str, object]) -> str:
        blob = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._key(), blob, hashlib.sha256).hexdigest()

    def plan_file(self, plan_id: str) -> Path:
        return self.folder / f"{plan_id}.tfplan"

    def pin(self, plan_id: str, source: Path, *, content_id: str, serial: int | None, lineage: str | None,
            snapshot_digest: str) -> None:
        """Keep ``source`` as the reviewed file of ``plan_id`` (once: a re-plan with the same id
        keeps the file that was reviewed first)."""
        if (self.folder / f"{plan_id}.json").exists() and self.plan_file(plan_id).exists():
            return
        self._ensure()
        target = self.plan_file(plan_id)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o600)
        os.replace(tmp, target)
        record = asdict(Pinned(plan_id, content_id, _sha256(target), serial, lineage, snapshot_digest, time.time()))
        _write_private(self.folder / f"{plan_id}.json",
                       json.dumps({"record": record, "hmac": self._sign(record)}, sort_keys=True).encode())
        self._prune()

    def get(self, plan_id: str) -> Pinned | None:
        """The intact pinned plan, None if there is none, :class:`TamperedPlan` if it was changed."""
        meta, plan = self.folder / f"{plan_id}.json", self.plan_file(plan_id)
        if not meta.exists() and not plan.exists():
            return None
        try:
            doc = json.loads(meta.read_text())
            record = doc["record"]
            pinned = Pinned(**record)
        except (OSError, ValueError, KeyError, TypeError):
            raise TamperedPlan(f"the record of reviewed plan {plan_id} is missing or unreadable") from None
        if not hmac.compare_digest(str(doc.get("hmac", "")), self._sign(record)) or pinned.plan_id != plan_id:
            raise TamperedPlan(f"the record of reviewed plan {plan_id} does not match its signature")
        try:
            actual = _sha256(plan)
        except OSError:
            raise TamperedPlan(f"the saved file of reviewed plan {plan_id} is missing") from None
        if not hmac.compare_digest(actual, pinned.sha256):
            raise TamperedPlan(f"the saved file of reviewed plan {plan_id} changed after it was reviewed")
        return pinned

    def discard(self, plan_id: str) -> None:
        for name in (f"{plan_id}.tfplan", f"{plan_id}.json"):
            (self.folder / name).unlink(missing_ok=True)

    def _prune(self) -> None:
        records = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in records[:-KEEP]:
            self.discard(old.stem)

    # the reason the last approved plan was refused, shown with the plan held in its place

    def note_refusal(self, reason: str) -> None:
        self._ensure()
        _write_private(self.folder / "last-refusal.txt", reason.encode())

    def last_refusal(self) -> str | None:
        try:
            return (self.folder / "last-refusal.txt").read_text() or None
        except OSError:
            return None

    def clear_refusal(self) -> None:
        (self.folder / "last-refusal.txt").unlink(missing_ok=True)
