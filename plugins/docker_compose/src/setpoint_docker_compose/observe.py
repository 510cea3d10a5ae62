"""Observe: the project's containers, networks and volumes through the Docker API, by Compose's labels.

Each service becomes one live resource whose body has the same fields as the desired one, so the
generic differ names what moved: ``state`` (stopped, removed, paused), ``replicas`` (scaled by hand),
``config`` (Compose's hash: recreated by hand with other settings), ``image`` (another image, or the
tag now points elsewhere), ``environment`` (read from the container itself, which also catches a
hand-made copy carrying Compose's labels) and ``content`` (setpoint's fingerprint label and the
mounted files on the host).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.errors import NotFound

from setpoint.api import Desired, Live, Resource
from setpoint.errors import TemporaryError
from setpoint.secrets import wrap_like
from setpoint_docker_compose.connection import UNREACHABLE
from setpoint_docker_compose.hashing import CONTENT_LABEL, fingerprint
from setpoint_docker_compose.render import Project, network_body, service_key, volume_body

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
ONEOFF = "com.docker.compose.oneoff"
HASH = "com.docker.compose.config-hash"
NUMBER = "com.docker.compose.container-number"


@dataclass(frozen=True)
class ContainerState:
    """What health and the crash-loop guard need about one replica."""

    name: str
    id: str
    status: str  # running, exited, paused, restarting, dead, created
    exit_code: int
    health: str | None  # starting, healthy, unhealthy; None without a healthcheck
    restart_count: int

    def ok(self, one_shot: bool) -> bool:
        """Running, being restarted by Docker (a health matter), or a one-shot job that completed.
        A long-running service that exited 0 (``docker stop`` of redis or nginx) is stopped, not done."""
        if self.status in ("running", "restarting"):
            return True
        return one_shot and self.status == "exited" and self.exit_code == 0


@dataclass(frozen=True)
class _Container:
    """One replica as observe needs it: the list summary plus the parts of an inspection that never change."""

    name: str
    id: str
    labels: dict[str, str]
    configured_image: str  # the reference the container was created from
    listed_image: str  # what the list reports: that reference while it still resolves to image_id, else image_id
    image_id: str  # the image the container runs
    env: list[str]
    state: ContainerState


class Observer:
    """Reads a project's live state in three list requests when nothing changed.

    A no-op is the hot path (every poll and every event ends in one), so the per-container work is
    cached: a container's configuration (environment, image reference) cannot change without
    recreating it under a new id, and an image's environment cannot change without a new image id.
    A replica is inspected again when it is not running (for its exit code and restart count) or
    when the events stream named it since the last observe: the daemon updates the list view only
    after it has sent an event such as ``die``, so right after an event the list may still say
    running. Whether a tag still points at the running image comes from the list itself: the
    daemon reports the image id instead of the reference once the reference resolves elsewhere.
    """

    def __init__(self, project: str, key: bytes, stable_root: Path, host: str = "") -> None:
        self.project = project
        self.host = host  # as configured, for messages
        self.key = key
        self.stable_root = stable_root
        self._config: dict[str, dict[str, Any]] = {}  # container id -> its inspected Config
        self._image_env: dict[str, dict[str, str]] = {}  # image id -> the environment it sets
        self._touched: set[str] = set()  # containers an event named since the last observe
        self._touched_all = False  # events may have been missed: inspect everything once
        self._touched_lock = threading.Lock()

    def touched(self, container_id: str | None) -> None:
        """An event named this container (None: events may have been missed): inspect it next time."""
        with self._touched_lock:
            if container_id is None:
                self._touched_all = True
            else:
                self._touched.add(container_id)

    def observe(self, client: Any, desired: Desired, managed: Collection[str]) -> Live:
        label = {"label": f"{PROJECT}={self.project}"}
        with self._touched_lock:
            touched, self._touched = self._touched, set()
            if self._touched_all:
                self._config.clear()
                self._touched_all = False
        try:
            summaries = client.api.containers(all=True, filters=label)
            networks = client.api.networks(filters=label)
            volumes = client.api.volumes(filters=label).get("Volumes") or []
            containers = [c for c in (self._container(client, s, touched) for s in summaries) if c is not None]
        except BaseException as exc:
            with self._touched_lock:  # not looked at after all: the next observe must
                self._touched |= touched
            if isinstance(exc, UNREACHABLE):
                host = f"Docker host {self.host}" if self.host else "Docker host"
                raise TemporaryError(f"{host} is unreachable: {unreachable_reason(exc)}") from None
            raise
        self._forget_except({c.id for c in containers})
        by_service: dict[str, list[_Container]] = defaultdict(list)
        for container in containers:
            if container.labels.get(ONEOFF, "False") == "True" or SERVICE not in container.labels:
                continue
            by_service[container.labels[SERVICE]].append(container)
        project: Project | None = desired.extra.get("compose")
        found = []
        for name, members in sorted(by_service.items()):
            members.sort(key=lambda c: int(c.labels.get(NUMBER, "0") or 0))
            want = desired.resources.get(service_key(name))
            found.append(self._service(client, name, members, want, project))
        for network in networks:
            key = (network.get("Labels") or {}).get("com.docker.compose.network")
            if key:
                found.append(Resource(f"network/{key}", "Network", key, _network(network), meta={"id": network["Id"]}))
        for volume in volumes:
            key = (volume.get("Labels") or {}).get("com.docker.compose.volume")
            if key:
                found.append(Resource(f"volume/{key}", "Volume", key, _volume(volume), meta={"name": volume["Name"]}))
        return Live.of(found)

    # ------------------------------------------------------------------ containers

    def _container(self, client: Any, summary: dict[str, Any], touched: set[str]) -> _Container | None:
        """The summary, completed from the cache or, for a new, touched or not-running replica, one inspection."""
        cid = summary["Id"]
        attrs: dict[str, Any] | None = None
        if cid not in self._config or cid in touched or summary.get("State") != "running":
            try:
                attrs = client.api.inspect_container(cid)
            except NotFound:
                return None  # removed between the list and the inspection
            self._config[cid] = attrs.get("Config") or {}
        config = self._config[cid]
        name = (summary.get("Names") or [f"/{cid[:12]}"])[0].lstrip("/")
        if attrs is not None:
            state = _state(name, cid, attrs)
        else:
            state = ContainerState(name, cid, "running", 0, _listed_health(summary.get("Status", "")), 0)
        return _Container(name, cid, summary.get("Labels") or {}, config.get("Image", ""), summary.get("Image", ""),
                          summary.get("ImageID", ""), config.get("Env") or [], state)

    def _forget_except(self, ids: set[str]) -> None:
        for cid in [c for c in self._config if c not in ids]:
            del self._config[cid]

    # ------------------------------------------------------------------ services

    def _service(self, client: Any, name: str, members: list[_Container], want: Resource | None,
                 project: Project | None) -> Resource:
        one_shot = bool(want.meta.get("one_shot")) if want else False
        states = [c.state for c in members]
        body: dict[str, Any] = {
            "image": self._image(client, members, want),
            "replicas": len(members),
            "state": _summary(states, one_shot),
            "config": _config(members, want),
        }
        desired_env = want.body.get("environment", {}) if want else {}
        body["environment"] = self._environment(client, members, desired_env)
        if want is not None and "content" in want.body:
            body["content"] = self._content(name, members, want, project)
        if want is not None:
            body = wrap_like(body, want.body)
        meta = {"containers": states, "one_shot": one_shot}
        return Resource(service_key(name), "Service", name, body, meta=meta)

    def _image(self, client: Any, members: list[_Container], want: Resource | None) -> str:
        ref = want.body["image"] if want else None
        for container in members:
            if ref is None or container.configured_image != ref:
                return container.configured_image
            if container.listed_image != ref:  # the reference no longer resolves to the running image
                current = _image_id(client, ref)
                if current is not None and current != container.image_id:
                    return (f"{ref} (container runs image {_short(container.image_id)}; "
                            f"the tag now points to {_short(current)})")
        return ref or ""

    def _environment(self, client: Any, members: list[_Container], desired_env: dict[str, Any]) -> dict[str, Any]:
        """The container's own environment, without what its image sets (unless the service sets it too)."""
        first: dict[str, Any] | None = None
        for container in members:
            image_env = self._image_environment(client, container.image_id)
            env = {}
            for item in container.env:
                key, _, value = item.partition("=")
                if key in desired_env or image_env.get(key) != value:
                    env[key] = value
            if first is None:
                first = env
            wrapped = wrap_like(env, desired_env)
            if wrapped != desired_env:
                return wrapped  # type: ignore[no-any-return]
        return wrap_like(first or {}, desired_env)  # type: ignore[no-any-return]

    def _image_environment(self, client: Any, image_id: str) -> dict[str, str]:
        if image_id not in self._image_env:
            try:
                items = (client.api.inspect_image(image_id).get("Config") or {}).get("Env") or []
            except NotFound:
                return {}  # not cached: the image may come back (pulled again) under the same id
            if len(self._image_env) >= _IMAGE_CACHE_SIZE:
                self._image_env.clear()
            self._image_env[image_id] = dict(i.partition("=")[::2] for i in items)
        return self._image_env[image_id]

    def _content(self, name: str, members: list[_Container], want: Resource, project: Project | None) -> str:
        expected = want.body["content"]
        for container in members:
            label = container.labels.get(CONTENT_LABEL)
            if label != expected:
                return label or "(no fingerprint label)"
        paths = project.content_paths.get(name, []) if project else []
        on_host = fingerprint(self.key, self.stable_root, paths)
        return expected if on_host == expected else f"{on_host} (files changed on the host)"


