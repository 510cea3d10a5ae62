"""The typed contract between the core and plugins: data passed between stages and the driver bases.

A plugin implements :class:`TargetDriver` for one target kind (render, observe, diff, apply, health)
or :class:`Decryptor` for one encrypted-file format, and registers the class through the hooks in
:mod:`setpoint.hookspecs`. The core owns everything around them: Git, scheduling, drift policy,
prune safety, approval, audit and status. Plugins import from ``setpoint``, ``setpoint.api``,
``setpoint.errors``, ``setpoint.secrets`` and ``setpoint.testing`` only (checked by import-linter).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from setpoint.apicore import HealthStatus as HealthStatus
from setpoint.apicore import Revision as Revision
from setpoint.apicore import SyncStatus as SyncStatus
from setpoint.errors import SourceError
from setpoint.secrets import Secret, iter_secrets, to_jsonable

if TYPE_CHECKING:  # only in annotations: `setpoint status` and `audit` never import pydantic
    from pydantic import BaseModel

# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    message: str = ""
    resources: Mapping[str, HealthStatus] = field(default_factory=dict)


# --------------------------------------------------------------------------- source


@dataclass(frozen=True)
class DecryptedFile:
    """A file a :class:`Decryptor` opened. Every decrypted leaf is a :class:`Secret`.

    ``documents`` holds the parsed content with secret leaves (one entry per YAML document; one for
    JSON, dotenv and INI; none for binary). ``plaintext`` is the whole file as the encrypting tool
    would print it when decrypting, for drivers that need a real file (see
    :meth:`SourceTree.materialize`).
    """

    path: str
    format: str
    documents: list[Any]
    plaintext: Secret[bytes]
    decryptor: str = ""
    keys_used: tuple[str, ...] = ()

    @property
    def data(self) -> Any:
        return self.documents[0] if self.documents else None


def _private_tempdir(prefix: str) -> Path:
    """A 0700 directory, on tmpfs (/dev/shm) when the machine has one, so plaintext never touches disk."""
    shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a private 0700 directory in it; tmpfs keeps plaintext off disk
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o700)
    return path


@contextmanager
def private_directory(prefix: str = "setpoint-") -> Iterator[Path]:
    """A private scratch directory that is removed on exit, also on errors."""
    path = _private_tempdir(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


#: Target of the link the source writes in place of a symbolic link in Git that is absolute or
#: points outside the repository. It never resolves (/dev/null is not a folder), and
#: :meth:`SourceTree.files` refuses it: such a link stops only the targets whose path holds it.
REFUSED_LINK_PREFIX = "/dev/null/setpoint-refused-link:"


@dataclass(frozen=True)
class SourceTree:
    """The desired state of one target at one revision: a read-only checkout plus decrypted files.

    ``root`` is the target's ``path`` inside the checkout of ``revision``; ``checkout`` is the whole
    revision (for modules that reference ``../``). Encrypted files were already decrypted by the
    core's decrypt stage (fail closed: a file that does not decrypt stops the target before render)
    and are in ``decrypted``, keyed by their path relative to ``root``.
    """

    root: Path
    checkout: Path
    revision: Revision
    decrypted: Mapping[str, DecryptedFile] = field(default_factory=dict)

    def files(self, pattern: str = "**/*") -> list[str]:
        """Paths (relative to ``root``, sorted) of the regular files matching ``pattern``.

        Raises :class:`SourceError` for a symbolic link in Git that points outside the repository,
        and for a name that is not valid UTF-8.
        """
        found = []
        for path in self.root.glob(pattern):
            if path.is_symlink():
                _refuse_outside_link(path, self.root)
            if path.is_file():
                relpath = str(path.relative_to(self.root))
                try:
                    relpath.encode()
                except UnicodeEncodeError:
                    # Git allows any bytes in a name; the state store, the API and the audit log hold text.
                    shown = relpath.encode(errors="surrogateescape").decode(errors="backslashreplace")
                    raise SourceError(f"'{shown}' is not a valid UTF-8 file name; setpoint refuses it before "
                                      "anything is applied: rename it in Git") from None
                found.append(relpath)
        return sorted(found)

    def is_encrypted(self, relpath: str) -> bool:
        return relpath in self.decrypted

    def read_bytes(self, relpath: str) -> bytes:
        """Read a plain file. Reading an encrypted one this way is an error: use ``decrypted``."""
        if relpath in self.decrypted:
            raise SourceError(f"{relpath} is encrypted; use tree.decrypted[{relpath!r}] to read it")
        path = (self.root / relpath).resolve()
        if not (path.is_relative_to(self.checkout.resolve()) or path.is_relative_to(self.root.resolve())):
            raise SourceError(f"{relpath} points outside the repository")
        return path.read_bytes()

    def read_text(self, relpath: str) -> str:
        return self.read_bytes(relpath).decode()

    @contextmanager
    def materialize(self) -> Iterator[Path]:
        """Copy the target's directory into a private directory with encrypted files in clear.

        The directory is 0700 on tmpfs where available and removed when the ``with`` block ends,
        also on errors. Use it for tools that need real files (``docker compose``, ``terraform``).
        """
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                if os.path.islink(os.path.join(dirpath, name)):
                    _refuse_outside_link(Path(dirpath, name), self.root)
        with private_directory("setpoint-tree-") as scratch:
            dest = scratch / "tree"
            shutil.copytree(self.root, dest, symlinks=True)
            for relpath, decrypted in self.decrypted.items():
                target = dest / relpath
                fd = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(decrypted.plaintext.reveal())
                target.chmod(0o600)
            yield dest


def _refuse_outside_link(path: Path, root: Path) -> None:
    target = os.readlink(path)
    if target.startswith(REFUSED_LINK_PREFIX):
        raise SourceError(f"{path.relative_to(root)} is a symbolic link to "
                          f"{target.removeprefix(REFUSED_LINK_PREFIX)!r}, outside the repository; "
                          "setpoint refuses such links (they could read files of the host): "
                          "replace it with the file, or a relative link inside the repository")


# --------------------------------------------------------------------------- resources and plans


@dataclass
class Resource:
    """One managed object: a file, a Kubernetes object, a Compose service, a Terraform resource.

    ``key`` is its stable identity inside the target. ``body`` holds the fields setpoint compares
    (secret values as :class:`Secret`); ``meta`` holds driver data that is never compared
    (resource versions, container IDs).
    """

    key: str
    kind: str
    name: str
    body: dict[str, Any]
    namespace: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        """A digest of ``body`` that changes when any compared field changes (secrets via fingerprints)."""
        blob = json.dumps(to_jsonable(self.body), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Desired:
    """What a render produced: the resources, plus typed fields the core and the driver share."""

    resources: dict[str, Resource] = field(default_factory=dict)
    #: Untyped driver data, kept for drivers written before ``payload``; the core never reads or writes it.
    extra: dict[str, Any] = field(default_factory=dict)
    #: The commit the render was made from (set by the core after ``render`` if the driver did not).
    revision: str = ""
    #: Set by the core, not by a render: the target's folder was deleted in Git, so everything
    #: setpoint applied goes (through the deletion budget and approval). ``resources`` is empty.
    removed_from_git: bool = False
    #: The driver's own data for ``diff``/``apply`` (a parsed project, a saved plan); the core
    #: passes it through untouched.
    payload: Any = None

    @classmethod
    def of(cls, resources: Collection[Resource], *, revision: str = "", payload: Any = None,
           **extra: Any) -> Desired:
        return cls({r.key: r for r in resources}, dict(extra), revision=revision, payload=payload)


@dataclass
class Live:
    resources: dict[str, Resource] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: Collection[Resource], **extra: Any) -> Live:
        return cls({r.key: r for r in resources}, dict(extra))


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"


@dataclass(frozen=True)
class FieldChange:
    """One field that differs. ``path`` is dotted (``spec.replicas``, ``env.DB_PASSWORD``)."""

    path: str
    before: Any = None
    after: Any = None

    def to_record(self, secret: bool = False) -> dict[str, Any]:
        """A JSON-safe form; a secret field says only that it changed, with salted fingerprints.

        Secrecy is sticky: a value that is secret on either side (or, ``secret``, was secret when
        last applied) shows both sides as fingerprints, so the clear side cannot reveal the other."""
        if secret or isinstance(self.before, Secret) or isinstance(self.after, Secret):
            return {"path": self.path, "before": _fingerprinted(self.before), "after": _fingerprinted(self.after),
                    "secret": True}
        return {"path": self.path, "before": to_jsonable(self.before), "after": to_jsonable(self.after)}


def _fingerprinted(value: Any) -> Any:
    return None if value is None else to_jsonable(value if isinstance(value, Secret) else Secret(value))


def covers_secret(secret_paths: Collection[str], path: str) -> bool:
    """Whether field ``path`` is, holds or is inside one of ``secret_paths`` (dotted paths)."""
    return any(path == p or path.startswith(p + ".") or p.startswith(path + ".") or path == "(value)"
               for p in secret_paths)


def secret_paths(body: Any, path: str = "") -> set[str]:
    """The dotted paths of ``body`` that hold a :class:`Secret` (the field names diffs use)."""
    if isinstance(body, Secret):
        return {path or "(value)"}
    found: set[str] = set()
    if isinstance(body, Mapping):
        for key, value in body.items():
            found |= secret_paths(value, f"{path}.{key}" if path else str(key))
    elif isinstance(body, list | tuple) and any(True for _ in iter_secrets(body)):
        found.add(path or "(value)")  # diffs compare lists whole
    return found


@dataclass
class ResourceChange:
    key: str
    kind: str
    name: str
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    namespace: str | None = None
    #: Set by the core: the live object moved away from a desired state Git did not change.
    drift: bool = False
    #: Optional, set by a driver that can tell: who changed the live object outside setpoint (a
    #: Kubernetes field manager such as ``kubectl-scale``, a Docker event's actor). The core records
    #: it on ``drift-detected``; None means unknown ("changed outside setpoint"). Not part of the
    #: plan's identity (:meth:`to_record` leaves it out).
    changed_by: str | None = None
    #: Set by the core: field paths that held a secret when the object was applied. Secrecy is sticky:
    #: these fields are recorded as fingerprints even when neither side is secret any more.
    secret_paths: frozenset[str] = frozenset()

    def to_record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "action": str(self.action),
            "drift": self.drift,
            "fields": [f.to_record(covers_secret(self.secret_paths, f.path)) for f in self.fields],
        }


@dataclass
class Plan:
    """What apply would do. ``extra`` carries driver data (a saved Terraform plan, for example)."""

    changes: list[ResourceChange] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: A driver may fix the identity (Terraform: a digest of its saved plan); else derived from content.
    fixed_id: str | None = None

    @property
    def id(self) -> str:
        if self.fixed_id:
            return self.fixed_id
        blob = json.dumps([c.to_record() for c in sorted(self.changes, key=lambda c: c.key)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def deletions(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.action in (Action.DELETE, Action.REPLACE)]

    def without(self, keys: Collection[str]) -> Plan:
        return Plan([c for c in self.changes if c.key not in keys], dict(self.extra))

    def only(self, keys: Collection[str]) -> Plan:
        return Plan([c for c in self.changes if c.key in keys], dict(self.extra))

    def to_record(self) -> list[dict[str, Any]]:
        return [c.to_record() for c in self.changes]


@dataclass
class ApplyResult:
    """What apply did: keys applied, keys that failed with a (secret-free) reason."""

    applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed


# --------------------------------------------------------------------------- diffing helper


def diff_values(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Field-level differences between two JSON-like values (dicts recurse; lists compare whole).

    A secret compares by value; its change is reported with the secret values, which
    :meth:`FieldChange.to_record` turns into fingerprints.
    """
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes: list[FieldChange] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before:
                changes.append(FieldChange(sub, None, after[key]))
            elif key not in after:
                changes.append(FieldChange(sub, before[key], None))
            else:
                changes.extend(diff_values(before[key], after[key], sub))
        return changes
    if before == after and type(before) is type(after):
        return []
    return [FieldChange(path or "(value)", before, after)]


