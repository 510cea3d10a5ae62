"""Cost of a no-op reconcile: setpoint's ansible target vs a bare ``ansible-playbook --check`` of the
same 20-task playbook on the same three hosts (issue 23's speed goal: at most 1.1x).

Run: eval "$(dev/services env)"; .venv/bin/python tests/plugins/ansible/bench_ansible_noop.py [ROUNDS]
Rounds alternate between the two sides, so a busy machine slows both alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from setpoint.testing import GitRepo, make_engine, write_config


def playbook(test_id: str) -> str:
    tasks = [{"name": "base directory", "ansible.builtin.file": {"path": f"/srv/{test_id}", "state": "directory",
                                                                  "mode": "0755"}}]
    for n in range(1, 20):
        if n % 2:
            tasks.append({"name": f"file {n}", "ansible.builtin.copy": {"dest": f"/srv/{test_id}/file-{n}.conf",
                                                                        "content": f"setting_{n} = {n}\n", "mode": "0644"}})
        else:
            tasks.append({"name": f"line {n}", "ansible.builtin.lineinfile": {
                "path": f"/srv/{test_id}/lines.conf", "regexp": f"^key_{n} =", "line": f"key_{n} = {n}",
                "create": True, "mode": "0644"}})
    return yaml.safe_dump([{"name": "bench", "hosts": "all", "become": True, "gather_facts": False, "tasks": tasks}],
                          sort_keys=False)


def main(rounds: int) -> None:
    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in os.environ["SETPOINT_ANSIBLE_HOSTS"].split(",")]
    key, known = os.environ["SETPOINT_ANSIBLE_SSH_KEY"], os.environ["SETPOINT_ANSIBLE_KNOWN_HOSTS"]
    user = os.environ.get("SETPOINT_ANSIBLE_USER", "setpoint")
    inventory = {f"web{i + 1}": {"ansible_host": a, "ansible_port": p} for i, (a, p) in enumerate(hosts)}
    test_id = "bench-" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo = GitRepo(tmp / "repo")
        repo.commit({"hosts/web/site.yml": playbook(test_id)}, "bench playbook")
        settings = {"hosts": inventory, "private_key_file": key, "known_hosts_file": known, "user": user, "forks": 3}
        config = write_config(tmp, repo.path, [{"name": "web", "kind": "ansible", "path": "hosts/web",
                                                "ansible": settings}])
        engine = make_engine(config, load_entrypoints=True)
        first = engine.reconcile("web")
        assert first.error is None, first.error
        bare_dir = tmp / "bare"
        bare_dir.mkdir()
        (bare_dir / "site.yml").write_text(playbook(test_id))
        (bare_dir / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": inventory}}))
        env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_RETRY_FILES_ENABLED": "False",
               "ANSIBLE_SSH_COMMON_ARGS": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
               "ANSIBLE_PYTHON_INTERPRETER": "auto_silent"}
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "site.yml", "--check",
                   "--private-key", key, "--user", user, "--forks", "3"]
        setpoint_times, bare_times = [], []
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                out = engine.reconcile("web")
                setpoint_times.append(time.perf_counter() - started)
                assert not out.actions and out.error is None, out
                started = time.perf_counter()
                proc = subprocess.run(command, cwd=bare_dir, env=env, capture_output=True, text=True)
                bare_times.append(time.perf_counter() - started)
                assert proc.returncode == 0 and "changed=0" in proc.stdout, proc.stdout + proc.stderr
        finally:
            engine.close()
            for container in os.environ["SETPOINT_ANSIBLE_CONTAINERS"].split(","):
                subprocess.run(["docker", "exec", container, "rm", "-rf", f"/srv/{test_id}"], capture_output=True)
    s, b = statistics.median(setpoint_times), statistics.median(bare_times)
    print(f"no-op reconcile of 20 tasks on 3 hosts, median of {rounds}: setpoint {s:.2f}s "
          f"(min {min(setpoint_times):.2f}s), bare ansible-playbook --check {b:.2f}s (min {min(bare_times):.2f}s), "
          f"ratio {s / b:.2f}x; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
