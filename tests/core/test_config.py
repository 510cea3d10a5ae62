"""Configuration: every problem at once, with file, line, field path and a hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from setpoint.config import ConfigProblems, load_config
from setpoint.durations import format_duration, parse_duration
from setpoint.testing import GitRepo, make_engine, write_config
from setpoint.validation import validate_all

GOOD = """\
sources:
  infra:
    url: https://git.example.com/platform/infra.git
    branch: main
    poll_interval: 30s
targets:
  - name: prod-network
    kind: terraform
    source: infra
    path: terraform/network
    self_heal: true
  - name: prod-apps
    kind: kubernetes
    source: infra
    path: k8s/prod
    prune: true
    depends_on: [prod-network]
  - name: edge-1
    kind: docker_compose
    source: infra
    path: compose/edge
    self_heal: {grace: 1h}
  - name: web-config
    kind: files
    source: infra
    path: hosts/web/etc
    prune: true
    files: {destination: /etc/web}
state: sqlite:///var/lib/setpoint/state.db
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "setpoint.yaml"
    path.write_text(text)
    return path


def test_the_issue_example_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert [t.name for t in config.targets] == ["prod-network", "prod-apps", "edge-1", "web-config"]
    assert config.target("edge-1").self_heal.grace == 3600
    assert config.sources["infra"].poll_interval == 30
    assert validate_all(tmp_path / "setpoint.yaml") == []


def test_all_problems_reported_at_once_with_lines(tmp_path: Path) -> None:
    text = GOOD.replace("    prune: true\n    depends_on", "    prnue: true\n    depends_on") \
               .replace("poll_interval: 30s", "poll_interval: soon") \
               .replace("self_heal: {grace: 1h}", "self_heal: sometimes")
    with pytest.raises(ConfigProblems) as info:
        load_config(write(tmp_path, text))
    problems = info.value.problems
    rendered = "\n".join(str(p) for p in problems)
    assert any(p.path == "sources.infra.poll_interval" and p.line == 5 and "duration" in p.message for p in problems), rendered
    assert any(p.path.startswith("targets[1]") and "prnue" in p.path and p.line == 16 for p in problems), rendered
    assert any(p.path == "targets[2].self_heal" and p.line == 22 for p in problems), rendered


@pytest.mark.parametrize("mutation, message", [
    (("depends_on: [prod-network]", "depends_on: [nowhere]"), "depends on 'nowhere'"),
    (("    source: infra\n    path: k8s/prod", "    source: elsewhere\n    path: k8s/prod"), "source 'elsewhere'"),
    (("path: k8s/prod", "path: ../outside"), "inside the repository"),
    (("name: edge-1", "name: prod-apps"), "duplicate target"),
    (("url: https://git.example.com", "url: https://bob:hunter2@git.example.com"), "password_file"),
])
def test_reference_and_safety_errors(tmp_path: Path, mutation: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigProblems, match=message):
        load_config(write(tmp_path, GOOD.replace(*mutation)))


def test_dependency_cycle_across_kinds(tmp_path: Path) -> None:
    text = GOOD.replace("    self_heal: true\n  - name: prod-apps", "    self_heal: true\n    depends_on: [edge-1]\n  - name: prod-apps") \
               .replace("    path: compose/edge", "    path: compose/edge\n    depends_on: [prod-apps]")
    with pytest.raises(ConfigProblems, match="dependency cycle: .*prod-network"):
        load_config(write(tmp_path, text))


def test_block_for_another_kind_is_an_unknown_key_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblems) as info:
        load_config(write(tmp_path, GOOD.replace("kind: files", "kind: kubernetes")))
    [problem] = info.value.problems
    assert problem.path == "targets[3].files" and "named after its kind" in problem.hint


def test_kind_blocks_are_validated_by_their_plugin(tmp_path: Path) -> None:
    text = GOOD.replace("files: {destination: /etc/web}", "files: {destination: /etc/web, file_mode: rwx, colour: red}")
    problems = validate_all(write(tmp_path, text))
    assert {p.path for p in problems} == {"targets[3].files.file_mode", "targets[3].files.colour"}
    assert all(p.line == 28 for p in problems)


