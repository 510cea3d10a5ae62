"""The live-state cache: one list+watch per API resource (and namespace scope) of a cluster, shared
by every target of the engine, selecting this installation's objects by its instance label and
indexing them by their target label, so a no-op reconcile reads memory instead of the API server.

Sharing matters at scale: with one watch per target and kind, 1,000 targets kept 2,000 watch
streams, threads and pooled connections open. Now a kind costs one stream however many targets
use it (as a controller-runtime cache does); each target reads its own slice (:class:`TargetInformer`).
The shared informers live in the engine's ``context.shared`` scope: ``Engine.close()`` stops them,
so no informer outlives its engine and a new engine never finds an old one (the process-wide
registry this replaced did). The last target to detach stops an informer early.

Selecting by ``setpoint.dev/instance`` (the state store's instance id) keeps other installations'
objects, and objects left behind by a state store since deleted, out of this process's memory. An
object applied before the label existed is not listed; the observe finds it by a direct GET of its
managed key, and its next apply adds the label (see docs/targets/kubernetes.md).

A target's first use of a kind lists its own objects synchronously unless the shared watch is
already running (observe is then exact either way); a background thread lists every selected object,
watches from that resourceVersion, with bookmarks, and re-lists on ``410 Gone``, on a broken stream and
every ``resync_seconds``. Objects setpoint applies are put in the cache from the apply response, so
the observe right after an apply does not wait for the watch. Each change the watch sees is passed to
the ``on_event`` of the target whose label the object carries (a relabelled object leaves one target
as DELETED and reaches the other as ADDED, as a per-target label-selected watch would report it).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from setpoint.api import SharedScope
from setpoint_kubernetes.client import ApiError, ApiResource, Cluster
from setpoint_kubernetes.identity import INSTANCE_LABEL, TARGET_LABEL, Ref

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


def _label(obj: dict[str, Any] | None) -> str | None:
    return ((obj or {}).get("metadata") or {}).get("labels", {}).get(TARGET_LABEL)


class Informer:
    """One list+watch of every object of ``resource`` this installation labelled, for all its targets."""

    def __init__(self, cluster: Cluster, resource: ApiResource, resync: float, instance: str,
                 namespace: str | None = None) -> None:
        self.cluster = cluster
        self.resource = resource
        #: Every object of this installation carries ``INSTANCE_LABEL=instance``.
        self.selector = f"{INSTANCE_LABEL}={instance}"
        #: Set when the last target detached (or the engine closed): an attach must make a new one.
        self.stopped = False
        #: List and watch within this namespace only (targets with ``scope: namespace``).
        self.namespace = namespace
        self.resync = resync
        self.objects: dict[str, dict[str, Any]] = {}
        #: label value -> key -> object: each target's slice of ``objects``.
        self.by_label: dict[str, dict[str, dict[str, Any]]] = {}
        #: label value -> attachment -> the target's event handler (two engines of one process may
        #: hold a target of the same name, e.g. a daemon and a one-shot command in tests).
        self.handlers: dict[str, dict[int, EventHandler]] = {}
        #: label value -> resourceVersion of that target's own list: older watch events are in it already.
        self.label_rv: dict[str, int] = {}
        self.lock = threading.Lock()
        self.healthy = False
        self._rv = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listed_at = 0.0
        self._response: Any = None

    # ------------------------------------------------------------------ the index (call with the lock held)

    def _store(self, key: str, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """Put (or with None remove) ``key``, keeping ``by_label`` in step; returns what it replaced."""
        before = self.objects.pop(key, None)
        old_label = _label(before)
        if old_label is not None:
            bucket = self.by_label.get(old_label)
            if bucket is not None:
                bucket.pop(key, None)
        if obj is not None:
            self.objects[key] = obj
            label = _label(obj)
            if label is not None:
                self.by_label.setdefault(label, {})[key] = obj
        return before

    def _events(self, kind: str, key: str, before: dict[str, Any] | None,
                after: dict[str, Any] | None) -> list[tuple[EventHandler, str, str, Any, Any]]:
        """The handler calls one change makes (made by the caller outside the lock)."""
        old_label, new_label = _label(before), _label(after)
        if kind == "DELETED" and old_label is None:
            old_label = new_label
        calls: list[tuple[EventHandler, str, str, Any, Any]] = []
        if kind == "DELETED" or old_label == new_label:
            for handler in self.handlers.get(old_label or "", {}).values():
                calls.append((handler, kind, key, before, None if kind == "DELETED" else after))
            return calls
        if old_label is not None and before is not None:
            for handler in self.handlers.get(old_label, {}).values():
                calls.append((handler, "DELETED", key, before, None))
        if new_label is not None:
            for handler in self.handlers.get(new_label, {}).values():
                calls.append((handler, "ADDED", key, None, after))
        return calls

    @staticmethod
    def _dispatch(calls: list[tuple[EventHandler, str, str, Any, Any]]) -> None:
        for handler, kind, key, before, after in calls:
            handler(kind, key, before, after)

    # ------------------------------------------------------------------ listing

    def _list(self, selector: str) -> tuple[dict[str, dict[str, Any]], str]:
        """Every object matching ``selector`` (paginated), keyed, and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        cont = None
        while True:
            query: list[tuple[str, Any]] = [("labelSelector", selector), ("limit", PAGE)]
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
        return fresh, (page.get("metadata") or {}).get("resourceVersion", "")

    def list(self) -> None:
        """List everything carrying the label and replace the cache, reporting changes. An object
        the cache holds at a newer resourceVersion than the list (our own apply's answer, written
        while the list was on its way) is kept."""
        fresh, rv = self._list(self.selector)
        listed_rv = _rv({"metadata": {"resourceVersion": rv}})
        calls = []
        with self.lock:
            old = self.objects
            for key, obj in old.items():
                mine = fresh.get(key)
                if (mine is None and listed_rv and _rv(obj) > listed_rv) or (mine is not None and _rv(obj) > _rv(mine)):
                    fresh[key] = obj
            self.objects, self.by_label = {}, {}
            for key, obj in fresh.items():
                self._store(key, obj)
            self._rv = rv
            self._listed_at = time.monotonic()
            self.healthy = True
            if old:
                for key in old.keys() - fresh.keys():
                    calls += self._events("DELETED", key, old[key], None)
                for key, obj in fresh.items():
                    before = old.get(key)
                    if before is None or _rv(before) != _rv(obj):
                        calls += self._events("ADDED" if before is None else "MODIFIED", key, before, obj)
        self._dispatch(calls)

    def list_label(self, label: str) -> None:
        """List one target's objects now and replace its slice (no events: this is its first look)."""
        fresh, rv = self._list(f"{self.selector},{TARGET_LABEL}={label}")
        with self.lock:
            for key in list(self.by_label.get(label, {})):
                if key not in fresh:
                    self._store(key, None)
            for key, obj in fresh.items():
                before = self.objects.get(key)
                if before is None or _rv(obj) >= _rv(before):
                    self._store(key, obj)
            self.label_rv[label] = _rv({"metadata": {"resourceVersion": rv}})

    # ------------------------------------------------------------------ watching

    def start(self) -> None:
        with self.lock:
            if self._thread is None and not self.stopped:
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

    def close(self) -> None:
        """Stop for good (the engine that shared it closes) and wait a moment for the watch thread."""
        with self.lock:
            self.stopped = True
            thread = self._thread
        self.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _opened(self, response: Any) -> None:
        self._response = response
        if self._stop.is_set():  # stop() came while this stream was opening: it saw no response to shut
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001, S110 - best effort, as in stop()
                pass

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
        if self._stop.is_set():
            return
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
            self._event(str(kind), Ref.of(obj).key, obj, rv)
            if time.monotonic() - self._listed_at > self.resync:
                return

    def _event(self, kind: str, key: str, obj: dict[str, Any], rv: str | None) -> None:
        calls = []
        with self.lock:
            self._rv = rv or self._rv
            label = _label(obj)
            if label is not None and _rv(obj) and _rv(obj) <= self.label_rv.get(label, 0) and key not in self.objects:
                return  # older than that target's own list, which found the object gone
            before = self.objects.get(key)
            if kind == "DELETED":
                self._store(key, None)
            elif before is None or _rv(obj) > _rv(before) or not _rv(obj):
                self._store(key, obj)
            else:
                before = obj  # what we already hold (our own apply's answer): nothing new
            if kind == "DELETED" or before is not obj:
                calls = self._events(kind, key, before, None if kind == "DELETED" else obj)
        self._dispatch(calls)

    # ------------------------------------------------------------------ our own writes

    def put(self, obj: dict[str, Any]) -> None:
        key = Ref.of(obj).key
        with self.lock:
            before = self.objects.get(key)
            if before is None or _rv(obj) >= _rv(before):
                self._store(key, obj)

    def forget(self, key: str) -> None:
        with self.lock:
            self._store(key, None)

    def snapshot(self, label: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.by_label.get(label, ()))


