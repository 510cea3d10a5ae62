"""Many targets on one cluster share one list+watch per kind (issue 24 case 1): an engine keeps one
watch stream per kind, not one per target and kind, while each target still sees only its own
objects and hears only its own objects' events. The shared informers belong to the engine (its
``context.shared`` scope): closed with it, never found by a later engine; they select this
installation's objects by its instance label."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import Kube, configmap, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for
from setpoint_kubernetes import cache

pytestmark = pytest.mark.kubernetes

TARGETS = 6


def shared_informers(engine: Any, cluster: Any, kind: str) -> list[cache.Informer]:
    return [entry for key, entry in engine.shared._entries.items()
            if isinstance(key, tuple) and key[:3] == ("kubernetes", "informer", id(cluster)) and key[4] == kind]


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("setpoint-k8s-watch-") and t.is_alive()]


def test_targets_of_one_cluster_share_one_watch_per_kind(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    names = [f"{ns}-{i}" for i in range(TARGETS)]
    git_repo.commit({f"apps/{i}/cm.yaml": manifests(configmap(f"cm{i}", {"n": str(i)}), configmap(f"extra{i}", {}))
                     for i in range(TARGETS)}, "v1")
    engine = engine_for(git_repo, [k8s_target(name, kube.kubeconfig, ns, path=f"apps/{i}")
                                   for i, name in enumerate(names)])
    assert [o.sync for o in engine.sync()] == [SyncStatus.SYNCED] * TARGETS
    cluster = engine.runners[names[0]].driver.cluster

    found = shared_informers(engine, cluster, "ConfigMap")
    assert len(found) == 1, "one informer (one watch stream) for the ConfigMaps of every target"
    informer = found[0]
    assert set(informer.handlers) >= {engine.runners[n].driver.label for n in names}
    instance = engine.instance_id
    assert informer.selector == f"setpoint.dev/instance={instance}"
    assert kube.obj("api/v1/configmaps", "cm0")["metadata"]["labels"]["setpoint.dev/instance"] == instance
    for i, name in enumerate(names):  # each target's slice holds its own objects only
        assert set(engine.runners[name].driver.cache.find("", "ConfigMap").snapshot()) == {
            f"ConfigMap/{ns}/cm{i}", f"ConfigMap/{ns}/extra{i}"}

    # an edit by hand wakes only the target that owns the object
    woken: list[tuple[str, str]] = []
    engine.set_waker(lambda name, reason: woken.append((name, reason)))
    for name in names:
        engine.runners[name].driver.start_watching()
    kube.kubectl("patch", "configmap", "cm2", "--type=merge", "-p", '{"data":{"n":"edited"}}')
    wait_for(lambda: woken, 10)
    time.sleep(0.5)  # a wrong dispatch would arrive with the same event
    assert {name for name, _ in woken} == {names[2]}, woken
    out = engine.reconcile(names[2])
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None)
    assert kube.obj("api/v1/configmaps", "cm2")["data"]["n"] == "2"

    # the informers stop with the engine: none of its watch threads is left, and a new engine starts fresh
    threads = [i._thread for i in engine.shared._entries.values() if isinstance(i, cache.Informer) and i._thread]
    assert threads and all(t.is_alive() for t in threads)
    engine.close()
    assert not engine.shared._entries
    assert not [t for t in threads if t.is_alive()], "Engine.close() waits for its watch threads"
    assert not [t for t in watch_threads() if t in threads]
    again = engine_for(git_repo, [k8s_target(name, kube.kubeconfig, ns, path=f"apps/{i}")
                                  for i, name in enumerate(names)])
    assert not shared_informers(again, cluster, "ConfigMap"), "nothing left over from the closed engine"
    assert [o.sync for o in again.sync()] == [SyncStatus.SYNCED] * TARGETS
    fresh = shared_informers(again, cluster, "ConfigMap")
    assert len(fresh) == 1 and fresh[0] is not informer and not fresh[0].stopped
    assert informer.stopped
    mine = [i._thread for i in again.shared._entries.values() if isinstance(i, cache.Informer) and i._thread]
    again.close()
    assert mine and not [t for t in mine if t.is_alive()]


def test_an_engine_never_closed_does_not_leak_into_the_next(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    """The withdrawn process-wide registry's failure: an engine left open (a one-shot command's, a
    test's) kept its informer registered, and a later engine on the same cluster found it."""
    ns = kube.namespace
    git_repo.commit({"app/cm.yaml": manifests(configmap("one", {"v": "1"}))}, "v1")
    first = engine_for(git_repo, [k8s_target(f"{ns}-a", kube.kubeconfig, ns)])
    assert first.sync()[0].sync == SyncStatus.SYNCED
    second = engine_for(git_repo, [k8s_target(f"{ns}-a", kube.kubeconfig, ns)])
    assert not second.shared._entries
    assert second.sync()[0].sync == SyncStatus.SYNCED
    mine = second.runners[f"{ns}-a"].driver.cache.find("", "ConfigMap")
    theirs = first.runners[f"{ns}-a"].driver.cache.find("", "ConfigMap")
    assert mine.shared is not theirs.shared, "each engine its own informer"
    second.close()
    assert theirs.shared.healthy and not theirs.shared.stopped, "closing one engine leaves the other's alone"
    first.close()
    assert theirs.shared.stopped


