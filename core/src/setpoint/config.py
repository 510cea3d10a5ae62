"""setpoint.yaml: pydantic models, loading with line numbers, and whole-file validation.

Validation happens in two passes. The generic models check everything the core owns; then each
target's kind block (``files:``, ``kubernetes:`` ...) and each ``secrets:`` block is checked with
the model its plugin registered. Every problem is collected, with file, line, field path and a
hint, so ``setpoint validate`` reports them all at once.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from setpoint import yamlsafe
from setpoint.durationtype import Duration
from setpoint.errors import ConfigError
from setpoint.opsconfig import LifecycleConfig, NotificationsConfig, ServerConfig
from setpoint.stateurl import check_postgresql_url, is_postgresql_url
from setpoint.suggest import did_you_mean

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$"
DEFAULT_CONFIG = "setpoint.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(Strict):
    """How to authenticate to a Git remote. Values come from files or the environment, never inline."""

    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ssh_key_file: Path | None = None
    ssh_known_hosts_file: Path | None = None


class VerifyConfig(Strict):
    """Which commits of a source must carry a trusted signature before anything of them is applied
    (docs/git-safety.md). ``head``: the head to be applied; ``every-commit``: every commit between the
    one last applied and the head, so an unsigned commit cannot hide under a signed merge."""

    mode: Literal["head", "every-commit"] = "head"
    #: Armored or binary OpenPGP public keys; re-read when a file changes (no restart needed).
    gpg_keys: tuple[Path, ...] = ()
    #: An ssh-keygen ``allowed_signers`` file (principal, then the public key), re-read when it changes.
    ssh_allowed_signers: Path | None = None
    #: Also refuse a commit whose author email is not an identity of the key that signed it.
    require_author_match: bool = False

    @model_validator(mode="after")
    def _some_key(self) -> VerifyConfig:
        if not self.gpg_keys and self.ssh_allowed_signers is None:
            raise ValueError("verify needs gpg_keys, ssh_allowed_signers or both: without trusted keys "
                             "no commit could ever be applied")
        return self


class SourceConfig(Strict):
    url: str = Field(description="Git URL: a local path, file://, ssh://, git@host:repo or https://")
    branch: str = "main"
    poll_interval: Duration = 30.0
    credentials: Credentials | None = None
    #: Signature verification of the commits to apply; None: commits are applied unverified.
    verify: VerifyConfig | None = None
    #: This source deploys to production: ``setpoint validate`` warns when it has no ``verify``.
    production: bool = False

    @field_validator("url")
    @classmethod
    def _no_inline_password(cls, value: str) -> str:
        if re.match(r"^https?://[^/@]*:[^/@]*@", value):
            raise ValueError("the URL holds a password; use credentials.password_file or password_env instead")
        return value


class Grace(Strict):
    grace: Duration


def _self_heal(value: Any) -> Any:
    if value is None or isinstance(value, bool | Grace):
        return value
    if isinstance(value, dict):
        return Grace.model_validate(value)
    raise ValueError("self_heal must be true, false, or {grace: DURATION} (e.g. {grace: 1h})")


SelfHeal = Annotated[bool | Grace | None, BeforeValidator(_self_heal)]


class DeletionBudget(Strict):
    """Plans deleting more than ``max_count`` objects, or at least ``min_count`` objects that are more
    than ``max_percent`` of the target, are held; ``hold`` says whether only their deletions
    (the rest is applied now, where the target kind can apply in part) or the whole plan."""

    max_count: int = Field(10, ge=0)
    max_percent: float = Field(25.0, ge=0, le=100)
    #: The percentage rule counts from this many deletions (removing 1 of 3 files is not "33 %"),
    #: or when a plan deletes every managed object.
    min_count: int = Field(3, ge=1)
    hold: Literal["deletions", "plan"] = "deletions"


class ReplicasConfig(Strict):
    """Several ``setpoint run`` on one PostgreSQL state (docs/operations.md, "Several replicas")."""

    #: How long a target's lease lasts without a heartbeat: a dead replica's targets move after at most this
    #: (plus one heartbeat, ttl/3); a replica paused for longer applies nothing when it resumes.
    lease_ttl: Duration = Field(15.0, ge=1.0, le=3600.0)


class Defaults(Strict):
    interval: Duration = 60.0
    prune: bool = False
    allow_empty: bool = False
    self_heal: SelfHeal = True
    deletion_budget: DeletionBudget = DeletionBudget()
    hold_deletions: bool = False
    #: Random spread of each interval (0.1 = ±10 %), so many targets do not wake in step.
    jitter: float = Field(0.1, ge=0, le=0.5)
    #: Consecutive errors back off exponentially from this delay, up to ``max_backoff``.
    backoff: Duration = 5.0
    max_backoff: Duration = 300.0
    #: How many targets reconcile at the same time.
    concurrency: int = Field(8, ge=1, le=256)


class TargetConfig(Strict):
    """One target. Its kind block (key = kind name) is moved to ``kind_block`` by :func:`load_config`
    and validated later by the kind's plugin."""

    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    source: str
    path: str = "."
    interval: Duration | None = None
    prune: bool | None = None
    allow_empty: bool | None = None
    self_heal: SelfHeal = None
    depends_on: tuple[str, ...] = ()
    deletion_budget: DeletionBudget | None = None
    hold_deletions: bool | None = None
    enabled: bool = True
    #: Per-target decryptor settings, merged key by key over the top-level ``secrets:`` block
    #: (e.g. a production target with its own age key).
    secrets: dict[str, dict[str, Any]] = {}
    kind_block: dict[str, Any] = {}

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        normalized = os.path.normpath(value)
        if os.path.isabs(value) or normalized.startswith(".."):
            raise ValueError("path must stay inside the repository (relative, without ..)")
        return normalized

    @property
    def settings_block(self) -> dict[str, Any]:
        return dict(self.kind_block or {})


