"""Render: the target's Compose project, materialised with decrypted files, normalised by Compose itself.

``docker compose config`` does the interpolation, merging of override and env files, defaults and
validation; a project it rejects fails the render, so nothing is applied. The normalised model is
rewritten to live in the target's stable project directory (the private copy is removed after the
render, but containers keep bind-mounting their files), labelled with setpoint's content
fingerprint, and hashed by Compose (see hashing.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.api import Desired, Resource, SourceTree, private_directory
from setpoint.errors import RenderError
from setpoint.secrets import Secret, iter_secrets, reveal_all
from setpoint_docker_compose.compose import ComposeCli
from setpoint_docker_compose.diagnose import compose_files, explain
from setpoint_docker_compose.hashing import (
    BUILD_LABEL,
    CONTENT_LABEL,
    TARGET_LABEL,
    content_key,
    fingerprint,
    parse_hashes,
)
from setpoint_docker_compose.settings import ComposeSettings


@dataclass
class Project:
    """Everything apply needs besides the resources, kept in ``Desired.extra['compose']``."""

    #: The normalised model; values from encrypted files are Secret leaves (reveal_all before use).
    model: dict[str, Any]
    #: Files of the target's folder to mirror into the stable tree (encrypted ones only when mounted).
    files: dict[str, bytes | Secret[bytes]]
    #: Per service: paths (relative to the stable tree) whose content the fingerprint covers.
    content_paths: dict[str, list[str]] = field(default_factory=dict)
    compose_version: str = ""
    #: Files Git marks executable (mode 100755): mirrored 0755, so healthcheck and seed scripts run.
    executable: frozenset[str] = frozenset()
    #: Symlinks of the folder (path -> relative link text), each checked to stay inside the folder.
    links: dict[str, str] = field(default_factory=dict)


def service_key(name: str) -> str:
    return f"service/{name}"


def replicas_of(service: dict[str, Any]) -> int:
    if service.get("scale") is not None:
        return int(service["scale"])
    replicas = (service.get("deploy") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def render_project(tree: SourceTree, settings: ComposeSettings, cli: ComposeCli, state_dir: Path,
                   stable_root: Path, model_root: Path | None = None) -> Desired:
    """``stable_root``: the tree this driver writes; ``model_root``: the path bind mounts name in the
    model (the same, except for a preview's driver working in a copy: the real target's tree)."""
    model_root = model_root or stable_root
    version = cli.version()
    stable_project = stable_root / settings.project_directory
    stable_project.mkdir(parents=True, exist_ok=True)
    links = project_links(tree.root)
    with tree.materialize() as root:
        project_dir = (root / settings.project_directory).resolve()
        if not project_dir.is_dir():
            raise RenderError(f"project_directory {settings.project_directory!r} does not exist in the target's folder")
        files = [project_dir / f for f in settings.files]
        for relpath, path in zip(settings.files, files, strict=True):
            if not path.is_file():
                raise RenderError(f"compose file {relpath!r} does not exist")
        args = cli.project_args(project_dir, files)
        for env_file in settings.env_files:
            args += ["--env-file", str(project_dir / env_file)]
        try:
            output = cli.run([*args, "config", "--format", "json"], cwd=project_dir, stage="render")
        except RenderError as exc:
            raise RenderError(_explained(str(exc), tree, root, project_dir, files)) from None
        try:
            model = json.loads(output)
        except json.JSONDecodeError as exc:
            raise RenderError(f"docker compose config printed no JSON model ({exc.msg})") from None
        model = _relocate(model, [str(root), str(root.resolve())], str(model_root))
        key = content_key(state_dir)
        content_paths = {name: _content_paths(model, svc, model_root) for name, svc in model.get("services", {}).items()}
        for name, svc in model.get("services", {}).items():
            labels = dict(svc.get("labels") or {})
            labels[TARGET_LABEL] = cli.project
            if content_paths[name]:
                labels[CONTENT_LABEL] = fingerprint(key, root, content_paths[name])
            build_files = _build_files(tree, svc, model_root)
            if build_files is not None:
                labels[BUILD_LABEL] = fingerprint(key, root, build_files)
            svc["labels"] = labels
        mounted = {p for paths in content_paths.values() for p in paths}
        kept = _tree_files(tree, root, mounted, links)
    model = _wrap_secrets(model, tree)
    hashes = _hash(cli, model, stable_project)
    resources = [*_services(model, hashes, cli.project), *_networks(model), *_volumes(model)]
    # decrypted files stay 0600 (as materialize() writes them, so their fingerprints agree)
    executable = frozenset(p for p in kept if not tree.is_encrypted(p) and (tree.root / p).stat().st_mode & 0o100)
    project = Project(model, kept, {k: v for k, v in content_paths.items() if v}, str(version), executable, links)
    return Desired.of(resources, compose=project)


def _explained(message: str, tree: SourceTree, root: Path, project_dir: Path, files: list[Path]) -> str:
    """Compose's message with repository paths and the real line (diagnose.py)."""
    folder = tree.root.relative_to(tree.checkout).as_posix()
    prefix = "" if folder == "." else folder + "/"
    readable = []
    for path in compose_files(project_dir, files):
        relpath = path.relative_to(root).as_posix() if path.is_relative_to(root) else None
        if relpath is not None and relpath in tree.files() and not tree.is_encrypted(relpath):
            readable.append((prefix + relpath, tree.read_text(relpath)))
    return explain(message, readable, [str(root), str(root.resolve())], folder if folder != "." else ".")


