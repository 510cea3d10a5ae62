"""The target-driver conformance suite: the contract the core relies on, as tests any driver can run.

A plugin author writes a small :class:`ConformanceAdapter` (how to declare resources in Git, how to
read the live system back, how to change it by hand) and subclasses :class:`TargetConformance`::

    class TestMyKindConformance(TargetConformance):
        @pytest.fixture
        def adapter(self, tmp_path):
            return MyKindAdapter(tmp_path)

Every test goes through the real engine (Git repository, state store, reconcile) and reads the live
system through the adapter, never through the driver, so a driver that lies about what it did fails.
The suite checks: the five phases (deploy, no-op, drift repaired, new commit, ``git revert``), no-op
stability, drift by deletion, prune of owned objects only, the empty-render guard, bad input applying
nothing, a canary secret reaching the target and nothing else, and ``close()`` stopping background work.

Resources are named by the suite (short lowercase names such as ``alpha``) and carry one string value;
the adapter maps them to whatever its kind manages (a file, a ConfigMap, a container's environment
variable, a Terraform resource).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from setpoint import hookimpl
from setpoint.api import DecryptedFile, Decryptor, Outcome, SyncStatus
from setpoint.errors import DecryptError
from setpoint.secrets import Secret

from . import GitRepo, make_engine, write_config

#: The target's folder in the suite's Git repository.
TARGET_PATH = "target"
#: The prefix of the target's name in the suite's setpoint.yaml (each test adds a random suffix, so tests
#: sharing one live system, such as a cluster, never see each other's objects as their own).
TARGET_PREFIX = "conformance-"
#: Files that start with this marker are "encrypted" for the suite's own decryptor (base64 of the clear text).
ENCRYPTED_MARKER = b"SETPOINT-CONFORMANCE-ENC:"
#: A value that must reach the live system and appear nowhere else.
CANARY = "CANARY-conformance-3e1b7d9a"

Files = Mapping[str, str | bytes]
Encrypt = Callable[[str], bytes]


def encrypt(text: str) -> bytes:
    """Encrypt ``text`` for the suite's decryptor (a toy format: the point is the Secret handling)."""
    return ENCRYPTED_MARKER + base64.b64encode(text.encode())


def corrupt_encrypted() -> bytes:
    """A file the suite's decryptor detects but cannot open (for kinds that accept any file as input)."""
    return ENCRYPTED_MARKER + b"%%% not base64 %%%"


class _ConformanceDecryptor(Decryptor):
    """Opens files made by :func:`encrypt`; YAML and dotenv files are parsed into secret leaves."""

    name = "conformance"

    def detect(self, relpath: str, content: bytes) -> bool:
        return content.startswith(ENCRYPTED_MARKER)

    def decrypt(self, relpath: str, content: bytes) -> DecryptedFile:
        try:
            plain = base64.b64decode(content[len(ENCRYPTED_MARKER):], validate=True)
        except binascii.Error:
            raise DecryptError(relpath, "not valid conformance-suite ciphertext") from None
        documents: list[Any]
        if relpath.endswith((".yaml", ".yml")):
            documents = [_wrap(doc, relpath) for doc in yaml.safe_load_all(plain)]
            fmt = "yaml"
        elif relpath.endswith(".env"):
            pairs = (line.split("=", 1) for line in plain.decode().splitlines() if "=" in line)
            documents = [{key.strip(): Secret(value.strip(), f"{relpath}.{key.strip()}") for key, value in pairs}]
            fmt = "dotenv"
        else:
            documents, fmt = [], "binary"
        return DecryptedFile(relpath, fmt, documents, Secret(plain, relpath), self.name, ("conformance-key",))


