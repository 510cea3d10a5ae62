"""pytest plugin: the real services of ``dev/services`` as session-scoped fixtures.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["service_fixtures"]``; ``pythonpath`` includes ``tests``).

Services and markers (declared in the root pyproject.toml):

=============  ==========================================================  ===============================
marker         fixtures                                                    start it with
=============  ==========================================================  ===============================
docker         docker_client, test_image, test_image_2, compose_bin,        dev/services up docker
               compose_v5_bin, compose_project
kubernetes     kubeconfig, k8s_api_client, k8s_dynamic, k8s_namespace      dev/services up kubernetes
terraform      terraform_bin, terraform_env, tf_cli_config, tf_provider,   dev/services up terraform
               tf_workdir
sops           sops_env                                                    dev/services up sops
helm           helm_bin                                                    dev/services up helm
ansible        ansible_hosts                                               dev/services up ansible-hosts
tofu           tofu_bin (OpenTofu, for the terraform plugin suite)         dev/services up tofu
docker_hosts   ssh_docker_host, tls_docker_host                            dev/services up docker-hosts
browser        chromium (a headless Chromium driven by Selenium)           dev/services up browser
postgresql     postgresql_url, pg_state_url (a fresh schema per test)      dev/services up postgresql
=============  ==========================================================  ===============================

A test that uses one of these fixtures gets the service's marker automatically, and a test that carries a
service marker is checked before it runs. When a service is not available the test is **skipped** with a
message naming the one command that starts it -- except under ``CI=true``, where it **fails**: CI must never
pass by skipping the real thing.

Paths and settings come from ``dev/services env`` (the environment, when it was eval'ed as dev/test does, or
else by running it), so the fixtures work from a plain ``python -m pytest`` too.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_SCRIPT = REPO_ROOT / "dev" / "services"

SERVICES = ("docker", "kubernetes", "terraform", "sops", "helm", "ansible", "tofu", "docker_hosts", "browser",
            "postgresql")

# fixture name -> the service it needs (used to add the marker automatically)
FIXTURE_SERVICE = {
    "docker_client": "docker",
    "test_image": "docker",
    "test_image_2": "docker",
    "compose_bin": "docker",
    "compose_v5_bin": "docker",
    "compose_project": "docker",
    "kubeconfig": "kubernetes",
    "k8s_api_client": "kubernetes",
    "k8s_dynamic": "kubernetes",
    "k8s_namespace": "kubernetes",
    "terraform_bin": "terraform",
    "terraform_env": "terraform",
    "tf_cli_config": "terraform",
    "tf_provider": "terraform",
    "tf_workdir": "terraform",
    "sops_env": "sops",
    "helm_bin": "helm",
    "ansible_hosts": "ansible",
    "tofu_bin": "tofu",
    "ssh_docker_host": "docker_hosts",
    "tls_docker_host": "docker_hosts",
    "chromium": "browser",
    "postgresql_url": "postgresql",
    "pg_state_url": "postgresql",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def start_command(service: str) -> str:
    return f"dev/services up {'ansible-hosts' if service == 'ansible' else service.replace('_', '-')}"


def service_unavailable(service: str, reason: str) -> None:
    """Skip (locally) or fail (under CI=true) because ``service`` is not there."""
    msg = f"{service} is not available: {reason}. Start it with: {start_command(service)}"
    if in_ci():
        pytest.fail(f"{msg}  [CI=true: a missing service is a failure, not a skip]", pytrace=False)
    pytest.skip(msg)


# ---------------------------------------------------------------------------------------------------------
# environment from `dev/services env`


_ENV_KEYS = ("SETPOINT_RUN", "SETPOINT_CACHE", "KUBECONFIG")
_services_env_cache: dict[str, str] | None = None


def services_env() -> dict[str, str]:
    """The variables ``dev/services env`` exports (from os.environ when already eval'ed)."""
    global _services_env_cache
    if _services_env_cache is not None:
        return _services_env_cache
    env: dict[str, str] = {}
    if os.environ.get("SETPOINT_RUN") and os.environ.get("SETPOINT_TF_CLI_CONFIG"):
        env = dict(os.environ)
    elif SERVICES_SCRIPT.exists():
        try:
            out = subprocess.run(
                ["bash", "-c", 'eval "$("$0" env)" && env -0', str(SERVICES_SCRIPT)],
                capture_output=True,
                timeout=60,
                check=True,
            ).stdout
            env = dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)
        except (subprocess.SubprocessError, OSError):
            env = dict(os.environ)
    else:
        env = dict(os.environ)
    _services_env_cache = env
    return env