# --------------------------------------------------------------------------- model rewriting


def _relocate(value: Any, old_prefixes: list[str], new: str) -> Any:
    """Point absolute paths into the private copy at the stable tree instead."""
    if isinstance(value, dict):
        return {k: _relocate(v, old_prefixes, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocate(v, old_prefixes, new) for v in value]
    if isinstance(value, str):
        for old in old_prefixes:
            if value == old or value.startswith(old + "/"):
                return new + value[len(old):]
    return value


def _content_paths(model: dict[str, Any], service: dict[str, Any], stable_root: Path) -> list[str]:
    """Repository files a service reads at run time and Compose does not hash: bind mounts and
    configs/secrets files (env files are merged into ``environment``, which is hashed)."""
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("type") == "bind" and volume.get("source"):
            sources.append(volume["source"])
    for section in ("configs", "secrets"):
        declared = model.get(section) or {}
        for ref in service.get(section) or []:
            name = ref.get("source") if isinstance(ref, dict) else ref
            spec = declared.get(name) or {}
            if spec.get("file"):
                sources.append(spec["file"])
    root = str(stable_root)
    return sorted({s[len(root) + 1:] for s in sources if s.startswith(root + "/")})


def _build_files(tree: SourceTree, service: dict[str, Any], stable_root: Path) -> list[str] | None:
    """The Git files of a service's build context and its Dockerfile (None: no ``build``). Compose
    does not hash them, and ``up`` reuses an image it already has, so without this a commit that
    only changes the Dockerfile would never be deployed. Encrypted files are left out: a build
    context is sent to the daemon and may end up in an image, so setpoint never decrypts into it."""
    build = service.get("build")
    if not isinstance(build, dict):
        return None
    root = str(stable_root)
    prefixes = []
    for path in (build.get("context"), build.get("dockerfile")):
        if isinstance(path, str) and (path == root or path.startswith(root + "/")):
            prefixes.append(path[len(root) + 1:])
    if not prefixes:
        return []  # a context outside the repository (a URL, another folder): nothing of ours to watch
    return sorted(f for f in tree.files() if not tree.is_encrypted(f)
                  and any(p == "" or f == p or f.startswith(p + "/") for p in prefixes))


def project_links(folder: Path) -> dict[str, str]:
    """The folder's symlinks (relative path -> link text). A link must stay inside the target's folder:
    the project is mirrored on its own onto the Docker host, where a link to ``../other`` or to an
    absolute path would reach whatever happens to be there (or a file of another target)."""
    links: dict[str, str] = {}
    base = os.path.realpath(folder)
    for directory, dirnames, filenames in os.walk(folder):  # does not descend into linked directories
        for name in [*dirnames, *filenames]:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                continue
            relpath = os.path.relpath(path, folder)
            text = os.readlink(path)
            # judged on the link text, in the folder as it will be on the host (every link is checked)
            lands = os.path.normpath(os.path.join(base, os.path.dirname(relpath), text))
            if os.path.isabs(text) or not (lands == base or lands.startswith(base + os.sep)):
                raise RenderError(f"{relpath} is a symlink to {text!r}, which leaves the target's folder; "
                                  "setpoint only mirrors links that stay inside it (copy the file into the folder)")
            links[relpath] = text
    return links


def _under_link(relpath: str, links: dict[str, str]) -> bool:
    parts = relpath.split("/")
    return any("/".join(parts[:i]) in links for i in range(1, len(parts) + 1))


def _tree_files(tree: SourceTree, root: Path, mounted: set[str],
                links: dict[str, str]) -> dict[str, bytes | Secret[bytes]]:
    """Plain files of the folder, plus encrypted files a container mounts (they must exist on the host).
    Symlinks (and files reached through a linked directory) are mirrored as links, not copied."""
    kept: dict[str, bytes | Secret[bytes]] = {}
    for relpath in tree.files():
        if _under_link(relpath, links):
            continue
        if tree.is_encrypted(relpath):
            if any(relpath == m or relpath.startswith(m + "/") for m in mounted):
                kept[relpath] = tree.decrypted[relpath].plaintext
        else:
            kept[relpath] = tree.read_bytes(relpath)
    return kept


def _wrap_secrets(model: dict[str, Any], tree: SourceTree) -> dict[str, Any]:
    """Wrap every value that came from an encrypted file, so plans, audit and status show fingerprints."""
    exact: set[str] = set()
    for decrypted in tree.decrypted.values():
        for document in decrypted.documents:
            for secret in iter_secrets(document):
                value = secret.reveal()
                if isinstance(value, str | int | float) and not isinstance(value, bool):
                    exact.add(str(value))
    if not exact:
        return model
    long_values = [v for v in exact if len(v) >= 4]

    def wrap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: wrap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [wrap(v) for v in value]
        if isinstance(value, str) and (value in exact or any(v in value for v in long_values)):
            return Secret(value, origin="compose model")
        return value

    return wrap(model)  # type: ignore[no-any-return]


def _hash(cli: ComposeCli, model: dict[str, Any], stable_project: Path) -> dict[str, str]:
    """Compose's hash of each service of the normalised model (the env_file workaround: hashing.py)."""
    if not model.get("services"):
        return {}
    with private_directory("setpoint-compose-") as scratch:
        path = scratch / "compose.json"
        path.write_text(json.dumps(reveal_all(model)))
        path.chmod(0o600)
        output = cli.run([*cli.project_args(stable_project, [path]), "config", "--hash", "*"], cwd=scratch,
                         stage="render")
    return parse_hashes(output)


# --------------------------------------------------------------------------- resources


def image_of(project: str, name: str, service: dict[str, Any]) -> str:
    """The image a service runs: its ``image:``, or for a ``build:`` service without one the name Compose
    v2 gives the image it builds, ``<project>-<service>`` (never an empty string: that is drift forever)."""
    return str(service.get("image") or f"{project}-{name}")


#: The label that declares a one-shot job nothing depends on (a migration run by hand, a backup).
ONE_SHOT_LABEL = "io.setpoint.one-shot"


def one_shot_jobs(model: dict[str, Any]) -> set[str]:
    """Services that run to completion: exited 0 is their goal, not drift to repair.

    A service is a job when another service waits for it with ``depends_on: {condition:
    service_completed_successfully}`` (Compose's own way to say "runs once", e.g. a seed or a
    migration) or when it carries the label ``io.setpoint.one-shot: "true"``; and when Docker is not
    told to restart it forever (``restart: always``/``unless-stopped`` make it long-running). Every
    other service is long-running: a ``docker stop`` that ends it with exit code 0 is drift."""
    services = model.get("services") or {}
    named: set[str] = set()
    for svc in services.values():
        depends = svc.get("depends_on") or {}
        if isinstance(depends, dict):
            named |= {dep for dep, spec in depends.items()
                      if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully"}
    for name, svc in services.items():
        if str((svc.get("labels") or {}).get(ONE_SHOT_LABEL, "")).lower() == "true":
            named.add(name)
    return {name for name in named if name in services
            and str(services[name].get("restart") or "no") not in ("always", "unless-stopped")}


def _services(model: dict[str, Any], hashes: dict[str, str], project: str) -> list[Resource]:
    resources = []
    jobs = one_shot_jobs(model)
    for name, svc in sorted((model.get("services") or {}).items()):
        replicas = replicas_of(svc)
        if name not in hashes:
            raise RenderError(f"docker compose config --hash printed no hash for service {name!r}")
        environment = {k: ("" if v is None else v) for k, v in (svc.get("environment") or {}).items()}
        body: dict[str, Any] = {
            "image": image_of(project, name, svc),
            "replicas": replicas,
            "state": "running" if replicas else "none",
            "config": hashes[name],
            "environment": environment,
        }
        content = (svc.get("labels") or {}).get(CONTENT_LABEL)
        if content:
            body["content"] = content
        meta = {"restart": svc.get("restart", "no"), "one_shot": name in jobs, "healthcheck": bool(svc.get("healthcheck"))
                and not (svc.get("healthcheck") or {}).get("disable")}
        resources.append(Resource(service_key(name), "Service", name, body, meta=meta))
    return resources


def network_body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec.get("name", ""),
        "driver": spec.get("driver") or "bridge",
        "internal": bool(spec.get("internal", False)),
        "attachable": bool(spec.get("attachable", False)),
        "labels": dict(spec.get("labels") or {}),
        "options": dict(spec.get("driver_opts") or {}),
    }


def volume_body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec.get("name", ""),
        "driver": spec.get("driver") or "local",
        "labels": dict(spec.get("labels") or {}),
        "options": dict(spec.get("driver_opts") or {}),
    }


def _networks(model: dict[str, Any]) -> list[Resource]:
    used = {n for svc in (model.get("services") or {}).values() for n in (svc.get("networks") or {})}
    return [Resource(f"network/{key}", "Network", key, network_body(spec))
            for key, spec in sorted((model.get("networks") or {}).items())
            if not spec.get("external") and key in used]


def _volumes(model: dict[str, Any]) -> list[Resource]:
    return [Resource(f"volume/{key}", "Volume", key, volume_body(spec))
            for key, spec in sorted((model.get("volumes") or {}).items()) if not spec.get("external")]