def test_objects_applied_before_the_instance_label_are_relabelled_on_their_next_apply(
        kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    name = f"{ns}-old"
    git_repo.commit({"app/cm.yaml": manifests(configmap("legacy", {"v": "1"}))}, "v1")
    engine = engine_for(git_repo, [k8s_target(name, kube.kubeconfig, ns)])
    assert engine.sync()[0].sync == SyncStatus.SYNCED
    # what an older setpoint left: the object without the instance label (its field manager's apply)
    labels = kube.obj("api/v1/configmaps", "legacy")["metadata"]["labels"]
    kube.kubectl("label", "configmap", "legacy", "setpoint.dev/instance-")
    engine.close()
    assert "setpoint.dev/instance" not in kube.obj("api/v1/configmaps", "legacy")["metadata"]["labels"]
    again = engine_for(git_repo, [k8s_target(name, kube.kubeconfig, ns)])
    out = again.sync()[0]
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None)
    assert kube.obj("api/v1/configmaps", "legacy")["metadata"]["labels"] == labels, "relabelled"
    assert kube.obj("api/v1/configmaps", "legacy")["data"] == {"v": "1"}
    assert f"ConfigMap/{ns}/legacy" in again.runners[name].driver.cache.find("", "ConfigMap").snapshot()


def fake_informer() -> tuple[cache.Informer, dict[str, list[tuple[str, str, Any, Any]]]]:
    """An informer that never talks to a server: the dispatch alone (a unit test of the index)."""
    informer = cache.Informer(cluster=None, resource=None, resync=600.0, instance="i1")  # type: ignore[arg-type]
    heard: dict[str, list[tuple[str, str, Any, Any]]] = {"a": [], "b": []}
    for label in heard:
        informer.handlers[label] = {1: lambda kind, key, old, new, label=label: heard[label].append((kind, key, old, new))}
    return informer, heard


def obj(name: str, label: str, rv: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv),
                         "labels": {"setpoint.dev/target": label}}}


def test_a_relabelled_object_leaves_one_target_and_reaches_the_other() -> None:
    informer, heard = fake_informer()
    key = "ConfigMap/ns/moving"
    informer._event("ADDED", key, obj("moving", "a", 10), "10")
    assert set(informer.snapshot("a")) == {key} and not informer.snapshot("b")
    informer._event("MODIFIED", key, obj("moving", "b", 11), "11")
    assert not informer.snapshot("a") and set(informer.snapshot("b")) == {key}
    assert [e[0] for e in heard["a"]] == ["ADDED", "DELETED"]
    assert [e[0] for e in heard["b"]] == ["ADDED"]
    informer._event("DELETED", key, obj("moving", "b", 12), "12")
    assert [e[0] for e in heard["b"]] == ["ADDED", "DELETED"] and not informer.objects


def test_a_stale_watch_event_does_not_bring_back_what_a_newer_list_found_gone() -> None:
    informer, heard = fake_informer()
    informer.label_rv["a"] = 20  # target a's own list at resourceVersion 20 did not find "old"
    informer._event("MODIFIED", "ConfigMap/ns/old", obj("old", "a", 15), "15")
    assert not informer.snapshot("a") and not heard["a"]
    informer._event("ADDED", "ConfigMap/ns/new", obj("new", "a", 21), "21")
    assert set(informer.snapshot("a")) == {"ConfigMap/ns/new"}


def test_our_own_newer_write_survives_a_full_list_that_started_before_it() -> None:
    informer, heard = fake_informer()
    mine = obj("applied", "a", 30)
    informer.put(mine)
    informer._list = lambda selector: ({}, "25")  # type: ignore[method-assign]
    informer.list()
    assert informer.snapshot("a") == {"ConfigMap/ns/applied": mine}
    assert not heard["a"], "no DELETED for an object the list was too early to see"
