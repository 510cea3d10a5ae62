"""Issue 22 item 3: `setpoint validate` warns when a production source follows a branch without
signature verification (valid configuration: exit 0, the warning on stderr and in JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFIG = """\
sources:
  prod:
    url: ./repo
    production: true
{verify}  staging:
    url: ./repo
targets:
  - name: edge
    kind: files
    source: prod
    files:
      destination: ./live
"""


def validate(tmp_path: Path, verify: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "setpoint.yaml").write_text(CONFIG.format(verify=verify))
    (tmp_path / "keys.asc").write_text("")
    return subprocess.run([sys.executable, "-m", "setpoint.cli", "validate", "-c", str(tmp_path / "setpoint.yaml"),
                           *args], capture_output=True, text=True, cwd=tmp_path)


def test_production_without_verify_warns(tmp_path: Path) -> None:
    run = validate(tmp_path, "")
    assert run.returncode == 0 and "configuration is valid" in run.stdout
    assert "warning:" in run.stderr and "setpoint.yaml:4: sources.prod:" in run.stderr
    assert "without verify" in run.stderr and "docs/git-safety.md" in run.stderr
    assert "staging" not in run.stderr, "only the source marked production"
    data = json.loads(validate(tmp_path, "", "-o", "json").stdout)
    assert data["valid"] is True and [w["path"] for w in data["warnings"]] == ["sources.prod"]


def test_production_with_head_only_verification_suggests_every_commit(tmp_path: Path) -> None:
    run = validate(tmp_path, "    verify: {mode: head, gpg_keys: [keys.asc]}\n")
    assert run.returncode == 0 and "sources.prod.verify.mode" in run.stderr and "every-commit" in run.stderr


def test_production_with_every_commit_is_quiet(tmp_path: Path) -> None:
    run = validate(tmp_path, "    verify: {mode: every-commit, ssh_allowed_signers: keys.asc}\n")
    assert run.returncode == 0 and run.stderr == ""


def test_verify_without_keys_is_an_error(tmp_path: Path) -> None:
    run = validate(tmp_path, "    verify: {mode: every-commit}\n")
    assert run.returncode == 2 and "verify needs gpg_keys, ssh_allowed_signers or both" in run.stderr


def test_unreadable_key_file_is_a_problem(tmp_path: Path) -> None:
    run = validate(tmp_path, "    verify: {mode: every-commit, gpg_keys: [keys.asc, missing.asc]}\n")
    assert run.returncode == 2 and "sources.prod.verify.gpg_keys[1]" in run.stderr
    assert "missing.asc cannot be read" in run.stderr and "keys.asc cannot" not in run.stderr
