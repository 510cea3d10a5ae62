"""One ``ansible-playbook`` run through ansible-runner, read back as per-host, per-task results.

Everything ansible-runner writes (extra vars, the generated inventory, artifacts with module diffs)
goes to a private 0700 directory on tmpfs that is removed when the run ends: diffs may hold values
from decrypted vars files.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from setpoint.api import private_directory
from setpoint.errors import PermanentError, TemporaryError
from setpoint.secrets import scrub
from setpoint_ansible.settings import BASE_ENV, AnsibleSettings

#: Task results ansible-runner reports per host.
_RESULT_EVENTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_skipped": "skipped",
                  "runner_on_unreachable": "unreachable"}
_CENSORED = "censored"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class TaskResult:
    """One task on one host. ``key`` is ``HOST: [ROLE : ]TASK`` (``#2`` for a repeated name)."""

    host: str
    task: str
    key: str
    action: str
    status: str  # ok, changed, skipped, failed, unreachable
    diffs: list[Any] = field(default_factory=list)
    message: str = ""
    no_log: bool = False
    handler: bool = False
    check_mode_skip: bool = False
    ignored: bool = False


@dataclass
class HostOutcome:
    """How the run ended on one host: ok, failed (a task failed) or unreachable."""

    status: str
    message: str = ""


@dataclass
class RunResult:
    rc: int
    tasks: list[TaskResult]
    hosts: dict[str, HostOutcome]
    output_tail: str = ""

    def by_key(self) -> dict[str, TaskResult]:
        return {t.key: t for t in self.tasks}


@dataclass(frozen=True)
class Project:
    """What one run needs: the project directory (a private copy of the target's folder with
    decrypted files in clear), the playbook and inventory in it, and the extra-vars documents."""

    directory: Path
    playbook: str
    inventory: str | None
    hosts: Mapping[str, Mapping[str, Any]] | None
    extra_vars: list[Mapping[str, Any]]


def build_env(settings: AnsibleSettings, control_dir: Path, known_hosts: Path | None) -> dict[str, str]:
    """The environment of ansible-playbook: a small base, the allowed variables, and ansible settings
    that make runs non-interactive, strict about host keys and quiet about retry files."""
    env = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
    for name, value in os.environ.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.env):
            env[name] = value
    # ansible-playbook lives beside the Python running setpoint (same virtualenv).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    ssh_args = ["-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    if known_hosts is not None:
        ssh_args += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
    env.update({
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_COMMON_ARGS": shlex.join(ssh_args),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_TIMEOUT": str(int(settings.connect_timeout)),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PYTHON_INTERPRETER": os.environ.get("ANSIBLE_PYTHON_INTERPRETER", "auto_silent"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
    })
    return env


