"""The ``kubernetes:`` block of a target in setpoint.yaml (validated by pydantic)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IgnoreRule(_Strict):
    """Fields never compared and never fought over: the live value is kept when applying.

    ``paths`` are JSON pointers (RFC 6901) into the object, e.g. ``/spec/replicas`` or
    ``/spec/template/spec/containers/*/image`` (``*`` matches any list item or map key). The rule
    applies to objects matching every selector that is set (``kind``, ``group``, ``name`` and
    ``namespace`` accept shell globs).
    """

    paths: tuple[str, ...] = Field(min_length=1)
    kind: str | None = None
    group: str | None = None
    name: str | None = None
    namespace: str | None = None

    @field_validator("paths")
    @classmethod
    def _pointers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pointer in value:
            if not pointer.startswith("/"):
                raise ValueError(f"{pointer!r} is not a JSON pointer (it must start with '/')")
        return value


class KustomizeSettings(_Strict):
    #: The kubectl binary whose built-in kustomize renders ``kustomization.yaml`` directories.
    kubectl_binary: str = "kubectl"
    #: Remote bases (``github.com/...``, ``https://...``) are refused unless this is true.
    allow_remote_bases: bool = False
    timeout_seconds: float = Field(default=90.0, gt=0)


class HelmSettings(_Strict):
    #: The helm binary; without it a chart (Chart.yaml) is a render error.
    binary: str | None = None
    release_name: str | None = None
    #: Values files in Git, relative to the chart's folder (``../values/prod.yaml`` works; SOPS-encrypted
    #: ones must be inside the target's path, where the core decrypts them).
    values_files: tuple[str, ...] = ()
    #: ``.Capabilities.KubeVersion`` and ``--api-versions``: read from the cluster (discovery) unless set.
    kube_version: str | None = None
    #: Extra API versions for ``.Capabilities.APIVersions`` (added to the cluster's).
    api_versions: tuple[str, ...] = ()
    timeout_seconds: float = Field(default=120.0, gt=0)


class KubernetesSettings(_Strict):
    #: Path of a kubeconfig file (``~`` and paths relative to setpoint.yaml work). Default: $KUBECONFIG
    #: or ~/.kube/config. Ignored with ``in_cluster``.
    kubeconfig: Path | None = None
    #: The kubeconfig context; default: its current-context.
    context: str | None = None
    #: Use the pod's service account (setpoint running inside the cluster).
    in_cluster: bool = False
    #: Namespace for namespaced objects that do not name one.
    namespace: str = "default"
    #: ``cluster``: objects anywhere, watched cluster-wide. ``namespace``: every object must be
    #: namespaced and in ``namespace`` (else a render error, before anything is applied), and
    #: list/watch stay within it, so a namespaced Role is all setpoint needs (the Helm chart's default).
    scope: Literal["cluster", "namespace"] = "cluster"
    #: How the target's path is rendered: ``auto`` picks kustomize when a kustomization file is at
    #: the root, helm when Chart.yaml is, plain YAML otherwise.
    render: Literal["auto", "plain", "kustomize", "helm"] = "auto"
    #: Plain YAML: files to read (globs relative to the target's path) and files to leave out.
    include: tuple[str, ...] = ("**/*.yaml", "**/*.yml", "**/*.json")
    exclude: tuple[str, ...] = ()
    kustomize: KustomizeSettings = KustomizeSettings()
    helm: HelmSettings = HelmSettings()
    #: Lifecycle hooks in the render (``helm.sh/hook``, ``argocd.argoproj.io/hook``): setpoint runs no
    #: hooks, so they are refused with their names, or left out with ``skip``. Helm tests are always left out.
    hooks: Literal["refuse", "skip"] = "refuse"
    #: The server-side apply field manager setpoint applies as.
    field_manager: str = Field(default="setpoint", min_length=1, max_length=128)
    #: Take fields another field manager applied (server-side apply ``force``). Off: such a conflict
    #: is reported with the fields and the manager, and nothing of that object is changed.
    force_conflicts: bool = False
    #: Fields to leave out of the comparison (and keep at their live value when applying).
    ignore: tuple[IgnoreRule, ...] = ()
    #: Field managers whose fields are never compared or taken (e.g. an autoscaler's manager).
    ignore_managers: tuple[str, ...] = ()
    #: How pruned objects' dependants are deleted.
    prune_propagation: Literal["Background", "Foreground", "Orphan"] = "Background"
    #: Write an inventory ConfigMap (``setpoint-inventory-<target>``) listing what setpoint applied.
    inventory: bool = True
    #: Namespace of the inventory ConfigMap (default: ``namespace``).
    inventory_namespace: str | None = None
    #: Server-side field validation of applied objects (unknown or duplicate fields).
    field_validation: Literal["Strict", "Warn", "Ignore"] = "Strict"
    #: Parallel apply requests within one stage.
    apply_concurrency: int = Field(default=4, ge=1, le=32)
    #: How long to wait for CRDs to become Established, and for an object being replaced to be gone.
    wait_timeout_seconds: float = Field(default=60.0, gt=0)
    #: Timeout of one API request.
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Full re-list of the watched kinds, as a safety net behind the watches.
    resync_seconds: float = Field(default=600.0, ge=10)