def diff_resources(desired: Desired, live: Live,
                   compare: Callable[[Resource, Resource], list[FieldChange]] | None = None,
                   deletable: Callable[[Resource], bool] | None = None) -> Plan:
    """The generic differ: create what is missing, update what differs, delete live keys not desired.

    ``compare(want, have)`` replaces the field-by-field comparison of ``body`` (a driver comparing
    only the fields it owns); ``deletable(have)`` can spare a live object from deletion (an opt-out
    annotation). The core removes deletions of objects it never applied and all deletions when prune
    is off, so a driver may report every live object it found.
    """
    changes: list[ResourceChange] = []
    for key, want in sorted(desired.resources.items()):
        have = live.resources.get(key)
        if have is None:
            fields = [FieldChange(k, None, v) for k, v in sorted(want.body.items())]
            changes.append(ResourceChange(key, want.kind, want.name, Action.CREATE, fields, want.namespace))
            continue
        fields = compare(want, have) if compare else diff_values(have.body, want.body)
        if fields:
            changes.append(ResourceChange(key, want.kind, want.name, Action.UPDATE, fields, want.namespace))
    for key, have in sorted(live.resources.items()):
        if key not in desired.resources and (deletable is None or deletable(have)):
            changes.append(ResourceChange(key, have.kind, have.name, Action.DELETE, [], have.namespace))
    return Plan(changes)


