"""Signed commits (issue 22 item 1): only commits signed by a trusted key are applied.

Real ``gpg`` and ``ssh-keygen`` sign and verify; only the target is the fake one (what matters here
is whether the engine lets a revision through, not how a driver applies it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from setpoint.api import Health, HealthStatus, Outcome, Revision, SyncStatus, TargetInfo
from setpoint.builtin.notify.policy import NoisePolicy
from setpoint.testing import FakePlugin, GitRepo, make_engine, write_config

from helpers import resources_yaml, web
from service_fixtures import service_unavailable


@pytest.fixture(autouse=True, scope="module")
def _tools() -> None:
    """gpg comes with the sops service (apt gnupg), ssh-keygen with the docker-hosts service
    (openssh-client): missing, the tests skip locally and fail under CI=true."""
    for tool, service in (("gpg", "sops"), ("ssh-keygen", "docker_hosts")):
        if shutil.which(tool) is None:
            service_unavailable(service, f"{tool} is not installed")


@dataclass
class GpgKey:
    home: Path
    fingerprint: str
    public: Path
    faked_time: str | None = None


def _gpg(home: Path, *args: str, faked_time: str | None = None, input: bytes | None = None) -> str:
    extra = ["--faked-system-time", faked_time] if faked_time else []
    proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                           "--passphrase", "", *extra, *args], capture_output=True, input=input)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def _make_gpg_key(base: Path, name: str, uid: str, expire: str = "never", faked_time: str | None = None) -> GpgKey:
    home = base / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    _gpg(home, "--quick-gen-key", uid, "ed25519", "sign", expire, faked_time=faked_time)
    listing = _gpg(home, "--with-colons", "--list-keys")
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    public = base / f"{name}.asc"
    public.write_text(_gpg(home, "--armor", "--export", fingerprint))
    return GpgKey(home, fingerprint, public, faked_time)


@dataclass
class Keys:
    alice: GpgKey
    bob: GpgKey
    mallory: GpgKey
    expired: GpgKey
    revoked: GpgKey
    ssh_key: Path
    ssh_unknown: Path
    allowed_signers: Path
    gpg_wrapper: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    base = tmp_path_factory.mktemp("keys")
    alice = _make_gpg_key(base, "alice", "Alice <dev@example.com>")
    bob = _make_gpg_key(base, "bob", "Bob <bob@example.com>")
    mallory = _make_gpg_key(base, "mallory", "Mallory <dev@example.com>")  # claims the same email: unknown key
    # made and used in 2020, valid for one day: its signature predates the expiry, the key is expired now
    expired = _make_gpg_key(base, "expired", "Old <dev@example.com>", "1d", faked_time="20200101T000000")
    revoked = _make_gpg_key(base, "revoked", "Gone <dev@example.com>")
    # the published key carries its revocation; the signer's own keyring does not (it signs, then it is revoked)
    scratch = base / "gnupg-revoking"
    scratch.mkdir(mode=0o700)
    certificate = (revoked.home / "openpgp-revocs.d" / f"{revoked.fingerprint}.rev").read_text()
    _gpg(scratch, "--import", str(revoked.public))
    _gpg(scratch, "--import", input=certificate.replace(":-----BEGIN", "-----BEGIN").encode())
    revoked.public.write_text(_gpg(scratch, "--armor", "--export", revoked.fingerprint))
    wrapper = base / "gpg-wrapper"
    wrapper.write_text('#!/bin/sh\nexec gpg ${FAKED_TIME:+--faked-system-time "$FAKED_TIME"} '
                       '--pinentry-mode loopback --passphrase "" "$@"\n')
    wrapper.chmod(0o755)
    ssh_key, ssh_unknown = base / "id_dev", base / "id_unknown"
    for path in (ssh_key, ssh_unknown):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    allowed = base / "allowed_signers"
    allowed.write_text(f"dev@example.com {ssh_key.with_suffix('.pub').read_text().strip()}\n")
    yield Keys(alice, bob, mallory, expired, revoked, ssh_key, ssh_unknown, allowed, wrapper)
    for home in base.glob("gnupg-*"):  # the signers' agents, started by key generation and signing
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)


def git_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(extra)
    return env


def gpg_commit(repo: GitRepo, keys: Keys, key: GpgKey, files: dict[str, Any], message: str = "signed",
               author: str = "Dev <dev@example.com>") -> str:
    repo.write(files)
    env = git_env(GNUPGHOME=str(key.home), FAKED_TIME=key.faked_time or "")
    if key.faked_time:  # commit and signature dated inside the key's lifetime
        env.update(GIT_AUTHOR_DATE="2020-01-01T06:00:00Z", GIT_COMMITTER_DATE="2020-01-01T06:00:00Z")
    subprocess.run(["git", "-C", str(repo.path), "add", "-A"], check=True, env=env)
    proc = subprocess.run(["git", "-C", str(repo.path), "-c", f"gpg.program={keys.gpg_wrapper}", "-c",
                           f"user.signingkey={key.fingerprint}", "commit", "--quiet", "--allow-empty", "-S", "-m",
                           message, "--author", author], env=env, capture_output=True)
    assert proc.returncode == 0, f"signing commit failed: {proc.stderr.decode()}"  # gpg says why on stderr
    return repo.head()


def ssh_commit(repo: GitRepo, key: Path, files: dict[str, Any], message: str = "ssh-signed") -> str:
    repo.write(files)
    repo.git("add", "-A")
    repo.git("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "--quiet", "--allow-empty", "-S",
             "-m", message)
    return repo.head()


def tamper(repo: GitRepo, sha: str) -> str:
    """Rewrite the commit's message keeping its signature (what a forger with push access can do)
    and point the branch at the result."""
    body = repo.git("cat-file", "commit", sha) + "\n"
    forged = body.replace("\n\nsigned\n", "\n\nsigned (really)\n")
    assert forged != body
    proc = subprocess.run(["git", "-C", str(repo.path), "hash-object", "-t", "commit", "-w", "--stdin"],
                          input=forged.encode(), capture_output=True, check=True, env=git_env())
    new = proc.stdout.decode().strip()
    repo.git("update-ref", "refs/heads/main", new)
    return new


def engine_for(tmp_path: Path, repo: GitRepo, plugin: FakePlugin, verify: dict[str, Any]) -> Any:
    path = write_config(tmp_path, repo.path, [{"name": "app", "kind": "fake", "path": "app"}])
    config = yaml.safe_load(path.read_text())
    config["sources"]["repo"]["verify"] = verify
    path.write_text(yaml.safe_dump(config))
    return make_engine(path, plugin)


def replicas(plugin: FakePlugin) -> Any:
    return plugin.cluster("app").resources.get("Deployment/web", {}).get("replicas")


def applied_signers(engine: Any) -> list[dict[str, Any]]:
    return [e.details["signer"] for e in engine.store.audit_entries(target="app", actions=("apply",))
            if "signer" in e.details]


def refused(engine: Any, sha: str, reason: str) -> None:
    outcome = engine.reconcile("app")
    status = engine.store.status("app")
    assert outcome.error_stage == "verify", outcome.error
    assert sha[:12] in status.last_error and reason in status.last_error, status.last_error
    assert status.applied_revision != sha


# ---------------------------------------------------------------------------- GPG


def test_trusted_gpg_signature_is_applied_and_its_signer_audited(tmp_path: Path, git_repo: GitRepo,
                                                                  fake_plugin: FakePlugin, keys: Keys) -> None:
    sha = gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(2))})
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"gpg_keys": [str(keys.alice.public)]})
    outcome = engine.reconcile("app")
    assert outcome.error is None and outcome.sync == SyncStatus.SYNCED and replicas(fake_plugin) == 2
    [signer] = applied_signers(engine)
    assert signer == {"commit": sha, "format": "gpg", "fingerprint": keys.alice.fingerprint,
                      "identity": "Alice <dev@example.com>", "author_email": "dev@example.com",
                      "author_matches_signer": True}
    engine.close()


@pytest.mark.parametrize("case", ["unsigned", "unknown-key", "tampered", "expired-key", "revoked-key"])
def test_unverified_head_is_never_applied(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin,
                                          keys: Keys, case: str) -> None:
    trusted = [str(keys.alice.public), str(keys.expired.public), str(keys.revoked.public)]
    gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(2))})
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"gpg_keys": trusted})
    assert engine.reconcile("app").error is None and replicas(fake_plugin) == 2
    change = {"app/web.yaml": resources_yaml(web(5))}
    if case == "unsigned":
        sha, reason = git_repo.commit(change), "the commit is not signed"
    elif case == "unknown-key":
        sha, reason = gpg_commit(git_repo, keys, keys.mallory, change), "a key the source does not trust"
    elif case == "tampered":
        sha, reason = tamper(git_repo, gpg_commit(git_repo, keys, keys.alice, change)), "tampered"
    elif case == "expired-key":
        sha, reason = gpg_commit(git_repo, keys, keys.expired, change), "the signing key has expired"
    else:
        sha, reason = gpg_commit(git_repo, keys, keys.revoked, change), "the signing key has been revoked"
    refused(engine, sha, reason)
    # the target keeps the last good state, also on the next pass
    assert replicas(fake_plugin) == 2
    refused(engine, sha, reason)
    assert replicas(fake_plugin) == 2 and len(applied_signers(engine)) == 1
    assert engine.store.status("app").sync != SyncStatus.SYNCED
    engine.close()


def test_forged_author_records_the_keys_identity(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin,
                                                 keys: Keys) -> None:
    """A trusted key vouches for a commit whatever author it names (a maintainer signing a
    contributor's commit); the audit names the key's identity and that the author did not match.
    ``require_author_match`` refuses such a commit instead."""
    sha = gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(3))},
                     author="The CEO <ceo@example.com>")
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"gpg_keys": [str(keys.alice.public)]})
    assert engine.reconcile("app").error is None and replicas(fake_plugin) == 3
    [signer] = applied_signers(engine)
    assert signer["identity"] == "Alice <dev@example.com>" and signer["author_email"] == "ceo@example.com"
    assert signer["author_matches_signer"] is False and signer["commit"] == sha
    engine.close()
    strict_dir = tmp_path / "strict"
    strict_dir.mkdir()
    strict = FakePlugin()
    engine = engine_for(strict_dir, git_repo, strict, {"gpg_keys": [str(keys.alice.public)],
                                                       "require_author_match": True})
    refused(engine, sha, "is not an identity of the key")
    assert replicas(strict) is None
    engine.close()


def test_every_commit_catches_an_unsigned_commit_under_a_signed_merge(tmp_path: Path, git_repo: GitRepo,
                                                                      fake_plugin: FakePlugin, keys: Keys) -> None:
    gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(2))})
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"mode": "every-commit",
                                                          "gpg_keys": [str(keys.alice.public)]})
    assert engine.reconcile("app").error is None
    git_repo.git("checkout", "--quiet", "-b", "feature")
    sneaky = git_repo.commit({"app/web.yaml": resources_yaml(web(7))}, message="unsigned")
    git_repo.git("checkout", "--quiet", "main")
    gpg_commit(git_repo, keys, keys.alice, {"README": "signed work on main"})
    env = git_env(GNUPGHOME=str(keys.alice.home))
    subprocess.run(["git", "-C", str(git_repo.path), "-c", f"gpg.program={keys.gpg_wrapper}", "-c",
                    f"user.signingkey={keys.alice.fingerprint}", "merge", "--quiet", "--no-ff", "-S", "-m",
                    "signed merge", "feature"], check=True, env=env, capture_output=True)
    merge = git_repo.head()
    assert merge != sneaky
    # mode head would let it through: the merge itself carries a good signature
    (tmp_path / "head-only").mkdir()
    head_only = engine_for(tmp_path / "head-only", git_repo, FakePlugin(), {"gpg_keys": [str(keys.alice.public)]})
    assert head_only.reconcile("app").error is None, "mode head checks the merge only"
    head_only.close()
    outcome = engine.reconcile("app")
    assert outcome.error_stage == "verify" and sneaky[:12] in (outcome.error or "")
    assert "not signed" in (outcome.error or "") and replicas(fake_plugin) == 2
    engine.close()


def test_keys_rotate_without_a_restart(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin,
                                       keys: Keys) -> None:
    trusted = tmp_path / "trusted.asc"
    trusted.write_text(keys.alice.public.read_text())
    gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(2))})
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"gpg_keys": [str(trusted)]})
    assert engine.reconcile("app").error is None
    by_bob = gpg_commit(git_repo, keys, keys.bob, {"app/web.yaml": resources_yaml(web(4))})
    refused(engine, by_bob, "does not trust")
    # bob's key is added to the file: the same engine applies his commit
    trusted.write_text(keys.alice.public.read_text() + keys.bob.public.read_text())
    assert engine.reconcile("app").error is None and replicas(fake_plugin) == 4
    assert applied_signers(engine)[-1]["fingerprint"] == keys.bob.fingerprint
    # and removed again: his next commit is refused
    trusted.write_text(keys.alice.public.read_text())
    again = gpg_commit(git_repo, keys, keys.bob, {"app/web.yaml": resources_yaml(web(6))})
    refused(engine, again, "does not trust")
    assert replicas(fake_plugin) == 4
    engine.close()


def test_an_unreadable_key_file_refuses_everything(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin,
                                                   keys: Keys) -> None:
    gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(2))})
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"gpg_keys": [str(tmp_path / "missing.asc")]})
    outcome = engine.reconcile("app")
    assert outcome.error_stage == "verify" and "missing.asc" in (outcome.error or "") and replicas(fake_plugin) is None
    engine.close()


# ---------------------------------------------------------------------------- SSH


def test_ssh_signatures(tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin, keys: Keys) -> None:
    sha = ssh_commit(git_repo, keys.ssh_key, {"app/web.yaml": resources_yaml(web(2))})
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"ssh_allowed_signers": str(keys.allowed_signers)})
    assert engine.reconcile("app").error is None and replicas(fake_plugin) == 2
    [signer] = applied_signers(engine)
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(keys.ssh_key.with_suffix(".pub"))],
                                 capture_output=True, text=True, check=True).stdout.split()[1]
    assert signer["format"] == "ssh" and signer["identity"] == "dev@example.com" and signer["commit"] == sha
    assert signer["fingerprint"] == fingerprint and signer["author_matches_signer"] is True
    unknown = ssh_commit(git_repo, keys.ssh_unknown, {"app/web.yaml": resources_yaml(web(5))})
    refused(engine, unknown, "not in the allowed signers")
    unsigned = git_repo.commit({"app/web.yaml": resources_yaml(web(6))})
    refused(engine, unsigned, "not signed")
    git_repo.reset_hard(sha)
    forged = tamper(git_repo, ssh_commit(git_repo, keys.ssh_key, {"app/web.yaml": resources_yaml(web(8))},
                                          message="signed"))
    refused(engine, forged, "tampered")
    # a GPG-signed commit on an SSH-only source names what is missing
    gpg_signed = gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(9))})
    refused(engine, gpg_signed, "trusts no GPG keys")
    assert replicas(fake_plugin) == 2
    engine.close()


# ---------------------------------------------------------------------------- notifications


def test_a_refused_commit_alerts_once() -> None:
    policy = NoisePolicy(threshold=3)
    info = TargetInfo("app", "fake", "repo", "app")
    failed = Outcome(target=info, trigger="poll", revision=Revision("a" * 40), sync=SyncStatus.OUT_OF_SYNC,
                     health=Health(HealthStatus.HEALTHY).status, error_stage="verify",
                     error="source repo: commit aaaaaaaaaaaa is not verified: the commit is not signed")
    first = policy.outcome(failed)
    assert [n.event for n in first] == ["failed"] and "not signed" in first[0].text
    assert policy.outcome(failed) == [] and policy.outcome(failed) == []


# ---------------------------------------------------------------------------- drift while a head is refused


@pytest.mark.parametrize("signing", ["gpg", "ssh"])
def test_drift_is_repaired_at_the_last_verified_revision_while_the_head_is_refused(
        tmp_path: Path, git_repo: GitRepo, fake_plugin: FakePlugin, keys: Keys, signing: str) -> None:
    """Review gap 4: a refused head keeps the target at the last good state, and that state is still
    defended: drift is reverted to the last verified, applied revision (never to the refused one)."""
    if signing == "gpg":
        good = gpg_commit(git_repo, keys, keys.alice, {"app/web.yaml": resources_yaml(web(2))})
        verify: dict[str, Any] = {"gpg_keys": [str(keys.alice.public)]}
    else:
        good = ssh_commit(git_repo, keys.ssh_key, {"app/web.yaml": resources_yaml(web(2))})
        verify = {"ssh_allowed_signers": str(keys.allowed_signers)}
    engine = engine_for(tmp_path, git_repo, fake_plugin, {"mode": "every-commit", **verify})
    assert engine.reconcile("app").error is None and replicas(fake_plugin) == 2
    unsigned = git_repo.commit({"app/web.yaml": resources_yaml(web(5))}, message="unsigned")
    refused(engine, unsigned, "not signed")
    assert replicas(fake_plugin) == 2

    fake_plugin.cluster("app").resources["Deployment/web"]["replicas"] = 9  # someone edits the live object
    outcome = engine.reconcile("app")
    # reverted to the last good revision, not to the refused one, and still reported as refused
    assert replicas(fake_plugin) == 2
    assert outcome.error_stage == "verify" and unsigned[:12] in (outcome.error or "")
    assert outcome.revision is not None and outcome.revision.sha == unsigned
    [revert] = engine.store.audit_entries(target="app", actions=("revert-drift",))
    assert revert.revision == good and revert.details["signer"]["commit"] == good
    status = engine.store.status("app")
    assert status.applied_revision == good and status.applied_head == good and status.head == unsigned
    assert status.error_stage == "verify" and status.sync == SyncStatus.OUT_OF_SYNC
    assert len(applied_signers(engine)) == 1  # the refused commit was never applied

    # the last good revision is verified again: once its key is no longer trusted, nothing is reverted
    if signing == "gpg":
        untrusted = tmp_path / "nobody.asc"
        untrusted.write_text(keys.bob.public.read_text())
        engine.close()
        (tmp_path / "again").mkdir()
        engine = engine_for(tmp_path / "again", git_repo, fake_plugin, {"gpg_keys": [str(untrusted)]})
        engine.store.save_status(status)  # the same history: the good head was applied
        fake_plugin.cluster("app").resources["Deployment/web"]["replicas"] = 9
        outcome = engine.reconcile("app")
        assert outcome.error_stage == "verify" and replicas(fake_plugin) == 9
    engine.close()
