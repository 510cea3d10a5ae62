"""YAML alias bombs ("billion laughs") are refused with the file named, before anything expands
them: in setpoint.yaml (validate and load), and through the shared bounded loader plugins use."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from setpoint import yamlsafe
from setpoint.config import ConfigProblems, load_config
from setpoint.testing import GitRepo, write_config
from setpoint.validation import validate_all


def laughs(levels: int = 7, indent: str = "") -> str:
    """9**levels expanded nodes in a few hundred bytes (7 levels: 4.8 million, over the limit)."""
    rows = [f'{indent}l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for n in range(1, levels + 1):
        rows.append(f"{indent}l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]")
    return "\n".join(rows) + "\n"


def test_the_bounded_loader_refuses_a_bomb_and_loads_ordinary_yaml() -> None:
    with pytest.raises(yamlsafe.YAMLTooLarge, match="bomb.yaml: YAML expands to more than"):
        yamlsafe.load_all(laughs(), origin="bomb.yaml")
    with pytest.raises(yamlsafe.YAMLTooLarge, match="recursive alias"):
        yamlsafe.load("a: &a [1, *a]\n")
    # aliases that do not multiply, and deep nesting, are fine
    assert yamlsafe.load("base: &b {x: 1}\none: *b\ntwo: *b\n") == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}
    deep = "a: " + "[" * 900 + "]" * 900 + "\n"  # composed by libyaml (its limit: 1000); the measure is not recursive
    assert yamlsafe.check_expansion(yaml.compose(deep, Loader=yaml.CSafeLoader)) == 902


def test_a_bomb_in_setpoint_yaml_is_refused_at_validate_and_load(tmp_path: Path, git_repo: GitRepo) -> None:
    git_repo.commit({"etc/a": "a"})
    path = write_config(tmp_path, git_repo.path, [
        {"name": "web", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    path.write_text(path.read_text() + "x-bomb:\n" + laughs(indent="  "))
    problems = validate_all(path)
    assert len(problems) == 1 and problems[0].file == str(path) and "expands to more than" in problems[0].message
    with pytest.raises(ConfigProblems, match="expands to more than"):
        load_config(path)
