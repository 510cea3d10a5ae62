"""A service with `build:`: built from the commit, and rebuilt and recreated when a commit changes
only its Dockerfile or build context (Compose alone would reuse the image it already has), while a
change elsewhere in the folder leaves it alone."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from compose_helpers import ComposeEnv

from setpoint.api import SyncStatus
from setpoint.testing import wait_for, write_config

pytestmark = pytest.mark.docker


def test_build_context_changes_are_deployed(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    tag = f"local/{env.project}:1"
    compose = (f'services:\n  app:\n    build: ./img\n    image: {tag}\n    command: ["sleep", "3600"]\n'
               '    stop_grace_period: 1s\n')
    env.repo.commit({"app/compose.yaml": compose, "app/img/Dockerfile": f"FROM {test_image}\nENV BUILT=one\n",
                     "app/README.md": "notes\n"}, "v1")
    engine = env.engine()
    try:
        out = engine.reconcile("app")
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
        first = env.containers("app")[0]
        assert env.env_of(first)["BUILT"] == "one"

        env.repo.commit({"app/img/Dockerfile": f"FROM {test_image}\nENV BUILT=two\n"}, "v2: only the Dockerfile")
        out = engine.reconcile("app")
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
        assert [a["action"] for a in out.actions] == ["apply"]
        second = env.containers("app")[0]
        assert env.env_of(second)["BUILT"] == "two" and second.id != first.id

        env.repo.commit({"app/README.md": "more notes\n"}, "v3: outside the build context")
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.SYNCED and not out.actions
        assert env.containers("app")[0].id == second.id
    finally:
        engine.close()
        for container in env.containers():
            container.remove(force=True)
        try:
            env.docker.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001, S110 - the image may not exist if the build failed
            pass


def _remove_image(env: ComposeEnv, tag: str) -> None:
    try:
        env.docker.images.remove(tag, force=True)
    except Exception:  # noqa: BLE001, S110 - the image may not exist if the build failed
        pass


def test_build_without_image_is_not_drift(compose_env: ComposeEnv, test_image: str) -> None:
    """The way most public Compose files are written: ``build:`` and no ``image:``. Compose tags the
    image ``<project>-<service>``; comparing with an empty desired image recreated it on every sync."""
    env = compose_env
    compose = ("services:\n  api:\n    build:\n      context: ./api\n    command: [\"sleep\", \"3600\"]\n"
               "    stop_grace_period: 1s\n")
    env.repo.commit({"app/compose.yaml": compose, "app/api/Dockerfile": f"FROM {test_image}\nENV BUILT=one\n"}, "v1")
    engine = env.engine()
    try:
        out = engine.reconcile("app")
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
        container = env.containers("api")[0]
        assert container.attrs["Config"]["Image"] == f"{env.project}-api", "Compose's own project-scoped name"
        for _ in range(3):
            out = engine.reconcile("app")
            assert (out.sync, out.actions, out.drift) == (SyncStatus.SYNCED, (), ()), out
        assert env.containers("api")[0].id == container.id

        env.repo.commit({"app/api/Dockerfile": f"FROM {test_image}\nENV BUILT=two\n"}, "v2: the Dockerfile only")
        out = engine.reconcile("app")
        assert (out.sync, [a["action"] for a in out.actions]) == (SyncStatus.SYNCED, ["apply"]), out
        rebuilt = env.containers("api")[0]
        assert rebuilt.id != container.id and env.env_of(rebuilt)["BUILT"] == "two"
        assert not engine.reconcile("app").actions
    finally:
        engine.close()
        env.cleanup()
        _remove_image(env, f"{env.project}-api")


def test_build_without_image_is_left_alone_under_run(compose_env: ComposeEnv, test_image: str) -> None:
    """`setpoint run` with a short interval and the events stream: a built service is never recreated."""
    env = compose_env
    compose = ("services:\n  api:\n    build: ./api\n    command: [\"sleep\", \"3600\"]\n    stop_grace_period: 1s\n"
               "  cache:\n    image: " + test_image + "\n    command: [\"sleep\", \"3600\"]\n")
    env.repo.commit({"app/compose.yaml": compose, "app/api/Dockerfile": f"FROM {test_image}\n"}, "v1")
    config = write_config(env.tmp_path, env.repo.path, [env.target(self_heal=True, interval="1s")])
    log = open(env.tmp_path / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(env.running("api")) == 1 and len(env.running("cache")) == 1, 90, step=0.3)
        first = env.ids()
        time.sleep(12)  # a dozen intervals, with the events stream open
        assert env.ids() == first, "no recreation"
        audit = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "audit", "-o", "json"],
                               capture_output=True, text=True, timeout=60).stdout
        assert "revert-drift" not in audit and "drift-detected" not in audit
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        env.cleanup()
        _remove_image(env, f"{env.project}-api")
