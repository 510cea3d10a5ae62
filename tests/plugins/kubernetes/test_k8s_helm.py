"""Helm charts rendered with the real helm CLI (built by dev/services) against the real API server:
a podinfo-style chart with kubeVersion, .Capabilities checks, test hooks, crds/, a vendored
dependency, values files from Git (one outside the chart, one SOPS-encrypted) is Synced after one
apply and stays so; lifecycle hooks are refused or left out; generateName is refused clearly."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Kube, k8s_target
from helm_charts import podinfo_chart

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for

pytestmark = [pytest.mark.kubernetes, pytest.mark.helm]


def monitor_crd(group: str) -> str:
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: monitors.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: monitors, singular: monitor, kind: Monitor}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"""


def helm_target(ns: str, kube: Kube, helm_bin: str, **helm: Any) -> dict[str, Any]:
    settings = {"helm": {"binary": helm_bin, "release_name": "podinfo", **helm}}
    return k8s_target(ns, kube.kubeconfig, ns, path="charts/podinfo", prune=True, kubernetes=settings)


def encrypt_values(sops_env: Any, tmp_path: Path, text: str) -> str:
    plain = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    plain.write_text(text)
    proc = sops_env.run("encrypt", "--age", sops_env.age_recipient, "--input-type", "yaml", "--output-type", "yaml",
                        str(plain))
    plain.unlink()
    return proc.stdout.decode()