def _wrap(value: Any, origin: str) -> Any:
    if isinstance(value, dict):
        return {k: _wrap(v, f"{origin}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap(v, origin) for v in value]
    return Secret(value, origin)


class ConformanceDecryptorPlugin:
    """Registers the suite's decryptor (kind ``conformance``) for the suite's engines only."""

    __name__ = "setpoint-conformance-decryptor"

    @hookimpl
    def setpoint_register_decryptors(self, register: Callable[[type[Decryptor]], None]) -> None:
        register(_ConformanceDecryptor)


class ConformanceAdapter(ABC):
    """What the suite needs to know about one target kind and its live system.

    ``files(values)`` must always return at least one file, so the target's folder exists at every
    revision: with ``values == {}`` it returns files that render to *no* resources (a README the
    driver ignores, an empty manifest, a module with no resources).
    """

    #: The target kind under test (``kind:`` in setpoint.yaml).
    kind: ClassVar[str]
    #: Plugin objects to register besides the installed entry points (rarely needed).
    plugins: ClassVar[tuple[object, ...]] = ()
    #: Seconds a live change may take to become visible to ``read_live`` (eventually consistent systems).
    settle_seconds: ClassVar[float] = 0.0
    #: Glob patterns (relative to setpoint's state folder) of files where the kind's own tool keeps
    #: secrets in clear by design (Terraform state); the canary test does not scan them.
    secrets_kept_by_design: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The kind's settings block (the value of ``<kind>:`` in the target)."""

    def target_options(self) -> dict[str, Any]:
        """Extra target-level settings (e.g. ``self_heal``); the suite sets name, kind, path and prune."""
        return {}

    @abstractmethod
    def files(self, values: Mapping[str, str]) -> dict[str, str | bytes]:
        """Repository files (relative to the target folder) declaring one resource per name with its value."""

    def secret_files(self, values: Mapping[str, str], secret_name: str, encrypt: Encrypt) -> dict[str, str | bytes] | None:
        """Like :meth:`files`, but the value of ``secret_name`` comes from a file made with ``encrypt``.

        Return ``None`` when the kind takes no secret input; the canary test is then skipped."""
        return None

    def broken_files(self) -> dict[str, str | bytes]:
        """Files the driver must refuse at render (invalid syntax). Default: an invalid YAML manifest.

        A kind that accepts any file as input can return ``{"name": corrupt_encrypted()}``, which the
        core refuses at decryption."""
        return {"broken.yaml": "key: [unclosed\n"}

    @abstractmethod
    def read_live(self) -> dict[str, str]:
        """Name -> value of every resource in the live system that the suite could have made (owned or not)."""

    @abstractmethod
    def change_by_hand(self, name: str, value: str) -> None:
        """Change a live resource outside setpoint, as a person would."""

    @abstractmethod
    def delete_by_hand(self, name: str) -> None:
        """Delete a live resource outside setpoint."""

    @abstractmethod
    def create_by_hand(self, name: str, value: str) -> None:
        """Create a resource outside setpoint, where the driver would see it (setpoint must never prune it)."""

    def secret_locations(self) -> list[Path]:
        """Files or folders outside setpoint's state folder where a leak would matter (scanned for the canary)."""
        return []

    def cleanup(self) -> None:  # noqa: B027 - optional, empty by default
        """Remove what the test left in the live system."""


@dataclass
class Harness:
    """One target of the adapter's kind in a fresh repository, state store and engine."""

    adapter: ConformanceAdapter
    workdir: Path
    repo: GitRepo = field(init=False)
    config_path: Path = field(init=False)
    engine: Any = field(init=False, default=None)
    name: str = field(init=False, default_factory=lambda: TARGET_PREFIX + uuid.uuid4().hex[:8])
    _committed: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.repo = GitRepo(self.workdir / "repo")
        self.config_path = self.workdir / "setpoint.yaml"

    def start(self, first_files: Mapping[str, str | bytes], **target: Any) -> str:
        sha = self.commit_files(first_files, "first")
        spec = {"name": self.name, "kind": self.adapter.kind, "path": TARGET_PATH, "prune": True,
                "deletion_budget": {"max_count": 100, "max_percent": 100},
                self.adapter.kind: self.adapter.settings(), **self.adapter.target_options(), **target}
        write_config(self.workdir, self.repo.path, [spec])
        self.engine = make_engine(self.config_path, ConformanceDecryptorPlugin(), *self.adapter.plugins,
                                  load_entrypoints=True)
        return sha

    def commit(self, values: Mapping[str, str], message: str = "change") -> str:
        return self.commit_files(self.adapter.files(values), message)

    def commit_files(self, files: Mapping[str, str | bytes], message: str) -> str:
        assert files, "ConformanceAdapter.files() must return at least one file"
        change: dict[str, str | bytes | None] = {f"{TARGET_PATH}/{p}": c for p, c in files.items()}
        for gone in self._committed - set(change):
            change[gone] = None
        self._committed = {p for p in change if change[p] is not None}
        return self.repo.commit(change, message)

    def sync(self) -> Outcome:
        outcome: Outcome = self.engine.reconcile(self.name)
        return outcome

    def live(self) -> dict[str, str]:
        if self.adapter.settle_seconds:
            time.sleep(self.adapter.settle_seconds)
        return self.adapter.read_live()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def _applied(outcome: Outcome) -> bool:
    return any(a.get("action") in ("apply", "revert-drift") for a in outcome.actions)


def _assert_synced(outcome: Outcome, when: str) -> None:
    assert outcome.error is None, f"{when}: {outcome.error_stage} failed: {outcome.error}"
    assert outcome.sync == SyncStatus.SYNCED, f"{when}: sync is {outcome.sync}, not Synced"


class TargetConformance:
    """Subclass with a fixture ``adapter`` returning your :class:`ConformanceAdapter`."""

    @pytest.fixture
    def harness(self, adapter: ConformanceAdapter, tmp_path: Path) -> Iterator[Harness]:
        harness = Harness(adapter, tmp_path / "conformance")
        try:
            yield harness
        finally:
            harness.close()
            adapter.cleanup()

    # ------------------------------------------------------------------ the five phases

    def test_five_phases(self, harness: Harness) -> None:
        v1 = {"alpha": "one", "beta": "one"}
        harness.start(harness.adapter.files(v1))
        _assert_synced(out := harness.sync(), "deploy")
        assert _applied(out), "the first sync applied nothing"
        assert harness.live() == v1

        out = harness.sync()
        _assert_synced(out, "no-op")
        assert not out.actions and not out.drift, f"a no-op sync acted: {out.actions}"

        harness.adapter.change_by_hand("alpha", "by-hand")
        out = harness.sync()
        _assert_synced(out, "drift repair")
        assert out.drift, "a hand change was not reported as drift"
        assert harness.live() == v1

        v2 = {"alpha": "two", "beta": "one", "gamma": "new"}
        sha2 = harness.commit(v2, "v2")
        out = harness.sync()
        _assert_synced(out, "new commit")
        assert out.revision is not None and out.revision.sha == sha2
        assert not out.drift, "a commit's change was reported as drift"
        assert harness.live() == v2

        sha3 = harness.repo.revert(sha2)
        out = harness.sync()
        _assert_synced(out, "git revert")
        assert out.revision is not None and out.revision.sha == sha3
        assert harness.live() == v1

    def test_noop_is_stable(self, harness: Harness) -> None:
        harness.start(harness.adapter.files({"alpha": "one"}))
        _assert_synced(harness.sync(), "deploy")
        for attempt in range(3):
            out = harness.sync()
            _assert_synced(out, f"no-op {attempt + 1}")
            assert not out.actions and not out.drift, f"no-op {attempt + 1} acted: {out.actions}"

    def test_deleted_by_hand_is_restored(self, harness: Harness) -> None:
        values = {"alpha": "one", "beta": "two"}
        harness.start(harness.adapter.files(values))
        _assert_synced(harness.sync(), "deploy")
        harness.adapter.delete_by_hand("beta")
        out = harness.sync()
        _assert_synced(out, "repair")
        assert out.drift, "a hand deletion was not reported as drift"
        assert harness.live() == values

    # ------------------------------------------------------------------ prune

    def test_prune_deletes_only_owned(self, harness: Harness) -> None:
        harness.start(harness.adapter.files({"alpha": "one", "beta": "one"}))
        _assert_synced(harness.sync(), "deploy")
        harness.adapter.create_by_hand("stray", "made-by-hand")
        harness.commit({"alpha": "one"}, "drop beta")
        out = harness.sync()
        assert out.error is None, f"{out.error_stage}: {out.error}"
        live = harness.live()
        assert "beta" not in live, "a resource removed from Git was not pruned"
        assert live.get("stray") == "made-by-hand", "setpoint deleted or changed an object it never applied"
        assert live.get("alpha") == "one"

    def test_empty_render_prunes_nothing(self, harness: Harness) -> None:
        values = {"alpha": "one", "beta": "two"}
        harness.start(harness.adapter.files(values))
        _assert_synced(harness.sync(), "deploy")
        harness.commit({}, "empty")
        out = harness.sync()
        assert out.sync != SyncStatus.SYNCED or out.error or out.held_plan_id, \
            "an empty render was reported Synced"
        assert harness.live() == values, "an empty render pruned live resources"

    # ------------------------------------------------------------------ errors

    def test_bad_input_applies_nothing(self, harness: Harness) -> None:
        values = {"alpha": "one"}
        harness.start(harness.adapter.files(values))
        _assert_synced(harness.sync(), "deploy")
        files = {**harness.adapter.files({"alpha": "changed", "beta": "new"}), **harness.adapter.broken_files()}
        harness.commit_files(files, "broken")
        out = harness.sync()
        assert out.error is not None and out.error_stage in ("decrypt", "render"), \
            f"broken input was not refused at render: stage={out.error_stage} error={out.error}"
        assert harness.live() == values, "a change was applied although render failed"

    def test_failed_revision_is_not_synced(self, harness: Harness) -> None:
        harness.start(harness.adapter.files({"alpha": "one"}))
        _assert_synced(harness.sync(), "deploy")
        harness.commit_files({**harness.adapter.files({"alpha": "two"}), **harness.adapter.broken_files()}, "broken")
        out = harness.sync()
        assert out.error is not None
        assert out.sync != SyncStatus.SYNCED, "a revision that was never applied is reported Synced"

    # ------------------------------------------------------------------ secrets

    def test_canary_secret_reaches_target_only(self, harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
        files = harness.adapter.secret_files({"alpha": "one", "token": CANARY}, "token", encrypt)
        if files is None:
            pytest.skip(f"the {harness.adapter.kind} kind takes no secret input")
        caplog.set_level(logging.DEBUG)
        harness.start(files)
        outcomes = [harness.sync()]
        _assert_synced(outcomes[0], "deploy with a secret")
        assert harness.live().get("token") == CANARY, "the decrypted value did not reach the live system"
        harness.adapter.change_by_hand("token", "leaked-by-hand")
        outcomes.append(harness.sync())
        harness.commit_files(harness.adapter.secret_files({"alpha": "two", "token": CANARY + "-2"}, "token",
                                                          encrypt) or {}, "rotate")
        outcomes.append(harness.sync())
        harness.close()

        places: dict[str, bytes] = {"log": caplog.text.encode(),
                                    "outcomes": "\n".join(repr(o) for o in outcomes).encode()}
        state = harness.workdir / "state"
        exempt = {p for pattern in harness.adapter.secrets_kept_by_design for p in state.glob(pattern)}
        for path in [state, *harness.adapter.secret_locations()]:
            for file in ([path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]):
                if not (file in exempt or exempt.intersection(file.parents)):
                    places[str(file)] = file.read_bytes()
        leaks = [where for where, data in places.items() if CANARY.encode() in data]
        assert not leaks, f"the canary secret leaked into: {leaks}"

    # ------------------------------------------------------------------ lifecycle

    def test_close_stops_background_work(self, harness: Harness) -> None:
        before = {t.ident for t in threading.enumerate()}
        harness.start(harness.adapter.files({"alpha": "one"}))
        _assert_synced(harness.sync(), "deploy")
        for runner in harness.engine.runners.values():
            runner.driver.start_watching()
        harness.close()
        deadline = time.monotonic() + 10
        while True:
            left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert not left, f"threads still running after close(): {[t.name for t in left]}"
