"""Errors a user can act on: the repository path and the real line (never the private /dev/shm copy
Compose read, nor the line where go-yaml's enclosing mapping began), the file of an undefined
``depends_on``, and one failed ``compose up`` reported once for the target, not once per resource."""

from __future__ import annotations

import pytest
from compose_helpers import ComposeEnv

from setpoint.api import SyncStatus

pytestmark = pytest.mark.docker


def _long_compose(image: str, broken_line: str) -> tuple[str, int]:
    lines = ["# shop: web + db + cache", "services:", "  web:", f"    image: {image}",
             "    command: [httpd, -f, -p, '8080']"]
    lines += [f"    # note {i}: keep the web tier stateless" for i in range(38)]
    lines += ["    environment:", "      MODE: production", "      LOG_LEVEL: info"]
    lines.append(broken_line)
    line = len(lines)
    lines += ["  db:", f"    image: {image}", "    command: [sleep, '3600']", ""]
    return "\n".join(lines), line


def test_yaml_error_names_repository_file_and_line(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    text, line = _long_compose(test_image, "     WORKERS: 4   # one space short")
    env.repo.commit({"hosts/web1/shop/compose.yaml": text}, "a typo at line 47")
    engine = env.engine(env.target(path="hosts/web1/shop"))
    try:
        out = engine.reconcile("app")
        assert out.sync != SyncStatus.SYNCED and out.error
        assert f"hosts/web1/shop/compose.yaml:{line}:" in out.error, out.error
        assert "/dev/shm" not in out.error and "setpoint-tree-" not in out.error
        assert line == 47
    finally:
        engine.close()


def test_undefined_depends_on_names_the_file(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    compose = (f"services:\n  db:\n    image: {test_image}\n  web:\n    image: {test_image}\n"
               "    depends_on:\n      - postgres\n")
    env.repo.commit({"app/compose.yaml": compose}, "depends on a service that is not there")
    engine = env.engine()
    try:
        out = engine.reconcile("app")
        assert out.error and "app/compose.yaml:6:" in out.error and '"postgres"' in out.error, out.error
    finally:
        engine.close()


def test_failed_up_is_reported_once(compose_env: ComposeEnv, test_image: str) -> None:
    env = compose_env
    services = "".join(f"  svc{i}:\n    image: {test_image}\n    command: [sleep, '3600']\n    volumes: [data:/d]\n"
                       for i in range(4))
    compose = (f"services:\n{services}  broken:\n    image: setpoint-test/never-built:{env.project}\n"
               "volumes:\n  data: {}\n")
    env.repo.commit({"app/compose.yaml": compose}, "an image that does not exist")
    engine = env.engine()
    try:
        out = engine.reconcile("app")
        assert out.error and "never-built" in out.error
        assert out.error.count("docker compose up failed") == 1, out.error
        assert "service/svc0" in out.error and "volume/data" in out.error, "the resources are still named"
    finally:
        engine.close()


def test_container_of_a_failed_apply_is_pruned_when_its_service_leaves_git(compose_env: ComposeEnv,
                                                                            test_image: str) -> None:
    """`up` creates the container, then cannot start it: it exists, so it is setpoint's to prune."""
    env = compose_env
    web = f"  web:\n    image: {test_image}\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n"
    api = f"  api:\n    image: {test_image}\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n"
    broken = f"  worker:\n    image: {test_image}\n    entrypoint: [/no/such/program]\n"
    env.repo.commit({"app/compose.yaml": f"services:\n{web}{api}{broken}"}, "a worker that cannot start")
    engine = env.engine(env.target(prune=True))
    try:
        out = engine.reconcile("app")
        assert out.error and "/no/such/program" in out.error
        assert env.containers("worker"), "the failed apply left a container behind"
        env.repo.commit({"app/compose.yaml": f"services:\n{web}{api}"}, "drop the worker")
        out = engine.reconcile("app")
        assert out.error is None, out.error
        assert not env.containers("worker"), "pruned: setpoint created it"
        assert engine.reconcile("app").sync == SyncStatus.SYNCED
    finally:
        engine.close()