def test_unknown_kind_and_unknown_secrets_block(tmp_path: Path) -> None:
    text = GOOD.replace("kind: files", "kind: nomad").replace("    files: {destination: /etc/web}\n", "") \
        + "secrets:\n  vault: {}\n"
    messages = [p.message for p in validate_all(write(tmp_path, text))]
    assert any("no plugin provides target kind 'nomad'" in m for m in messages)
    assert any("no installed decryptor is called 'vault'" in m for m in messages)


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    run = subprocess.run([sys.executable, "-m", "setpoint.cli", "validate", "-c", str(good)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    write(tmp_path, GOOD.replace("branch: main", "branch: main\n    colour: blue"))
    run = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(good), "validate"], capture_output=True, text=True)
    assert run.returncode == 2 and "setpoint.yaml:5: sources.infra.colour" in run.stderr and "hint:" in run.stderr


def test_missing_config_file_says_what_to_do(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "setpoint.cli", "status", "-c", str(tmp_path / "nope.yaml")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "setpoint demo" in run.stderr


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25 and parse_duration(5) == 5
    assert format_duration(5400) == "1h30m"
    for bad in ("soon", "5x", "", "-1"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize("where", ["state", "state/cache", ".", "inside-state"])
def test_a_files_destination_overlapping_setpoint_state_or_config_is_refused(tmp_path: Path, git_repo: GitRepo,
                                                                            where: str) -> None:
    git_repo.commit({"etc/state.db": "overwritten by git"})
    destination = {"state": tmp_path / "state", "state/cache": tmp_path / "state" / "cache",
                   ".": tmp_path, "inside-state": tmp_path / "state" / "targets" / "x"}[where]
    path = write_config(tmp_path, git_repo.path, [
        {"name": "web", "kind": "files", "path": "etc", "files": {"destination": str(destination)}}])
    problems = validate_all(path)
    assert len(problems) == 1 and problems[0].path == "targets[0].files.destination" and problems[0].line
    assert "overlaps setpoint's" in problems[0].message
    with pytest.raises(ConfigProblems, match="overlaps setpoint's"):
        load_config(path)
    with pytest.raises(ConfigProblems):
        make_engine(path)  # the start of `setpoint run` and `sync` loads the same way
    assert not (tmp_path / "state" / "state.db").exists() or (tmp_path / "state" / "state.db").read_bytes()[:6] == b"SQLite"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e308, 10**400, "9" * 400 + "s", "99999999999w"])
def test_out_of_range_durations_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [".nan", ".inf", "1.0e+308"])
def test_out_of_range_durations_in_setpoint_yaml_are_problems(tmp_path: Path, git_repo: GitRepo, value: str) -> None:
    path = write_config(tmp_path, git_repo.path, [
        {"name": "web", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    path.write_text(path.read_text().replace("poll_interval: 1s", f"poll_interval: {value}"))
    problems = validate_all(path)
    assert [p.path for p in problems] == ["sources.repo.poll_interval"] and "out of range" in problems[0].message


def test_lines_are_worked_out_only_for_a_problem(tmp_path: Path, git_repo: GitRepo,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Composing setpoint.yaml node by node for its lines costs more than loading it (a thousand
    targets: a quarter of a second or more, once per load and per plugin block check). A good file is
    loaded and its engine built without it; a bad one still names the right line."""
    import setpoint.config as config_module

    calls: list[int] = []
    original = config_module._line_index

    def counting(text: str) -> dict[tuple[object, ...], int]:
        calls.append(1)
        return original(text)

    monkeypatch.setattr(config_module, "_line_index", counting)
    git_repo.commit({"etc/a.conf": "a\n"})
    good = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    make_engine(good).close()
    assert calls == [], "no line was needed"
    bad = tmp_path / "bad.yaml"
    lines = good.read_text().splitlines()
    bad.write_text("\n".join(lines + ["defaults:", "  interval: soon"]) + "\n")
    with pytest.raises(ConfigProblems) as raised:
        load_config(bad)
    assert calls, "a problem needs its line"
    assert any(p.line == len(lines) + 2 for p in raised.value.problems), [str(p) for p in raised.value.problems]
