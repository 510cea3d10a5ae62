"""Smoke test of the ansible-hosts service: three real sshd hosts, key-only, host keys checked,
published on loopback only, with the python3 ansible needs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from service_fixtures import AnsibleHosts


def ssh(hosts: AnsibleHosts, index: int, known_hosts: Path, *command: str,
        extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    address, port = hosts.addresses[index]
    return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
                           "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                           "-o", "IdentitiesOnly=yes", *extra, "-p", str(port),
                           f"{hosts.user}@{address}", *command], capture_output=True, text=True, timeout=60)


def test_three_hosts_key_only_with_checked_host_keys(ansible_hosts: AnsibleHosts, tmp_path: Path) -> None:
    names = set()
    for index, (address, _) in enumerate(ansible_hosts.addresses):
        assert address == "127.0.0.1"
        ok = ssh(ansible_hosts, index, ansible_hosts.known_hosts, "sudo -n python3 -c 'import apt, sys; print(sys.version_info[0])'; hostname",
                 extra=("-i", str(ansible_hosts.private_key)))
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.splitlines()[0] == "3"
        names.add(ok.stdout.splitlines()[1])
        # no key: no password or keyboard-interactive fallback
        refused = ssh(ansible_hosts, index, ansible_hosts.known_hosts, "true",
                      extra=("-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"))
        assert refused.returncode != 0
        # an unknown host key is refused (strict checking)
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        unknown = ssh(ansible_hosts, index, empty, "true", extra=("-i", str(ansible_hosts.private_key)))
        assert unknown.returncode != 0 and "host key" in unknown.stderr.lower()
    assert len(names) == 3
    for container in ansible_hosts.containers:
        ports = subprocess.run(["docker", "port", container, "22/tcp"], capture_output=True, text=True, timeout=60).stdout
        assert ports.strip().startswith("127.0.0.1:"), ports
