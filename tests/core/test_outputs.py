"""Cross-target outputs: ${setpoint:TARGET.OUTPUT} in a dependant's files, dependencies first."""

from __future__ import annotations

from pathlib import Path

from test_canary import CANARY, scan

from setpoint.api import SyncStatus
from setpoint.secrets import Secret
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import resources_yaml


def test_outputs_flow_to_dependants(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({
        "net/vpc.yaml": resources_yaml({"kind": "Network", "name": "vpc"}),
        "app/web.yaml": resources_yaml({"kind": "Deployment", "name": "web", "image": "web:1",
                                        "config": {"db": "${setpoint:net.db_host}:5432",
                                                   "password": "${setpoint:net.db_password}"}}),
    })
    config = write_config(tmp_path, git_repo.path, [
        {"name": "app", "kind": "fake", "path": "app", "depends_on": ["net"]},
        {"name": "net", "kind": "fake", "path": "net"}])
    net = fake_plugin.cluster("net")
    net.outputs = {"db_host": "db1.internal", "db_password": Secret(CANARY)}
    engine = make_engine(config, fake_plugin)
    outcomes = engine.sync()
    assert [o.target.name for o in outcomes] == ["net", "app"], "dependencies first"
    assert all(o.sync == SyncStatus.SYNCED for o in outcomes), [o.error for o in outcomes]
    app = fake_plugin.cluster("app").resources["Deployment/web"]
    assert app["config"] == {"db": "db1.internal:5432", "password": CANARY}
    # the secret output never reached the disk, the database or the audit log
    assert not scan([tmp_path / "state"], CANARY)
    audit = [e.details for e in engine.store.audit_entries(target="app")]
    assert CANARY not in str(audit) and "db1.internal:5432" in str(audit)
    # a changed output re-renders the dependant at the same revision
    net.outputs = {"db_host": "db2.internal", "db_password": Secret(CANARY)}
    engine.sync()
    assert fake_plugin.cluster("app").resources["Deployment/web"]["config"]["db"] == "db2.internal:5432"


def test_bad_references_fail_the_render(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin) -> None:
    git_repo.commit({"net/vpc.yaml": resources_yaml({"kind": "Network", "name": "vpc"}),
                     "app/web.yaml": resources_yaml({"kind": "Deployment", "name": "web",
                                                     "image": "${setpoint:net.nope}"}),
                     "other/x.yaml": resources_yaml({"kind": "X", "name": "x", "image": "${setpoint:net.db_host}"})})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "net", "kind": "fake", "path": "net"},
        {"name": "app", "kind": "fake", "path": "app", "depends_on": ["net"]},
        {"name": "other", "kind": "fake", "path": "other"}])
    fake_plugin.cluster("net").outputs = {"db_host": "db1"}
    engine = make_engine(config, fake_plugin)
    net, app, other = engine.sync()
    assert app.error_stage == "render" and "no output 'nope'" in app.error and "db_host" in app.error
    assert other.error is None, "a target without depends_on leaves ${setpoint:...} text alone"
    assert fake_plugin.cluster("other").resources["X/x"]["image"] == "${setpoint:net.db_host}"
