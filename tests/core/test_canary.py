"""A canary secret reaches the targets and appears nowhere else: not in CLI output, logs, the audit
database (and its WAL), status, exception text, or files left in temporary directories."""

from __future__ import annotations

import base64
import json
import os
import random
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_plugins import install_plugin

from setpoint.errors import PermanentError
from setpoint.secrets import Secret, reveal_all, safe_error, scrub, to_jsonable
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import resources_yaml, web

CANARY = "CANARY-7f3a9c1e-do-not-leak"
CANARY2 = "CANARY-b2d4e6f8-second-value"

# A toy decryptor: "TOYENC:" + base64 of YAML. Real formats come from plugins (sops_secrets).
TOY = """
    import base64, yaml
    from pydantic import BaseModel
    from setpoint import hookimpl
    from setpoint.api import DecryptedFile, Decryptor
    from setpoint.secrets import Secret

    def wrap(value, origin):
        if isinstance(value, dict):
            return {k: wrap(v, f"{origin}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [wrap(v, origin) for v in value]
        return Secret(value, origin)

    class ToySettings(BaseModel, extra="forbid"):
        marker: str = "TOYENC:"

    class Toy(Decryptor):
        name = "toy"
        Settings = ToySettings
        def detect(self, relpath, content):
            return content.startswith(self.settings.marker.encode())
        def decrypt(self, relpath, content):
            plain = base64.b64decode(content[len(self.settings.marker):])
            docs = [wrap(d, relpath) for d in yaml.safe_load_all(plain)]
            return DecryptedFile(relpath, "yaml", docs, Secret(plain, relpath), "toy", ("toy-key-1",))

    @hookimpl
    def setpoint_register_decryptors(register):
        register(Toy)
"""


def toy_encrypt(text: str) -> bytes:
    return b"TOYENC:" + base64.b64encode(text.encode())


def scan(paths: list[Path], needle: str) -> list[str]:
    hits = []
    for root in paths:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    if needle.encode() in path.read_bytes():
                        hits.append(str(path))
                except OSError:
                    pass
    return hits


@pytest.fixture
def toy_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "setpoint-toy", "toy", "setpoint_toy_mod", TOY)
    return site


