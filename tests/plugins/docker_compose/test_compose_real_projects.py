"""Compose projects written the way public samples are (a voting-app style web + db + cache with a
seed job), adapted only to the local test images: healthcheck scripts committed 0755, a ``build:``
context whose entrypoint script is 0755, ``configs:``, ``profiles:``, a ``depends_on`` chain on
``service_healthy`` and ``service_completed_successfully``, a symlink inside the project.

What it pins down: Git's executable bit reaches the project mirror and the build context; a symlink
inside the folder is mirrored and one leaving it is refused; a long-running service stopped with exit
code 0 (``docker stop`` of a process that exits cleanly on SIGTERM, as redis and nginx do) is drift
and is repaired, while a one-shot job that completed is left alone.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Any

import pytest
from compose_helpers import ComposeEnv

from setpoint.api import HealthStatus, SyncStatus

pytestmark = pytest.mark.docker

# The image names are filled in; everything else is as a user writes it.
VOTING_APP = """\
# web + db + cache, with a one-off seed job (adapted from the usual voting-app samples)
x-fast-health: &fast-health
  interval: 1s
  timeout: 3s
  retries: 30

services:
  db:
    image: {image}
    # like postgres: exits 0 on SIGTERM
    command: ["sh", "-c", "trap 'exit 0' TERM; mkdir -p /var/lib/db; touch /var/lib/db/up; while true; do sleep 1; done"]
    volumes:
      - db-data:/var/lib/db
      - ./healthchecks:/healthchecks:ro
    healthcheck:
      test: ["CMD", "/healthchecks/db.sh"]
      <<: *fast-health
    networks:
      - back-tier
    stop_grace_period: 2s

  cache:
    image: {image_2}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumes:
      - "./healthchecks:/healthchecks:ro"
    healthcheck:
      test: ["CMD", "/healthchecks/cache.sh"]
      <<: *fast-health
    networks:
      - back-tier
    stop_grace_period: 2s

  seed:
    build:
      context: ./seed-data
    restart: "no"
    depends_on:
      db:
        condition: service_healthy
    volumes:
      - db-data:/var/lib/db
    networks:
      - back-tier

  web:
    image: {image}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    configs:
      - source: site
        target: /www/index.html
    depends_on:
      seed:
        condition: service_completed_successfully
      cache:
        condition: service_healthy
    healthcheck:
      test: ["CMD", "/healthchecks/web.sh"]
      <<: *fast-health
    volumes:
      - ./healthchecks:/healthchecks:ro
    networks:
      - front-tier
      - back-tier
    stop_grace_period: 2s

  adminer:
    image: {image}
    profiles: ["debug"]
    command: ["sleep", "3600"]

configs:
  site:
    file: ./site/index.html

volumes:
  db-data:

networks:
  front-tier:
  back-tier:
