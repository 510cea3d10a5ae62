"""The cost of observing a Compose project, against the real engine: a no-op reads three lists and
inspects nothing, yet a stopped replica, a replica an event named, and a replica recreated by hand
are each inspected again, so the cache can never hide drift. One error-injection test (no Docker)
checks that an event is not forgotten when the observe after it fails."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from compose_helpers import ComposeEnv, two_services

from setpoint.api import Desired, SyncStatus
from setpoint.errors import TemporaryError
from setpoint_docker_compose.observe import Observer


class CountingApi:
    """The Docker SDK's low-level client, counting the calls observe makes."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


class CountingClient:
    def __init__(self, client: Any) -> None:
        self.api = CountingApi(client.api)
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _deployed(env: ComposeEnv, image: str, web_replicas: int = 1) -> Any:
    """An engine whose target deployed the two-service project."""
    env.repo.commit({"app/compose.yaml": two_services(image, web_replicas=web_replicas), "app/app.env": "MODE=a\n"},
                    "v1")
    engine = env.engine()
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    return engine


def _counting(engine: Any) -> CountingApi:
    driver = engine.runners["app"].driver
    counting = CountingClient(driver.client)
    driver._client = counting  # the test reaches into its own plugin's driver, not into the core
    return counting.api


@pytest.mark.docker
def test_noop_observe_lists_and_inspects_nothing(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    engine = _deployed(env, test_image, web_replicas=2)
    assert engine.reconcile("app").sync == SyncStatus.SYNCED  # fills the cache
    api = _counting(engine)

    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and not out.actions
    assert dict(api.calls) == {"containers": 1, "networks": 1, "volumes": 1}, api.calls

    # a stopped replica is inspected (exit code, restart count) and reported
    api.calls.clear()
    env.containers("worker")[0].stop(timeout=1)
    out = engine.reconcile("app")
    assert [c.key for c in out.drift] == ["service/worker"]
    assert api.calls["inspect_container"] >= 1


@pytest.mark.docker
def test_event_named_replica_is_inspected_even_when_listed_running(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    engine = _deployed(env, test_image)
    driver = engine.runners["app"].driver
    api = _counting(engine)
    web = env.containers("web")[0]

    driver._observer.touched(web.id)
    engine.reconcile("app")
    assert api.calls["inspect_container"] == 1, "the named replica only"

    api.calls.clear()
    driver._observer.touched(None)  # the events stream reconnected: anything may have happened
    engine.reconcile("app")
    assert api.calls["inspect_container"] == 2, "every replica once"

    api.calls.clear()
    engine.reconcile("app")
    assert api.calls["inspect_container"] == 0


@pytest.mark.docker
def test_replica_recreated_by_hand_with_other_env_is_seen(compose_env: ComposeEnv, test_image: str) -> None:
    """A hand-made copy under a new id: a new id is never served from the cache."""
    env = compose_env
    engine = _deployed(env, test_image)
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    old = env.containers("worker")[0]
    old.reload()
    config = old.attrs["Config"]
    old.remove(force=True)
    env.docker.containers.run(config["Image"], config["Cmd"], name=old.name, labels=config["Labels"], detach=True,
                              environment=[*config["Env"], "INJECTED=by-hand"])
    out = engine.reconcile("app")
    worker = [c for c in out.drift if c.key == "service/worker"]
    assert worker, out.drift
    assert any(f.path.startswith("environment") for f in worker[0].fields), worker[0].fields


def _logging_compose(env: ComposeEnv) -> tuple[str, Any]:
    """A compose binary that records each invocation's subcommand, then runs the real one."""
    log = env.tmp_path / "compose-calls.log"
    wrapper = env.tmp_path / "compose-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {env.compose_bin} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), lambda: log.read_text().splitlines() if log.exists() else []


@pytest.mark.docker
def test_stopped_or_paused_replica_is_started_without_compose(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    binary, calls = _logging_compose(env)
    env.repo.commit({"app/compose.yaml": two_services(test_image, web_replicas=2), "app/app.env": "MODE=a\n"}, "v1")
    engine = env.engine(env.target(self_heal=True, docker_compose={"compose_binary": binary}))
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    ups_before = [c for c in calls() if " up " in f" {c} "]
    ids = env.ids()

    env.containers("worker")[0].stop(timeout=1)
    env.containers("web")[1].pause()
    out = engine.reconcile("app")
    assert sorted(c.key for c in out.drift) == ["service/web", "service/worker"]
    assert len(env.running("worker")) == 1 and len(env.running("web")) == 2
    assert all(c.status == "running" for c in env.containers()), "unpaused too"
    assert env.ids() == ids, "the same containers, not recreated"
    assert [c for c in calls() if " up " in f" {c} "] == ups_before, "no compose process for a plain restart"
    assert engine.reconcile("app").sync == SyncStatus.SYNCED

    # state and something else drifted (a replica removed): Compose does the whole service
    env.containers("web")[1].remove(force=True)
    env.containers("web")[0].stop(timeout=1)
    out = engine.reconcile("app")
    assert len(env.running("web")) == 2
    assert len([c for c in calls() if " up " in f" {c} "]) == len(ups_before) + 1


class _FlakyApi:
    """Error injection: a Docker API whose list fails once, with one running container."""

    def __init__(self) -> None:
        self.fail_next = False
        self.inspected: list[str] = []

    def containers(self, **_: Any) -> list[dict[str, Any]]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("connection reset by peer")
        return [{"Id": "c1", "Names": ["/p-web-1"], "Image": "img:1", "ImageID": "sha256:1", "State": "running",
                 "Status": "Up 1 minute", "Labels": {"com.docker.compose.project": "p",
                                                     "com.docker.compose.service": "web"}}]

    def networks(self, **_: Any) -> list[Any]:
        return []

    def volumes(self, **_: Any) -> dict[str, Any]:
        return {"Volumes": None}

    def inspect_container(self, cid: str) -> dict[str, Any]:
        self.inspected.append(cid)
        return {"Config": {"Image": "img:1", "Env": []}, "State": {"Status": "running"}}

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {"Id": "sha256:1", "Config": {"Env": []}}


def test_an_event_is_not_lost_when_the_observe_after_it_fails(tmp_path: Any) -> None:
    api = _FlakyApi()
    client = type("Client", (), {"api": api})()
    observer = Observer("p", b"k" * 32, tmp_path)
    observer.observe(client, Desired.of([]), ())
    assert api.inspected == ["c1"], "a new container is inspected once"
    observer.touched("c1")
    api.fail_next = True
    with pytest.raises(TemporaryError, match="unreachable"):
        observer.observe(client, Desired.of([]), ())
    observer.observe(client, Desired.of([]), ())
    assert api.inspected == ["c1", "c1"], "the event survives the failed observe"
    observer.observe(client, Desired.of([]), ())
    assert api.inspected == ["c1", "c1"]