def _env(name: str, default: str | None = None) -> str | None:
    return services_env().get(name, default)


# ---------------------------------------------------------------------------------------------------------
# availability checks (cached per session): None = available, else the reason


_checks: dict[str, str | None] = {}


def _check_docker() -> str | None:
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the Python package 'docker' is not installed (uv sync --group dev)"
    host = _env("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.DockerClient(base_url=host, timeout=10)
        client.ping()
    except Exception as e:  # noqa: BLE001
        return f"no Docker engine answers on {host} ({type(e).__name__}: {e})"
    try:
        for image in (_env("SETPOINT_TEST_IMAGE"), _env("SETPOINT_TEST_IMAGE_2")):
            if not image:
                return "SETPOINT_TEST_IMAGE is not set"
            client.images.get(image)
    except Exception as e:  # noqa: BLE001
        return f"test image missing ({e})"
    finally:
        client.close()
    compose = _env("SETPOINT_COMPOSE_BIN")
    if not compose or not os.access(compose, os.X_OK):
        return f"docker-compose binary missing ({compose})"
    return None


def _check_kubernetes() -> str | None:
    try:
        from kubernetes import client, config  # noqa: F401
    except ImportError:
        return "the Python package 'kubernetes' is not installed (uv sync --group dev)"
    path = _env("SETPOINT_KUBECONFIG") or _env("KUBECONFIG")
    if not path or not Path(path).is_file():
        return f"no kubeconfig at {path}"
    try:
        import urllib3

        conf = client.Configuration()
        config.load_kube_config(config_file=path, client_configuration=conf)
        pool = urllib3.PoolManager(ca_certs=conf.ssl_ca_cert, cert_file=conf.cert_file, key_file=conf.key_file)
        resp = pool.request("GET", conf.host + "/readyz", timeout=10, retries=False)
        body = resp.data.decode(errors="replace")
    except Exception as e:  # noqa: BLE001
        return f"kube-apiserver from {path} is not ready ({type(e).__name__}: {str(e).splitlines()[0]})"
    if resp.status != 200 or body.strip() != "ok":
        return f"kube-apiserver /readyz answered {resp.status} {body[:200]!r}"
    return None


def _check_terraform() -> str | None:
    tf = _env("SETPOINT_TERRAFORM_BIN")
    if not tf or not os.access(tf, os.X_OK):
        return f"no terraform/tofu binary ({tf})"
    cfg = _env("SETPOINT_TF_CLI_CONFIG")
    if not cfg or not Path(cfg).is_file():
        return f"the test provider's CLI config {cfg} does not exist"
    try:
        subprocess.run([tf, "version"], capture_output=True, timeout=60, check=True)
    except (subprocess.SubprocessError, OSError) as e:
        return f"{tf} version failed ({e})"
    return None


def _check_tofu() -> str | None:
    tofu = _env("SETPOINT_TOFU_BIN")
    if not tofu or not os.access(tofu, os.X_OK):
        return f"no OpenTofu binary ({tofu}; a cold build takes ~25 min)"
    if _check_terraform() is not None:
        return "the terraform service (test provider) is not set up"
    try:
        subprocess.run([tofu, "version"], capture_output=True, timeout=60, check=True)
    except (subprocess.SubprocessError, OSError) as e:
        return f"{tofu} version failed ({e})"
    return None


def _check_sops() -> str | None:
    for var in ("SETPOINT_SOPS_BIN", "SETPOINT_AGE_BIN", "SETPOINT_AGE_KEYGEN_BIN", "SETPOINT_GPG_BIN"):
        path = _env(var)
        if not path or not os.access(path, os.X_OK):
            return f"{var}={path} is not an executable"
    return None


def _check_helm() -> str | None:
    path = _env("SETPOINT_HELM_BIN")
    if not path or not os.access(path, os.X_OK):
        return f"SETPOINT_HELM_BIN={path} is not an executable"
    return None


def _check_ansible() -> str | None:
    import socket

    for var in ("SETPOINT_ANSIBLE_SSH_KEY", "SETPOINT_ANSIBLE_KNOWN_HOSTS"):
        path = _env(var)
        if not path or not Path(path).is_file():
            return f"{var}={path} does not exist"
    hosts = [h for h in (_env("SETPOINT_ANSIBLE_HOSTS") or "").split(",") if h]
    if len(hosts) < 3:
        return f"SETPOINT_ANSIBLE_HOSTS lists {len(hosts)} host(s), the tests need 3"
    for host in hosts:
        address, port = host.rsplit(":", 1)
        try:
            with socket.create_connection((address, int(port)), timeout=5) as conn:
                if not conn.recv(64).startswith(b"SSH-"):
                    return f"{host} does not speak SSH"
        except OSError as e:
            return f"no SSH server answers on {host} ({e})"
def _check_docker_hosts() -> str | None:
    reason = _check_docker()
    if reason is not None:
        return reason
    import docker

    for kind in ("SSH", "TLS"):
        sock = _env(f"SETPOINT_DHOSTS_{kind}_SOCK")
        if not sock:
            return f"SETPOINT_DHOSTS_{kind}_SOCK is not set"
        try:
            client = docker.DockerClient(base_url=sock, timeout=10)
            client.ping()
            client.close()
        except Exception as e:  # noqa: BLE001
            return f"the {kind.lower()} Docker host's engine does not answer on {sock} ({type(e).__name__})"
    host = _env("SETPOINT_DHOSTS_SSH_HOST") or ""
    key, known = _env("SETPOINT_DHOSTS_SSH_KEY") or "", _env("SETPOINT_DHOSTS_SSH_KNOWN_HOSTS") or ""
    port = host.rsplit(":", 1)[-1]
    user_at = host.removeprefix("ssh://").rsplit(":", 1)[0]
    proc = subprocess.run(["ssh", "-F", "none", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", "-p", port,
                           user_at, "true"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return f"sshd of the ssh Docker host does not accept the test key ({proc.stderr.decode()[-200:].strip()})"
    return None


def _check_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package 'selenium' is not installed (uv sync --group dev)"
    for var in ("SETPOINT_CHROMIUM_BIN", "SETPOINT_CHROMEDRIVER_BIN"):
        path = _env(var)
        if not path or not os.access(path, os.X_OK):
            return f"{var}={path} is not an executable (Debian's chromium and chromium-driver)"
    return None


def postgresql_settings() -> tuple[str, str]:
    """The test server's URL (no password) and its password file (dev/services env, or its defaults)."""
    run = _env("SETPOINT_RUN") or "/tmp/setpoint-services"  # noqa: S108 - dev/services' runtime folder
    return (_env("SETPOINT_PG_URL") or "postgresql://setpoint@127.0.0.1:25432/setpoint",
            _env("SETPOINT_PG_PASSWORD_FILE") or f"{run}/postgresql/password")


def _check_postgresql() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "the Python package 'psycopg' is not installed (uv sync --all-packages --group dev)"
    url, password_file = postgresql_settings()
    try:
        password = Path(password_file).read_text().strip()
    except OSError as e:
        return f"no password file {password_file} ({e.strerror})"
    try:
        with psycopg.connect(url, password=password, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as e:  # noqa: BLE001
        return f"PostgreSQL at {url} does not answer ({type(e).__name__}: {str(e).strip().splitlines()[0]})"
    return None


_CHECKERS = {
    "postgresql": _check_postgresql,
    "docker_hosts": _check_docker_hosts,
    "docker": _check_docker,
    "kubernetes": _check_kubernetes,
    "terraform": _check_terraform,
    "sops": _check_sops,
    "helm": _check_helm,
    "ansible": _check_ansible,
    "tofu": _check_tofu,
    "browser": _check_browser,
}


def require_service(service: str) -> None:
    if service not in _checks:
        _checks[service] = _CHECKERS[service]()
    reason = _checks[service]
    if reason is not None:
        service_unavailable(service, reason)


# ---------------------------------------------------------------------------------------------------------
# hooks


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection, so `-m "not kubernetes"` sees the added markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        needed = {FIXTURE_SERVICE[f] for f in getattr(item, "fixturenames", ()) if f in FIXTURE_SERVICE}
        have = {m.name for m in item.iter_markers() if m.name in SERVICES}
        for service in sorted(needed - have):
            item.add_marker(getattr(pytest.mark, service))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for service in SERVICES:
        if item.get_closest_marker(service) is not None:
            require_service(service)


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"setpoint services: CI={'true' if in_ci() else 'false'} "
        f"(missing service => {'FAIL' if in_ci() else 'skip'}); start them with: dev/services up"
    )


# ---------------------------------------------------------------------------------------------------------
# docker


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A ``docker.DockerClient`` for the engine started by ``dev/services up docker``."""
    require_service("docker")
    import docker

    client = docker.DockerClient(base_url=_env("DOCKER_HOST", "unix:///var/run/docker.sock"), timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client: Any) -> str:
    """Local busybox image (sh, httpd, sleep, wget, nslookup, ...; never pulled): ``setpoint-test/busybox:1``."""
    return _env("SETPOINT_TEST_IMAGE") or "setpoint-test/busybox:1"


@pytest.fixture(scope="session")
def test_image_2(docker_client: Any) -> str:
    """A second, different local image (other ID, index.html and label) for image-change tests."""
    return _env("SETPOINT_TEST_IMAGE_2") or "setpoint-test/busybox:2"


@pytest.fixture(scope="session")
def compose_bin() -> str:
    """Path of the pinned Docker Compose v2 binary (also installed as the ``docker compose`` CLI plugin)."""
    require_service("docker")
    return str(_env("SETPOINT_COMPOSE_BIN"))


@pytest.fixture(scope="session")
def compose_v5_bin() -> str:
    """Compose >= v5.5.0 built from the Go module proxy; only with ``SETPOINT_COMPOSE_V5=1 dev/services up docker``."""
    require_service("docker")
    path = _env("SETPOINT_COMPOSE_V5_BIN")
    if not path or not os.access(path, os.X_OK):
        reason = "Compose v5 is optional and was not built; build it with: SETPOINT_COMPOSE_V5=1 dev/services up docker"
        if in_ci() and os.environ.get("SETPOINT_COMPOSE_V5") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


@dataclass(frozen=True)
class DockerHost:
    """A remote Docker host of ``dev/services up docker-hosts``: how setpoint reaches it (``host``,
    ``settings`` for the target's docker_compose block) and the engine's own unix socket (``admin``),
    for tests to look at and break things behind setpoint's back."""

    kind: str  # ssh or tls
    host: str
    settings: dict[str, Any]
    admin: str

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.admin, timeout=60)


@pytest.fixture(scope="session")
def ssh_docker_host() -> DockerHost:
    """The engine behind OpenSSH: key-only user, its own host key, a known_hosts file (strict)."""
    require_service("docker_hosts")
    return DockerHost("ssh", str(_env("SETPOINT_DHOSTS_SSH_HOST")),
                      {"host": _env("SETPOINT_DHOSTS_SSH_HOST"),
                       "ssh": {"identity_file": _env("SETPOINT_DHOSTS_SSH_KEY"),
                               "known_hosts_file": _env("SETPOINT_DHOSTS_SSH_KNOWN_HOSTS")}},
                      str(_env("SETPOINT_DHOSTS_SSH_SOCK")))


@pytest.fixture(scope="session")
def tls_docker_host() -> DockerHost:
    """The engine on tcp://127.0.0.1 with mutual TLS (client certificates in Docker's layout)."""
    require_service("docker_hosts")
    return DockerHost("tls", str(_env("SETPOINT_DHOSTS_TLS_HOST")),
                      {"host": _env("SETPOINT_DHOSTS_TLS_HOST"), "tls": {"cert_path": _env("SETPOINT_DHOSTS_TLS_CERTS")}},
                      str(_env("SETPOINT_DHOSTS_TLS_SOCK")))


@dataclass
class ComposeProject:
    """A unique Compose project name in a fresh directory; ``run`` calls docker-compose with -p and
    --project-directory set. Everything it created is removed (``down -v --remove-orphans``) afterwards."""

    name: str
    directory: Path
    compose_bin: str
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [self.compose_bin, "-p", self.name, "--project-directory", str(self.directory), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def write(self, text: str, filename: str = "compose.yaml") -> Path:
        path = self.directory / filename
        path.write_text(text)
        return path


@pytest.fixture
def compose_project(compose_bin: str, tmp_path: Path) -> Any:
    name = "sptest-" + uuid.uuid4().hex[:8]
    env = {**os.environ, "DOCKER_HOST": _env("DOCKER_HOST", "unix:///var/run/docker.sock") or ""}
    project = ComposeProject(name=name, directory=tmp_path, compose_bin=compose_bin, env=env)
    yield project
    project.run("down", "-v", "--remove-orphans", "--timeout", "1", check=False)


# ---------------------------------------------------------------------------------------------------------
# kubernetes


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """Path of the kubeconfig of the test control plane (context ``setpoint-test`` = admin client cert,
    ``setpoint-test-token`` = static bearer token; both in system:masters)."""
    require_service("kubernetes")
    return str(_env("SETPOINT_KUBECONFIG") or _env("KUBECONFIG"))


@pytest.fixture(scope="session")
def k8s_api_client(kubeconfig: str) -> Any:
    """A ``kubernetes.client.ApiClient`` for the test control plane."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def k8s_dynamic(k8s_api_client: Any) -> Any:
    """A ``kubernetes.dynamic.DynamicClient`` (server-side apply: ``server_side_apply``)."""
    from kubernetes import dynamic

    return dynamic.DynamicClient(k8s_api_client)


@pytest.fixture
def k8s_namespace(k8s_api_client: Any) -> Any:
    """A fresh namespace per test (deleted afterwards; kube-controller-manager finishes the deletion)."""
    from kubernetes import client

    core = client.CoreV1Api(k8s_api_client)
    body = client.V1Namespace(
        metadata=client.V1ObjectMeta(generate_name="sptest-", labels={"setpoint.test": "true"})
    )
    name = str(core.create_namespace(body).metadata.name)  # type: ignore[union-attr]
    yield name
    try:
        core.delete_namespace(name)
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


# ---------------------------------------------------------------------------------------------------------
# terraform


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    """Path of the terraform (or tofu) CLI."""
    require_service("terraform")
    return str(_env("SETPOINT_TERRAFORM_BIN"))


@pytest.fixture(scope="session")
def tf_cli_config() -> str:
    """CLI config file (TF_CLI_CONFIG_FILE) that installs the test provider from a filesystem mirror."""
    require_service("terraform")
    return str(_env("SETPOINT_TF_CLI_CONFIG"))


@dataclass(frozen=True)
class TfProvider:
    source: str
    version: str
    name: str = "setpointtest"

    def required_providers_block(self) -> str:
        return (
            "terraform {\n  required_providers {\n"
            f'    {self.name} = {{ source = "{self.source}", version = "{self.version}" }}\n'
            "  }\n}\n"
        )


@pytest.fixture(scope="session")
def tf_provider(tf_cli_config: str) -> TfProvider:
    """The repository's test provider: source ``local.test/setpoint/setpointtest``, version 0.1.0;
    resources ``setpointtest_security_group`` and ``setpointtest_file`` (docs/development.md)."""
    return TfProvider(
        source=_env("SETPOINT_TF_PROVIDER_SOURCE") or "local.test/setpoint/setpointtest",
        version=_env("SETPOINT_TF_PROVIDER_VERSION") or "0.1.0",
    )


@pytest.fixture(scope="session")
def terraform_env(tf_cli_config: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for running terraform/tofu in tests: the provider CLI config, no checkpoint calls,
    no prompts, and a plugin cache of its own."""
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": tf_cli_config,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }


@pytest.fixture(scope="session")
def tofu_bin() -> str:
    """Path of the OpenTofu CLI built by ``dev/services build tofu``."""
    require_service("tofu")
    return str(_env("SETPOINT_TOFU_BIN"))


@pytest.fixture
def tf_workdir(tmp_path: Path, terraform_bin: str) -> Path:
    """A fresh, empty Terraform working directory."""
    d = tmp_path / "tf"
    d.mkdir()
    return d


# ---------------------------------------------------------------------------------------------------------
# sops


@dataclass(frozen=True)
class SopsEnv:
    sops: str
    age: str
    age_keygen: str
    gpg: str
    age_key_file: Path
    age_recipient: str
    gnupghome: Path
    env: dict[str, str]

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        cmd = [self.sops, *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, timeout=120,
                              env={**self.env, **(extra_env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        return proc


@pytest.fixture(scope="session")
def sops_env(tmp_path_factory: pytest.TempPathFactory) -> SopsEnv:
    """sops/age/gpg paths, a fresh age key (SOPS_AGE_KEY_FILE) and an empty GNUPGHOME, as an env dict."""
    require_service("sops")
    d = tmp_path_factory.mktemp("sops")
    key_file = d / "age-key.txt"
    keygen = str(_env("SETPOINT_AGE_KEYGEN_BIN"))
    subprocess.run([keygen, "-o", str(key_file)], check=True, capture_output=True, timeout=30)
    recipient = next(
        line.split(":", 1)[1].strip()
        for line in key_file.read_text().splitlines()
        if line.startswith("# public key:")
    )
    gnupghome = d / "gnupg"
    gnupghome.mkdir(mode=0o700)
    env = {
        **os.environ,
        "SOPS_AGE_KEY_FILE": str(key_file),
        "GNUPGHOME": str(gnupghome),
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }
    env.pop("SOPS_AGE_KEY", None)
    return SopsEnv(
        sops=str(_env("SETPOINT_SOPS_BIN")),
        age=str(_env("SETPOINT_AGE_BIN")),
        age_keygen=keygen,
        gpg=str(_env("SETPOINT_GPG_BIN")),
        age_key_file=key_file,
        age_recipient=recipient,
        gnupghome=gnupghome,
        env=env,
    )


#: Real SOPS files with their throwaway keys, kept in the repository (tests/data/sops-vectors/README.md).
SOPS_VECTORS = REPO_ROOT / "tests" / "data" / "sops-vectors"
# ---------------------------------------------------------------------------------------------------------
# ansible


@dataclass(frozen=True)
class AnsibleHosts:
    """The three SSH hosts of ``dev/services up ansible-hosts``: Debian bookworm containers with
    python3 and sshd, published on 127.0.0.1 only; users root and setpoint (passwordless sudo)."""

    addresses: tuple[tuple[str, int], ...]
    containers: tuple[str, ...]
    private_key: Path
    known_hosts: Path
    user: str

    def inventory(self, names: tuple[str, ...] = ("web1", "web2", "web3")) -> dict[str, dict[str, Any]]:
        """``hosts:`` settings naming the hosts ``names`` (ansible_host/ansible_port)."""
        return {name: {"ansible_host": address, "ansible_port": port}
                for name, (address, port) in zip(names, self.addresses, strict=False)}

    def exec(self, index: int, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on host ``index`` (0-based) as root, through the Docker engine (not SSH)."""
        proc = subprocess.run(["docker", "exec", self.containers[index], *command], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "DOCKER_HOST": _env("DOCKER_HOST") or ""})
        if check and proc.returncode != 0:
            raise AssertionError(f"{command} on {self.containers[index]}: {proc.stdout}{proc.stderr}")
        return proc

    def docker(self, *args: str) -> None:
        subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120,
                       env={**os.environ, "DOCKER_HOST": _env("DOCKER_HOST") or ""})


@pytest.fixture(scope="session")
def ansible_hosts() -> AnsibleHosts:
    require_service("ansible")
    addresses = tuple((h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]))
                      for h in (_env("SETPOINT_ANSIBLE_HOSTS") or "").split(",") if h)
    return AnsibleHosts(addresses, tuple((_env("SETPOINT_ANSIBLE_CONTAINERS") or "").split(",")),
                        Path(str(_env("SETPOINT_ANSIBLE_SSH_KEY"))), Path(str(_env("SETPOINT_ANSIBLE_KNOWN_HOSTS"))),
                        _env("SETPOINT_ANSIBLE_USER") or "setpoint")


def shared_dir() -> Path:
    """The project's shared/ folder (beside the repository, also in CI); SETPOINT_SHARED overrides."""
    if os.environ.get("SETPOINT_SHARED"):
        return Path(os.environ["SETPOINT_SHARED"])
    return REPO_ROOT.parent / "shared"


__all__ = [
    "AnsibleHosts",
    "ComposeProject",
    "DockerHost",
    "SopsEnv",
    "TfProvider",
    "in_ci",
    "require_service",
    "service_unavailable",
    "services_env",
    "SOPS_VECTORS",
]


# ---------------------------------------------------------------------------------------------------------
# browser


@pytest.fixture
def chromium() -> Any:
    """A headless Chromium (Debian's package) driven through chromedriver by Selenium; closed after the test."""
    require_service("browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(_env("SETPOINT_CHROMIUM_BIN"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(_env("SETPOINT_CHROMEDRIVER_BIN"))), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


# ---------------------------------------------------------------------------------------------------------
# helm


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The helm CLI built from the Go module proxy by ``dev/services up helm``."""
    require_service("helm")
    return str(_env("SETPOINT_HELM_BIN"))


# ---------------------------------------------------------------------------------------------------------
# postgresql


@pytest.fixture(scope="session")
def postgresql_url() -> str:
    """The test server's database URL; its password reaches setpoint the documented way
    (SETPOINT_STATE_PASSWORD_FILE), never in the URL."""
    require_service("postgresql")
    url, password_file = postgresql_settings()
    os.environ["SETPOINT_STATE_PASSWORD_FILE"] = password_file
    return url


@pytest.fixture
def pg_state_url(postgresql_url: str) -> Any:
    """A ``postgresql://`` state of its own: a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    password = Path(os.environ["SETPOINT_STATE_PASSWORD_FILE"]).read_text().strip()
    with psycopg.connect(postgresql_url, password=password, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgresql_url}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgresql_url, password=password, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