# --------------------------------------------------------------------------- drivers


@dataclass(frozen=True)
class TargetSpec:
    """The generic part of a target's configuration, as a driver may read it."""

    name: str
    kind: str
    source: str
    path: str
    prune: bool
    allow_empty: bool
    interval_seconds: float


class TargetMemory:
    """A target's small durable key-value memory, for what a driver must remember across restarts
    (digests it applied, a state serial, a restart count). Values are JSON (no :class:`Secret`).

    Under the engine (``context.memory``) it lives in setpoint's state store: reads see every
    earlier write at once; writes become durable together with the target's inventory after an
    apply and its status at the end of the reconcile, in the same transaction, so a crash never
    leaves the memory ahead of what setpoint recorded. This base class keeps values in the process
    only (for tests that build a driver by hand).
    """

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {k: self._encode(k, v) for k, v in (values or {}).items()}
        #: key -> encoded value, or None for a deletion; written by :meth:`flush`.
        self._pending: dict[str, str | None] = {}

    @staticmethod
    def _encode(key: str, value: Any) -> str:
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"memory[{key!r}]: only JSON values can be remembered ({exc})") from None

    def get(self, key: str, default: Any = None) -> Any:
        """A copy of the value remembered under ``key`` (changing it changes nothing until :meth:`set`)."""
        with self._lock:
            encoded = self._values.get(key)
        return default if encoded is None else json.loads(encoded)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._values

    def set(self, key: str, value: Any) -> None:
        encoded = self._encode(key, value)
        with self._lock:
            if self._values.get(key) == encoded:
                return
            self._values[key] = self._pending[key] = encoded

    def delete(self, key: str) -> None:
        with self._lock:
            if self._values.pop(key, None) is not None:
                self._pending[key] = None

    def adopt_file(self, key: str, path: Path) -> bool:
        """Move a JSON file a driver kept before this memory existed into ``key`` (once; the file is
        removed after the value is durable). A file that does not parse is left alone."""
        if not path.exists():
            return False
        if key not in self:
            try:
                value = json.loads(path.read_text())
            except (OSError, ValueError):
                return False
            self.set(key, value)
            self.flush()
        path.unlink(missing_ok=True)
        return True

    def has_pending(self) -> bool:
        """Writes not yet durable exist (the run must commit them). Core-internal."""
        with self._lock:
            return bool(self._pending)

    def take_pending(self) -> dict[str, str | None]:
        """The writes not yet durable (encoded; None: deleted), handed to the store. Core-internal."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def flush(self) -> None:
        """Make pending writes durable now (in-process memory: nothing to do)."""
        self.take_pending()

    def discard_pending(self) -> None:
        """Forget writes not yet durable (the run that made them failed before recording). Core-internal."""
        self.take_pending()


_T = TypeVar("_T")


class SharedScope:
    """Objects the drivers of one engine share, keyed as the plugin chooses (``context.shared``).

    For what would be wasteful per target: one watch of a cluster's kind for every target on that
    cluster, one connection pool. An entry lives as long as its engine: ``Engine.close()`` closes
    the scope, which calls ``close()`` on every entry that has one (newest first) and refuses new
    entries after. Nothing outlives its engine, and a new engine (a reload, the next one-shot
    command, the next test) starts with an empty scope. A driver built by hand gets a scope of its own.

    Keys should start with the plugin's name (``("kubernetes", "informer", ...)``): the scope is
    shared by every plugin of the engine.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, Any] = {}
        self._closed = False

    def get(self, key: Hashable, factory: Callable[[], _T]) -> _T:
        """The entry under ``key``, made by ``factory()`` (called under the scope's lock: keep it
        cheap, no I/O) if there is none yet. Raises RuntimeError once the scope is closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine that owned this shared scope is closed")
            if key not in self._entries:
                self._entries[key] = factory()
            return self._entries[key]  # type: ignore[no-any-return]

    def discard(self, key: Hashable, entry: object) -> None:
        """Forget ``key`` if it still holds ``entry`` (an entry that stopped itself; it is not closed here)."""
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every entry (newest first); an entry whose ``close()`` fails is logged and skipped."""
        with self._lock:
            self._closed = True
            entries, self._entries = list(self._entries.values()), {}
        for entry in reversed(entries):
            closer = getattr(entry, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception:  # noqa: BLE001 - the others are closed all the same
                    logging.getLogger("setpoint.engine").exception("closing a shared %s failed",
                                                                   type(entry).__name__)


@dataclass
class TargetContext:
    """What the core hands a driver when it creates it for one configured target."""

    spec: TargetSpec
    #: The kind's settings block, validated with the driver's ``Settings`` model (None without one).
    settings: Any
    #: A directory the driver may keep data in across runs and restarts (working dirs, caches).
    state_dir: Path
    logger: logging.Logger
    #: Wake this target now, e.g. from a live-state event stream; ``reason`` is recorded as the trigger.
    trigger: Callable[[str], None]
    #: Outputs published by the targets this one depends on: ``{target_name: {output: value}}``.
    dependency_outputs: Callable[[], Mapping[str, Mapping[str, Any]]] = lambda: {}
    #: The folder of setpoint.yaml: relative paths in settings resolve against it.
    config_dir: Path = Path(".")
    #: Ask health-check plugins (hook ``setpoint_check_health``) about one resource; None: no opinion.
    check_health: Callable[[Resource], Health | None] = lambda resource: None
    #: The target's durable key-value memory (see :class:`TargetMemory`).
    memory: TargetMemory = field(default_factory=TargetMemory)
    #: Say what a long step is doing while it runs (a Terraform apply, resource by resource): the
    #: message becomes the target's status message until the reconcile ends. No secrets.
    progress: Callable[[str], None] = lambda message: None
    #: Set for a preview's driver: ``state_dir`` is then a private copy of this folder, the target's
    #: real one. Paths a driver writes into the desired state (a Compose bind mount into its tree)
    #: must name the real folder, or a preview would show them all as changed; files are still read
    #: and written under ``state_dir`` only.
    stands_for: Path | None = None
    #: What this engine's drivers share (see :class:`SharedScope`); closed with the engine.
    shared: SharedScope = field(default_factory=SharedScope)
    #: A stable id of this setpoint installation (kept by its state store, the same for every
    #: replica and restart): lets a driver tell its own objects from another installation's.
    instance: str = "local"

    def resolve(self, path: str | Path) -> Path:
        """An absolute path for a path from the settings (``~`` expanded, relative to ``config_dir``)."""
        expanded = Path(os.path.expanduser(str(path)))
        return expanded if expanded.is_absolute() else (self.config_dir / expanded).resolve()


class TargetDriver(ABC):
    """Renders, observes, diffs, applies and checks the health of one configured target of a kind.

    The core creates one instance per configured target and calls its methods from one thread at a
    time for that target (never concurrently), in this order per reconcile:
    ``render`` → ``observe`` → ``diff`` → (core review) → ``apply`` → ``observe`` → ``health``.

    Raise :class:`setpoint.errors.RenderError` for bad desired state, :class:`TemporaryError` for
    things worth retrying (an unreachable host), :class:`PermanentError` otherwise. Messages must
    not contain secret values.
    """

    #: The user-visible kind name, the key of the settings block in the target config.
    kind: ClassVar[str]
    #: True when an observed object's :meth:`Resource.digest` equals the digest of the desired
    #: resource it was applied from (its live body is its desired body). The core then prunes an
    #: object only while it is still what setpoint wrote: one changed since (a file made by hand
    #: under a name setpoint once used) is reported, never deleted.
    live_digest_is_applied_digest: ClassVar[bool] = False
    #: True when a reconcile of this kind only computes and reads or writes local files (no network,
    #: no subprocess, nothing to wait for): such reconciles gain nothing from running side by side in
    #: threads and lose to Python's interpreter lock (measured: a no-op pass over 3,000 ``files``
    #: targets took 2.4 s in 8 threads, 1.2 s in one). A ``setpoint sync`` pass whose targets are all
    #: of such kinds and already Synced at their head runs them one by one.
    local_work: ClassVar[bool] = False
    #: The pydantic model of the settings block (``None``: the kind has no settings).
    Settings: ClassVar[type[BaseModel] | None] = None
    #: True when ``apply`` can make any subset of a plan's changes (each object on its own): the
    #: core may then hold a plan's deletions for approval and apply the rest now. False (the
    #: default, the safe choice) holds the whole plan; say why in ``whole_plan_reason``.
    partial_apply: ClassVar[bool] = False
    #: Why a plan of this kind is held whole (shown with a held plan when ``partial_apply`` is False).
    whole_plan_reason: ClassVar[str] = "this target kind applies a plan only whole"

    def __init__(self, context: TargetContext) -> None:
        self.context = context

    @property
    def settings(self) -> Any:
        return self.context.settings

    @property
    def spec(self) -> TargetSpec:
        return self.context.spec

    def watched_paths(self, tree: SourceTree) -> list[str]:
        """Repository paths outside ``spec.path`` whose changes must re-render this target
        (e.g. a Terraform module's ``../modules/vpc``). Paths are relative to the checkout."""
        return []

    def remembered_watched_paths(self) -> list[str]:
        """The :meth:`watched_paths` of the last render, remembered across restarts (the driver's
        own memory), so that a new process picks the target's revision with them before it renders
        anything. The core re-renders when a render reveals newer files anyway; remembering saves
        that second render. Default: nothing remembered."""
        return []

    @abstractmethod
    def render(self, tree: SourceTree) -> Desired:
        """Turn the source tree into desired resources. No side effects on the target."""

    @abstractmethod
    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        """Read the live state of the desired resources and of ``managed`` (keys setpoint applied
        before). Read-only. Objects that do not exist are simply absent from the result."""

    def diff(self, desired: Desired, live: Live) -> Plan:
        """Compare; the default is the generic field differ over ``body``."""
        return diff_resources(desired, live)

    def review(self, plan: Plan, drift: bool) -> str | None:
        """A reason to hold ``plan`` for approval (an apply policy such as "no destroys"), or None.

        Called after the core's own checks (deletion budget) and before plugins' review hooks.
        ``drift`` is true when the plan only reverts drift."""
        return None

    @abstractmethod
    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        """Make the changes in ``plan`` (and only those), using ``desired`` for full objects."""

    def health(self, desired: Desired, live: Live) -> Health:
        """Health after apply; the default: Healthy when every desired resource exists."""
        missing = [k for k in desired.resources if k not in live.resources]
        if missing:
            return Health(HealthStatus.MISSING, f"{len(missing)} resource(s) missing")
        return Health(HealthStatus.HEALTHY)

    def outputs(self) -> Mapping[str, Any]:
        """Values dependent targets may use (Terraform outputs); secrets stay :class:`Secret`."""
        return {}

    def start_watching(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Begin watching live state for changes and call ``context.trigger`` on each (optional).

        Called once by ``setpoint run`` after the first reconcile; never by one-shot commands.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release clients, threads and files. Called once at shutdown."""


class Decryptor(ABC):
    """Recognises and decrypts one encrypted-file format (SOPS, for example).

    ``detect`` looks at content, not only at the name. ``decrypt`` returns a
    :class:`DecryptedFile` whose leaves are :class:`Secret` and whose ``plaintext`` is a
    :class:`Secret`; it raises :class:`setpoint.errors.DecryptError` naming the file and reason
    (bad MAC, no key), never including a value.
    """

    name: ClassVar[str]
    #: The pydantic model of this decryptor's block under ``secrets:`` in setpoint.yaml.
    Settings: ClassVar[type[BaseModel] | None] = None

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @abstractmethod
    def detect(self, relpath: str, content: bytes) -> bool:
        """True when ``content`` is in this decryptor's format."""

    @abstractmethod
    def decrypt(self, relpath: str, content: bytes) -> DecryptedFile:
        """Decrypt and verify ``content``; ``relpath`` is for messages and format detection."""


# --------------------------------------------------------------------------- review and outcomes


@dataclass(frozen=True)
class Denial:
    """Returned by ``setpoint_review_plan`` to stop a plan; ``reason`` is shown and audited."""

    reason: str
    plugin: str = ""


@dataclass(frozen=True)
class TargetInfo:
    """What observers learn about a target (no settings, which may hold credentials)."""

    name: str
    kind: str
    source: str
    path: str


@dataclass(frozen=True)
class Outcome:
    """The result of one reconcile of one target, passed to ``setpoint_reconcile_finished``."""

    target: TargetInfo
    trigger: str
    revision: Revision | None
    sync: SyncStatus
    health: HealthStatus
    #: One entry per action taken or decided: ``{"action": "apply"|"revert-drift"|"held"|..., ...}``.
    actions: tuple[Mapping[str, Any], ...] = ()
    drift: tuple[ResourceChange, ...] = ()
    #: The stage that failed (source, decrypt, render, observe, diff, review, apply, health), if any.
    error_stage: str | None = None
    #: A secret-free description of the error, if any.
    error: str | None = None
    held_plan_id: str | None = None
    duration_seconds: float = 0.0
    paused: bool = False
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Notes for people about this run (a held plan, a pause, drift inside its grace period and when
    #: it will be reverted, objects kept because prune is off); empty when there is nothing to say.
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.error is not None


# --------------------------------------------------------------------------- notifications


@dataclass(frozen=True)
class Notification:
    """One message for people, decided by the core's noise control (docs/operations.md).

    ``event`` is one of ``failed``, ``recovered``, ``drift_detected``, ``drift_repaired``, ``held``,
    ``paused``, ``resumed``, ``deployed`` and ``digest``. ``title`` and ``text`` are plain text that
    was already checked for secret values; ``fields`` are short labelled facts (revision, stage).
    """

    event: str
    severity: str  # "info", "warning" or "error"
    title: str
    text: str
    target: str | None = None
    kind: str | None = None
    revision: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    #: For a digest: every target the commit was deployed to, with its result.
    targets: Mapping[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"event": self.event, "severity": self.severity, "title": self.title, "text": self.text,
                "target": self.target, "kind": self.kind, "revision": self.revision, "fields": dict(self.fields),
                "targets": dict(self.targets)}


class Notifier(ABC):
    """Delivers :class:`Notification` messages to one destination (a chat webhook, an HTTP endpoint).

    The core decides *what* to send (thresholds, de-duplication, digests) and calls :meth:`send`
    from one background thread, never from a reconcile; it retries a failed send with back-off, so
    ``send`` just raises on failure. ``url`` is the configured endpoint (from ``url_file`` or
    ``url_env``) wrapped as a :class:`Secret`, because incoming-webhook URLs embed their token: use
    ``url.reveal()`` only for the request itself, never in a message or an exception.
    """

    #: The user-visible kind name (``kind:`` of a notifier in setpoint.yaml).
    kind: ClassVar[str]
    #: The pydantic model of the kind's settings block (``None``: no settings).
    Settings: ClassVar[type[BaseModel] | None] = None
    #: Whether the kind needs ``url_file``/``url_env``.
    needs_url: ClassVar[bool] = True

    def __init__(self, name: str, url: Secret[str] | None, settings: Any) -> None:
        self.name = name
        self.url = url
        self.settings = settings

    @abstractmethod
    def send(self, notification: Notification) -> None:
        """Deliver one message; raise any exception on failure (its text is never shown)."""

    def close(self) -> None:  # noqa: B027 - optional, empty on purpose
        """Release clients. Called once at shutdown."""
