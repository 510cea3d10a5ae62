"""Observe: the project's containers, networks and volumes through the Docker API, by Compose's labels.

Each service becomes one live resource whose body has the same fields as the desired one, so the
generic differ names what moved: ``state`` (stopped, removed, paused), ``replicas`` (scaled by hand),
``config`` (Compose's hash: recreated by hand with other settings), ``image`` (another image, or the
tag now points elsewhere), ``environment`` (read from the container itself, which also catches a
hand-made copy carrying Compose's labels) and ``content`` (setpoint's fingerprint label and the
mounted files on the host).
"""

from __future__ import annotations

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

    def ok(self, restart_policy: str) -> bool:
        """Running, being restarted by Docker (a health matter), or a one-shot that completed."""
        if self.status in ("running", "restarting"):
            return True
        return self.status == "exited" and self.exit_code == 0 and restart_policy in ("no", "on-failure", "")


class Observer:
    def __init__(self, client: Any, project: str, key: bytes, stable_root: Path) -> None:
        self.client = client
        self.project = project
        self.key = key
        self.stable_root = stable_root
        self._image_ids: dict[str, str | None] = {}
        self._image_env: dict[str, dict[str, str]] = {}

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        self._image_ids.clear()
        try:
            containers = self.client.containers.list(all=True, filters={"label": f"{PROJECT}={self.project}"},
                                                     ignore_removed=True)
            networks = self.client.networks.list(filters={"label": f"{PROJECT}={self.project}"})
            volumes = self.client.volumes.list(filters={"label": f"{PROJECT}={self.project}"})
        except UNREACHABLE as exc:
            raise TemporaryError(f"Docker host unreachable: {type(exc).__name__}: {str(exc)[:200]}") from None
        by_service: dict[str, list[Any]] = defaultdict(list)
        for container in containers:
            labels = container.labels or {}
            if labels.get(ONEOFF, "False") == "True" or SERVICE not in labels:
                continue
            by_service[labels[SERVICE]].append(container)
        project: Project | None = desired.extra.get("compose")
        found = []
        for name, members in sorted(by_service.items()):
            members.sort(key=lambda c: int((c.labels or {}).get(NUMBER, "0") or 0))
            want = desired.resources.get(service_key(name))
            found.append(self._service(name, members, want, project))
        for network in networks:
            key = (network.attrs.get("Labels") or {}).get("com.docker.compose.network")
            if key:
                found.append(Resource(f"network/{key}", "Network", key, _network(network.attrs),
                                      meta={"id": network.id}))
        for volume in volumes:
            key = (volume.attrs.get("Labels") or {}).get("com.docker.compose.volume")
            if key:
                found.append(Resource(f"volume/{key}", "Volume", key, _volume(volume.attrs),
                                      meta={"name": volume.name}))
        return Live.of(found)

    # ------------------------------------------------------------------ services

    def _service(self, name: str, members: list[Any], want: Resource | None, project: Project | None) -> Resource:
        restart = (want.meta.get("restart", "no") if want else "no") or "no"
        states = [_state(c) for c in members]
        body: dict[str, Any] = {
            "image": self._image(members, want),
            "replicas": len(members),
            "state": _summary(states, restart),
            "config": _config(members, want),
        }
        desired_env = want.body.get("environment", {}) if want else {}
        body["environment"] = self._environment(members, desired_env)
        if want is not None and "content" in want.body:
            body["content"] = self._content(name, members, want, project)
        if want is not None:
            body = wrap_like(body, want.body)
        meta = {"containers": states, "restart": restart}
        return Resource(service_key(name), "Service", name, body, meta=meta)

    def _image(self, members: list[Any], want: Resource | None) -> str:
        ref = want.body["image"] if want else None
        for container in members:
            configured = container.attrs.get("Config", {}).get("Image", "")
            if ref is None or configured != ref:
                return configured
            current = self._image_id(ref)
            running = container.attrs.get("Image", "")
            if current is not None and running != current:
                return f"{ref} (container runs image {_short(running)}; the tag now points to {_short(current)})"
        return ref or ""

    def _image_id(self, ref: str) -> str | None:
        if ref not in self._image_ids:
            try:
                self._image_ids[ref] = self.client.images.get(ref).id
            except NotFound:
                self._image_ids[ref] = None
        return self._image_ids[ref]

    def _environment(self, members: list[Any], desired_env: dict[str, Any]) -> dict[str, Any]:
        """The container's own environment, without what its image sets (unless the service sets it too)."""
        first: dict[str, Any] | None = None
        for container in members:
            image_env = self._image_environment(container.attrs.get("Image", ""))
            env = {}
            for item in container.attrs.get("Config", {}).get("Env") or []:
                key, _, value = item.partition("=")
                if key in desired_env or image_env.get(key) != value:
                    env[key] = value
            if first is None:
                first = env
            wrapped = wrap_like(env, desired_env)
            if wrapped != desired_env:
                return wrapped  # type: ignore[no-any-return]
        return wrap_like(first or {}, desired_env)  # type: ignore[no-any-return]

    def _image_environment(self, image_id: str) -> dict[str, str]:
        if image_id not in self._image_env:
            try:
                items = self.client.images.get(image_id).attrs.get("Config", {}).get("Env") or []
            except NotFound:
                items = []
            self._image_env[image_id] = dict(i.partition("=")[::2] for i in items)
        return self._image_env[image_id]

    def _content(self, name: str, members: list[Any], want: Resource, project: Project | None) -> str:
        expected = want.body["content"]
        for container in members:
            label = (container.labels or {}).get(CONTENT_LABEL)
            if label != expected:
                return label or "(no fingerprint label)"
        paths = project.content_paths.get(name, []) if project else []
        on_host = fingerprint(self.key, self.stable_root, paths)
        return expected if on_host == expected else f"{on_host} (files changed on the host)"


def _state(container: Any) -> ContainerState:
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    return ContainerState(container.name, container.id, state.get("Status", "unknown"), int(state.get("ExitCode") or 0),
                          health, int(container.attrs.get("RestartCount") or 0))


def _summary(states: list[ContainerState], restart: str) -> str:
    if not states:
        return "none"
    bad = [s.status if s.status != "exited" else f"exited ({s.exit_code})" for s in states if not s.ok(restart)]
    if not bad:
        return "running"
    counts: dict[str, int] = defaultdict(int)
    for status in bad:
        counts[status] += 1
    return ", ".join(f"{n} of {len(states)} {status}" for status, n in sorted(counts.items()))


def _config(members: list[Any], want: Resource | None) -> str:
    expected = want.body["config"] if want else None
    for container in members:
        label = (container.labels or {}).get(HASH)
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