@pytest.mark.sops
def test_podinfo_style_chart_is_synced_after_one_apply_and_stays(kube: Kube, git_repo: GitRepo, engine_for,  # type: ignore[no-untyped-def]
                                                                  helm_bin: str, sops_env: Any, tmp_path: Path,
                                                                  caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    ns = kube.namespace
    monitors = f"m{uuid.uuid4().hex[:8]}.example.com"
    widgets = f"w{uuid.uuid4().hex[:8]}.example.com"
    crd_file = tmp_path / "monitor-crd.yaml"
    crd_file.write_text(monitor_crd(monitors))
    kube.kubectl("apply", "-f", str(crd_file), namespaced=False)  # installed beforehand, as by a monitoring stack
    kube.kubectl("wait", "--for=condition=Established", f"crd/monitors.{monitors}", "--timeout=60s", namespaced=False)

    message = f"secret-{uuid.uuid4().hex}"
    files = podinfo_chart("charts/podinfo", widgets)
    files["charts/podinfo/secrets.yaml"] = encrypt_values(sops_env, tmp_path, f"message: {message}\n")
    files["charts/values/prod.yaml"] = f"monitor:\n  group: {monitors}\nimage:\n  tag: 6.9.1\ncache:\n  maxmemory: 128mb\n"
    git_repo.commit(files, "podinfo 6.9.1")
    target = helm_target(ns, kube, helm_bin, values_files=["../values/prod.yaml", "secrets.yaml"])
    secrets = {"sops": {"age_key_file": str(sops_env.age_key_file), "use_environment": False}}
    engine = engine_for(git_repo, [target], secrets=secrets)

    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    keys = set(engine.store.inventory(ns))
    assert {f"Deployment.apps/{ns}/podinfo", f"Service/{ns}/podinfo", f"Secret/{ns}/podinfo",
            f"ConfigMap/{ns}/podinfo-cache", f"CustomResourceDefinition.apiextensions.k8s.io/widgets.{widgets}",
            f"Widget.{widgets}/{ns}/podinfo-widget", f"Monitor.{monitors}/{ns}/podinfo"} <= keys, keys
    assert not [k for k in keys if "grpc-test" in k], "test hooks are not desired state"
    dep = kube.obj("apis/apps/v1/deployments", "podinfo")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/stefanprodan/podinfo:6.9.1"
    assert "maxmemory 128mb" in kube.obj("api/v1/configmaps", "podinfo-cache")["data"]["redis.conf"]
    assert base64.b64decode(kube.obj("api/v1/secrets", "podinfo")["data"]["message"]).decode() == message
    assert engine.runners[ns].watched_paths == ["charts/values/prod.yaml"]
    # the decrypted value reached the cluster only: not the logs, audit, status or the driver's files
    written = [caplog.text, json.dumps([e.__dict__ for e in engine.store.audit_entries()], default=str),
               json.dumps(engine.store.status(ns), default=str)]
    written += [p.read_bytes().decode(errors="replace") for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert not [w for w in written if message in w]

    # stays Synced: again, and from a new process (random test-hook names cause no churn)
    again = engine.reconcile(ns)
    assert (again.sync, again.actions, again.drift) == (SyncStatus.SYNCED, (), ())
    fresh = engine_for(git_repo, [target], secrets=secrets).reconcile(ns, dry_run=True)
    assert fresh.sync == SyncStatus.SYNCED, engine.runners[ns].last_plan

    # a commit that changes only the values file outside the chart is deployed
    files["charts/values/prod.yaml"] = files["charts/values/prod.yaml"].replace("6.9.1", "6.9.2")
    git_repo.commit({"charts/values/prod.yaml": files["charts/values/prod.yaml"]}, "podinfo 6.9.2")
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    wait_for(lambda: kube.obj("apis/apps/v1/deployments", "podinfo")["spec"]["template"]["spec"]["containers"][0]
             ["image"].endswith(":6.9.2"), 5)


def test_kube_version_comes_from_the_cluster(kube: Kube, git_repo: GitRepo, engine_for, helm_bin: str) -> None:  # type: ignore[no-untyped-def]
    """helm's built-in default version (that of its client-go, 1.37 here) is not the cluster's (1.36):
    a chart made for 1.36 renders, one needing 1.37 is refused with helm's message."""
    ns = kube.namespace
    files = podinfo_chart("charts/podinfo", f"w{uuid.uuid4().hex[:8]}.example.com", kube_version=">=1.36.0-0 <1.37.0-0")
    git_repo.commit(files)
    engine = engine_for(git_repo, [helm_target(ns, kube, helm_bin)])
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    git_repo.commit({"charts/podinfo/Chart.yaml": files["charts/podinfo/Chart.yaml"].replace(
        ">=1.36.0-0 <1.37.0-0", ">=1.37.0-0")})
    out = engine.reconcile(ns)
    assert out.error_stage == "render" and "kubeVersion" in out.error and "v1.36" in out.error, out.error


HOOK_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-weight": "-5"
    "helm.sh/hook-delete-policy": before-hook-creation
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: registry.local/migrate:1
"""


def test_lifecycle_hooks_are_refused_or_left_out(kube: Kube, git_repo: GitRepo, engine_for, helm_bin: str) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    files = podinfo_chart("charts/podinfo", f"w{uuid.uuid4().hex[:8]}.example.com")
    files["charts/podinfo/templates/migrate-job.yaml"] = HOOK_JOB
    git_repo.commit(files)
    out = engine_for(git_repo, [helm_target(ns, kube, helm_bin)]).reconcile(ns)
    assert out.error_stage == "render", out.error
    assert "Job/podinfo-migrate (pre-install, pre-upgrade)" in out.error and "hooks: skip" in out.error, out.error
    assert kube.obj("apis/apps/v1/deployments", "podinfo") is None, "nothing applied"

    target = helm_target(ns, kube, helm_bin)
    target["kubernetes"]["hooks"] = "skip"
    engine = engine_for(git_repo, [target])
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    assert kube.obj("apis/batch/v1/jobs", "podinfo-migrate") is None
    assert not [k for k in engine.store.inventory(ns) if "migrate" in k]


def test_generate_name_is_refused_clearly(kube: Kube, git_repo: GitRepo, engine_for, helm_bin: str) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    files = podinfo_chart("charts/podinfo", f"w{uuid.uuid4().hex[:8]}.example.com")
    files["charts/podinfo/templates/seed.yaml"] = ("apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: seed-\n"
                                                   "spec:\n  template:\n    spec:\n      restartPolicy: Never\n"
                                                   "      containers: [{name: s, image: registry.local/s:1}]\n")
    git_repo.commit(files)
    out = engine_for(git_repo, [helm_target(ns, kube, helm_bin)]).reconcile(ns)
    assert out.error_stage == "render", out.error
    assert "podinfo/templates/seed.yaml" in out.error and "generateName 'seed-'" in out.error, out.error
    assert "fixed metadata.name" in out.error
