"""Issue 15 item 13: `setpoint status` and `audit` start from a cached, validated form of setpoint.yaml
without importing click, pydantic, PyYAML, pluggy or rich (setpoint.quick, setpoint.configcache). Their
output is the full command's, byte for byte; the cache is invalidated by any change to the file or to
the configuration code, is private, and is never trusted when someone else could have written it."""

from __future__ import annotations

import marshal
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from setpoint import configcache, quick
from setpoint.cli import main
from setpoint.testing import GitRepo, write_config

FORMS = [("status",), ("status", "-o", "json"), ("status", "--output=json"),
         ("audit", "--since", "1h"), ("audit", "--since", "1h", "-o", "json"), ("audit", "--target", "edge"),
         ("audit", "--action", "apply", "--action", "drift-detected"), ("audit",),
         ("audit", "--target", "edge", "-o", "json"), ("audit", "--action", "revert-drift", "--output=json"),
         ("audit", "--since", "2h", "--until", "now"), ("audit", "--until", "1h"), ("audit", "--since", "1h30m")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "setpoint" / "config"


@pytest.fixture
def config(tmp_path: Path, git_repo: GitRepo) -> Path:
    git_repo.commit({"etc/app.conf": "port = 80\n"}, "first [bold]commit[/] \\")
    path = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    assert full(path, "sync").exit_code == 0
    (tmp_path / "live" / "app.conf").write_text("port = 8080\n")  # drift: audit has more than applies
    assert full(path, "sync").exit_code == 0
    return path


def full(config: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["-c", str(config), *args], catch_exceptions=False)


def fast(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int | None, str]:
    capsys.readouterr()
    code = quick.serve(["-c", str(config), *args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("form", FORMS)
def test_the_quick_path_prints_what_the_full_command_prints(config: Path, capsys: pytest.CaptureFixture[str],
                                                            form: tuple[str, ...]) -> None:
    expected = full(config, *form)
    code, out = fast(config, capsys, *form)
    assert code == 0
    assert out == expected.output  # type: ignore[attr-defined]


def test_forms_it_does_not_know_go_to_the_full_command(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full(config, "status")
    for form in (["status", "--help"], ["--log-level", "DEBUG", "status"], ["sync"], ["audit", "--target", "edgee"],
                 ["audit", "--since", "yesterday-ish"], ["audit", "--action", "nonsense"], ["status", "-o", "yaml"],
                 ["status", "-ojson"], ["status", "extra"], ["audit", "--since"]):
        assert quick.serve(["-c", str(config), *form]) is None, form


def test_no_entry_until_a_full_load_and_never_for_an_invalid_file(tmp_path: Path, git_repo: GitRepo,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    git_repo.commit({"etc/app.conf": "port = 80\n"})
    path = write_config(tmp_path, git_repo.path, [
        {"name": "edge", "kind": "files", "path": "etc", "files": {"destination": str(tmp_path / "live")}}])
    assert fast(path, capsys, "status")[0] is None
    full(path, "status")
    assert fast(path, capsys, "status")[0] == 0
    data = yaml.safe_load(path.read_text())
    data["targets"][0]["sourcee"] = "typo"
    path.write_text(yaml.safe_dump(data))
    assert full(path, "status").exit_code == 2  # type: ignore[attr-defined]
    assert fast(path, capsys, "status")[0] is None  # the full command keeps reporting the problem


def test_any_edit_invalidates_the_entry(config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    full(config, "status")
    assert fast(config, capsys, "status")[0] == 0
    config.write_text(config.read_text() + "\n")  # even a blank line: the hash of the bytes is the key
    assert fast(config, capsys, "status")[0] is None
    data = yaml.safe_load(config.read_text())
    data["targets"].append({"name": "more", "kind": "files", "source": "repo", "path": "etc",
                            "files": {"destination": str(tmp_path / "more")}})
    config.write_text(yaml.safe_dump(data))
    full(config, "status")
    code, out = fast(config, capsys, "status")
    assert code == 0 and "\nmore " in out


def test_a_change_to_the_configuration_code_invalidates_every_entry(config: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    full(config, "status")
    assert fast(config, capsys, "status")[0] == 0
    monkeypatch.setattr(configcache, "__version__", "99.0")
    assert fast(config, capsys, "status")[0] is None
    monkeypatch.undo()
    real = configcache._code_fingerprint
    monkeypatch.setattr(configcache, "_code_fingerprint", lambda: [*real(), ["config.py", 1, 2]])
    assert fast(config, capsys, "status")[0] is None


def test_entries_are_private_and_a_planted_one_is_not_trusted(config: Path, capsys: pytest.CaptureFixture[str],
                                                              private_cache: Path, tmp_path: Path) -> None:
    full(config, "status")
    [entry] = list(private_cache.glob("*.entry"))
    assert stat.S_IMODE(private_cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert b"secret" not in entry.read_bytes().lower()
    # someone rewrites the entry to point status at another database: group/world-writable is ignored
    data = marshal.loads(entry.read_bytes())
    data["state_path"] = str(tmp_path / "elsewhere.db")
    entry.write_bytes(marshal.dumps(data))
    os.chmod(entry, 0o666)
    assert fast(config, capsys, "status")[0] is None
    os.chmod(entry, 0o600)
    os.chmod(private_cache, 0o777)
    assert fast(config, capsys, "status")[0] is None
    os.chmod(private_cache, 0o700)
    entry.write_text("{not marshal")
    assert fast(config, capsys, "status")[0] is None
    full(config, "status")  # rewritten by the next full load
    assert fast(config, capsys, "status")[0] == 0


def test_the_cache_keeps_a_bounded_number_of_entries(tmp_path: Path, git_repo: GitRepo, private_cache: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(configcache, "MAX_ENTRIES", 3)
    git_repo.commit({"etc/app.conf": "port = 80\n"})
    for n in range(5):
        folder = tmp_path / f"c{n}"
        folder.mkdir()
        full(write_config(folder, git_repo.path, [{"name": "edge", "kind": "files", "path": "etc",
                                                   "files": {"destination": str(folder / "live")}}]), "status")
    assert len(list(private_cache.glob("*.entry"))) == 3


#: What the quick path must not import: the libraries of the full command line, setpoint's own heavy
#: modules, and the standard library's costly ones (what each costs: docs/benchmarks.md, case 9).
FORBIDDEN = ("click", "pydantic", "yaml", "pluggy", "rich", "setpoint.config", "setpoint.api", "setpoint.views",
             "setpoint.state.store", "setpoint.logs", "setpoint.secrets", "typing", "logging", "pathlib",
             "dataclasses", "inspect", "json", "re", "hashlib", "urllib.parse", "enum")


def imported_by(config: Path, private_cache: Path, *args: str) -> set[str]:
    """The modules a fresh ``setpoint -c CONFIG ARGS`` process has loaded when the quick path is done."""
    code = ("import sys\n"
            "from setpoint import quick\n"
            "assert quick.serve(sys.argv[1:]) == 0, 'fell through'\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code, "-c", str(config), *args], capture_output=True, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(private_cache.parent.parent)})
    assert run.returncode == 0, run.stderr
    assert run.stdout
    return set(run.stderr.split())


def test_the_setpoint_command_answers_status_without_the_heavy_libraries(config: Path, private_cache: Path) -> None:
    full(config, "status")
    loaded = imported_by(config, private_cache, "status")
    assert not loaded & set(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
    assert "sqlite3" in loaded


@pytest.mark.parametrize("args", [("audit", "--since", "1h"), ("audit", "--action", "pause")])
def test_audit_imports_no_more_than_its_diffs_need(config: Path, private_cache: Path, args: tuple[str, ...]) -> None:
    full(config, "status")
    full(config, "pause", "edge", "--reason", "quiet")
    loaded = imported_by(config, private_cache, *args)
    # a multi-line value's unified diff needs difflib, and difflib imports re
    allowed = {"re", "enum"} if "difflib" in loaded else set()
    assert not loaded & (set(FORBIDDEN) - allowed), sorted(loaded & set(FORBIDDEN))
    if args[1] == "--action":
        assert "difflib" not in loaded


def test_an_unknown_target_goes_to_the_full_command_with_exit_2(config: Path, private_cache: Path) -> None:
    full(config, "status")
    run = subprocess.run([sys.executable, "-c", "from setpoint.quick import main; main()", "-c", str(config),
                          "audit", "--target", "edgee"], capture_output=True, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(private_cache.parent.parent)})
    assert run.returncode == 2
    assert "edge" in run.stderr and not run.stdout


def test_a_postgresql_state_is_never_cached_and_never_read_quickly(tmp_path: Path, private_cache: Path) -> None:
    from types import SimpleNamespace

    from setpoint.state.quickstate import QuickState, Unreadable

    config_file = tmp_path / "setpoint.yaml"
    config_file.write_text("state: postgresql://db/setpoint\n")
    config = SimpleNamespace(file=config_file, state_is_postgresql=True, state_path="postgresql://db/setpoint",
                             targets=[])
    configcache.store(config, config_file.read_bytes())
    assert configcache.lookup(str(config_file)) is None
    assert not private_cache.exists() or not list(private_cache.iterdir())
    with pytest.raises(Unreadable):
        QuickState("postgresql://db/setpoint")


def test_a_database_the_reader_cannot_answer_for_goes_to_the_full_command(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    from setpoint.state.stateschema import SCHEMA_VERSION

    full(config, "status")
    cached = configcache.lookup(str(config))
    assert cached is not None
    state = cached.state_path
    with sqlite3.connect(state) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # a newer setpoint's database
    assert fast(config, capsys, "status") == (None, "")
    assert fast(config, capsys, "audit") == (None, "")
    with sqlite3.connect(state) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("UPDATE target_state SET data = '{\"sync\": \"Sideways\"}'")  # not a status the store reads
    assert fast(config, capsys, "status") == (None, "")
    with sqlite3.connect(state) as conn:
        conn.execute("UPDATE audit SET details = '{broken'")
    assert fast(config, capsys, "audit") == (None, "")
