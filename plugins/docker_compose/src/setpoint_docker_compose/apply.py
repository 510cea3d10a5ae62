"""Apply: mirror the repository files into the stable project tree, remove what the plan deletes,
start replicas that were only stopped or paused through the Docker API, then ``docker compose up
-d`` for exactly the services that still need it (``down`` on removal from Git).

``up`` runs on the normalised model (hashing.py explains why), written to a private 0700 directory
for the duration of the command only. It is never given ``--yes`` except for a plan holding a volume
recreation that a person approved: without it Compose declines the "data will be lost" prompt.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound

from setpoint.api import (
    Action,
    ApplyResult,
    Desired,
    Live,
    Plan,
    ResourceChange,
    TargetMemory,
    private_directory,
)
from setpoint.errors import SetpointError
from setpoint.secrets import Secret, reveal_all, safe_error
from setpoint_docker_compose.compose import ComposeCli
from setpoint_docker_compose.connection import UNREACHABLE
from setpoint_docker_compose.observe import PROJECT, SERVICE
from setpoint_docker_compose.render import Project
from setpoint_docker_compose.settings import ComposeSettings

#: Fields whose drift Compose cannot see through its own hash: the container must be recreated.
_HIDDEN_FROM_HASH = ("environment", "content", "image")
#: context.memory key: the files of the stable tree setpoint wrote (so it removes only those).
TREE_FILES_MEMORY = "stable-tree-files"


class Applier:
    def __init__(self, settings: ComposeSettings, cli: ComposeCli, client: Any, stable_root: Path,
                 memory: TargetMemory) -> None:
        self.settings = settings
        self.cli = cli
        self.client = client
        self.stable_root = stable_root
        #: Remembers (under TREE_FILES_MEMORY) which files of the stable tree setpoint wrote.
        self.memory = memory

    def apply(self, plan: Plan, desired: Desired, prune: bool, live_orphans: set[str],
              live: Live | None = None) -> ApplyResult:
        if desired.removed_from_git:
            return self._down(plan)
        project: Project = desired.extra["compose"]
        result = ApplyResult()
        self.sync_files(project.files, project.executable, project.links)
        for change in plan.changes:
            if change.action == Action.DELETE:
                try:
                    self._delete(change)
                    result.applied.append(change.key)
                except UNREACHABLE as exc:
                    result.failed[change.key] = safe_error(exc)
        ups = []
        for change in plan.changes:
            if change.action == Action.DELETE:
                continue
            if self._start_in_place(change, live):
                result.applied.append(change.key)
            else:
                ups.append(change)
        if not ups:
            return result
        services = sorted({c.name for c in ups if c.kind == "Service"})
        whole_project = any(c.kind != "Service" for c in ups)  # networks/volumes: let Compose reconnect everything
        force = sorted({c.name for c in ups if c.kind == "Service" and _needs_recreate(c)})
        approve_volumes = any(c.kind == "Volume" and c.action == Action.REPLACE for c in ups)
        deleted = {c.name for c in plan.changes if c.action == Action.DELETE and c.kind == "Service"}
        remove_orphans = prune and bool(live_orphans) and live_orphans <= deleted
        try:
            with private_directory("setpoint-compose-") as scratch:
                path = scratch / "compose.json"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    json.dump(reveal_all(project.model), handle)
                base = self.cli.project_args(self.stable_root / self.settings.project_directory, [path])
                built = {name for name, svc in (project.model.get("services") or {}).items() if svc.get("build")}
                if force:
                    self._up(base, force, scratch, force_recreate=True, yes=approve_volumes, remove_orphans=False,
                             build=bool(built.intersection(force)))
                rest = [] if whole_project else [s for s in services if s not in force]
                if whole_project or rest:
                    self._up(base, rest, scratch, force_recreate=False, yes=approve_volumes,
                             remove_orphans=remove_orphans, build=bool(built.intersection(rest or built)))
        except SetpointError as exc:
            for change in ups:
                result.failed[change.key] = safe_error(exc)
            return result
        result.applied.extend(c.key for c in ups)
        return result

    def _up(self, base: list[str], services: list[str], cwd: Path, *, force_recreate: bool, yes: bool,
            remove_orphans: bool, build: bool = False) -> None:
        args = [*base, "up", "--detach", "--no-color", "--quiet-pull"]
        if build:
            # the image of a `build:` service is rebuilt from the commit (the build cache keeps an
            # unchanged context cheap); without it Compose would reuse the image it already has
            args.append("--build")
        if yes:
            args.append("--yes")  # only for an approved volume recreation (see the module docstring)
        if force_recreate:
            args.append("--force-recreate")
        if remove_orphans:
            args.append("--remove-orphans")
        if self.settings.pull_policy:
            args += ["--pull", self.settings.pull_policy]
        if self.settings.wait:
            args += ["--wait", "--wait-timeout", str(int(self.settings.wait_timeout))]
        timeout = self.settings.command_timeout + (self.settings.wait_timeout if self.settings.wait else 0)
        self.cli.run([*args, *services], cwd=cwd, stage="apply", timeout=timeout)

    def _start_in_place(self, change: ResourceChange, live: Live | None) -> bool:
        """Start (or unpause) the very containers that were stopped, when nothing but their state
        drifted: what ``compose up`` would end with, without a Compose process loading the project
        (a repair in tens of milliseconds instead of a few hundred). Anything else, or any error
        here, is left to Compose."""
        if (change.kind != "Service" or change.action != Action.UPDATE or self.settings.wait
                or {f.path for f in change.fields} != {"state"} or live is None):
            return False
        have = live.resources.get(change.key)
        containers = list(have.meta.get("containers", [])) if have is not None else []
        if not containers or any(c.status not in ("running", "exited", "created", "paused") for c in containers):
            return False
        try:
            for container in containers:
                if container.status == "paused":
                    self.client.api.unpause(container.id)
                elif container.status != "running":
                    self.client.api.start(container.id)
        except (NotFound, APIError):
            return False  # removed meanwhile, or a network it needs is gone: Compose recreates what is missing
        return True

    def _delete(self, change: ResourceChange) -> None:
        project = self.cli.project
        if change.kind == "Service":
            for container in self.client.containers.list(all=True, ignore_removed=True, filters={"label": [
                    f"{PROJECT}={project}", f"{SERVICE}={change.name}"]}):
                try:
                    container.remove(force=True)
                except NotFound:  # removed meanwhile (by hand, or by Compose): the goal is reached
                    pass
        elif change.kind == "Network":
            for network in self.client.networks.list(filters={"label": [
                    f"{PROJECT}={project}", f"com.docker.compose.network={change.name}"]}):
                network.remove()
        elif change.kind == "Volume" and self.settings.remove_volumes:
            for volume in self.client.volumes.list(filters={"label": [
                    f"{PROJECT}={project}", f"com.docker.compose.volume={change.name}"]}):
                volume.remove()

    def _down(self, plan: Plan) -> ApplyResult:
        """The folder left Git and the removal was approved: ``down``, volumes only if configured."""
        # no --timeout: each container stops within its own stop_grace_period
        args = ["-p", self.cli.project, "down", "--remove-orphans"]
        if self.settings.remove_volumes:
            args.append("--volumes")
        with private_directory("setpoint-compose-") as empty:
            # an empty working directory: compose must not pick up some compose.yaml by accident
            self.cli.run(["--project-directory", str(empty), *args], cwd=empty, stage="apply")
        self.sync_files({})
        shutil.rmtree(self.stable_root, ignore_errors=True)
        return ApplyResult(applied=[c.key for c in plan.changes])

    # ------------------------------------------------------------------ the stable tree

    def sync_files(self, files: dict[str, bytes | Secret[bytes]], executable: frozenset[str] = frozenset(),
                   links: dict[str, str] | None = None) -> None:
        """Write changed files in place (a single-file bind mount keeps its inode) with Git's executable
        bit, recreate the folder's symlinks, and remove what setpoint wrote before that left Git; files
        a container created are never touched."""
        links = links or {}
        previous = set(self.memory.get(TREE_FILES_MEMORY) or [])
        for relpath in sorted(previous - set(files) - set(links), key=lambda p: -p.count("/")):
            path = self.stable_root / relpath
            if path.is_symlink() or path.is_file():
                path.unlink()
        for relpath, text in links.items():
            path = self.stable_root / relpath
            if path.is_symlink() and os.readlink(path) == text:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)  # a directory that became a link in Git
            path.symlink_to(text)
        for relpath, content in files.items():
            data = content.reveal() if isinstance(content, Secret) else content
            path = self.stable_root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            mode = 0o600 if isinstance(content, Secret) else 0o644
            if relpath in executable:
                mode |= (mode & 0o444) >> 2  # r -> x: 0644 -> 0755, 0600 -> 0700
            if path.is_symlink():
                path.unlink()  # a link that became a file in Git
            try:
                if path.is_file() and path.read_bytes() == data:
                    if path.stat().st_mode & 0o777 != mode:
                        path.chmod(mode)
                    continue
            except OSError:
                pass
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(path, mode)  # an existing file keeps its old mode through O_CREAT
        self.memory.set(TREE_FILES_MEMORY, sorted({*files, *links}))


def _needs_recreate(change: ResourceChange) -> bool:
    """A drift Compose's hash cannot see (a hand-made copy carrying the same labels, edited mounted files)."""
    paths = {f.path.split(".")[0] for f in change.fields}
    return change.action == Action.UPDATE and "config" not in paths and bool(paths & set(_HIDDEN_FROM_HASH))