def test_canary_never_leaks_through_the_cli(tmp_path: Path, git_repo: GitRepo, toy_site: Path) -> None:
    live = tmp_path / "live"
    git_repo.commit({"etc/app.conf": "plain = yes\n", "etc/db.env": toy_encrypt(f"password: {CANARY}\n")})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "prune": True, "files": {"destination": str(live)}}])
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    env = {**os.environ, "PYTHONPATH": str(toy_site), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    outputs = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        run = subprocess.run([sys.executable, "-m", "setpoint.cli", "--log-level", "DEBUG", "-c", str(config), *args],
                             capture_output=True, text=True, env=env)
        outputs.append(run.stdout + run.stderr)
        return run

    assert cli("sync").returncode == 0, outputs[-1]
    # the secret reached the target, in clear, with a private mode
    assert (live / "db.env").read_text() == f"password: {CANARY}\n"
    # someone edits the secret file by hand; then Git rotates the secret
    (live / "db.env").write_text(f"password: {CANARY2}\n")
    cli("diff", "host")
    cli("diff", "host", "-o", "json")
    assert cli("sync").returncode == 0
    git_repo.commit({"etc/db.env": toy_encrypt(f"password: {CANARY2}\n")}, "rotate")
    cli("diff", "host", "-o", "json")
    # a preview of the rotation, in every output (a PR comment is the widest audience of all)
    for output in ("text", "json", "markdown"):
        assert cli("preview", "--revision", "main", "--target", "host", "-o", output).returncode == 0, outputs[-1]
    assert "secret value changed (not shown)" in outputs[-1]
    cli("sync", "-o", "json")
    for args in (("status",), ("status", "-o", "json"), ("audit",), ("audit", "-o", "json"), ("history", "host"),
                 ("secrets", "check", str(git_repo.path))):
        cli(*args)
    assert "toy-key-1" in outputs[-1] and "ok" in outputs[-1], "secrets check names keys, not values"
    audit = json.loads(cli("audit", "-o", "json").stdout)
    drift = [e for e in audit if e["action"] == "revert-drift"]
    assert drift and drift[0]["details"]["changes"][0]["fields"][0]["secret"] is True, "a secret diff says 'changed'"

    for needle in (CANARY, CANARY2):
        assert not [o for o in outputs if needle in o], f"{needle} printed by the CLI"
        assert not scan([tmp_path / "state", tmp_path / "tmp", tmp_path / "setpoint.yaml"], needle)
        shm_after = set(os.listdir("/dev/shm")) - shm_before if os.path.isdir("/dev/shm") else set()
        assert not scan([Path("/dev/shm") / n for n in shm_after], needle)


def test_canary_is_scrubbed_from_errors_status_and_audit(tmp_path: Path, git_repo: GitRepo, toy_site: Path,
                                                         fake_plugin: FakePlugin, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.syspath_prepend(str(toy_site))
    git_repo.commit({"app/web.yaml": resources_yaml(web()), "app/secret.yaml": toy_encrypt(
        resources_yaml({"kind": "Secret", "name": "db", "config": {"password": CANARY}}))})
    config = write_config(tmp_path, git_repo.path, [{"name": "app", "kind": "fake", "path": "app"}])
    engine = make_engine(config, fake_plugin, load_entrypoints=True)
    cluster = fake_plugin.cluster("app")
    assert engine.reconcile("app").error is None
    assert cluster.resources["Secret/db"]["config"]["password"] == CANARY, "the target gets the clear value"
    # a careless driver puts the revealed value into an exception message
    cluster.fail_next("apply", PermanentError(f"server rejected password {CANARY}"))
    cluster.manual_change("Secret/db", config={"password": "hand-set"})
    out = engine.reconcile("app")
    assert out.error and CANARY not in out.error and "<secret>" in out.error
    db_bytes = b"".join(p.read_bytes() for p in (tmp_path / "state").glob("state.db*"))
    assert CANARY.encode() not in db_bytes
    assert CANARY not in caplog.text
    assert CANARY not in json.dumps({k: s.to_json() for k, s in engine.store.all_status().items()})


def test_secret_type_redacts_itself() -> None:
    secret = Secret(CANARY, origin="db.env:password")
    assert CANARY not in f"{secret} {secret!r} {secret:>40} {[secret]} {({'k': secret})}"
    assert CANARY not in json.dumps(to_jsonable({"a": [secret]}))
    assert to_jsonable(secret) == to_jsonable(Secret(CANARY)), "equal values share a fingerprint"
    assert secret == Secret(CANARY) and secret != Secret("other") and secret != CANARY
    assert reveal_all({"a": [secret]}) == {"a": [CANARY]}
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)
    assert scrub(f"connecting with {CANARY}") == "connecting with <secret>"
    assert CANARY not in safe_error(ValueError(f"bad {CANARY}"))


def test_per_target_decryptor_settings(tmp_path: Path, git_repo: GitRepo, toy_site: Path, fake_plugin: FakePlugin,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(toy_site))
    secret = resources_yaml({"kind": "Secret", "name": "db", "config": {"password": CANARY}})
    git_repo.commit({"a/s.yaml": toy_encrypt(secret), "b/s.yaml": b"ALTENC:" + toy_encrypt(secret)[7:]})
    config = write_config(tmp_path, git_repo.path, [
        {"name": "a", "kind": "fake", "path": "a"},
        {"name": "b", "kind": "fake", "path": "b", "secrets": {"toy": {"marker": "ALTENC:"}}}])
    engine = make_engine(config, fake_plugin, load_entrypoints=True)
    assert [o.error for o in engine.sync()] == [None, None]
    assert fake_plugin.cluster("a").resources == fake_plugin.cluster("b").resources
    assert fake_plugin.cluster("b").resources["Secret/db"]["config"]["password"] == CANARY


@pytest.mark.parametrize("direction", ["secret-to-plain", "plain-to-secret"])
def test_secrecy_is_sticky_when_a_file_stops_or_starts_being_encrypted(tmp_path: Path, git_repo: GitRepo,
                                                                      toy_site: Path, direction: str) -> None:
    """Issue 14 item 2: a value that was secret on either side of a diff is shown only as a fingerprint,
    in diff, audit, the state DB and the status API, whichever way the file changed."""
    live = tmp_path / "live"
    secret_first = direction == "secret-to-plain"
    old = toy_encrypt(f"password: {CANARY}\n") if secret_first else f"password: {CANARY}\n"
    new = f"password: {CANARY2}\n" if secret_first else toy_encrypt(f"password: {CANARY2}\n")
    git_repo.commit({"etc/db.env": old})
    token = "status-token-for-the-canary-test"
    (tmp_path / "status.token").write_text(token + "\n")
    config = write_config(tmp_path, git_repo.path, [
        {"name": "host", "kind": "files", "path": "etc", "files": {"destination": str(live)}}],
        server={"listen": "127.0.0.1:0", "status_tokens": [{"name": "t", "file": "status.token"}]})
    env = {**os.environ, "PYTHONPATH": str(toy_site)}
    outputs: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        run = subprocess.run([sys.executable, "-m", "setpoint.cli", "--log-level", "DEBUG", "-c", str(config), *args],
                             capture_output=True, text=True, env=env)
        outputs.append(run.stdout + run.stderr)
        return run

    assert cli("sync").returncode == 0, outputs[-1]
    git_repo.commit({"etc/db.env": new}, "change how db.env is kept")
    cli("diff", "host")
    cli("diff", "host", "-o", "json")
    assert cli("sync", "-o", "json").returncode == 0, outputs[-1]
    assert (live / "db.env").read_text() == f"password: {CANARY2}\n"
    for args in (("audit",), ("audit", "-o", "json"), ("history", "host"), ("status", "-o", "json")):
        cli(*args)
    applies = [e for e in json.loads(cli("audit", "-o", "json").stdout) if e["action"] == "apply"]
    change = applies[0] if applies[0]["subject"] == "change how db.env is kept" else applies[-1]
    content = [f for c in change["details"]["changes"] for f in c["fields"] if f["path"] == "content"]
    assert content and content[0].get("secret") is True, "the change of a once-secret value is a fingerprint"

    # the status API, served from the same state
    sys.path.insert(0, str(toy_site))
    try:
        from setpoint.server.runtime import start_operations
        engine = make_engine(config, load_entrypoints=True)
        ops = start_operations(engine, None)
        try:
            assert ops.address is not None
            base = f"http://{ops.address[0]}:{ops.address[1]}"
            import httpx
            for path in ("/api/v1/targets", "/api/v1/targets/host?limit=50", "/api/v1/plans"):
                outputs.append(httpx.get(base + path, headers={"Authorization": f"Bearer {token}"}).text)
        finally:
            ops.stop()
            engine.close()
    finally:
        sys.path.remove(str(toy_site))

    # the value that was secret must not leak; the plain one may appear only where it is plain
    secret_value = CANARY if secret_first else CANARY2
    assert not [o for o in outputs if secret_value in o], f"{secret_value} printed by the CLI or the API"
    assert not scan([tmp_path / "state"], secret_value), "the once-secret value is in the state DB"
    if secret_first:  # the new clear value is shown only as a fingerprint next to the old secret one
        assert not [o for o in outputs if CANARY2 in o], "the clear side of a secret diff is shown in clear"


def test_thousands_of_known_secrets_are_all_scrubbed_at_a_cost_that_follows_the_text() -> None:
    """A large decrypted file teaches the scrubber thousands of values, and the dashboard scrubs every
    string of a 1,000-row page, then the page. Every known value is still replaced, longest first
    (one inside another goes with it), exactly as a test of each value would; and scrubbing many
    short strings does not cost a search per known value (it took 0.8 s per page with 500)."""
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    values = sorted({"".join(rng.choices(alphabet, k=rng.randint(4, 40))) for _ in range(10_000)}, key=len,
                    reverse=True)
    for value in values:
        Secret(value, "big.enc.yaml")
    long_one = next(v for v in values if len(v) == 40)
    inner = long_one[5:25]
    Secret(inner, "big.enc.yaml")
    fields = [f"target-{n:04d} Developer {n % 17} <dev{n % 17}@example.com> → applied" for n in range(5_000)]
    text = "\n".join([values[-1] + " at the start", *fields[:50], f"({long_one}) and {inner}",
                      f"{CANARY} and the end {values[0]}"])

    def plain_scrub(value: str) -> str:
        for known in sorted([*values, inner, CANARY], key=len, reverse=True):
            value = value.replace(known, "<secret>")
        return value

    Secret(CANARY, "canary")
    scrubbed = scrub(text)
    assert scrubbed == plain_scrub(text)
    assert scrubbed.startswith("<secret> at the start") and "(<secret>) and <secret>" in scrubbed
    assert CANARY not in scrubbed and scrubbed.endswith("the end <secret>")
    started = time.perf_counter()
    assert [scrub(field) for field in fields] == fields
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"5,000 short strings took {elapsed:.2f} s to scrub with 10,000 known values"
