"""The user's five phases with a real Compose project: first deploy, no-op, manual drift of each kind
repaired, a new commit rolled out, git revert rolled back."""

from __future__ import annotations

from typing import Any

import pytest
from compose_helpers import ComposeEnv, two_services

from setpoint.api import HealthStatus, SyncStatus

pytestmark = pytest.mark.docker


def test_five_phases(compose_env: ComposeEnv, test_image: str, test_image_2: str) -> None:
    env, repo = compose_env, compose_env.repo
    v1 = repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1",
                     author="Alice <alice@example.com>")
    engine = env.engine(env.target(self_heal=True, prune=True))

    # 1. first deploy
    out = engine.reconcile("app")
    assert (out.sync, out.health, out.error) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, None), out
    assert [c.name for c in env.containers()] == [f"{env.project}-web-1", f"{env.project}-worker-1"]
    web = env.containers("web")[0]
    assert env.env_of(web)["MODE"] == "blue" and env.env_of(web)["GREETING"] == "hello"
    assert out.revision.sha == v1

    # 2. no-op: nothing recreated, nothing audited (env_file is used: the #14001 workaround holds)
    ids = env.ids()
    audits = len(engine.store.audit_entries())
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and not out.actions and not out.drift
    assert env.ids() == ids and len(engine.store.audit_entries()) == audits

    # 3a. a container stopped by hand
    env.containers("worker")[0].stop(timeout=1)
    out = engine.reconcile("app")
    assert [c.key for c in out.drift] == ["service/worker"]
    assert env.running("worker") and env.ids() == ids, "started again, not recreated"
    revert = engine.store.audit_entries(actions=("revert-drift",))[-1]
    assert {"path": "state", "before": "1 of 1 exited (137)", "after": "running"} in revert.details["changes"][0]["fields"] \
        or any(f["path"] == "state" and f["after"] == "running" for f in revert.details["changes"][0]["fields"])

    # 3b. a container removed by hand
    env.containers("web")[0].remove(force=True)
    out = engine.reconcile("app")
    assert [c.key for c in out.drift] == ["service/web"] and out.sync == SyncStatus.SYNCED
    assert len(env.running("web")) == 1

    # 3c. scaled by hand
    for number in (2, 3):
        _copy_by_hand(env, env.containers("worker")[0], number)
    assert len(env.containers("worker")) == 3
    out = engine.reconcile("app")
    fields = out.drift[0].fields
    assert any(f.path == "replicas" and (f.before, f.after) == (3, 1) for f in fields)
    assert len(env.containers("worker")) == 1

    # 3d. replaced by hand: same Compose labels (a copy of the container), other environment
    _replace_by_hand(env, env.containers("web")[0], {"GREETING": "hacked"})
    out = engine.reconcile("app")
    changes = {f.path: (f.before, f.after) for f in out.drift[0].fields}
    assert changes["environment.GREETING"] == ("hacked", "hello")
    assert env.env_of(env.containers("web")[0])["GREETING"] == "hello"
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    kinds = [e.action for e in engine.store.audit_entries(actions=("drift-detected", "revert-drift"))]
    assert kinds.count("revert-drift") == 4

    # 4. a new commit: image tag and environment value
    ids = env.ids()
    v2 = repo.commit({"app/compose.yaml": two_services(test_image_2, greeting="bonjour")}, "v2",
                     author="Bob <bob@example.com>")
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and not out.drift and out.revision.sha == v2
    web, worker = env.containers("web")[0], env.containers("worker")[0]
    assert web.attrs["Config"]["Image"] == test_image_2 and env.env_of(web)["GREETING"] == "bonjour"
    assert web.id != ids[web.name] and worker.id != ids[worker.name]
    apply = engine.store.audit_entries(actions=("apply",))[-1]
    assert apply.revision == v2 and apply.author == "Bob <bob@example.com>"
    fields = {f["path"]: f for c in apply.details["changes"] for f in c["fields"]}
    assert fields["image"]["before"] == test_image and fields["image"]["after"] == test_image_2
    assert fields["environment.GREETING"]["after"] == "bonjour"

    # 5. git revert rolls back
    v3 = repo.revert(v2)
    out = engine.reconcile("app")
    assert out.sync == SyncStatus.SYNCED and out.revision.sha == v3
    web = env.containers("web")[0]
    assert web.attrs["Config"]["Image"] == test_image and env.env_of(web)["GREETING"] == "hello"
    assert env.env_of(web)["MODE"] == "blue"
    engine.close()


def _copy_by_hand(env: ComposeEnv, container: Any, number: int) -> None:
    """A scale by hand: another replica with Compose's labels and the next container number."""
    container.reload()
    config = container.attrs["Config"]
    labels = {**config["Labels"], "com.docker.compose.container-number": str(number)}
    name = container.name.rsplit("-", 1)[0] + f"-{number}"
    env.docker.containers.run(config["Image"], config["Cmd"], name=name, labels=labels, detach=True,
                              environment=config["Env"], network=f"{env.project}_default")


def _replace_by_hand(env: ComposeEnv, container: Any, environment: dict[str, str]) -> None:
    """What someone does with `docker inspect` + `docker run`: the same labels, a changed environment."""
    container.reload()
    config = container.attrs["Config"]
    values = dict(item.partition("=")[::2] for item in config["Env"])
    values.update(environment)
    name, labels, network = container.name, config["Labels"], f"{env.project}_default"
    container.remove(force=True)
    env.docker.containers.run(config["Image"], config["Cmd"], name=name, labels=labels, detach=True,
                              environment=values, network=network)
