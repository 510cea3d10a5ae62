"""Plugin discovery through real entry points: isolation of broken plugins, block and allow lists,
strict mode, duplicate kinds, and the installed four plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from setpoint.errors import PluginLoadError
from setpoint.plugins import get_plugin_manager
from setpoint.testing import FakePlugin, GitRepo, write_config

from helpers import resources_yaml, web

NOTIFIER_KINDS = ["alertmanager", "bitbucket_status", "email", "forgejo_status", "gitea_status", "github_status",
                  "gitlab_status", "opsgenie", "pagerduty", "slack", "teams", "webhook"]

def install_plugin(site: Path, dist: str, entry: str, module: str, source: str) -> None:
    """Make a real installed distribution: a module and a .dist-info with an entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[setpoint]\n{entry} = {module}\n")


BROKEN = "raise ImportError('libfoo.so.1: cannot open shared object file')\n"
CHEESE = """
    from setpoint import hookimpl
    from setpoint.api import ApplyResult, Desired, Live, TargetDriver

    class Cheese(TargetDriver):
        kind = "cheese"
        def render(self, tree): return Desired()
        def observe(self, desired, managed): return Live()
        def apply(self, plan, desired): return ApplyResult()

    @hookimpl
    def setpoint_register_target_kinds(register):
        register(Cheese)
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    monkeypatch.delenv("SETPOINT_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("SETPOINT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("SETPOINT_STRICT_PLUGINS", raising=False)
    return path


def test_the_five_plugins_and_the_builtin_are_listed() -> None:
    registry = get_plugin_manager()
    names = {p.name: p for p in registry.plugins}
    assert {"files", "kubernetes", "terraform", "docker_compose", "sops_secrets", "ansible"} <= set(names)
    assert names["ansible"].distribution == "setpoint-ansible" and names["ansible"].kinds == ["ansible"]
    assert names["kubernetes"].distribution == "setpoint-kubernetes" and names["kubernetes"].kinds == ["kubernetes"]
    assert names["sops_secrets"].decryptors == ["sops"]
    assert names["notify"].notifiers == NOTIFIER_KINDS
    assert names["files"].builtin and names["files"].hooks == ["setpoint_register_target_kinds"]
    run = subprocess.run([sys.executable, "-m", "setpoint.cli", "plugins", "-o", "json"], capture_output=True, text=True)
    listed = {p["name"]: p for p in json.loads(run.stdout)}
    assert {"files", "kubernetes", "terraform", "docker_compose", "sops_secrets", "ansible"} <= set(listed)
    assert listed["terraform"]["version"] == "0.1.0" and listed["terraform"]["error"] is None
    assert listed["notify"]["notifiers"] == NOTIFIER_KINDS
    table = subprocess.run([sys.executable, "-m", "setpoint.cli", "plugins"], capture_output=True, text=True).stdout
    assert all(f"notifier:{k}" in table for k in NOTIFIER_KINDS)   # the table wraps the long list


def test_a_broken_plugin_fails_only_its_targets(site: Path, tmp_path: Path, git_repo: GitRepo) -> None:
    install_plugin(site, "setpoint-broken", "broken", "setpoint_broken_mod", BROKEN)
    install_plugin(site, "setpoint-cheese", "cheese", "setpoint_cheese_mod", CHEESE)
    registry = get_plugin_manager()
    broken = next(p for p in registry.plugins if p.name == "broken")
    assert broken.distribution == "setpoint-broken" and broken.version == "1.2.3"
    assert "libfoo.so.1" in broken.error
    assert "cheese" in registry.kinds, "the other plugins still load"

    git_repo.commit({"etc/a.conf": "x", "app/web.yaml": resources_yaml(web())})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "needs-broken", "kind": "broken", "path": "app"},
        {"name": "web-config", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}},
    ])
    from setpoint.config import load_config
    from setpoint.engine import Engine

    engine = Engine(load_config(config), registry)
    bad, good = engine.sync()
    assert bad.error_stage == "plugin" and "plugin 'broken' failed to load" in bad.error and "libfoo" in bad.error
    assert good.error is None and (tmp_path / "live" / "a.conf").exists()

    run = subprocess.run([sys.executable, "-m", "setpoint.cli", "plugins"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 1 and "failed" in run.stdout and "libfoo.so.1" in run.stdout


def test_block_allow_and_strict_switches(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(site, "setpoint-broken", "broken", "setpoint_broken_mod", BROKEN)
    install_plugin(site, "setpoint-cheese", "cheese", "setpoint_cheese_mod", CHEESE)
    monkeypatch.setenv("SETPOINT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError, match="broken"):
        get_plugin_manager()
    monkeypatch.setenv("SETPOINT_DISABLE_PLUGINS", "broken")
    registry = get_plugin_manager()
    assert "broken" not in {p.name for p in registry.plugins} and "cheese" in registry.kinds
    monkeypatch.delenv("SETPOINT_DISABLE_PLUGINS")
    monkeypatch.setenv("SETPOINT_LOAD_PLUGINS", "cheese")
    registry = get_plugin_manager()
    assert {p.name for p in registry.plugins if not p.builtin} == {"cheese"}
    assert "files" in {p.name for p in registry.plugins}, "built-ins always load"


def test_duplicate_kind_is_a_load_error_of_the_second_plugin(site: Path) -> None:
    install_plugin(site, "setpoint-cheese", "cheese", "setpoint_cheese_mod", CHEESE)
    install_plugin(site, "setpoint-cheese2", "cheese2", "setpoint_cheese2_mod", CHEESE)
    registry = get_plugin_manager()
    second = next(p for p in registry.plugins if p.name == "cheese2")
    assert "already provided by cheese" in second.error and registry.kinds["cheese"].__module__ == "setpoint_cheese_mod"


def test_fake_kind_is_not_configurable_without_the_test_plugin(tmp_path: Path, git_repo: GitRepo) -> None:
    registry = get_plugin_manager()
    assert "fake" not in registry.kinds
    assert "fake" in get_plugin_manager(load_entrypoints=False, extra_plugins=[FakePlugin()]).kinds
