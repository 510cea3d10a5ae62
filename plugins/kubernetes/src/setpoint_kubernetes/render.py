"""Turn a target's directory into Kubernetes objects: plain YAML, Kustomize or a Helm chart.

Rendering is side-effect free: Kustomize and Helm run on a private copy of the files (decrypted
SOPS files included) and their output is parsed in memory. Every object gets setpoint's tracking
label; namespaced objects without a namespace get the target's default namespace.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from setpoint import yamlsafe
from setpoint.api import SourceTree, private_directory
from setpoint.errors import RenderError
from setpoint.secrets import Secret, reveal_all
from setpoint_kubernetes.hooks import argo_wave_note, filter_hooks
from setpoint_kubernetes.identity import INSTANCE_LABEL, TARGET_LABEL, WAVE_ANNOTATION, Ref, label_value
from setpoint_kubernetes.settings import KubernetesSettings

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
REMOTE = re.compile(r"^(https?://|git@|ssh://|github\.com/|gitlab\.com/|bitbucket\.org/)|\?ref=|//.*\.git")

#: Kinds the API serves cluster-wide (used before any cluster is asked; CRDs in the render and
#: discovery cover the rest).
CLUSTER_SCOPED = {
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"), ("", "ComponentStatus"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("apiregistration.k8s.io", "APIService"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"), ("storage.k8s.io", "CSIDriver"), ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"), ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"), ("networking.k8s.io", "IngressClass"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("certificates.k8s.io", "CertificateSigningRequest"), ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
}


def _documents(text: str, origin: str) -> list[Any]:
    try:
        # The C loader when PyYAML has it, with alias expansion bounded (a "billion laughs" is refused).
        return yamlsafe.load_all(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RenderError(f"{origin}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None


def _flatten(docs: list[Any], origin: str) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise RenderError(f"{origin}: a document is not a Kubernetes object (got {type(doc).__name__})")
        kind = reveal_all(doc.get("kind"))
        if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
            yield from _flatten(doc["items"], origin)
            continue
        yield doc


def _matches(relpath: str, patterns: tuple[str, ...]) -> bool:
    path = PurePosixPath(relpath)
    for pattern in patterns:
        if fnmatch.fnmatch(relpath, pattern) or path.match(pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(relpath, pattern[3:]):
            return True
    return False


#: (kube version, API versions) of the cluster, for Helm's ``.Capabilities``.
Capabilities = Callable[[], tuple[str, list[str]]]


class Renderer:
    def __init__(self, settings: KubernetesSettings, target: str, resolve: Callable[[str], Path],
                 is_namespaced: Callable[[str, str], bool | None], capabilities: Capabilities | None = None,
                 instance: str | None = None) -> None:
        self.settings = settings
        self.target = target
        #: The installation's id, set as INSTANCE_LABEL on every object (None: no such label).
        self.instance = instance
        self.resolve = resolve
        #: Asks discovery about kinds the built-in table and the render's CRDs do not cover.
        self.is_namespaced = is_namespaced
        self.capabilities = capabilities
        #: Things worth telling the user once (hooks left out, Argo CD waves honoured).
        self.notes: list[str] = []

    def mode(self, tree: SourceTree) -> str:
        if self.settings.render != "auto":
            return self.settings.render
        if any((tree.root / name).is_file() for name in KUSTOMIZATION_FILES):
            return "kustomize"
        if (tree.root / "Chart.yaml").is_file():
            return "helm"
        return "plain"

    def render(self, tree: SourceTree) -> list[dict[str, Any]]:
        mode = self.mode(tree)
        if mode == "kustomize":
            objects = list(_flatten(_documents(self._kustomize(tree), "kustomize output"), "kustomize output"))
        elif mode == "helm":
            objects = self._helm_objects(self._helm(tree))
        else:
            objects = self._plain(tree)
        objects, self.notes = filter_hooks(objects, self.settings.hooks)
        self.notes += argo_wave_note(objects, WAVE_ANNOTATION)
        return self._finish(objects)

    # ------------------------------------------------------------------ sources

    def _plain(self, tree: SourceTree) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        for relpath in tree.files():
            if not _matches(relpath, self.settings.include) or _matches(relpath, self.settings.exclude):
                continue
            if tree.is_encrypted(relpath):
                docs = list(tree.decrypted[relpath].documents)
            else:
                docs = _documents(tree.read_text(relpath), relpath)
            for obj in _flatten(docs, relpath):
                obj = dict(obj)
                obj["__origin"] = relpath
                objects.append(obj)
        return objects

    @contextmanager
    def _workdir(self, tree: SourceTree) -> Iterator[Path]:
        """The target's directory with encrypted files in clear. Overlays reference ``../base``, so
        the whole checkout is copied when something must be decrypted; otherwise Git's tree is read
        in place (render tools only read)."""
        if not tree.decrypted:
            yield tree.root
            return
        with private_directory("setpoint-k8s-") as scratch:
            copy = scratch / "checkout"
            shutil.copytree(tree.checkout, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            root = copy / tree.root.relative_to(tree.checkout)
            for relpath, decrypted in tree.decrypted.items():
                path = root / relpath
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(decrypted.plaintext.reveal())
            yield root

    def _run(self, argv: list[str], cwd: Path, timeout: float, what: str) -> str:
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, text=True,
                                  env={**os.environ, "KUSTOMIZE_PLUGIN_HOME": "/nonexistent"})
        except FileNotFoundError:
            raise RenderError(f"{what}: {argv[0]} not found") from None
        except subprocess.TimeoutExpired:
            raise RenderError(f"{what} took longer than {timeout:g}s") from None
        if proc.returncode != 0:
            # the tools' errors name files and fields, never decrypted values
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()][-5:]
            raise RenderError(f"{what} failed: {' '.join(lines) or f'exit {proc.returncode}'}")
        return proc.stdout

    def _kustomize(self, tree: SourceTree) -> str:
        if not self.settings.kustomize.allow_remote_bases:
            remote = self._remote_bases(tree.root, tree.checkout)
            if remote:
                raise RenderError(f"kustomization references remote bases ({', '.join(remote[:3])}); "
                                  "set kustomize.allow_remote_bases: true to allow them")
        with self._workdir(tree) as root:
            return self._run([self.settings.kustomize.kubectl_binary, "kustomize", str(root)], root,
                             self.settings.kustomize.timeout_seconds, "kubectl kustomize")

    def _remote_bases(self, root: Path, checkout: Path, seen: set[Path] | None = None) -> list[str]:
        seen = seen if seen is not None else set()
        root = root.resolve()
        if root in seen or not root.is_relative_to(checkout.resolve()):
            return []
        seen.add(root)
        found: list[str] = []
        for entry in self.kustomize_references(root):
            if REMOTE.search(entry):
                found.append(entry)
            elif (root / entry).is_dir():
                found.extend(self._remote_bases(root / entry, checkout, seen))
        return found

    @staticmethod
    def kustomize_references(root: Path) -> list[str]:
        """``resources``, ``bases`` and ``components`` entries of the kustomization in ``root``."""
        for name in KUSTOMIZATION_FILES:
            path = root / name
            if path.is_file():
                try:
                    doc = yamlsafe.load(path.read_text()) or {}
                except (yaml.YAMLError, OSError):
                    return []
                if not isinstance(doc, dict):
                    return []
                return [str(e) for key in ("resources", "bases", "components") for e in (doc.get(key) or [])
                        if isinstance(e, str)]
        return []

    def helm_dependencies(self, tree: SourceTree) -> list[str]:
        """Values files outside the chart's folder (``../values/prod.yaml``), relative to the checkout."""
        checkout, root = tree.checkout.resolve(), tree.root.resolve()
        found = set()
        for values in self.settings.helm.values_files:
            path = (root / values).resolve()
            if path.is_relative_to(checkout) and not path.is_relative_to(root):
                found.add(str(path.relative_to(checkout)))
        return sorted(found)

    def _helm(self, tree: SourceTree) -> str:
        helm = self.settings.helm
        if not helm.binary:
            raise RenderError("the target's path holds a Helm chart (Chart.yaml) but no helm binary is configured; "
                              "set kubernetes.helm.binary, or render: plain")
        binary = str(self.resolve(helm.binary)) if "/" in helm.binary else helm.binary
        if shutil.which(binary) is None:
            raise RenderError(f"helm binary {helm.binary!r} not found")
        values = [self._values_file(tree, name) for name in helm.values_files]
        kube_version, api_versions = self.capabilities() if self.capabilities else ("", [])
        with self._workdir(tree) as root:
            argv = [binary, "template", helm.release_name or self.target, str(root),
                    "--namespace", self.settings.namespace, "--include-crds"]
            # the cluster's version and API versions, so kubeVersion constraints and .Capabilities see
            # the real cluster rather than helm's built-in defaults
            if helm.kube_version or kube_version:
                argv += ["--kube-version", helm.kube_version or kube_version]
            for chunk in _chunks(sorted({*api_versions, *helm.api_versions})):
                argv += ["--api-versions", ",".join(chunk)]
            for relpath in values:
                argv += ["--values", str((root / relpath).resolve())]
            return self._run(argv, root, helm.timeout_seconds, "helm template")

    def _values_file(self, tree: SourceTree, name: str) -> str:
        """A values file from Git, checked: inside the checkout, present, and (when outside the
        target's path, where the core does not decrypt) not SOPS-encrypted."""
        checkout, root = tree.checkout.resolve(), tree.root.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(checkout):
            raise RenderError(f"helm values file {name!r} is outside the repository")
        if not path.is_file():
            raise RenderError(f"helm values file {name!r} does not exist at this revision")
        if not path.is_relative_to(root):
            try:
                doc = yamlsafe.load(path.read_text(), name)
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("sops"), dict) and "mac" in doc["sops"]:
                raise RenderError(f"helm values file {name!r} is SOPS-encrypted but outside the target's path, where "
                                  "setpoint does not decrypt; move it into the chart's folder")
        return os.path.relpath(path, root)

    @staticmethod
    def _helm_objects(output: str) -> list[dict[str, Any]]:
        """Parse ``helm template`` output document by document, each named by its template
        (``# Source: chart/templates/x.yaml``) for error messages."""
        objects: list[dict[str, Any]] = []
        for chunk in re.split(r"^---[ \t]*$", output, flags=re.MULTILINE):
            source = re.search(r"^# Source: (.+)$", chunk, flags=re.MULTILINE)
            origin = source.group(1).strip() if source else "helm template output"
            for obj in _flatten(_documents(chunk, origin), origin):
                objects.append({**obj, "__origin": origin})
        return objects

    # ------------------------------------------------------------------ common

    def _finish(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        crd_scopes = {}
        for obj in objects:
            if obj.get("kind") == "CustomResourceDefinition":
                spec = obj.get("spec") or {}
                crd_scopes[(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))] = spec.get("scope")
        out: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        for obj in objects:
            origin = obj.pop("__origin", "render output")
            api_version, kind = reveal_all(obj.get("apiVersion")), reveal_all(obj.get("kind"))
            meta = obj.get("metadata")
            if not isinstance(api_version, str) or not isinstance(kind, str) or not isinstance(meta, dict):
                raise RenderError(f"{origin}: every object needs apiVersion, kind and metadata")
            meta = dict(reveal_all(meta))  # names, labels and annotations are never secret
            if not meta.get("name"):
                if meta.get("generateName"):
                    raise RenderError(
                        f"{origin}: {kind} with generateName {meta['generateName']!r}: setpoint manages objects by "
                        "name, and a generated name is new on every apply; give it a fixed metadata.name")
                raise RenderError(f"{origin}: {kind} without metadata.name")
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            namespaced = self._namespaced(group, kind, crd_scopes)
            if namespaced:
                meta["namespace"] = meta.get("namespace") or self.settings.namespace
            else:
                meta.pop("namespace", None)
            meta["labels"] = {**(meta.get("labels") or {}), TARGET_LABEL: label_value(self.target)}
            if self.instance:
                meta["labels"][INSTANCE_LABEL] = self.instance
            obj = {**obj, "apiVersion": api_version, "kind": kind, "metadata": meta}
            key = Ref.of(obj).key
            if key in seen:
                raise RenderError(f"{key} is defined twice ({seen[key]} and {origin})")
            seen[key] = origin
            out.append(obj)
        return out

    def _namespaced(self, group: str, kind: str, crd_scopes: dict[tuple[str, str], Any]) -> bool:
        if (group, kind) in CLUSTER_SCOPED:
            return False
        if (group, kind) in crd_scopes:
            return crd_scopes[(group, kind)] != "Cluster"
        if group in ("", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "discovery.k8s.io",
                     "coordination.k8s.io", "events.k8s.io") or group == "rbac.authorization.k8s.io":
            return True
        answer = self.is_namespaced(group, kind)
        if answer is None:
            raise RenderError(f"the cluster serves no kind {kind} in group {group or 'core'} and no CRD in this "
                              "target defines it")
        return answer


def _chunks(items: list[str], size: int = 200) -> list[list[str]]:
    """Comma-joined flag values stay far below the kernel's limit for one argument (128 KiB)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def is_secret_value_tree(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def wrap_secret_data(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret's values are secrets even when the manifest was not encrypted."""
    if not is_secret_value_tree(obj):
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        values = obj.get(field)
        if isinstance(values, dict):
            out[field] = {k: v if isinstance(v, Secret) else Secret(v, origin=f"Secret.{field}.{k}")
                          for k, v in values.items()}
    return out