class Config(Strict):
    sources: dict[str, SourceConfig]
    targets: list[TargetConfig]
    secrets: dict[str, dict[str, Any]] = {}
    state: str = "sqlite:///.setpoint/state.db"
    defaults: Defaults = Defaults()
    #: The HTTP server of ``setpoint run`` and the notifiers (models in setpoint.opsconfig).
    server: ServerConfig = ServerConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    replicas: ReplicasConfig = ReplicasConfig()
    #: Where the file was read from; relative paths in it resolve against its folder.
    base_dir: Path = Path(".")
    file: Path = Path("setpoint.yaml")
    _target_index: tuple[list[TargetConfig], dict[str, tuple[int, TargetConfig]]] | None = PrivateAttr(default=None)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"source name {name!r} must be lowercase letters, digits, '.', '_' or '-'")
        return value

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str) -> str:
        if is_postgresql_url(value):
            try:
                check_postgresql_url(value)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("state: ")) from None
        elif not value.startswith("sqlite:///"):
            raise ValueError("use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE "
                             "(the password comes from SETPOINT_STATE_PASSWORD_FILE or SETPOINT_STATE_PASSWORD)")
        return value

    @model_validator(mode="after")
    def _references(self) -> Config:
        names = [t.name for t in self.targets]
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate target name(s): {', '.join(duplicates)}")
        known = set(names)
        for target in self.targets:
            if target.source not in self.sources:
                raise ValueError(
                    f"target {target.name!r} uses source {target.source!r}, which is not defined under sources "
                    f"(defined: {', '.join(sorted(self.sources)) or 'none'})"
                )
            for dep in target.depends_on:
                if dep not in known:
                    raise ValueError(f"target {target.name!r} depends on {dep!r}, which is not a target")
                if dep == target.name:
                    raise ValueError(f"target {target.name!r} depends on itself")
        cycle = find_cycle({t.name: list(t.depends_on) for t in self.targets})
        if cycle:
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")
        return self

    def target(self, name: str) -> TargetConfig:
        found = self.target_index().get(name)
        if found is not None:
            return found[1]
        raise ConfigError(f"no target named {name!r}; known targets: {', '.join(t.name for t in self.targets)}")

    def target_index(self) -> dict[str, tuple[int, TargetConfig]]:
        """name -> (position in the file, target), built once: with thousands of targets a scan per
        lookup made every pass quadratic. Rebuilt if ``targets`` is another list (a model copy)."""
        cached = self._target_index
        if cached is None or cached[0] is not self.targets:
            cached = self._target_index = (self.targets, {t.name: (i, t) for i, t in enumerate(self.targets)})
        return cached[1]

    def resolve(self, path: str | Path) -> Path:
        path = Path(os.path.expanduser(str(path)))
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def state_is_postgresql(self) -> bool:
        return self.state.startswith(("postgresql://", "postgres://"))

    @property
    def state_path(self) -> Path:
        """The SQLite file (a ConfigError for a PostgreSQL state: use :attr:`state_location`)."""
        if self.state_is_postgresql:
            raise ConfigError("state: this command needs a sqlite:///PATH state (the state is on PostgreSQL)")
        if not self.state.startswith("sqlite:///"):
            raise ConfigError(f"state: use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE (got {self.state!r})")
        return self.resolve(self.state.removeprefix("sqlite:///"))

    @property
    def state_location(self) -> Path | str:
        """What :class:`setpoint.state.StateStore` opens: the SQLite path, or the PostgreSQL URL."""
        if self.state_is_postgresql:
            check_postgresql_url(self.state)
            return self.state
        return self.state_path

    @property
    def state_display(self) -> str:
        return self.state if self.state_is_postgresql else str(self.state_path)

    @property
    def state_dir(self) -> Path:
        """This machine's state folder: Git cache, locks, drivers' work folders (and the SQLite file).
        With a PostgreSQL state it is ``.setpoint`` next to setpoint.yaml."""
        if self.state_is_postgresql:
            return self.resolve(".setpoint")
        return self.state_path.parent

    # Effective per-target settings: the target's own value, else the defaults block.
    def effective(self, target: TargetConfig, field_name: str) -> Any:
        value = getattr(target, field_name)
        return getattr(self.defaults, field_name) if value is None else value