def run_playbook(project: Project, settings: AnsibleSettings, env: Mapping[str, str], *, check: bool,
                 private_key: Path | None, limit: Iterable[str] | None = None) -> RunResult:
    """Run the playbook (``--check --diff`` when ``check``) and collect its events."""
    import ansible_runner  # imported late: it is heavy and only needed when a target runs

    with private_directory("setpoint-ansible-run-") as private:
        (private / "env").mkdir(mode=0o700)
        inventory = project.inventory
        if project.hosts is not None:
            generated = private / "inventory.yml"
            _write_private(generated, yaml.safe_dump({"all": {"hosts": {k: dict(v) for k, v in project.hosts.items()}}}))
            inventory = str(generated)
        else:
            assert inventory is not None
            inventory = str(project.directory / inventory)
        args = ["--diff"]
        if check:
            args.append("--check")
        for index, document in enumerate(project.extra_vars):
            path = private / f"extra-vars-{index}.json"
            _write_private(path, json.dumps(document))
            args += ["--extra-vars", f"@{path}"]
        if private_key is not None:
            args += ["--private-key", str(private_key)]
        if settings.user:
            args += ["--user", settings.user]
        if settings.become:
            args.append("--become")
            if settings.become_user:
                args += ["--become-user", settings.become_user]
        if settings.force_handlers:
            args.append("--force-handlers")
        for tag in settings.tags:
            args += ["--tags", tag]
        for tag in settings.skip_tags:
            args += ["--skip-tags", tag]
        if limit is not None:
            # the hosts of an earlier check run, which already honoured settings.limit
            hosts = sorted(set(limit))
            if not hosts:
                return RunResult(0, [], {})
            args += ["--limit", ",".join(hosts)]
        elif settings.limit:
            args += ["--limit", settings.limit]
        local_tmp = private / "tmp"
        local_tmp.mkdir(mode=0o700)
        run_env = {**env, "ANSIBLE_LOCAL_TEMP": str(local_tmp)}
        try:
            runner = ansible_runner.run(
                private_data_dir=str(private), project_dir=str(project.directory), playbook=project.playbook,
                inventory=inventory, cmdline=shlex.join(args), forks=settings.forks, envvars=run_env,
                quiet=True, timeout=int(settings.timeout), suppress_env_files=True, rotate_artifacts=1,
                settings={"suppress_ansible_output": True, "pexpect_timeout": 5})
        except Exception as exc:  # noqa: BLE001 - ansible-runner raises bare exceptions for setup problems
            raise PermanentError(f"ansible-runner could not start ansible-playbook: {scrub(str(exc))}") from None
        if runner.status == "timeout":
            raise TemporaryError(f"ansible-playbook did not finish within {settings.timeout:g}s")
        result = _collect(runner.events)
        result.rc = runner.rc if isinstance(runner.rc, int) else 1
        try:
            text = runner.stdout.read()
        except (OSError, AttributeError):
            text = ""
        result.output_tail = scrub("\n".join(text.strip().splitlines()[-15:]))
        return result


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _collect(events: Iterable[Mapping[str, Any]]) -> RunResult:
    tasks: list[TaskResult] = []
    hosts: dict[str, HostOutcome] = {}
    seen: dict[tuple[str, str], int] = {}
    notified: dict[str, set[str]] = {}
    seen_problems: dict[str, HostOutcome] = {}
    stats: Mapping[str, Any] | None = None
    for event in events:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_notify":
            notified.setdefault(str(data.get("host")), set()).add(str(data.get("handler")))
            continue
        if kind == "playbook_on_stats":
            stats = data
            continue
        status = _RESULT_EVENTS.get(str(kind))
        if status is None:
            continue
        host = str(data.get("host"))
        res = data.get("res") or {}
        task = str(data.get("task") or data.get("task_action") or "task")
        role = data.get("role")
        label = f"{role} : {task}" if role and not task.startswith(f"{role} : ") else task
        count = seen[(host, label)] = seen.get((host, label), 0) + 1
        key = f"{host}: {label}" + (f" #{count}" if count > 1 else "")
        no_log = _CENSORED in res or bool(res.get("_ansible_no_log"))
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "ok" and no_log and _ANSI.sub("", str(event.get("stdout") or "")).lstrip().startswith("changed:"):
            # ansible hides even `changed` of a no_log result; its display line still says it
            status = "changed"
        if kind == "runner_on_ok" and isinstance(res.get("results"), list) and any(
                isinstance(r, dict) and r.get("changed") for r in res["results"]):
            status = "changed"
        message = "" if no_log else _message(res)
        result = TaskResult(host, task, key, str(data.get("resolved_action") or data.get("task_action") or ""),
                            status, [] if no_log else _diffs(res), message, no_log,
                            handler=task in notified.get(host, set()),
                            check_mode_skip="check mode" in str(res.get("msg", "")).lower() and status == "skipped",
                            ignored=bool(data.get("ignore_errors")))
        tasks.append(result)
        if status == "unreachable":
            seen_problems.setdefault(host, HostOutcome("unreachable", message or "unreachable"))
        elif status == "failed" and not result.ignored:
            seen_problems.setdefault(host, HostOutcome("failed", f"task '{label}' failed: {message or 'no message'}"))
    if stats is None:  # the run ended early: what the events said
        return RunResult(0, tasks, {**{t.host: HostOutcome("ok") for t in tasks}, **seen_problems})
    # ansible's own summary decides: a failure inside a block that a rescue handled leaves the host ok
    for name in stats.get("processed") or {}:
        hosts[name] = HostOutcome("ok")
    for name in stats.get("failures") or {}:
        hosts[name] = seen_problems.get(name) or HostOutcome("failed", "a task failed")
    for name in stats.get("dark") or {}:
        problem = seen_problems.get(name)
        hosts[name] = problem if problem is not None and problem.status == "unreachable" else HostOutcome(
            "unreachable", "unreachable")
    return RunResult(0, tasks, hosts)


def _message(res: Mapping[str, Any]) -> str:
    parts = [str(res.get("msg") or "")]
    if res.get("stderr"):
        parts.append(str(res["stderr"]))
    if isinstance(res.get("results"), list):
        parts += [str(r.get("msg")) for r in res["results"] if isinstance(r, dict) and r.get("failed") and r.get("msg")]
    return scrub(" ".join(p for p in parts if p).strip())[:2000]


def _diffs(res: Mapping[str, Any]) -> list[Any]:
    found: list[Any] = []
    for item in [res, *(r for r in res.get("results") or [] if isinstance(r, dict))]:
        if _CENSORED in item or item.get("_ansible_no_log"):
            continue
        diff = item.get("diff")
        if isinstance(diff, dict):
            found.append(diff)
        elif isinstance(diff, list):
            found += [d for d in diff if isinstance(d, dict)]
    return found
