"""Fixtures for the ansible target's tests: a project writer and an engine that loads the plugin
through its real entry point. Every test runs real ansible-playbook over SSH against the three
hosts of ``dev/services up ansible-hosts`` (tests/service_fixtures.py), in its own folder on them."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from setpoint.testing import GitRepo, make_engine, write_config

from service_fixtures import AnsibleHosts

PLAYBOOK = """\
- name: app servers
  hosts: all
  become: true
  gather_facts: false
  vars:
    base: "/srv/{{ test_id }}"
  tasks:
    - name: app directory
      ansible.builtin.file:
        path: "{{ base }}"
        state: directory
        mode: "0755"
    - name: app config
      ansible.builtin.template:
        src: app.conf.j2
        dest: "{{ base }}/app.conf"
        mode: "0644"
      notify: reload app
    - name: package file
      ansible.builtin.copy:
        src: "files/{{ pkg }}.deb"
        dest: "{{ base }}/{{ pkg }}.deb"
        mode: "0644"
    - name: app package
      ansible.builtin.apt:
        deb: "{{ base }}/{{ pkg }}.deb"
  handlers:
    - name: reload app
      ansible.builtin.shell: "echo pool_size={{ pool_size }} > {{ base }}/reloaded"
"""

TEMPLATE = "# managed by setpoint\npool_size={{ pool_size }}\n"


def make_deb(tmp: Path, name: str, version: str = "1.0") -> bytes:
    """A tiny Debian package (one script in /usr/local/bin) built with dpkg-deb: the hosts cannot
    reach a mirror, and a local .deb is how many teams ship their own tools anyway."""
    out = tmp / f"{name}_{version}_all.deb"
    if out.exists():
        return out.read_bytes()
    root = tmp / f"deb-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
                                         "Maintainer: setpoint tests <tests@example.com>\n"
                                         "Description: setpoint ansible test package\n")
    tool = root / "usr/local/bin" / name
    tool.write_text(f"#!/bin/sh\necho {name} {version}\n")
    tool.chmod(0o755)
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)], check=True,
                   capture_output=True, timeout=60)
    return out.read_bytes()


@dataclass
class AnsibleSetup:
    tmp: Path
    repo: GitRepo
    hosts: AnsibleHosts
    test_id: str
    pkg: str
    path: str = "hosts/web"

    def settings(self, **extra: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "hosts": self.hosts.inventory(),
            "private_key_file": str(self.hosts.private_key),
            "known_hosts_file": str(self.hosts.known_hosts),
            "user": self.hosts.user,
            "extra_vars": {"test_id": self.test_id, "pkg": self.pkg},
            "vars_files": ["vars/app.yml"],
            "forks": 3,
            # the shared 2-core test machine can take longer than 30 s to answer a sudo prompt
            "connect_timeout": "90s",
        }
        base.update(extra)
        return base

    def config(self, settings: dict[str, Any] | None = None, top: dict[str, Any] | None = None, **target: Any) -> Path:
        spec = {"name": "web", "kind": "ansible", "path": self.path, "interval": "30s",
                "ansible": settings if settings is not None else self.settings(), **target}
        return write_config(self.tmp, self.repo.path, [spec], **(top or {}))

    def engine(self, settings: dict[str, Any] | None = None, top: dict[str, Any] | None = None, **target: Any) -> Any:
        return make_engine(self.config(settings, top, **target), load_entrypoints=True)

    def project(self, pool_size: int = 5, playbook: str = PLAYBOOK) -> dict[str, str | bytes]:
        return {f"{self.path}/site.yml": playbook,
                f"{self.path}/app.conf.j2": TEMPLATE,
                f"{self.path}/vars/app.yml": f"pool_size: {pool_size}\n",
                f"{self.path}/files/{self.pkg}.deb": make_deb(self.tmp, self.pkg)}

    def read(self, index: int, name: str) -> str | None:
        proc = self.hosts.exec(index, "cat", f"/srv/{self.test_id}/{name}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def installed(self, index: int) -> bool:
        proc = self.hosts.exec(index, "dpkg-query", "-W", "-f=${Status}", self.pkg, check=False)
        return proc.returncode == 0 and "install ok installed" in proc.stdout


@pytest.fixture
def ans(tmp_path: Path, git_repo: GitRepo, ansible_hosts: AnsibleHosts) -> Iterator[AnsibleSetup]:
    test_id = "sp-" + uuid.uuid4().hex[:10]
    setup = AnsibleSetup(tmp_path, git_repo, ansible_hosts, test_id, f"sp-tool-{test_id[3:]}")
    yield setup
    for index in range(len(ansible_hosts.containers)):
        ansible_hosts.exec(index, "sh", "-c", f"rm -rf /srv/{test_id}; dpkg --purge {setup.pkg} >/dev/null 2>&1; true",
                           check=False)
