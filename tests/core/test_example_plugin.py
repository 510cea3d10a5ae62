"""The complete example plugin of docs/writing-plugins.md, installed through a real entry point
and run through the five phases, its review hook and its observer hook."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, make_engine, write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "setpoint-json-settings"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the example as a distribution would be: its package on the path and a .dist-info
    whose entry points are read from the example's own pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    info = site / "setpoint_json_settings-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entries = project["entry-points"]["setpoint"]
    (info / "entry_points.txt").write_text("[setpoint]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    return site


def test_example_plugin_five_phases(site: Path, tmp_path: Path, git_repo: GitRepo) -> None:
    dest = tmp_path / "etc"
    git_repo.commit({"settings/app.yaml": "database: {host: db1, pool_size: 5}\n"}, "v1")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "app-settings", "kind": "json_settings", "path": "settings", "prune": True,
         "deletion_budget": {"max_count": 10, "max_percent": 100}, "json_settings": {"destination": str(dest)}}])
    engine = make_engine(config, load_entrypoints=True)
    from setpoint_json_settings import plugin

    assert engine.reconcile("app-settings").sync == SyncStatus.SYNCED
    assert json.loads((dest / "app.json").read_text()) == {"database": {"host": "db1", "pool_size": 5}}
    assert not engine.reconcile("app-settings").actions
    (dest / "app.json").write_text(json.dumps({"database": {"host": "db1", "pool_size": 50}}))
    out = engine.reconcile("app-settings")
    assert [f.path for c in out.drift for f in c.fields] == ["database.pool_size"]
    v2 = git_repo.commit({"settings/app.yaml": "database: {host: db2, pool_size: 5}\n",
                          "settings/production.yaml": "tier: gold\n"}, "v2")
    assert engine.reconcile("app-settings").revision.sha == v2
    assert json.loads((dest / "app.json").read_text())["database"]["host"] == "db2"
    git_repo.revert(v2)
    out = engine.reconcile("app-settings")
    assert out.held_plan_id, "the example's review hook refuses to delete production settings"
    assert "production settings file" in engine.store.held_plans("app-settings")[0].reason
    assert len(plugin.SEEN) >= 5 and plugin.SEEN[-1].target.name == "app-settings"


def test_example_plugin_is_listed_by_the_cli(site: Path) -> None:
    env = {"PYTHONPATH": f"{site}:{EXAMPLE / 'src'}", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "setpoint.cli", "plugins", "-o", "json"], capture_output=True,
                         text=True, env=env)
    record = next(p for p in json.loads(run.stdout) if p["name"] == "json_settings")
    assert record["kinds"] == ["json_settings"] and record["distribution"] == "setpoint-json-settings"
    assert set(record["hooks"]) == {"setpoint_register_target_kinds", "setpoint_review_plan",
                                    "setpoint_reconcile_finished"}