#: Environment variables with the PostgreSQL state's password (the URL must not carry one).
def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a list of names (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


# --------------------------------------------------------------------------- problems with positions


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path or '(top level)'}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class ConfigProblems(ConfigError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_HINTS = {
    "extra_forbidden": "remove it, or check its spelling against docs/configuration.md",
    "missing": "add this key",
    "bool_type": "use true or false",
    "string_pattern_mismatch": "use lowercase letters, digits, '.', '_' or '-'",
}


def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """Map each key path in the YAML document to its 1-based line."""
    index: dict[tuple[Any, ...], int] = {}
    try:
        root = yamlsafe.compose(text)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                index[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return index


class LineIndex(Mapping[tuple[Any, ...], int]):
    """Each key path of a YAML document -> its 1-based line, worked out on first use: only a problem
    needs a line, and composing a large setpoint.yaml node by node again costs more than loading it
    (a quarter of a second or more at a thousand targets, once per config load and per plugin block
    check)."""

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read
        self._index: dict[tuple[Any, ...], int] | None = None

    def _lines(self) -> dict[tuple[Any, ...], int]:
        if self._index is None:
            self._index = _line_index(self._read())
        return self._index

    def __getitem__(self, path: tuple[Any, ...]) -> int:
        return self._lines()[path]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._lines())

    def __len__(self) -> int:
        return len(self._lines())


def _line_for(index: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in index:
            return index[loc]
        loc = loc[:-1]
    return index.get(())


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the (sub)model at ``loc`` accepts, for "did you mean" (None when unknown)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        current = _model_in(fields[part].annotation)
    fields = getattr(current, "model_fields", None)
    return [n for n in fields if n != "kind_block"] if fields else None


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _problems_from(error: ValidationError, file: str, index: Mapping[tuple[Any, ...], int], prefix: tuple[Any, ...] = (),
                   model: type[BaseModel] | None = None) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = prefix + tuple(item["loc"])
        # pydantic puts validator and union member names into loc; drop them for a readable path
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p[:1].isupper())))
        message = item["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(item["type"], "")
        if item["type"] == "extra_forbidden" and loc:
            allowed = _fields_at(model, tuple(item["loc"])[:-1]) if model is not None else None
            message = f"unknown key {loc[-1]!r}{did_you_mean(str(loc[-1]), allowed or [])}"
        if item["type"] == "extra_forbidden" and len(loc) == 3 and loc[0] == "targets":
            generic = ", ".join(n for n in TargetConfig.model_fields if n != "kind_block")
            hint = f"a target takes {generic}, and one settings block named after its kind"
        problems.append(Problem(file, _line_for(index, loc), _format_loc(loc), message, hint))
    return problems


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the generic part of setpoint.yaml. Raises ConfigProblems with every problem."""
    config_path = Path(path or os.environ.get("SETPOINT_CONFIG") or DEFAULT_CONFIG)
    if not config_path.exists():
        raise ConfigError(
            f"{config_path}: no such file. Pass -c FILE, set SETPOINT_CONFIG, or run 'setpoint demo' for a working example"
        )
    text = config_path.read_text()
    try:
        raw = yamlsafe.load(text)  # bounded: an alias bomb is refused, not expanded
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigProblems([Problem(str(config_path), line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(raw, dict):
        raise ConfigProblems([Problem(str(config_path), 1, "", "the file must be a mapping with sources and targets")])
    index = LineIndex(lambda: text)
    for target in raw.get("targets") or []:
        # the settings block is named after the kind (files:, kubernetes:); set it aside for its plugin
        if isinstance(target, dict) and isinstance(target.get("kind"), str) and target["kind"] in target:
            target["kind_block"] = target.pop(target["kind"]) or {}
    references = reference_problems(raw, str(config_path), index)
    try:
        config = Config.model_validate({**raw, "base_dir": config_path.resolve().parent, "file": config_path})
    except ValidationError as exc:
        schema = [p for p in _problems_from(exc, str(config_path), index, model=Config) if p.path]
        # the model's own reference check (loc at the top) is replaced by the positioned one
        raise ConfigProblems(schema + references) from None
    if references:
        raise ConfigProblems(references)
    problems = _destinations_inside_own_state(config, str(config_path), index)
    if problems:
        raise ConfigProblems(problems)
    return config


def reference_problems(raw: dict[str, Any], file: str, index: Mapping[tuple[Any, ...], int]) -> list[Problem]:
    """Sources, dependencies, duplicate names and cycles, read from the raw document so they are
    reported (at their own line) even when other parts of the file have schema errors."""
    raw_sources = raw.get("sources")
    sources: list[str] = [str(k) for k in raw_sources] if isinstance(raw_sources, dict) else []
    raw_targets = raw.get("targets")
    targets: list[dict[str, Any]] = [t if isinstance(t, dict) else {}
                                     for t in (raw_targets if isinstance(raw_targets, list) else [])]
    names: list[str] = [t["name"] for t in targets if isinstance(t.get("name"), str)]
    problems: list[Problem] = []

    def add(loc: tuple[Any, ...], message: str, hint: str = "") -> None:
        problems.append(Problem(file, _line_for(index, loc), _format_loc(loc), message, hint))

    seen: set[str] = set()
    for number, target in enumerate(targets):
        name = target.get("name")
        if isinstance(name, str):
            if name in seen:
                add(("targets", number, "name"), f"duplicate target name {name!r}", "give every target its own name")
            seen.add(name)
        source = target.get("source")
        if isinstance(source, str) and source not in sources:
            add(("targets", number, "source"),
                f"target {name!r} uses source {source!r}, which is not defined under sources{did_you_mean(source, sources)} "
                f"(defined: {', '.join(sorted(sources)) or 'none'})")
        deps = target.get("depends_on")
        for position, dep in enumerate(deps if isinstance(deps, list) else []):
            if dep == name:
                add(("targets", number, "depends_on", position), f"target {name!r} depends on itself")
            elif isinstance(dep, str) and dep not in names:
                add(("targets", number, "depends_on", position),
                    f"target {name!r} depends on {dep!r}, which is not a target{did_you_mean(dep, names)}")
    graph = {t["name"]: [d for d in t.get("depends_on") or [] if isinstance(d, str) and d != t["name"]]
             for t in targets if isinstance(t.get("name"), str) and isinstance(t.get("depends_on") or [], list)}
    cycle = find_cycle(graph)
    if cycle:
        first = next((i for i, t in enumerate(targets) if t.get("name") == cycle[0]), None)
        add(("targets", first, "depends_on") if first is not None else ("targets",),
            f"dependency cycle: {' -> '.join(cycle)}", "remove one depends_on entry of the cycle")
    return problems


def _destinations_inside_own_state(config: Config, file: str, index: Mapping[tuple[Any, ...], int]) -> list[Problem]:
    """A ``files`` destination must not overlap setpoint's state folder (state DB, Git cache, locks)
    or hold setpoint.yaml: Git content would overwrite the audit log or the configuration itself."""
    try:
        state_dir = Path(os.path.realpath(config.state_dir))
    except ConfigError:
        return []  # reported by whoever reads the state
    config_file = Path(os.path.realpath(config.file))
    problems = []
    for number, target in enumerate(config.targets):
        destination = target.settings_block.get("destination") if target.kind == "files" else None
        if not isinstance(destination, str | Path):
            continue
        dest = Path(os.path.realpath(config.resolve(destination)))
        clash = None
        if dest == state_dir or state_dir.is_relative_to(dest) or dest.is_relative_to(state_dir):
            clash = f"setpoint's state folder {state_dir} (state DB, Git cache, locks)"
        elif config_file.is_relative_to(dest):
            clash = f"setpoint's configuration file {config_file}"
        if clash:
            loc = ("targets", number, "files", "destination")
            problems.append(Problem(file, _line_for(index, loc), _format_loc(loc),
                                    f"the destination {dest} overlaps {clash}",
                                    "write the files to a folder outside setpoint's own files, or move the state"))
    return problems


def config_line_index(path: Path) -> Mapping[tuple[Any, ...], int]:
    """The lines of setpoint.yaml's key paths (read when a problem first needs one)."""
    return LineIndex(lambda: path.read_text() if path.exists() else "")


def validate_block(model: type[BaseModel] | None, block: dict[str, Any], file: str,
                   index: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...]) -> tuple[Any, list[Problem]]:
    """Validate a plugin-owned block (a kind's settings or a decryptor's secrets block)."""
    if model is None:
        if block:
            return None, [Problem(file, _line_for(index, loc), _format_loc(loc), "this kind takes no settings", "remove the block")]
        return None, []
    try:
        return model.model_validate(block), []
    except ValidationError as exc:
        return None, _problems_from(exc, file, index, loc, model=model)


LogFormat = Literal["plain", "json"]
