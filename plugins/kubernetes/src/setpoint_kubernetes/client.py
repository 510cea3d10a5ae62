"""One connection to one cluster: credentials, discovery and raw JSON requests.

The official client's generated models are slow to build and lossy for custom resources, so every
request goes through ``ApiClient.param_serialize``/``call_api`` (its authentication, TLS, token
refresh and connection pool) and bodies are plain JSON dicts. Clients are shared per
(kubeconfig, context) within the process: several targets on one cluster reuse one pool.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from setpoint.errors import PermanentError, TemporaryError

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
#: Discovery is re-read on a miss at most this often (a CRD that appears is picked up quickly, an
#: unknown kind in Git does not hammer the server).
REDISCOVER_AFTER = 2.0
#: Connections kept beyond the open watch streams (parallel applies, discovery, lists): 8 targets
#: reconciled at once (defaults.concurrency) x 4 applies each (apply_concurrency), and some more. A
#: smaller pool discards connections and opens new ones (a TLS handshake each, on both sides).
POOL_SPARE = 40


#: When a CRD last became Established in this process (monotonic): discovery older than that is
#: re-read on a miss at once, in every connection (a dependant target may use another kubeconfig).
_new_kinds_at = 0.0


def note_new_kinds() -> None:
    global _new_kinds_at
    _new_kinds_at = time.monotonic()


class ApiError(Exception):
    """A non-2xx answer. ``status`` 0 means no answer (connection refused, TLS, timeout)."""

    def __init__(self, status: int, reason: str, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = body or {}
        self.reason = self.body.get("reason") or reason
        self.message = self.body.get("message") or reason
        super().__init__(f"{status} {self.reason}: {self.message}" if status else self.message)

    @property
    def causes(self) -> list[dict[str, Any]]:
        return list((self.body.get("details") or {}).get("causes") or [])

    def as_setpoint_error(self, what: str) -> Exception:
        if self.status == 0 or self.status >= 500 or self.status == 429:
            return TemporaryError(f"{what}: {self}")
        return PermanentError(f"{what}: {self}")


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


class Cluster:
    """A cluster reached through one kubeconfig context (or in-cluster credentials)."""

    def __init__(self, api: k8s_client.ApiClient, label: str, request_timeout: float) -> None:
        self.api = api
        self.label = label
        self.request_timeout = request_timeout
        self._resources: dict[tuple[str, str], ApiResource] = {}
        self._by_version: dict[tuple[str, str, str], ApiResource] = {}
        self._discovered_at = 0.0
        self._lock = threading.Lock()
        self._streams = 0
        self._version: str | None = None
        #: Requests sent, by method (``PATCH dryRun`` apart; watch streams not included): for tests,
        #: benchmarks and metrics.
        self.calls: Counter[str] = Counter()

    # ------------------------------------------------------------------ requests

    def _call(self, method: str, path: str, query: list[tuple[str, Any]] | None, body: Any,
              content_type: str | None, accept: str, timeout: Any) -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            request = self.api.param_serialize(method, path, query_params=query or [], header_params=headers,
                                               body=body, auth_settings=["BearerToken"])
            return self.api.call_api(*request, _request_timeout=timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, f"{self.label} is unreachable ({exc.__class__.__name__})") from None
        except k8s_client.ApiException as exc:  # TLS problems surface as status 0
            raise ApiError(exc.status or 0, f"{self.label}: {str(exc.reason).splitlines()[0]}") from None
        except OSError as exc:
            raise ApiError(0, f"{self.label} is unreachable ({exc.__class__.__name__})") from None

    def request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None, body: Any = None,
                content_type: str | None = None, accept: str = "application/json") -> dict[str, Any]:
        # a dry run changes nothing: counted apart from writes
        self.calls[f"{method} dryRun" if any(k == "dryRun" for k, _ in query or ()) else method] += 1
        response = self._call(method, path, query, body, content_type, accept, self.request_timeout)
        try:
            data = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, f"{self.label}: connection lost ({exc.__class__.__name__})") from None
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {}
        if not 200 <= response.status <= 299:
            raise ApiError(response.status, response.reason or "error", parsed if isinstance(parsed, dict) else None)
        return parsed if isinstance(parsed, dict) else {}

    def stream(self, path: str, query: list[tuple[str, Any]], timeout: float,
               on_open: Callable[[Any], None] | None = None) -> Iterator[dict[str, Any]]:
        """A watch: one decoded event per line until the server ends the stream. ``on_open`` gets
        the raw response, so another thread can shut it down to stop the watch at once."""
        self._open_stream(+1)
        try:
            response = self._call("GET", path, query, None, None, "application/json", (10, timeout))
        except BaseException:
            self._open_stream(-1)
            raise
        raw = response.response
        if on_open is not None:
            on_open(raw)
        if not 200 <= response.status <= 299:
            body = raw.data
            parsed = json.loads(body) if body else {}
            raise ApiError(response.status, response.reason or "error", parsed if isinstance(parsed, dict) else None)
        buffer = b""
        try:
            for chunk in raw.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            raw.release_conn()
            self._open_stream(-1)

    def _open_stream(self, delta: int) -> None:
        """Count watch streams and keep the connection pool larger than their number: each stream
        holds a connection, and when the daemon stops they all come back at once (a pool smaller
        than that discards them with a "Connection pool is full" warning each)."""
        with self._lock:
            self._streams += delta
            wanted = self._streams + POOL_SPARE
        if delta <= 0:
            return
        manager = getattr(self.api.rest_client, "pool_manager", None)
        if manager is None or manager.connection_pool_kw.get("maxsize", 1) >= wanted:
            return
        manager.connection_pool_kw["maxsize"] = wanted  # pools created from now on
        for key in list(manager.pools.keys()):  # and the pool already open to this server
            pool = manager.pools.get(key)
            slots = getattr(pool, "pool", None)  # urllib3's queue of idle connections
            if slots is not None and slots.maxsize < wanted:
                slots.maxsize = wanted

    # ------------------------------------------------------------------ discovery

    def discover(self) -> None:
        resources: dict[tuple[str, str], ApiResource] = {}
        by_version: dict[tuple[str, str, str], ApiResource] = {}
        for root in ("/api", "/apis"):
            doc = self.request("GET", root, accept=AGGREGATED)
            if doc.get("kind") == "APIGroupDiscoveryList":
                groups = [(g.get("metadata", {}).get("name", ""), g.get("versions") or []) for g in doc.get("items") or []]
                for group, versions in groups:
                    for position, version in enumerate(versions):
                        for item in version.get("resources") or []:
                            kind = (item.get("responseKind") or {}).get("kind")
                            if not kind:
                                continue
                            res = ApiResource(group, version["version"], kind, item["resource"],
                                              item.get("scope") == "Namespaced", tuple(item.get("verbs") or ()))
                            by_version[(group, version["version"], kind)] = res
                            if position == 0 or (group, kind) not in resources:  # the first version is preferred
                                resources.setdefault((group, kind), res)
            else:  # a server without aggregated discovery (< 1.27): one request per group version
                self._legacy_discovery(root, doc, resources, by_version)
        with self._lock:
            self._resources, self._by_version = resources, by_version
            self._discovered_at = time.monotonic()

    def _legacy_discovery(self, root: str, doc: dict[str, Any], resources: dict[tuple[str, str], ApiResource],
                          by_version: dict[tuple[str, str, str], ApiResource]) -> None:
        if root == "/api":
            pairs = [("", v, i == 0) for i, v in enumerate(doc.get("versions") or [])]
        else:
            pairs = []
            for group in doc.get("groups") or []:
                preferred = (group.get("preferredVersion") or {}).get("version")
                for v in group.get("versions") or []:
                    pairs.append((group["name"], v["version"], v["version"] == preferred))
        for group, version, preferred in pairs:
            path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            for item in self.request("GET", path).get("resources") or []:
                if "/" in item["name"]:
                    continue
                res = ApiResource(group, version, item["kind"], item["name"], bool(item.get("namespaced")),
                                  tuple(item.get("verbs") or ()))
                by_version[(group, version, item["kind"])] = res
                if preferred or (group, item["kind"]) not in resources:
                    resources[(group, item["kind"])] = res

    def resource(self, group: str, kind: str, version: str | None = None, refresh: bool = False) -> ApiResource | None:
        """The API resource serving ``group``/``kind`` (in ``version`` if given), or None."""
        if refresh or not self._discovered_at:
            self.discover()
        found = self._lookup(group, kind, version)
        if found is None and (time.monotonic() - self._discovered_at > REDISCOVER_AFTER
                              or self._discovered_at <= _new_kinds_at):
            self.discover()
            found = self._lookup(group, kind, version)
        return found

    def wait_served(self, kinds: set[tuple[str, str]], timeout: float) -> set[tuple[str, str]]:
        """Re-read discovery until it serves every (group, kind) (a CRD is Established a moment
        before discovery lists it); returns those still missing after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.discover()
            missing = {k for k in kinds if self._lookup(k[0], k[1], None) is None}
            if not missing or time.monotonic() > deadline:
                if kinds:
                    note_new_kinds()
                return missing
            time.sleep(0.1)

    def _lookup(self, group: str, kind: str, version: str | None) -> ApiResource | None:
        if version is not None:
            return self._by_version.get((group, version, kind))
        return self._resources.get((group, kind))

    def server_version(self) -> str:
        """The API server's version (``v1.36.3``), read once."""
        if self._version is None:
            self._version = str(self.request("GET", "/version").get("gitVersion", ""))
        return self._version

    def api_versions(self) -> list[str]:
        """What Helm's ``.Capabilities.APIVersions`` lists: every served ``group/version`` and
        ``group/version/Kind`` (``v1``, ``v1/Service``, ``apps/v1``, ``apps/v1/Deployment``...)."""
        if not self._discovered_at:
            self.discover()
        out: set[str] = set()
        for res in self._by_version.values():
            out.add(res.api_version)
            out.add(f"{res.api_version}/{res.kind}")
        return sorted(out)

    def namespaced_resources(self) -> list[ApiResource]:
        if not self._discovered_at:
            self.discover()
        return [r for r in self._resources.values() if r.namespaced and "list" in r.verbs]


# ---------------------------------------------------------------------- shared clients

_clients: dict[tuple[str, str, bool], Cluster] = {}
_clients_lock = threading.Lock()


def connect(kubeconfig: Path | None, context: str | None, in_cluster: bool, request_timeout: float) -> Cluster:
    """The shared :class:`Cluster` for these credentials (created on first use)."""
    path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
    path = os.path.expanduser(path)
    key = ("" if in_cluster else path, context or "", in_cluster)
    with _clients_lock:
        cluster = _clients.get(key)
        if cluster is not None:
            return cluster
        configuration = k8s_client.Configuration()
        try:
            if in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)
                label = "the in-cluster API server"
            else:
                k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
                label = f"cluster {context or 'current-context'} of {path}"
        except (k8s_config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise PermanentError(f"kubeconfig {path} (context {context or 'current'}): {exc}") from None
        # One quick retry for a dropped keep-alive connection; an unreachable cluster fails fast.
        configuration.retries = 1
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, POOL_SPARE)
        cluster = Cluster(k8s_client.ApiClient(configuration), label, request_timeout)
        _clients[key] = cluster
        return cluster