class TargetInformer:
    """One target's view of a shared :class:`Informer`: its own objects, its own events."""

    def __init__(self, scope: SharedScope, shared: Informer, label: str, token: int) -> None:
        self.scope = scope
        self.shared = shared
        self.label = label
        self.token = token

    @property
    def resource(self) -> ApiResource:
        return self.shared.resource

    @property
    def healthy(self) -> bool:
        """The shared watch runs: its slice is current. Until it does (starting, or re-listing after
        a broken stream), every observe lists the target's own objects, as a watch of its own would."""
        return self.shared.healthy

    def list(self) -> None:
        self.shared.list_label(self.label)

    def start(self) -> None:
        self.shared.start()

    def stop(self) -> None:
        _detach(self.scope, self.shared, self.label, self.token)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.shared.snapshot(self.label)

    def put(self, obj: dict[str, Any]) -> None:
        self.shared.put(obj)

    def forget(self, key: str) -> None:
        self.shared.forget(key)


# ---------------------------------------------------------------------- the shared informers

_tokens = itertools.count(1)


def _key(cluster: Cluster, resource: ApiResource, namespace: str | None) -> tuple[Any, ...]:
    return ("kubernetes", "informer", id(cluster), resource.group, resource.kind, resource.version, namespace)


def _attach(scope: SharedScope, cluster: Cluster, resource: ApiResource, resync: float, instance: str,
            namespace: str | None, label: str, token: int, on_event: EventHandler) -> Informer:
    key = _key(cluster, resource, namespace)
    while True:
        informer = scope.get(key, lambda: Informer(cluster, resource, resync, instance, namespace))
        with informer.lock:
            if not informer.stopped:
                informer.handlers.setdefault(label, {})[token] = on_event
                return informer
        scope.discard(key, informer)  # stopped by its last user just now: make a new one


