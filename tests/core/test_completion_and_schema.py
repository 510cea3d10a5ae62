"""`setpoint completion` scripts complete target names; `setpoint schema` describes setpoint.yaml with every
installed kind's settings, and accepts exactly what `setpoint validate` accepts for the common cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from setpoint.cli import main

CONFIG = {
    "sources": {"infra": {"url": "https://git.example.com/infra.git", "branch": "main", "poll_interval": "30s"}},
    "targets": [
        {"name": "web-config", "kind": "files", "source": "infra", "path": "hosts/web", "prune": True,
         "self_heal": {"grace": "1h"}, "files": {"destination": "/etc/web"}},
        {"name": "cluster-apps", "kind": "kubernetes", "source": "infra", "path": "k8s",
         "kubernetes": {"namespace": "apps"}, "depends_on": ["web-config"]},
        {"name": "edge-net", "kind": "terraform", "source": "infra", "path": "tf/edge", "terraform": {}},
    ],
    "state": "sqlite:////var/lib/setpoint/state.db",
}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = CliRunner().invoke(main, ["completion", shell])
    assert result.exit_code == 0 and "_SETPOINT_COMPLETE" in result.output


def _complete(words: str, config: Path, cwd: Path) -> list[str]:
    env = {**os.environ, "_SETPOINT_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1), "SETPOINT_CONFIG": str(config)}
    setpoint = Path(sys.executable).parent / "setpoint"  # completion keys on the program's name
    run = subprocess.run([str(setpoint)], env=env, cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return [line.split(",", 1)[1] for line in run.stdout.splitlines() if line.startswith("plain,")]


def test_target_names_complete(tmp_path: Path) -> None:
    config = tmp_path / "setpoint.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    assert _complete("setpoint sync ", config, tmp_path) == ["web-config", "cluster-apps", "edge-net"]
    assert _complete("setpoint diff ed", config, tmp_path) == ["edge-net"]
    assert _complete("setpoint audit --target c", config, tmp_path) == ["cluster-apps"]
    config.write_text("targets: [oops")  # a broken file completes nothing and never fails the shell
    assert _complete("setpoint sync ", config, tmp_path) == []


def _schema() -> dict:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_schema_accepts_a_valid_config_and_rejects_mistakes() -> None:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(CONFIG))
    assert set(schema["$defs"]["TargetConfig"]["properties"]["kind"]["enum"]) >= {"files", "kubernetes", "terraform",
                                                                                  "docker_compose"}
    for mistake in (
        {**CONFIG, "sourcez": {}},                                                      # unknown top-level key
        {**CONFIG, "targets": [{**CONFIG["targets"][0], "prunee": True}]},              # unknown target key
        {**CONFIG, "targets": [{**CONFIG["targets"][0], "kind": "file"}]},              # unknown kind
        {**CONFIG, "targets": [{**CONFIG["targets"][0], "files": {"destinaton": "/x"}}]},  # typo in a kind block
        {**CONFIG, "targets": [{k: v for k, v in CONFIG["targets"][0].items() if k != "files"}]},  # block missing
    ):
        assert list(validator.iter_errors(mistake)), mistake


def test_demo_config_points_at_a_schema_it_satisfies(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "demo"), "--once"])
    assert result.exit_code == 0, result.output
    config_text = (tmp_path / "demo" / "setpoint.yaml").read_text()
    assert config_text.startswith("# yaml-language-server: $schema=./setpoint.schema.json")
    schema = json.loads((tmp_path / "demo" / "setpoint.schema.json").read_text())
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(config_text)))
