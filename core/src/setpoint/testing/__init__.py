"""Test helpers for plugin authors and for the core's own tests (also a pytest plugin).

* :class:`GitRepo`: a real local Git repository to commit desired state to.
* :class:`FakePlugin` / :class:`FakeTarget`: an in-memory target kind (``fake``) whose "cluster"
  holds resources with ``kind``, ``name``, ``replicas``, ``image`` and ``config``;
  :meth:`FakeCluster.manual_change` simulates a hand-made change (drift), ``fail_next`` injects
  errors. The kind exists only where a test registers the plugin; users cannot configure it.
* :func:`write_config` and :func:`make_engine`: a setpoint.yaml and an engine around them.
* Fixtures: ``git_repo``, ``fake_plugin``, ``setpoint_registry``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from setpoint import hookimpl
from setpoint.api import (
    Action,
    ApplyResult,
    Desired,
    Health,
    HealthStatus,
    Live,
    Plan,
    Resource,
    SourceTree,
    TargetDriver,
)
from setpoint.errors import RenderError, TemporaryError
from setpoint.secrets import reveal_all, wrap_like


def wait_for(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> float:
    """Seconds until ``predicate()`` was true; AssertionError after ``timeout`` seconds.

    For tests of event-driven behaviour (drift repaired by a running daemon, a commit applied)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


# --------------------------------------------------------------------------- Git


class GitRepo:
    """A real Git repository in a directory, with helpers to commit files as a given author."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = Path(path)
        self.branch = branch
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / ".git").exists():
            self.git("init", "--quiet", "--initial-branch", branch)
            self.git("config", "user.email", "dev@example.com")
            self.git("config", "user.name", "Dev")
            self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        proc = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def write(self, files: Mapping[str, str | bytes | None], mode: dict[str, int] | None = None) -> None:
        """Write (or with ``None`` delete) files relative to the repository root."""
        for relpath, content in files.items():
            path = self.path / relpath
            if content is None:
                if path.exists():
                    path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
            if mode and relpath in mode:
                path.chmod(mode[relpath])

    def commit(self, files: Mapping[str, str | bytes | None] | None = None, message: str = "change",
               author: str = "Dev <dev@example.com>", mode: dict[str, int] | None = None) -> str:
        if files:
            self.write(files, mode)
        self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message, "--author", author)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def revert(self, sha: str | None = None, author: str = "Dev <dev@example.com>") -> str:
        self.git("-c", f"user.name={author.split(' <')[0]}", "revert", "--no-edit", sha or "HEAD")
        return self.head()

    def reset_hard(self, sha: str) -> str:
        """Rewrite the branch (as a force-push would)."""
        self.git("reset", "--quiet", "--hard", sha)
        return self.head()


# --------------------------------------------------------------------------- the fake target


@dataclass
class FakeCluster:
    """The live state of one fake target: resources by key, plus counters tests can assert on."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: int = 0
    deletes: int = 0
    reads: int = 0
    #: stage name -> exception to raise once at that stage (error injection)
    failures: dict[str, BaseException] = field(default_factory=dict)
    #: Health reported per key (default Healthy)
    health: dict[str, HealthStatus] = field(default_factory=dict)
    #: Whether health reports each object's status (``Health.resources``), as most drivers do.
    reports_object_health: bool = True
    #: What the target publishes to dependants (``${setpoint:TARGET.NAME}``).
    outputs: dict[str, Any] = field(default_factory=dict)
    #: When set, the driver holds every plan for approval with this reason (an apply policy).
    hold_reason: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_change: Callable[[str], None] | None = None

    def manual_change(self, key: str, **fields: Any) -> None:
        """Change a live resource by hand (drift), as ``kubectl scale`` would."""
        with self.lock:
            self.resources[key] = {**self.resources[key], **fields}
        if self.on_change:
            self.on_change(f"event:manual-change:{key}")

    def manual_delete(self, key: str) -> None:
        with self.lock:
            del self.resources[key]
        if self.on_change:
            self.on_change(f"event:manual-delete:{key}")

    def manual_create(self, key: str, body: dict[str, Any]) -> None:
        with self.lock:
            self.resources[key] = dict(body)

    def fail_next(self, stage: str, error: BaseException | None = None) -> None:
        """Make the next call of ``stage`` (render, observe, apply) raise ``error``."""
        self.failures[stage] = error or TemporaryError(f"injected failure in {stage}")

    def _maybe_fail(self, stage: str) -> None:
        error = self.failures.pop(stage, None)
        if error is not None:
            raise error


FIELDS = ("replicas", "image", "config")


