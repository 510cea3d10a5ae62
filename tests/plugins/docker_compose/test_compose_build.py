"""A service with `build:`: built from the commit, and rebuilt and recreated when a commit changes
only its Dockerfile or build context (Compose alone would reuse the image it already has), while a
change elsewhere in the folder leaves it alone."""

from __future__ import annotations

import pytest
from compose_helpers import ComposeEnv

from setpoint.api import SyncStatus

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
