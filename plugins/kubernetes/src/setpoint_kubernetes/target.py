"""The ``kubernetes`` target driver: glue between the core's stages and the modules that do the work
(render, cache, diff, apply, prune, health, inventory)."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from setpoint.api import (
    Action,
    ApplyResult,
    Desired,
    FieldChange,
    Health,
    HealthStatus,
    Live,
    Plan,
    Resource,
    SourceTree,
    TargetContext,
    TargetDriver,
    diff_resources,
)
from setpoint.errors import PermanentError, RenderError, TemporaryError
from setpoint_kubernetes import diff as differ
from setpoint_kubernetes import health as checks
from setpoint_kubernetes.apply import Applier, Item, order_key
from setpoint_kubernetes.cache import LiveCache
from setpoint_kubernetes.client import ApiError, ApiResource, Cluster, connect
from setpoint_kubernetes.identity import REPLACE_ANNOTATION, Ref, label_value, version_of
from setpoint_kubernetes.inventory import ClusterInventory
from setpoint_kubernetes.normalize import desired_object, live_object
from setpoint_kubernetes.ownership import foreign_entries
from setpoint_kubernetes.prune import Pruner, opted_out
from setpoint_kubernetes.render import Renderer, wrap_secret_data
from setpoint_kubernetes.settings import KubernetesSettings

CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")
#: context.memory key: object key -> digest of the desired body setpoint last applied.
APPLIED_MEMORY = "applied-digests"
#: Paths of Git's empty maps/lists the server does not store, per object (learnt by a dry run).
EMPTIES_MEMORY = "dropped-empties"
#: Paths outside the target's path the last render depended on.
WATCHED_MEMORY = "watched-paths"


class DesiredResource(Resource):
    """A rendered object. Its body never changes after render, and the core digests every desired
    object on every reconcile (drift attribution, adoption): compute the digest once."""

    def digest(self) -> str:
        cached = self.meta.get("digest")
        if cached is None:
            cached = self.meta["digest"] = super().digest()
        return str(cached)


class KubernetesTarget(TargetDriver):
    """Manifests from Git applied to one cluster with server-side apply."""

    kind = "kubernetes"
    Settings = KubernetesSettings
    partial_apply = True  # each object is applied or deleted on its own

    def __init__(self, context: TargetContext) -> None:
        super().__init__(context)
        self.cfg: KubernetesSettings = context.settings or KubernetesSettings()
        self.label = label_value(context.spec.name)
        self._cluster: Cluster | None = None
        self._cache: LiveCache | None = None
        self._lock = threading.Lock()
        self._watching = False
        self._healthy = False
        #: key -> (desired digest, live resourceVersion, changes): the diff of an unchanged pair is reused.
        self._memo: dict[str, tuple[str, str, list[FieldChange]]] = {}
        #: key -> (desired digest, live resourceVersion) the server confirmed as equal (dry-run).
        self._confirmed: dict[str, tuple[str, str]] = {}
        #: key -> (resourceVersion, Resource): live objects converted once per version.
        self._converted: dict[str, tuple[str, Resource]] = {}
        self._health_memo: dict[str, tuple[str, tuple[HealthStatus, str]]] = {}
        #: (group, kind, version) -> whether its CRD declares status conditions.
        self._declares_conditions: dict[tuple[str, str, str], bool] = {}
        #: key -> (desired digest, paths of Git's empty maps/lists the server does not store); remembered.
        self._dropped_empties: dict[str, tuple[str, frozenset[str]]] = {}
        self._empties_changed = False
        #: Managed keys found absent by a direct GET (looked up once; the watch reports re-appearance).
        self._gone: set[str] = set()
        # the digests live in setpoint's state store; a file from an older version moves there once
        context.memory.adopt_file(APPLIED_MEMORY, context.state_dir / "applied-digests.json")
        self._dropped_empties = self._load_empties()
        self._applied = self._load_applied()
        #: Paths outside the target's path the last render depended on (remembered across restarts).
        self._watched: list[str] = self._load_watched()
        self._inventory: ClusterInventory | None = None
        #: Render notes already logged (hooks left out, Argo CD waves honoured).
        self._told: set[str] = set()
        #: What the core's inventory held at the last observe (for the in-cluster inventory).
        self._managed_keys: set[str] = set()

    # ------------------------------------------------------------------ connection

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            kubeconfig = self.context.resolve(self.cfg.kubeconfig) if self.cfg.kubeconfig else None
            self._cluster = connect(kubeconfig, self.cfg.context, self.cfg.in_cluster,
                                    self.cfg.request_timeout_seconds)
        return self._cluster

    @property
    def cache(self) -> LiveCache:
        with self._lock:
            if self._cache is None:
                self._cache = LiveCache(self.context.shared, self.cluster, self.context.instance, self.label,
                                        self._on_event, self.cfg.resync_seconds,
                                        self.cfg.namespace if self.cfg.scope == "namespace" else None)
            return self._cache

    def _resource(self, group: str, kind: str, version: str | None = None) -> ApiResource | None:
        try:
            found = self.cluster.resource(group, kind, version)
            if found is None and version is not None:
                found = self.cluster.resource(group, kind)
            return found
        except ApiError as exc:
            raise exc.as_setpoint_error("discovery") from None

    # ------------------------------------------------------------------ render

    def render(self, tree: SourceTree) -> Desired:
        def is_namespaced(group: str, kind: str) -> bool | None:
            found = self._resource(group, kind)
            return None if found is None else found.namespaced

        renderer = Renderer(self.cfg, self.spec.name, lambda p: self.context.resolve(p), is_namespaced,
                            self._capabilities, self.context.instance)
        resources = []
        crds = set()
        outside = []
        for obj in renderer.render(tree):
            ref = Ref.of(obj)
            if self.cfg.scope == "namespace" and ref.namespace != self.cfg.namespace:
                outside.append(f"{ref.kind}/{ref.name}" + (f" (namespace {ref.namespace})" if ref.namespace else
                                                            " (cluster-scoped)"))
                continue
            body = wrap_secret_data(desired_object(obj))
            if ref.group_kind == CRD:
                spec = body.get("spec") or {}
                crds.add((spec.get("group", ""), (spec.get("names") or {}).get("kind", "")))
            resources.append(DesiredResource(ref.key, ref.kind, ref.name, body, ref.namespace,
                                             meta={"apiVersion": obj["apiVersion"], "group": ref.group}))
        for note in renderer.notes:
            if note not in self._told:  # once per target and process, not on every render
                self._told.add(note)
                self.context.logger.warning("%s", note)
        if outside:
            raise RenderError(f"scope: namespace allows objects in namespace {self.cfg.namespace} only; "
                              f"outside it: {', '.join(outside[:10])}" + (" ..." if len(outside) > 10 else "")
                              + ". Move them to a target with scope: cluster (and the RBAC to match).")
        return Desired.of(resources, revision=tree.revision.sha, crds=crds)

    def _capabilities(self) -> tuple[str, list[str]]:
        """For helm: read discovery afresh (renders are cached per revision, so this is rare), so a
        kind installed since, by anyone, counts in ``.Capabilities.APIVersions``."""
        try:
            self.cluster.discover()
            return self.cluster.server_version(), self.cluster.api_versions()
        except ApiError as exc:
            raise exc.as_setpoint_error("reading the cluster's version and API versions for helm") from None

    def watched_paths(self, tree: SourceTree) -> list[str]:
        """Files outside the target's path the render reads: Kustomize bases and components
        (``../base``) and Helm values files (``../values/prod.yaml``). A commit that changes only
        them re-renders the target. Remembered across restarts (:meth:`remembered_watched_paths`)."""
        renderer = Renderer(self.cfg, self.spec.name, lambda p: self.context.resolve(p), lambda g, k: True)
        mode = renderer.mode(tree)
        if mode == "kustomize":
            found = self._kustomize_dependencies(tree)
        elif mode == "helm":
            found = renderer.helm_dependencies(tree)
        else:
            found = []
        if found != self._watched:
            self._watched = found
            self.context.memory.set(WATCHED_MEMORY, found)
        return found

    def remembered_watched_paths(self) -> list[str]:
        return list(self._watched)

    @staticmethod
    def _kustomize_dependencies(tree: SourceTree) -> list[str]:
        checkout = tree.checkout.resolve()
        found: set[str] = set()
        pending, seen = [tree.root.resolve()], set()
        while pending:
            directory = pending.pop()
            if directory in seen:
                continue
            seen.add(directory)
            for entry in Renderer.kustomize_references(directory):
                path = (directory / entry).resolve()
                if path.is_relative_to(checkout) and path.exists():
                    if not path.is_relative_to(tree.root.resolve()):
                        found.add(str(path.relative_to(checkout)))
                    if path.is_dir():
                        pending.append(path)
        # a file inside a base directory that is already watched adds nothing
        return sorted(p for p in found if not any(p != q and p.startswith(q + "/") for q in found))

    # ------------------------------------------------------------------ observe

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        kinds: dict[tuple[str, str], str | None] = {}
        for want in desired.resources.values():
            kinds.setdefault((want.meta["group"], want.kind), version_of(want.meta["apiVersion"]))
        managed_refs = {}
        for key in managed:
            try:
                managed_refs[key] = ref = Ref.parse(key)
            except ValueError:
                continue
            kinds.setdefault(ref.group_kind, None)
        self._managed_keys = set(managed)
        pending_crds = desired.extra.get("crds", set())
        live: dict[str, Resource] = {}
        try:
            for (group, kind), version in sorted(kinds.items()):
                resource = self._resource(group, kind, version)
                if resource is None:
                    if (group, kind) in pending_crds or version is None:
                        continue  # its CRD is applied in this run (or is gone with its objects)
                    raise TemporaryError(f"the cluster serves no {kind} in {group or 'core'} "
                                         f"({self.cluster.label}); is its CRD installed?")
                if "watch" not in resource.verbs or "list" not in resource.verbs:
                    raise PermanentError(f"{kind} in {group or 'core'} cannot be listed and watched")
                for key, obj in self.cache.informer(resource).snapshot().items():
                    meta = obj.get("metadata") or {}
                    if meta.get("deletionTimestamp") and key not in desired.resources:
                        continue  # on its way out: nothing left to prune
                    live[key] = self._convert(key, obj)
            for key, ref in managed_refs.items():
                if key in live or key in self._gone:
                    continue
                found = self._get(ref)
                if found is None:
                    self._gone.add(key)
                else:
                    live[key] = self._convert(key, found)
        except ApiError as exc:
            raise exc.as_setpoint_error("observe") from None
        for memo in (self._converted, self._memo, self._health_memo, self._confirmed, self._dropped_empties):
            for key in [k for k in memo if k not in live]:
                del memo[key]  # type: ignore[attr-defined]
        return Live(live)

    def _get(self, ref: Ref) -> dict[str, Any] | None:
        resource = self._resource(ref.group, ref.kind)
        if resource is None:
            return None
        try:
            obj = self.cluster.request("GET", resource.path(ref.namespace, ref.name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        return obj

    def _convert(self, key: str, obj: dict[str, Any]) -> Resource:
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        cached = self._converted.get(key)
        if cached is not None and cached[0] == rv and rv:
            return cached[1]
        ref = Ref.parse(key)
        resource = Resource(key, ref.kind, ref.name, live_object(obj), ref.namespace,
                            meta={"raw": obj, "rv": rv, "group": ref.group})
        self._converted[key] = (rv, resource)
        return resource

    # ------------------------------------------------------------------ diff

    def diff(self, desired: Desired, live: Live) -> Plan:
        revision = desired.revision
        plan = diff_resources(desired, live, compare=lambda want, have: self._compare(want, have, revision),
                              deletable=lambda have: not opted_out(have.meta.get("raw")))
        if self._empties_changed:  # learnt by a dry run: a restart need not ask again
            self._save_empties()
        for change in plan.changes:
            have = live.resources.get(change.key)
            if change.fields and have is not None and have.meta.get("raw"):
                # who wrote the fields that differ (kubectl, a controller): said in the drift record
                change.changed_by = differ.changed_by(have.meta["raw"], [f.path for f in change.fields],
                                                      self.cfg.field_manager)
        return plan

    @staticmethod
    def _digest(want: Resource) -> str:
        return want.digest()

    def _compare(self, want: Resource, have: Resource, revision: str) -> list[FieldChange]:
        digest, rv = self._digest(want), have.meta.get("rv", "")
        memo = self._memo.get(want.key)
        if memo is not None and memo[0] == digest and memo[1] == rv and rv:
            return memo[2]
        raw = have.meta["raw"]
        body = self._respect_ignores(want, have, for_apply=False)
        fields = differ.compare(body, have.body)
        owned = differ.owned_fields(raw, self.cfg.field_manager)
        if owned:
            fields += differ.removed_fields(owned, body, have.body)
        if fields and self._applied.get(want.key) == digest:
            # Git did not change this object since setpoint applied it. Either it drifted, or the
            # server stores some value differently than the manifest says it (a normalisation we do
            # not know): ask the server what applying would produce, once per live version.
            if self._confirmed.get(want.key) == (digest, rv) or self._server_says_equal(want, raw, revision):
                self._confirmed[want.key] = (digest, rv)
                fields = []
        fields += self._missing_empties(want, body, have, revision, digest)
        # list entries added by hand next to Git's (a dry-run apply keeps them: they are not its to remove)
        fields += [f.change() for f in foreign_entries(raw, body, self.cfg.field_manager, self.cfg.ignore_managers)]
        seen: set[str] = set()
        fields = [f for f in fields if not (f.path in seen or seen.add(f.path))]  # type: ignore[func-returns-value]
        self._memo[want.key] = (digest, rv, fields)
        return fields

    def _missing_empties(self, want: Resource, body: dict[str, Any], have: Resource, revision: str,
                         digest: str) -> list[FieldChange]:
        """Empty maps and lists Git sets but the live object lacks are a change, unless the server
        drops them itself: which it drops is learnt once per desired object, from the apply response
        or a dry-run apply (a cluster that keeps ``selfSigned: {}`` makes its removal drift)."""
        missing = differ.missing_empties(body, have.body)
        if not missing:
            return []
        learnt = self._dropped_empties.get(want.key)
        if learnt is None or learnt[0] != digest:
            result = self._dry_run(want, have.meta["raw"], revision)
            if result is None:
                return []  # no answer: no claim either way (the next compare asks again)
            learnt = (digest, frozenset(differ.missing_empties(body, live_object(result))))
            self._dropped_empties[want.key] = learnt
            self._empties_changed = True
        return [FieldChange(path, None, {}) for path in missing if path not in learnt[1]]

    def _respect_ignores(self, want: Resource, have: Resource | None, for_apply: bool) -> dict[str, Any]:
        body = want.body
        if have is None:
            return body
        pointers = differ.rules_for(self.cfg.ignore, want.meta["group"], want.kind, want.namespace, want.name)
        for pointer in pointers:
            body = differ.overlay_pointer(body, have.body, pointer, for_apply)
        raw = have.meta.get("raw") or {}
        for manager in self.cfg.ignore_managers:
            fields = differ.owned_fields(raw, manager, operation=None)
            if fields:
                body = differ.overlay_fields(body, have.body, fields)
        return body

    def _server_says_equal(self, want: Resource, raw: dict[str, Any], revision: str) -> bool:
        result = self._dry_run(want, raw, revision)
        return result is not None and bool(live_object(result) == live_object(raw))

    def _dry_run(self, want: Resource, raw: dict[str, Any], revision: str) -> dict[str, Any] | None:
        """What applying ``want`` would make of the live object (server-side apply, ``dryRun=All``)."""
        ref = Ref.parse(want.key)
        resource = self._resource(ref.group, ref.kind, version_of(want.meta["apiVersion"]))
        if resource is None:
            return None
        applier = Applier(self.cluster, self.cfg, revision, lambda r, o: None)
        try:
            result = applier.dry_run(resource, ref, self._respect_ignores(want, self._convert(want.key, raw), True))
        except ApiError:
            return None
        result.setdefault("apiVersion", resource.api_version)
        result.setdefault("kind", resource.kind)
        return result

    # ------------------------------------------------------------------ apply

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        revision = desired.revision
        result = ApplyResult()
        live_raw: dict[str, dict[str, Any]] = {}
        for change in plan.changes:
            ref = Ref.parse(change.key)
            informer = self.cache.find(ref.group, ref.kind)
            obj = informer.snapshot().get(change.key) if informer else None
            if obj is None and change.key in self._converted:
                obj = self._converted[change.key][1].meta["raw"]
            if obj is not None:
                live_raw[change.key] = obj
        items = []
        for change in plan.changes:
            if change.action == Action.DELETE:
                continue
            want = desired.resources[change.key]
            have = self._converted.get(change.key, (None, None))[1] if change.key in live_raw else None
            body = self._respect_ignores(want, have, for_apply=True)
            items.append(Item(change.key, Ref.parse(change.key), body, live_raw.get(change.key), change.drift))
        try:
            outcome = Applier(self.cluster, self.cfg, revision, self._put).run(items)
        except ApiError as exc:
            raise exc.as_setpoint_error("apply") from None
        for key, obj in outcome.applied.items():
            want = desired.resources[key]
            self._applied[key] = self._digest(want)
            self._dropped_empties[key] = (self._digest(want), frozenset(differ.missing_empties(
                self._respect_ignores(want, None, False), live_object(obj))))
            self._gone.discard(key)
            result.applied.append(key)
        result.failed.update(outcome.failed)
        for key in outcome.replaced:
            self.context.logger.warning("%s: deleted and re-created (an immutable field changed; %s is set)",
                                        key, REPLACE_ANNOTATION)
        deletions = [c for c in plan.changes if c.action == Action.DELETE]
        if deletions:
            pruner = Pruner(self.cluster, self.label, self.cfg.prune_propagation)
            leaving = {c.key for c in deletions}
            ordered = sorted(deletions, key=lambda c: order_key(Ref.parse(c.key), live_raw.get(c.key) or {}),
                             reverse=True)
            for change in ordered:
                ref = Ref.parse(change.key)
                try:
                    reason = pruner.delete(ref, live_raw.get(change.key), leaving)
                except ApiError as exc:
                    reason = str(exc)
                if reason:
                    result.failed[change.key] = reason
                    continue
                result.applied.append(change.key)
                self._applied.pop(change.key, None)
                informer = self.cache.find(ref.group, ref.kind)
                if informer is not None:
                    informer.forget(change.key)
                self._converted.pop(change.key, None)
        self._save_applied()
        self._save_empties()
        warning = self._write_inventory(plan, result, revision)
        if warning:
            self.context.logger.warning("%s", warning)
            result.message = warning
        return result

    def _put(self, resource: ApiResource, obj: dict[str, Any]) -> None:
        informer = self.cache.find(resource.group, resource.kind)
        if informer is None or informer.resource.version != resource.version:
            try:
                informer = self.cache.informer(resource)
            except ApiError:
                return
        informer.put(obj)

    def _write_inventory(self, plan: Plan, result: ApplyResult, revision: str) -> str | None:
        if not self.cfg.inventory:
            return None
        if self._inventory is None:
            self._inventory = ClusterInventory(self.cluster, self.spec.name,
                                               self.cfg.inventory_namespace or self.cfg.namespace,
                                               self.cfg.field_manager)
        keys = set(self._managed_keys)
        for change in plan.changes:
            if change.key in result.applied:
                if change.action == Action.DELETE:
                    keys.discard(change.key)
                else:
                    keys.add(change.key)
        self._managed_keys = keys
        return self._inventory.write(keys, revision)

    # ------------------------------------------------------------------ health

    def health(self, desired: Desired, live: Live) -> Health:
        statuses: dict[str, tuple[HealthStatus, str]] = {}
        missing = []
        for key, want in desired.resources.items():
            have = live.resources.get(key)
            if have is None:
                missing.append(key)
                continue
            rv = have.meta.get("rv", "")
            memo = self._health_memo.get(key)
            if memo is not None and memo[0] == rv and rv:
                statuses[key] = memo[1]
                continue
            statuses[key] = self._check(want, have)
            self._health_memo[key] = (rv, statuses[key])
        result = checks.summarize(statuses, sorted(missing))
        self._healthy = result.status == HealthStatus.HEALTHY
        return result

    def _check(self, want: Resource, have: Resource) -> tuple[HealthStatus, str]:
        raw = have.meta["raw"]
        if (raw.get("metadata") or {}).get("deletionTimestamp"):
            return HealthStatus.PROGRESSING, "being deleted"
        group = want.meta["group"]
        if (group, want.kind) in checks.CHECKS:
            return checks.builtin_check(group, want.kind, raw) or (HealthStatus.HEALTHY, "")
        custom = self.context.check_health(Resource(have.key, have.kind, have.name, raw, have.namespace))
        if custom is not None:
            return custom.status, custom.message
        builtin = checks.builtin_check(group, want.kind, raw) if group in checks.PASSIVE_GROUPS else None
        if builtin is not None:
            return builtin
        found = checks.kstatus(raw)
        if found is not None:
            return found
        if self._reports_conditions(group, want.kind, want.meta["apiVersion"]):
            # a Certificate whose controller is not running has no status at all: not Healthy
            return HealthStatus.PROGRESSING, "no status conditions reported yet (is its controller running?)"
        return HealthStatus.HEALTHY, ""

    def _reports_conditions(self, group: str, kind: str, api_version: str) -> bool:
        """Does the CRD of this kind declare ``status.conditions`` (so a controller is expected to
        report them)? Read once per kind; False when the CRD cannot be read."""
        version = version_of(api_version) or ""
        cached = self._declares_conditions.get((group, kind, version))
        if cached is not None:
            return cached
        answer = False
        resource = self._resource(group, kind, version or None)
        crd = self._resource(*CRD)
        if resource is not None and crd is not None:
            try:
                obj = self.cluster.request("GET", crd.path(None, f"{resource.plural}.{group}"))
            except ApiError:
                obj = {}
            answer = checks.declares_conditions(obj, resource.version)
        self._declares_conditions[(group, kind, version)] = answer
        return answer

    # ------------------------------------------------------------------ live-state events

    def start_watching(self) -> None:
        self._watching = True

    def _on_event(self, kind: str, key: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if not self._watching:
            return
        if kind == "MODIFIED" and old is not None and new is not None and not _spec_changed(old, new):
            if self._healthy:
                return  # a status report while everything is healthy: nothing to do
            kind = "STATUS"
        self.context.trigger(f"event:k8s:{kind.lower()}:{key}")

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    # ------------------------------------------------------------------ state

    def _load_applied(self) -> dict[str, str]:
        data = self.context.memory.get(APPLIED_MEMORY)
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save_applied(self) -> None:
        self.context.memory.set(APPLIED_MEMORY, self._applied)

    def _load_empties(self) -> dict[str, tuple[str, frozenset[str]]]:
        data = self.context.memory.get(EMPTIES_MEMORY)
        if not isinstance(data, dict):
            return {}
        return {str(k): (str(v[0]), frozenset(str(p) for p in v[1])) for k, v in data.items()
                if isinstance(v, list) and len(v) == 2 and isinstance(v[1], list)}

    def _save_empties(self) -> None:
        self.context.memory.set(EMPTIES_MEMORY, {k: [d, sorted(p)] for k, (d, p) in self._dropped_empties.items()})
        self._empties_changed = False

    def _load_watched(self) -> list[str]:
        data = self.context.memory.get(WATCHED_MEMORY)
        return sorted(str(p) for p in data) if isinstance(data, list) else []


def _spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Anything but status and server bookkeeping changed (generation covers spec when present)."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if om.get("generation") is not None and om.get("generation") != nm.get("generation"):
        return True
    if om.get("labels") != nm.get("labels") or om.get("annotations") != nm.get("annotations"):
        return True
    if nm.get("deletionTimestamp") and not om.get("deletionTimestamp"):
        return True
    if om.get("generation") is None:
        strip = ("status", "metadata")
        return {k: v for k, v in old.items() if k not in strip} != {k: v for k, v in new.items() if k not in strip}
    return False
