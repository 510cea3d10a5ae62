"""Ansible no-op (issue 23): a no-op reconcile of a 20-task playbook on the three SSH hosts of
``dev/services up ansible-hosts`` versus a bare ``ansible-playbook --check`` of the same playbook on
the same hosts, with the same key, user, forks and host-key checking.

A no-op reconcile of an ``ansible`` target is one ``ansible-playbook --check --diff`` through
ansible-runner, read back per host and task, plus the state store; Git is polled separately (the
daemon path), as in the other no-op cases. Both sides keep ssh's ControlPersist connections between
runs (setpoint in its driver's private directory, the bare run in ~/.ansible/cp), so neither pays
for new SSH handshakes that the other does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from setpoint.testing import GitRepo
from setpoint_bench import services
from setpoint_bench.engines import check, engine
from setpoint_bench.harness import Ctx, Row, compare

CASE = "Ansible"
#: issue 23: "a no-op reconcile ... costs no more than 1.1x ansible-playbook --check"
MAX_RATIO = 1.1


def playbook(folder: str, tasks: int) -> str:
    """``tasks`` tasks as people write them: a directory, then alternately a copied file and a line
    in a shared file (copy and lineinfile are the commonest modules of such playbooks)."""
    body: list[dict[str, Any]] = [{"name": "base directory", "ansible.builtin.file": {
        "path": f"/srv/{folder}", "state": "directory", "mode": "0755"}}]
    for n in range(1, tasks):
        if n % 2:
            body.append({"name": f"file {n}", "ansible.builtin.copy": {
                "dest": f"/srv/{folder}/file-{n}.conf", "content": f"setting_{n} = {n}\n", "mode": "0644"}})
        else:
            body.append({"name": f"line {n}", "ansible.builtin.lineinfile": {
                "path": f"/srv/{folder}/lines.conf", "regexp": f"^key_{n} =", "line": f"key_{n} = {n}",
                "create": True, "mode": "0644"}})
    return yaml.safe_dump([{"name": "bench", "hosts": "all", "become": True, "gather_facts": False, "tasks": body}],
                          sort_keys=False)


def inventory() -> dict[str, dict[str, Any]]:
    hosts = os.environ["SETPOINT_ANSIBLE_HOSTS"].split(",")
    return {f"web{i + 1}": {"ansible_host": h.rsplit(":", 1)[0], "ansible_port": int(h.rsplit(":", 1)[1])}
            for i, h in enumerate(hosts)}


def run(ctx: Ctx) -> list[Row]:
    services.require("ansible-hosts")
    # smoke: a few tasks and no warm-up (each ansible run takes seconds; CI only checks the harness)
    tasks = 3 if ctx.smoke else 20
    hosts = inventory()
    key, known = os.environ["SETPOINT_ANSIBLE_SSH_KEY"], os.environ["SETPOINT_ANSIBLE_KNOWN_HOSTS"]
    user = os.environ.get("SETPOINT_ANSIBLE_USER", "setpoint")
    folder = "bench-" + uuid.uuid4().hex[:8]
    base = ctx.scratch("ansible")
    repo = GitRepo(base / "repo")
    repo.commit({"hosts/web/site.yml": playbook(folder, tasks)}, f"{tasks}-task playbook")
    settings = {"hosts": hosts, "private_key_file": key, "known_hosts_file": known, "user": user, "forks": 3}
    bare = base / "bare"
    bare.mkdir()
    (bare / "site.yml").write_text(playbook(folder, tasks))
    (bare / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    # what setpoint sets for its own runs (setpoint_ansible.runner.build_env), so both check host keys alike
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_RETRY_FILES_ENABLED": "False",
           "ANSIBLE_SSH_COMMON_ARGS": f"-o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null "
                                      "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes",
           "ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "ANSIBLE_NOCOLOR": "1"}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "site.yml", "--check",
               "--private-key", key, "--user", user, "--forks", "3"]
    eng = None
    try:
        eng = engine(base, repo.path, [{"name": "web", "kind": "ansible", "path": "hosts/web", "interval": "1h",
                                        "ansible": settings}])
        check(eng.reconcile("web", trigger="bench"))   # the first, real run creates the files

        def noop() -> None:
            outcome = check(eng.reconcile("web", trigger="bench", poll=False))
            if outcome.actions or outcome.drift:
                raise RuntimeError(f"no-op reconcile acted or saw drift: {outcome.actions[:3]} {outcome.drift[:3]}")

        def bare_check() -> None:
            proc = subprocess.run(command, cwd=bare, env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0 or "changed=0" not in proc.stdout or "unreachable=0" not in proc.stdout:
                raise RuntimeError(f"ansible-playbook --check: exit {proc.returncode}: {proc.stdout[-600:]}"
                                   f"{proc.stderr[-400:]}")

        ours, theirs = compare(noop, bare_check, ctx.reps, 0 if ctx.smoke else ctx.warmup)
    finally:
        if eng is not None:
            eng.close()
        for container in os.environ.get("SETPOINT_ANSIBLE_CONTAINERS", "").split(","):
            if container:
                subprocess.run(["docker", "exec", container, "rm", "-rf", f"/srv/{folder}"], capture_output=True,
                               timeout=60)
    assert theirs is not None
    # a cost ratio (setpoint / anchor; at most 1.1), unlike the speed-up rows of the other cases
    ratio = ours.median / theirs.median
    return [Row(CASE, f"no-op reconcile, {tasks} tasks on {len(hosts)} hosts", setpoint=ours,
               anchor_name="ansible-playbook --check (same playbook, hosts, forks 3)", anchor=theirs, ratio=ratio,
               ratio_label="setpoint / anchor", target=f"≤ {MAX_RATIO}x ansible-playbook --check",
               met=ratio <= MAX_RATIO,
               note="one --check --diff through ansible-runner + state store; Git polled separately")]
