"""Safety with a real Compose project: prune on/off, the empty-render guard, removal from Git (down,
volumes kept, after approval), a broken compose file, a volume recreation held for approval, and a
Docker host that is down marking only its own target."""

from __future__ import annotations

import pytest
import yaml
from compose_helpers import ComposeEnv, two_services

from setpoint.api import SyncStatus

pytestmark = pytest.mark.docker

BUDGET = {"max_count": 10, "max_percent": 100}


def _drop_worker(image: str) -> str:
    doc = yaml.safe_load(two_services(image))
    del doc["services"]["worker"]
    del doc["volumes"]
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("prune", [True, False])
def test_service_removed_from_git(compose_env: ComposeEnv, test_image: str, prune: bool) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    engine = env.engine(env.target(prune=prune, deletion_budget=BUDGET))
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    web_id = env.containers("web")[0].id
    env.repo.commit({"app/compose.yaml": _drop_worker(test_image)}, "drop worker")
    out = engine.reconcile("app")
    assert env.containers("web")[0].id == web_id, "web is untouched"
    if prune:
        assert out.sync == SyncStatus.SYNCED and env.containers("worker") == []
        assert "worker" in str(engine.store.audit_entries(actions=("apply",))[-1].details)
    else:
        assert len(env.containers("worker")) == 1
        assert "removed from Git are kept because prune is off" in engine.store.status("app")["message"]
    assert env.docker.volumes.get(f"{env.project}_data"), "named volumes are never removed by a prune"
    engine.close()


def test_empty_render_guard(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    engine = env.engine(env.target(prune=True, deletion_budget=BUDGET))
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    # every service behind a profile nobody enables: Compose renders an empty project
    doc = yaml.safe_load(two_services(test_image))
    for service in doc["services"].values():
        service["profiles"] = ["never"]
    env.repo.commit({"app/compose.yaml": yaml.safe_dump(doc)}, "oops")
    out = engine.reconcile("app")
    assert out.error_stage == "review" and "produced no resources" in out.error
    assert len(env.running("web")) == 1 and len(env.running("worker")) == 1
    engine.close()


def test_folder_removed_from_git_goes_down_after_approval_keeping_volumes(compose_env: ComposeEnv,
                                                                          test_image: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n",
                     "other/readme": "x"}, "v1")
    engine = env.engine(env.target(prune=True, allow_empty=True))
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    env.containers("worker")[0].exec_run(["sh", "-c", "echo precious > /data/file"])
    env.repo.commit({"app/compose.yaml": None, "app/app.env": None}, "retire the app")
    out = engine.reconcile("app")
    assert out.held_plan_id, "removal of a whole target waits for a person"
    assert len(env.running("web")) == 1
    engine.approve("app", out.held_plan_id, by="oncall")
    out = engine.reconcile("app")
    assert out.error is None, out.error
    assert env.containers() == []
    assert not env.docker.networks.list(filters={"label": f"com.docker.compose.project={env.project}"})
    volume = env.docker.volumes.get(f"{env.project}_data")
    probe = env.docker.containers.run(test_image, ["cat", "/data/file"], volumes={volume.name: {"bind": "/data"}},
                                      remove=True)
    assert probe.strip() == b"precious"
    engine.close()


def test_broken_compose_file_applies_nothing_then_recovers(compose_env: ComposeEnv, test_image: str,
                                                           test_image_2: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    engine = env.engine(env.target())
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    ids = env.ids()
    broken = two_services(test_image_2).replace("services:", "services:\n  bad:\n    image: x\n    ports: [\"abc\"]", 1)
    env.repo.commit({"app/compose.yaml": broken}, "broken")
    out = engine.reconcile("app")
    assert out.error_stage == "render" and "abc" in out.error
    status = engine.store.status("app")
    assert status["error_stage"] == "render" and status["last_error"]
    assert env.ids() == ids and all(c.status == "running" for c in env.containers())
    env.repo.commit({"app/compose.yaml": two_services(test_image_2)}, "fixed")
    out = engine.reconcile("app")
    assert out.error is None and out.sync == SyncStatus.SYNCED
    assert env.containers("web")[0].attrs["Config"]["Image"] == test_image_2
    assert engine.store.audit_entries(actions=("recovered",))
    engine.close()


def test_volume_recreation_is_held_for_approval(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    engine = env.engine(env.target())
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    doc = yaml.safe_load(two_services(test_image))
    doc["volumes"]["data"] = {"labels": {"tier": "gold"}}
    env.repo.commit({"app/compose.yaml": yaml.safe_dump(doc)}, "label the volume")
    out = engine.reconcile("app")
    assert out.held_plan_id and "recreates volume(s) data" in engine.store.status("app")["message"]
    assert env.docker.volumes.get(f"{env.project}_data").attrs["Labels"].get("tier") is None
    engine.approve("app", out.held_plan_id, by="dba")
    out = engine.reconcile("app")
    assert out.error is None, out.error
    assert env.docker.volumes.get(f"{env.project}_data").attrs["Labels"].get("tier") == "gold"
    assert engine.reconcile("app").sync == SyncStatus.SYNCED
    engine.close()


def test_host_down_marks_only_its_target(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    env.repo.commit({"app/compose.yaml": two_services(test_image), "app/app.env": "MODE=blue\n"}, "v1")
    remote = env.target(name="remote", docker_compose={"host": "tcp://127.0.0.1:9", "project_name": env.project + "-r"})
    engine = env.engine(env.target(), remote)
    by_name = {o.target.name: o for o in engine.sync()}
    assert by_name["app"].sync == SyncStatus.SYNCED and by_name["app"].error is None
    assert by_name["remote"].error_stage == "observe" and "unreachable" in by_name["remote"].error
    engine.close()