class FakeTarget(TargetDriver):
    """Desired state: YAML files under the target path, each a resource or a list of resources
    ``{kind, name, replicas, image, config}``. Live state: the plugin's :class:`FakeCluster`."""

    kind = "fake"
    plugin: FakePlugin

    @property
    def cluster(self) -> FakeCluster:
        cluster = self.plugin.cluster(self.spec.name)
        cluster.on_change = self.context.trigger
        return cluster

    def render(self, tree: SourceTree) -> Desired:
        self.cluster._maybe_fail("render")
        resources = []
        for relpath in tree.files("**/*.y*ml"):
            if tree.is_encrypted(relpath):
                docs = tree.decrypted[relpath].documents
            else:
                try:
                    docs = list(yaml.safe_load_all(tree.read_text(relpath)))
                except yaml.YAMLError as exc:
                    raise RenderError(f"{relpath}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
            for doc in docs:
                for item in doc if isinstance(doc, list) else [doc]:
                    if not isinstance(item, dict) or "kind" not in item or "name" not in item:
                        raise RenderError(f"{relpath}: every resource needs kind and name")
                    # identity is never secret, even when a whole file was encrypted
                    kind, name = str(reveal_all(item["kind"])), str(reveal_all(item["name"]))
                    body = {f: item[f] for f in FIELDS if f in item}
                    resources.append(Resource(f"{kind}/{name}", kind, name, body))
        return Desired.of(resources)

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        cluster = self.cluster
        cluster._maybe_fail("observe")
        with cluster.lock:
            cluster.reads += 1
            found = []
            # like a driver listing by its tracking label: everything in the cluster is seen
            for key in sorted(set(desired.resources) | set(managed) | set(cluster.resources)):
                if key in cluster.resources:
                    kind, name = key.split("/", 1)
                    body = dict(cluster.resources[key])
                    if key in desired.resources:  # live values of secret fields compare as secrets
                        body = wrap_like(body, desired.resources[key].body)
                    found.append(Resource(key, kind, name, body))
        return Live.of(found)

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        cluster = self.cluster
        cluster._maybe_fail("apply")
        result = ApplyResult()
        with cluster.lock:
            for change in plan.changes:
                if change.action == Action.DELETE:
                    cluster.resources.pop(change.key, None)
                    cluster.deletes += 1
                else:
                    # the fake "API" receives clear values, as a real one would
                    cluster.resources[change.key] = reveal_all(desired.resources[change.key].body)
                    cluster.writes += 1
                result.applied.append(change.key)
        return result

    def review(self, plan: Plan, drift: bool) -> str | None:
        return self.cluster.hold_reason

    def outputs(self) -> dict[str, Any]:
        return dict(self.cluster.outputs)

    def health(self, desired: Desired, live: Live) -> Health:
        statuses = []
        per_object: dict[str, HealthStatus] = {}
        for key in desired.resources:
            if key in live.resources:
                custom = self.context.check_health(live.resources[key])  # plugins' health checks first
                per_object[key] = custom.status if custom else self.cluster.health.get(key, HealthStatus.HEALTHY)
                statuses.append(per_object[key])
        missing = [k for k in desired.resources if k not in live.resources]
        if missing:
            statuses.append(HealthStatus.MISSING)
        return Health(HealthStatus.worst(statuses), "", per_object if self.cluster.reports_object_health else {})


class FakePlugin:
    """A plugin object registering the ``fake`` kind; each instance has its own clusters."""

    def __init__(self) -> None:
        self.clusters: dict[str, FakeCluster] = {}
        self.__name__ = "fake"

    def cluster(self, target: str) -> FakeCluster:
        return self.clusters.setdefault(target, FakeCluster())

    @hookimpl
    def setpoint_register_target_kinds(self, register: Callable[[type[TargetDriver]], None]) -> None:
        register(type("BoundFakeTarget", (FakeTarget,), {"plugin": self}))


# --------------------------------------------------------------------------- config and engine


def write_config(directory: Path, repo: Path | str, targets: list[dict[str, Any]], **top: Any) -> Path:
    """Write a setpoint.yaml with one source ``repo`` and the given targets; returns its path."""
    config = {"sources": {"repo": {"url": str(repo), "branch": "main", "poll_interval": "1s"}},
              "targets": [{"source": "repo", **t} for t in targets],
              "state": f"sqlite:///{directory / 'state' / 'state.db'}",
              # `setpoint run` in tests: any free port, so daemons of several tests never collide
              "server": {"listen": "127.0.0.1:0"}, **top}
    path = directory / "setpoint.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def make_engine(config_path: Path, *extra_plugins: object, load_entrypoints: bool = False) -> Any:
    """An engine for ``config_path`` with only the built-ins plus ``extra_plugins`` loaded."""
    from setpoint.config import load_config
    from setpoint.engine import Engine
    from setpoint.plugins import get_plugin_manager

    return Engine(load_config(config_path), get_plugin_manager(load_entrypoints=load_entrypoints,
                                                               extra_plugins=extra_plugins))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _fresh_secret_scrubber() -> Iterator[None]:
    """Each test starts with an empty scrubber, so secrets of one test never blank out another's text."""
    from setpoint.secrets import forget_known_values

    forget_known_values()
    yield
    forget_known_values()


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """A fresh Git repository with branch ``main`` and no commits."""
    return GitRepo(tmp_path / "repo")


@pytest.fixture
def fake_plugin() -> FakePlugin:
    return FakePlugin()


@pytest.fixture
def setpoint_registry(fake_plugin: FakePlugin) -> Iterator[Any]:
    """A fresh plugin registry: built-ins and the fake kind, no entry points."""
    from setpoint.plugins import get_plugin_manager

    yield get_plugin_manager(load_entrypoints=False, extra_plugins=[fake_plugin])
