"""Smoke tests: the Docker engine and Compose v2 are real (dev/services up docker)."""

from __future__ import annotations

import time
import urllib.request

import pytest

pytestmark = pytest.mark.docker

TWO_SERVICES = """\
services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["127.0.0.1::80"]
  client:
    image: {image}
    command: ["sleep", "3600"]
"""


def _http_get(url: str, deadline_s: float = 20) -> str:
    end = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - loopback only
                return r.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.3)


def test_engine_and_images(docker_client, test_image, test_image_2):
    info = docker_client.info()
    assert info["Driver"] in {"overlay2", "vfs"}
    one, two = docker_client.images.get(test_image), docker_client.images.get(test_image_2)
    assert one.id != two.id, "the two test image tags must be different images"
    out = docker_client.containers.run(test_image, ["cat", "/etc/setpoint-test-version"], remove=True)
    assert out.decode().strip() == "1"


def test_compose_two_services_published_port_and_service_dns(compose_project, test_image, docker_client):
    compose_project.write(TWO_SERVICES.format(image=test_image))
    compose_project.run("up", "-d", "--wait", "--wait-timeout", "60")

    # published on a localhost port (chosen by the engine)
    port_line = compose_project.run("port", "web", "80").stdout.strip()
    host, _, port = port_line.rpartition(":")
    assert host == "127.0.0.1", port_line
    assert _http_get(f"http://127.0.0.1:{port}/").strip() == "setpoint-test 1"

    # the other service reaches it by service name (Compose network DNS)
    proc = compose_project.run("exec", "-T", "client", "wget", "-qO-", "http://web/")
    assert proc.stdout.strip() == "setpoint-test 1"

    # Compose labels are on the containers, and config --hash matches the label
    containers = docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={compose_project.name}"}
    )
    assert sorted(c.labels["com.docker.compose.service"] for c in containers) == ["client", "web"]
    hashes = dict(line.split() for line in compose_project.run("config", "--hash", "*").stdout.splitlines())
    for c in containers:
        assert c.labels["com.docker.compose.config-hash"] == hashes[c.labels["com.docker.compose.service"]]


def test_compose_recreates_on_image_change(compose_project, test_image, test_image_2, docker_client):
    compose_project.write(TWO_SERVICES.format(image=test_image))
    compose_project.run("up", "-d", "--wait", "--wait-timeout", "60", "web")
    before = compose_project.run("ps", "-q", "web").stdout.strip()
    compose_project.write(TWO_SERVICES.format(image=test_image_2))
    compose_project.run("up", "-d", "--wait", "--wait-timeout", "60", "web")
    after = compose_project.run("ps", "-q", "web").stdout.strip()
    assert before and after and before != after, "changing the image tag must recreate the container"
    port = compose_project.run("port", "web", "80").stdout.strip().rpartition(":")[2]
    assert _http_get(f"http://127.0.0.1:{port}/").strip() == "setpoint-test 2"


def test_compose_cli_plugin_version(compose_bin):
    import subprocess

    out = subprocess.run([compose_bin, "version", "--short"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(x) for x in out.strip().lstrip("v").split(".")[:2])
    assert (major, minor) >= (2, 40), out


ENV_FILE_SERVICE = """\
services:
  app:
    image: {image}
    command: ["sleep", "3600"]
    env_file: [app.env]
"""


def _label_and_config_hash(project, image) -> tuple[str, str]:
    (project.directory / "app.env").write_text("FOO=bar\n")
    project.write(ENV_FILE_SERVICE.format(image=image))
    project.run("up", "-d", "--wait", "--wait-timeout", "60")
    cid = project.run("ps", "-q", "app").stdout.strip()
    config_hash = project.run("config", "--hash", "app").stdout.split()[1]
    import docker

    client = docker.DockerClient(base_url=project.env["DOCKER_HOST"])
    try:
        return client.containers.get(cid).labels["com.docker.compose.config-hash"], config_hash
    finally:
        client.close()


def test_compose_v2_config_hash_ignores_env_file(compose_project, test_image):
    """docker/compose#14001: before v5.5.0 `config --hash` disagrees with the label for env_file services.
    If this fails, the pinned Compose no longer has the bug: update docs/development.md and the plugin."""
    label, config_hash = _label_and_config_hash(compose_project, test_image)
    assert label != config_hash


def test_compose_v5_works_and_fixes_env_file_hash(compose_v5_bin, compose_project, test_image):
    import subprocess

    out = subprocess.run([compose_v5_bin, "version", "--short"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(x) for x in out.strip().lstrip("v").split(".")[:2])
    assert (major, minor) >= (5, 5), out
    compose_project.compose_bin = compose_v5_bin
    label, config_hash = _label_and_config_hash(compose_project, test_image)
    assert label == config_hash