"""

SCRIPTS = {
    "app/healthchecks/db.sh": "#!/bin/sh\nset -e\ntest -f /var/lib/db/up\n",
    "app/healthchecks/cache.sh": "#!/bin/sh\nset -e\npidof sleep >/dev/null\n",
    "app/healthchecks/web.sh": "#!/bin/sh\nset -e\nwget -q -O /dev/null http://127.0.0.1:8080/\n",
    "app/seed-data/seed.sh": "#!/bin/sh\nset -e\necho 'votes: cats=0 dogs=0' > /var/lib/db/seeded\n",
}


def _voting_app(image: str, image_2: str) -> dict[str, str]:
    return {
        "app/compose.yaml": VOTING_APP.format(image=image, image_2=image_2),
        "app/seed-data/Dockerfile": f"FROM {image}\nCOPY seed.sh /usr/local/bin/seed.sh\n"
                                    'CMD ["/usr/local/bin/seed.sh"]\n',
        "app/site/pages/v1.html": "<h1>Cats or dogs?</h1>\n",
        **SCRIPTS,
    }


def _commit_voting_app(env: ComposeEnv, image: str, image_2: str) -> None:
    env.repo.write(_voting_app(image, image_2), mode={p: 0o755 for p in SCRIPTS})
    link = env.repo.path / "app/site/index.html"
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("pages/v1.html", link)
    env.repo.commit(message="voting app")


def _until_healthy(engine: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        out = engine.reconcile("app")
        if out.health == HealthStatus.HEALTHY or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def _exec(container: Any, *cmd: str) -> str:
    code, output = container.exec_run(list(cmd))
    assert code == 0, output
    return output.decode()


def test_voting_app_as_written(compose_env: ComposeEnv, test_image: str, test_image_2: str) -> None:
    env = compose_env
    _commit_voting_app(env, test_image, test_image_2)
    engine = env.engine(env.target(self_heal=True))
    try:
        out = _until_healthy(engine)
        assert (out.sync, out.health, out.error) == (SyncStatus.SYNCED, HealthStatus.HEALTHY, None), \
            (out, engine.store.status("app"))
        services = {c.labels["com.docker.compose.service"] for c in env.containers()}
        assert services == {"db", "cache", "seed", "web"}, "the debug profile is not enabled"

        # Git's 0755 reached the mirror (healthchecks pass) and the build context (the seed ran)
        tree = env.tmp_path / "state" / "targets" / "app" / "tree"
        assert stat.S_IMODE((tree / "healthchecks" / "web.sh").stat().st_mode) == 0o755
        assert stat.S_IMODE((tree / "seed-data" / "Dockerfile").stat().st_mode) == 0o644
        seed = env.containers("seed")[0]
        assert (seed.attrs["State"]["Status"], seed.attrs["State"]["ExitCode"]) == ("exited", 0)
        db = env.containers("db")[0]
        assert "cats=0" in _exec(db, "cat", "/var/lib/db/seeded")
        # the symlink inside the project was mirrored as a link and serves the page
        assert os.readlink(tree / "site" / "index.html") == "pages/v1.html"
        web = env.containers("web")[0]
        assert "Cats or dogs?" in _exec(web, "wget", "-q", "-O-", "http://127.0.0.1:8080/")

        # no-op: the completed seed job is not drift and is not run again
        ids, seed_started = env.ids(), seed.attrs["State"]["StartedAt"]
        out = engine.reconcile("app")
        assert (out.sync, out.actions, out.drift) == (SyncStatus.SYNCED, (), ()), out
        assert env.ids() == ids
        seed.reload()
        assert seed.attrs["State"]["StartedAt"] == seed_started

        # `docker stop` of the cache: its process exits 0 on SIGTERM; still drift, repaired in place
        cache = env.containers("cache")[0]
        cache.stop(timeout=5)
        cache.reload()
        assert cache.attrs["State"]["ExitCode"] == 0
        out = engine.reconcile("app")
        assert [c.key for c in out.drift] == ["service/cache"], out
        assert env.running("cache") and env.ids() == ids
        out = _until_healthy(engine)
        assert out.health == HealthStatus.HEALTHY and not out.drift
    finally:
        engine.close()
        env.cleanup()
        try:
            env.docker.images.remove(f"{env.project}-seed", force=True)
        except Exception:  # noqa: BLE001, S110 - not built if the test failed early
            pass


def test_stopped_replicas_with_exit_0_are_not_synced(compose_env: ComposeEnv, test_image: str) -> None:
    """What a hand `--scale` race left behind: replicas down with exit code 0. Not Synced, not Healthy."""
    env = compose_env
    compose = (f"services:\n  worker:\n    image: {test_image}\n"
               "    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
               "    deploy:\n      replicas: 3\n    stop_grace_period: 2s\n")
    env.repo.commit({"app/compose.yaml": compose}, "three workers")
    engine = env.engine(env.target(self_heal=False))
    try:
        assert engine.reconcile("app").sync == SyncStatus.SYNCED
        workers = env.containers("worker")
        for worker in workers[1:]:
            worker.stop(timeout=5)
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.OUT_OF_SYNC and out.health == HealthStatus.DEGRADED, out
        state = next(f for f in out.drift[0].fields if f.path == "state")
        assert (state.before, state.after) == ("2 of 3 exited (0)", "running")
        assert len(env.running("worker")) == 1, "reported only (self_heal off)"
    finally:
        engine.close()


def test_one_shot_job_declared_by_label(compose_env: ComposeEnv, test_image: str) -> None:
    """A job nothing depends on (a migration) is declared with the label io.setpoint.one-shot."""
    env = compose_env
    compose = (f"services:\n  migrate:\n    image: {test_image}\n    command: [\"true\"]\n    restart: \"no\"\n"
               "    labels:\n      io.setpoint.one-shot: \"true\"\n"
               f"  stopped:\n    image: {test_image}\n    command: [\"true\"]\n")
    env.repo.commit({"app/compose.yaml": compose}, "a job and a service that exits")
    engine = env.engine(env.target(self_heal=False))
    try:
        engine.reconcile("app")
        time.sleep(1)
        out = engine.reconcile("app")
        assert [c.key for c in out.drift] == ["service/stopped"], out
        assert "migrate" not in engine.store.status("app").health_message
    finally:
        engine.close()


def test_symlink_leaving_the_folder_is_refused(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    env.repo.write({"app/compose.yaml": f"services:\n  web:\n    image: {test_image}\n    command: [sleep, '60']\n",
                    "shared/nginx.conf": "server {}\n"})
    os.symlink("../shared/nginx.conf", env.repo.path / "app/nginx.conf")
    env.repo.commit(message="a link out of the folder")
    engine = env.engine()
    try:
        out = engine.reconcile("app")
        assert out.sync != SyncStatus.SYNCED and out.error is not None
        assert "nginx.conf" in out.error and "leaves the target's folder" in out.error, out.error
        assert not env.containers(), "nothing applied"
    finally:
        engine.close()