def _detach(scope: SharedScope, informer: Informer, label: str, token: int) -> None:
    with informer.lock:
        mine = informer.handlers.get(label, {})
        mine.pop(token, None)
        if not mine:
            informer.handlers.pop(label, None)
        last = not informer.handlers and not informer.stopped
        if last:
            informer.stopped = True  # no attach may join it from here on
    if last:  # the last target using it: stop watching (and wait for the thread: nothing left running)
        scope.discard(_key(informer.cluster, informer.resource, informer.namespace), informer)
        informer.close()


class LiveCache:
    """The informers of one target: views of the engine's shared informers."""

    def __init__(self, scope: SharedScope, cluster: Cluster, instance: str, label: str, on_event: EventHandler,
                 resync: float, namespace: str | None = None) -> None:
        self.scope = scope
        self.instance = instance
        self.cluster = cluster
        self.namespace = namespace
        self.label = label
        self.on_event = on_event
        self.resync = resync
        self.informers: dict[tuple[str, str], TargetInformer] = {}
        self._lock = threading.Lock()

    def informer(self, resource: ApiResource) -> TargetInformer:
        """The informer of ``resource``'s kind, listed now if it is new to this target and the shared
        watch is not running yet (or is broken)."""
        key = (resource.group, resource.kind)
        with self._lock:
            informer = self.informers.get(key)
            if informer is not None and informer.resource.version != resource.version:
                informer.stop()  # the kind is now served (or preferred) in another version
                informer = None
            if informer is None:
                token = next(_tokens)
                shared = _attach(self.scope, self.cluster, resource, self.resync, self.instance,
                                 self.namespace if resource.namespaced else None, self.label, token, self.on_event)
                informer = self.informers[key] = TargetInformer(self.scope, shared, self.label, token)
        if not informer.healthy:
            informer.list()
        informer.start()
        return informer

    def find(self, group: str, kind: str) -> TargetInformer | None:
        return self.informers.get((group, kind))

    def close(self) -> None:
        for informer in self.informers.values():
            informer.stop()
