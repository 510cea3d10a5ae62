"""The live-state cache: one list+watch per API resource the target manages, filtered by setpoint's
tracking label, so a no-op reconcile reads memory instead of the API server.

The first use of a kind lists it synchronously (observe is then exact); a background thread
watches from the list's resourceVersion, with bookmarks, and re-lists on ``410 Gone``, on a broken
stream and every ``resync_seconds``. Objects setpoint applies are put in the cache from the apply
response, so the observe right after an apply does not wait for the watch. Each change the watch
sees is passed to ``on_event`` (the target triggers a reconcile from it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from setpoint_kubernetes.client import ApiError, ApiResource, Cluster
from setpoint_kubernetes.identity import Ref

log = logging.getLogger("setpoint.kubernetes.cache")

#: on_event(type, key, old, new): ``type`` is ADDED, MODIFIED or DELETED.
EventHandler = Callable[[str, str, dict[str, Any] | None, dict[str, Any] | None], None]

WATCH_TIMEOUT = 290
PAGE = 500


def _rv(obj: dict[str, Any] | None) -> int:
    """resourceVersion as a number for ordering our own writes against watch events.

    resourceVersions are opaque by contract but etcd revisions in every real API server; when one is
    not a number, ordering falls back to "last write wins"."""
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", "0"))
    except (TypeError, ValueError):
        return 0


class Informer:
    def __init__(self, cluster: Cluster, resource: ApiResource, selector: str, on_event: EventHandler,
                 resync: float, namespace: str | None = None) -> None:
        self.cluster = cluster
        self.resource = resource
        #: List and watch within this namespace only (a target with ``scope: namespace``).
        self.namespace = namespace
        self.selector = selector
        self.on_event = on_event
        self.resync = resync
        self.objects: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.healthy = False
        self._rv = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listed_at = 0.0
        self._response: Any = None

    # ------------------------------------------------------------------ listing

    def list(self) -> None:
        """List everything carrying the label (paginated) and replace the cache, reporting changes."""
        items: list[dict[str, Any]] = []
        cont = None
        while True:
            query: list[tuple[str, Any]] = [("labelSelector", self.selector), ("limit", PAGE)]
            if cont:
                query.append(("continue", cont))
            try:
                page = self.cluster.request("GET", self.resource.path(self.namespace), query)
            except ApiError as exc:
                if exc.status == 410 and cont:  # the continue token expired: start over
                    items, cont = [], None
                    continue
                raise
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                break
        api_version, kind = self.resource.api_version, self.resource.kind
        fresh = {}
        for item in items:  # list items carry no apiVersion/kind
            item["apiVersion"], item["kind"] = api_version, kind
            fresh[Ref.of(item).key] = item
        with self.lock:
            old = self.objects
            self.objects = fresh
            self._rv = (page.get("metadata") or {}).get("resourceVersion", "")
            self._listed_at = time.monotonic()
            self.healthy = True
        if old:
            for key in old.keys() - fresh.keys():
                self.on_event("DELETED", key, old[key], None)
            for key, obj in fresh.items():
                before = old.get(key)
                if before is None or _rv(before) != _rv(obj):
                    self.on_event("ADDED" if before is None else "MODIFIED", key, before, obj)

    # ------------------------------------------------------------------ watching

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name=f"setpoint-k8s-watch-{self.resource.plural}")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()  # unblocks the watch thread's read
            except Exception:  # noqa: BLE001, S110 - best effort: the thread also ends at its timeout
                pass

    def _opened(self, response: Any) -> None:
        self._response = response

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if not self.healthy or time.monotonic() - self._listed_at > self.resync:
                    self.list()
                self._watch()
                failures = 0
            except ApiError as exc:
                if exc.status == 410:
                    self.healthy = False  # compacted: re-list
                    continue
                failures += 1
                self.healthy = False
                log.debug("watch of %s failed: %s", self.resource.plural, exc)
            except Exception as exc:  # noqa: BLE001 - a broken stream is re-established
                failures += 1
                self.healthy = False
                log.debug("watch of %s broke: %s", self.resource.plural, exc.__class__.__name__)
            if failures:
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _watch(self) -> None:
        query: list[tuple[str, Any]] = [("watch", "true"), ("labelSelector", self.selector),
                                        ("resourceVersion", self._rv), ("allowWatchBookmarks", "true"),
                                        ("timeoutSeconds", WATCH_TIMEOUT)]
        for event in self.cluster.stream(self.resource.path(self.namespace), query, WATCH_TIMEOUT + 30, self._opened):
            if self._stop.is_set():
                return
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError(int(obj.get("code") or 500), obj.get("reason") or "watch error", obj)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if kind == "BOOKMARK":
                self._rv = rv or self._rv
                continue
            key = Ref.of(obj).key
            with self.lock:
                before = self.objects.get(key)
                if kind == "DELETED":
                    self.objects.pop(key, None)
                elif before is None or _rv(obj) > _rv(before) or not _rv(obj):
                    self.objects[key] = obj
                else:
                    before = obj  # what we already hold (our own apply's answer): nothing new
                self._rv = rv or self._rv
            if kind == "DELETED" or before is not obj:
                self.on_event(str(kind), key, before, None if kind == "DELETED" else obj)
            if time.monotonic() - self._listed_at > self.resync:
                return

    # ------------------------------------------------------------------ our own writes

    def put(self, obj: dict[str, Any]) -> None:
        key = Ref.of(obj).key
        with self.lock:
            before = self.objects.get(key)
            if before is None or _rv(obj) >= _rv(before):
                self.objects[key] = obj

    def forget(self, key: str) -> None:
        with self.lock:
            self.objects.pop(key, None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.objects)


class LiveCache:
    """The informers of one target."""

    def __init__(self, cluster: Cluster, selector: str, on_event: EventHandler, resync: float,
                 namespace: str | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.selector = selector
        self.on_event = on_event
        self.resync = resync
        self.informers: dict[tuple[str, str], Informer] = {}
        self._lock = threading.Lock()

    def informer(self, resource: ApiResource) -> Informer:
        """The informer of ``resource``'s kind, listed now if it is new or its watch is broken."""
        key = (resource.group, resource.kind)
        with self._lock:
            informer = self.informers.get(key)
            if informer is not None and informer.resource.version != resource.version:
                informer.stop()  # the kind is now served (or preferred) in another version
                informer = None
            if informer is None:
                informer = Informer(self.cluster, resource, self.selector, self.on_event, self.resync,
                                    self.namespace if resource.namespaced else None)
                self.informers[key] = informer
        if not informer.healthy:
            informer.list()
        informer.start()
        return informer

    def find(self, group: str, kind: str) -> Informer | None:
        return self.informers.get((group, kind))

    def close(self) -> None:
        for informer in self.informers.values():
            informer.stop()
