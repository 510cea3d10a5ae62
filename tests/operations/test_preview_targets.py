"""``setpoint preview`` against real targets (issue 22 item 2): a branch that changes a files target,
a Kubernetes target (server-side dry-run) and a Terraform target (a real plan) shows exactly those
changes and deletions, and leaves every live target, the audit and the status untouched."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import yaml

from setpoint.preview import preview, to_markdown
from setpoint.testing import GitRepo, make_engine, write_config


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def sg_module(provider: Any, world: Path, ports: list[int]) -> str:
    return provider.required_providers_block() + f'''
resource "setpointtest_security_group" "web" {{
  path          = "{world / 'web.json'}"
  name          = "web"
  ingress_ports = {json.dumps(ports)}
}}
'''


def test_preview_of_files_kubernetes_and_terraform(tmp_path: Path, git_repo: GitRepo, kubeconfig: str,
                                                  k8s_namespace: str, k8s_api_client: Any, tf_provider: Any,
                                                  tf_cli_config: str, terraform_bin: str) -> None:
    from kubernetes import client

    live, world, cache = tmp_path / "live", tmp_path / "world", tmp_path / "tf-cache"
    world.mkdir()
    cache.mkdir()
    git_repo.commit({
        "etc/a.conf": "mode = blue\n", "etc/b.conf": "legacy\n",
        "k8s/cm.yaml": yaml.safe_dump_all([configmap("settings", {"mode": "blue"}), configmap("old", {"x": "1"})]),
        "infra/net/main.tf": sg_module(tf_provider, world, [443]),
    }, "initial")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "prune": True, "files": {"destination": str(live)}},
        {"name": "app", "kind": "kubernetes", "path": "k8s", "prune": True,
         "kubernetes": {"kubeconfig": kubeconfig, "namespace": k8s_namespace}},
        {"name": "net", "kind": "terraform", "path": "infra/net",
         "terraform": {"cli_config": tf_cli_config, "plugin_cache_dir": str(cache), "lock_timeout": "5s",
                       "binary": terraform_bin}},
    ])
    engine = make_engine(config, load_entrypoints=True)
    assert [o.error for o in engine.sync()] == [None, None, None]

    git_repo.git("checkout", "--quiet", "-b", "feature")
    feature = git_repo.commit({
        "etc/a.conf": "mode = green\n", "etc/b.conf": None,
        "k8s/cm.yaml": yaml.safe_dump(configmap("settings", {"mode": "green"})),
        "infra/net/main.tf": sg_module(tf_provider, world, [443, 8443]),
    }, "go green")
    git_repo.git("checkout", "--quiet", "main")

    core = client.CoreV1Api(k8s_api_client)

    def live_state() -> tuple[Any, ...]:
        maps = {m.metadata.name: (m.data, m.metadata.resource_version)
                for m in core.list_namespaced_config_map(k8s_namespace).items if m.metadata.name != "kube-root-ca.crt"}
        files = {p.name: p.read_text() for p in live.iterdir()}
        return maps, files, (world / "web.json").read_text()

    before = live_state()
    audit = len(engine.store.audit_entries())
    statuses = {n: s.without_volatile() for n, s in engine.store.all_status().items()}

    def folders() -> dict[str, bytes]:
        """The reconciler's driver folders (the Terraform working dir and local state among them)."""
        root = engine.state_dir / "targets"
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and not p.is_symlink()}

    memory, driver_folders = {n: engine.store.memory(n) for n in engine.runners}, folders()
    # the preview runs while the reconciler goes on reconciling (gap 3: its own drivers, private copies)
    stop, errors = threading.Event(), []

    def reconcile() -> None:
        while not stop.is_set():
            for name in engine.ordered(list(engine.runners)):
                outcome = engine.reconcile(name, "test", lock_timeout=60, poll=False)
                if outcome.error or outcome.actions:
                    errors.append(f"{name}: {outcome.error or outcome.actions}")

    worker = threading.Thread(target=reconcile)
    worker.start()
    try:
        report = preview(engine, "feature")
    finally:
        stop.set()
        worker.join()
    assert not errors, errors
    assert {n: engine.store.memory(n) for n in engine.runners} == memory
    assert folders() == driver_folders
    assert list((engine.state_dir / "preview").iterdir()) == []
    assert report.commits == {"repo": feature} and not report.failed, [t.error for t in report.targets]
    found = {t.target: {(c["action"], c["key"]): c["fields"] for c in t.changes} for t in report.targets}
    assert found["host"] == {("update", "a.conf"): [{"path": "content", "before": "mode = blue\n",
                                                     "after": "mode = green\n"}],
                             ("delete", "b.conf"): found["host"][("delete", "b.conf")]}
    app = found["app"]
    assert {k for k in app} == {("update", f"ConfigMap/{k8s_namespace}/settings"),
                                ("delete", f"ConfigMap/{k8s_namespace}/old")}, app
    assert {"path": "data.mode", "before": "blue", "after": "green"} in app[("update",
                                                                           f"ConfigMap/{k8s_namespace}/settings")]
    net = found["net"]
    assert list(net) == [("update", "setpointtest_security_group.web")], net
    ports = [f for f in net[("update", "setpointtest_security_group.web")] if f["path"] == "ingress_ports"]
    assert ports == [{"path": "ingress_ports", "before": [443], "after": [443, 8443]}]
    markdown = to_markdown(report)
    # (the app row may go on with a note about objects labelled "app" that other tests left in the shared
    # cluster: the label is the target's name, and earlier tests name targets "app" too)
    for line in ("| host | files | 1 delete, 1 update |", "| app | kubernetes | 1 delete, 1 update",
                 "| net | terraform | 1 update |"):
        assert line in markdown, markdown

    # nothing was applied or recorded
    assert live_state() == before
    assert len(engine.store.audit_entries()) == audit
    assert {n: s.without_volatile() for n, s in engine.store.all_status().items()} == statuses
    # and the daemon's next pass still deploys main: no change at all
    assert all(not o.actions and o.error is None for o in engine.sync())
    assert live_state() == before
    engine.close()
