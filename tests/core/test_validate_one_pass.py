"""Issue 15 items 6 and 7: `setpoint validate` reports every problem in one run, at the right
line, with "did you mean"; a misspelled kind is named; `-o json`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIVE_MISTAKES = """\
sources:
  app:
    url: ./repo
targets:
  - name: edge
    kind: files
    source: ap
    intervall: 5m
    depends_on: [web]
    files:
      destination: ./live
      destinaton: x
  - name: web
    kind: files
    source: app
    depends_on: [edge]
    prune: maybe
    files:
      destination: ./live2
"""


def validate(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "setpoint.yaml"
    config.write_text(text)
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "validate", "-c", str(config), *args],
                          capture_output=True, text=True, cwd=tmp_path)


def test_five_mistakes_in_one_run_at_their_lines(tmp_path: Path) -> None:
    run = validate(tmp_path, FIVE_MISTAKES)
    f = tmp_path / "setpoint.yaml"
    assert run.returncode == 2
    assert run.stderr == f"""\
5 problem(s) in the configuration:
  {f}:7: targets[0].source: target 'edge' uses source 'ap', which is not defined under sources (did you mean 'app'?) (defined: app)
  {f}:8: targets[0].intervall: unknown key 'intervall' (did you mean 'interval'?)
    hint: a target takes name, kind, source, path, interval, prune, allow_empty, self_heal, depends_on, deletion_budget, hold_deletions, enabled, secrets, and one settings block named after its kind
  {f}:9: targets[0].depends_on: dependency cycle: edge -> web -> edge
    hint: remove one depends_on entry of the cycle
  {f}:12: targets[0].files.destinaton: unknown key 'destinaton' (did you mean 'destination'?)
    hint: remove it, or check its spelling against docs/configuration.md
  {f}:17: targets[1].prune: Input should be a valid boolean, unable to interpret input
"""


def test_references_point_at_their_own_line_and_suggest_targets(tmp_path: Path) -> None:
    text = FIVE_MISTAKES.replace("source: ap\n", "source: app\n").replace("    intervall: 5m\n", "") \
        .replace("      destinaton: x\n", "").replace("    prune: maybe\n", "") \
        .replace("depends_on: [edge]", "depends_on: [egde]")
    run = validate(tmp_path, text, "-o", "json")
    assert run.returncode == 2
    assert json.loads(run.stdout) == {"valid": False, "problems": [
        {"file": str(tmp_path / "setpoint.yaml"), "line": 14, "path": "targets[1].depends_on[0]",
         "message": "target 'web' depends on 'egde', which is not a target (did you mean 'edge'?)", "hint": None}]}


def test_valid_json(tmp_path: Path) -> None:
    text = FIVE_MISTAKES.replace("source: ap\n", "source: app\n").replace("    intervall: 5m\n", "") \
        .replace("      destinaton: x\n", "").replace("    prune: maybe\n", "").replace("    depends_on: [edge]\n", "")
    run = validate(tmp_path, text, "-o", "json")
    assert (run.returncode, json.loads(run.stdout)) == (0, {"valid": True, "problems": []})


ONE_TARGET = """\
sources:
  app:
    url: ./repo
targets:
  - name: edge
    kind: file
    source: app
    files:
      destination: ./live
"""


def test_misspelled_kind_with_its_block_is_named(tmp_path: Path) -> None:
    run = validate(tmp_path, ONE_TARGET)
    f = tmp_path / "setpoint.yaml"
    assert run.returncode == 2
    assert run.stderr.startswith(f"1 problem(s) in the configuration:\n  {f}:6: targets[0].kind: unknown target "
                                 "kind 'file' (did you mean 'files'?); installed kinds: "), run.stderr
    assert run.stderr.endswith("\n    hint: the settings block is 'files:'; write kind: files\n")
    assert "Extra inputs" not in run.stderr and "pip install" not in run.stderr


def test_misspelled_kind_without_block_suggests_the_installed_kind_not_pip(tmp_path: Path) -> None:
    run = validate(tmp_path, ONE_TARGET.replace("    files:\n      destination: ./live\n", ""))
    assert run.returncode == 2
    assert "unknown target kind 'file' (did you mean 'files'?); installed kinds:" in run.stderr
    assert "pip install" not in run.stderr
    missing = validate(tmp_path, ONE_TARGET.replace("kind: file\n", "kind: nomad\n").replace(
        "    files:\n      destination: ./live\n", ""))
    assert "no plugin provides target kind 'nomad'" in missing.stderr and "pip install 'setpoint[nomad]'" in missing.stderr
