"""Many targets on one cluster share one list+watch per kind (issue 24 case 1): the process keeps one
watch stream per kind, not one per target and kind, while each target still sees only its own
objects and hears only its own objects' events."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import Kube, configmap, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for
from setpoint_kubernetes import cache

pytestmark = pytest.mark.kubernetes

TARGETS = 6


def shared_informers(cluster: Any, kind: str) -> list[tuple[cache.Informer, set[tuple[str, int]]]]:
    return [entry for key, entry in cache._shared.items() if key[0] == id(cluster) and key[2] == kind]


def test_targets_of_one_cluster_share_one_watch_per_kind(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    names = [f"{ns}-{i}" for i in range(TARGETS)]
    git_repo.commit({f"apps/{i}/cm.yaml": manifests(configmap(f"cm{i}", {"n": str(i)}), configmap(f"extra{i}", {}))
                     for i in range(TARGETS)}, "v1")
    engine = engine_for(git_repo, [k8s_target(name, kube.kubeconfig, ns, path=f"apps/{i}")
                                   for i, name in enumerate(names)])
    assert [o.sync for o in engine.sync()] == [SyncStatus.SYNCED] * TARGETS
    cluster = engine.runners[names[0]].driver.cluster

    found = shared_informers(cluster, "ConfigMap")
    assert len(found) == 1, "one informer (one watch stream) for the ConfigMaps of every target"
    informer, users = found[0]
    assert {label for label, _ in users} >= {engine.runners[n].driver.label for n in names}
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

    # the informer stops with the last target that uses it
    engine.close()
    assert not shared_informers(cluster, "ConfigMap")


def fake_informer() -> tuple[cache.Informer, dict[str, list[tuple[str, str, Any, Any]]]]:
    """An informer that never talks to a server: the dispatch alone (a unit test of the index)."""
    informer = cache.Informer(cluster=None, resource=None, resync=600.0)  # type: ignore[arg-type]
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