#: Image ids are content addresses, so their environments never go stale; the bound only caps memory.
_IMAGE_CACHE_SIZE = 256


def unreachable_reason(exc: BaseException) -> str:
    """The operating system's reason inside a client error ("Connection refused"), else its type:
    requests wraps it in a long message holding the request URL."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return f"{type(exc).__name__}: {match[1].strip()}"
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _image_id(client: Any, ref: str) -> str | None:
    try:
        return str(client.api.inspect_image(ref)["Id"])
    except NotFound:
        return None


def _listed_health(status: str) -> str | None:
    """The health a running container's list status shows: ``Up 2 minutes (healthy)``, ``(health: starting)``."""
    if status.endswith(")") and "(" in status:
        shown = status[status.rindex("(") + 1:-1]
        return {"healthy": "healthy", "unhealthy": "unhealthy", "health: starting": "starting"}.get(shown)
    return None


def _state(name: str, cid: str, attrs: dict[str, Any]) -> ContainerState:
    state = attrs.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    return ContainerState(name, cid, state.get("Status", "unknown"), int(state.get("ExitCode") or 0), health,
                          int(attrs.get("RestartCount") or 0))


def _summary(states: list[ContainerState], one_shot: bool) -> str:
    if not states:
        return "none"
    bad = [s.status if s.status != "exited" else f"exited ({s.exit_code})" for s in states if not s.ok(one_shot)]
    if not bad:
        return "running"
    counts: dict[str, int] = defaultdict(int)
    for status in bad:
        counts[status] += 1
    return ", ".join(f"{n} of {len(states)} {status}" for status, n in sorted(counts.items()))


def _config(members: list[_Container], want: Resource | None) -> str:
    expected = want.body["config"] if want else None
    for container in members:
        label = container.labels.get(HASH)
        if label != expected:
            return label or "(no compose config-hash label)"
    return expected or ""


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _user_labels(labels: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (labels or {}).items() if not k.startswith("com.docker.compose.")}


def _network(attrs: dict[str, Any]) -> dict[str, Any]:
    return network_body({"name": attrs.get("Name"), "driver": attrs.get("Driver"), "internal": attrs.get("Internal"),
                         "attachable": attrs.get("Attachable"), "labels": _user_labels(attrs.get("Labels")),
                         "driver_opts": attrs.get("Options") or {}})


def _volume(attrs: dict[str, Any]) -> dict[str, Any]:
    return volume_body({"name": attrs.get("Name"), "driver": attrs.get("Driver"),
                        "labels": _user_labels(attrs.get("Labels")), "driver_opts": attrs.get("Options") or {}})
