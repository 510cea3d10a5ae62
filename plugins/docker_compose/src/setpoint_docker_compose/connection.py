"""Docker API clients for a target's host (local socket, ssh://, tcp:// with TLS)."""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import DockerException
from docker.tls import TLSConfig
from requests.exceptions import RequestException

from setpoint.errors import TemporaryError
from setpoint_docker_compose.settings import ComposeSettings
from setpoint_docker_compose.sshhost import api_socket

#: Errors that mean "the host did not answer", which mark only this target as failing (retried).
UNREACHABLE = (DockerException, RequestException, ConnectionError, TimeoutError, OSError)


def make_client(settings: ComposeSettings, timeout: float = 30) -> Any:
    if settings.docker_host().startswith("ssh://"):
        return _ssh_client(settings, timeout)
    host = settings.connect_host()
    tls: TLSConfig | bool = False
    if settings.tls is not None:
        path = settings.tls.cert_path
        tls = TLSConfig(client_cert=(str(path / "cert.pem"), str(path / "key.pem")),
                        ca_cert=str(path / "ca.pem") if settings.tls.verify else None,
                        verify=str(path / "ca.pem") if settings.tls.verify else False)
    try:
        # ssh:// goes through the system's ssh client (keys and known_hosts as for `docker -H ssh://`,
        # or the files of the target's ssh: settings, see sshhost.py)
        if settings.tls is None:
            return docker.DockerClient(base_url=host, timeout=int(timeout), use_ssh_client=host.startswith("ssh://"))
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override the session's
        # CA (psf/requests#3829): the host's ca.pem would be ignored and verification fail. So the
        # client is made without asking the daemon anything, told to ignore the environment, and only
        # then negotiates the API version (what DockerClient(version="auto") would have done).
        client = docker.DockerClient(base_url=host, tls=tls, timeout=int(timeout),
                                     version=docker.constants.MINIMUM_DOCKER_API_VERSION)
        client.api.trust_env = False
        client.api._version = client.api.version(api_version=False)["ApiVersion"]  # noqa: SLF001
        return client
    except UNREACHABLE as exc:
        raise TemporaryError(f"Docker host {settings.docker_host()} is unreachable: {type(exc).__name__}") from None


def _ssh_client(settings: ComposeSettings, timeout: float) -> Any:
    """A client on the local relay to the ssh host (sshrelay.py: connections kept alive)."""
    ssh = settings.ssh
    url, relay = api_socket(settings.docker_host(), ssh.identity_file if ssh else None,
                            ssh.known_hosts_file if ssh else None)
    try:
        return docker.DockerClient(base_url=url, timeout=int(timeout))
    except UNREACHABLE as exc:
        detail = f" ({relay.last_error})" if relay.last_error else ""
        raise TemporaryError(f"Docker host {settings.docker_host()} is unreachable: {type(exc).__name__}{detail}") \
            from None
