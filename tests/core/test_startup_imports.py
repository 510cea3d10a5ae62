"""Issue 15 item 13: a command imports only what it uses. A `files` configuration does not import the
kubernetes, terraform or compose plugins; the decryptor plugin still loads (encrypted files are found by
content); JSON output never imports rich."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from setpoint.testing import GitRepo, write_config


def imported(config: Path, cache: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "setpoint.cli", "-c", str(config), *args],
                         capture_output=True, text=True, env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    modules = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    # a module and every package above it (site .pth files may import a top-level package early)
    return run, modules | {m.split(".")[0] for m in modules}


def test_a_files_config_imports_no_other_kind_plugin(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"etc/a.conf": "a\n"})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    cache = tmp_path / "cache"
    first, modules = imported(config, cache, "sync")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "setpoint_terraform" in modules, "the first run learns what each plugin provides"
    second, modules = imported(config, cache, "sync")
    assert second.returncode == 0
    for heavy in ("setpoint_terraform", "setpoint_kubernetes", "setpoint_docker_compose", "kubernetes"):
        assert heavy not in modules, heavy
    assert "setpoint_sops_secrets" in modules, "a decryptor plugin always loads"
    # a one-shot command serves no metrics and sends no notifications; its table is drawn without rich
    for idle in ("prometheus_client", "httpx", "rich", "setpoint.builtin.notify", "setpoint.builtin.metrics"):
        assert idle not in modules, idle
    history, modules = imported(config, cache, "history", "edge", "-o", "json")
    assert history.returncode == 0 and "rich" not in modules and "rich.console" not in modules
    assert not any(m.startswith(("starlette", "uvicorn", "prometheus_client", "httpx")) for m in modules)
    # a configuration that uses terraform loads it
    tf = write_config(tmp_path, git_repo.path, [{"name": "infra", "kind": "terraform", "path": "etc"}])
    _run, modules = imported(tf, cache, "diff", "infra")
    assert "setpoint_terraform" in modules
