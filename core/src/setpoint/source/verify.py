"""Commit signature verification: only commits signed by a trusted key are applied.

The reference verifiers do the cryptography: ``git verify-commit --raw`` runs ``gpg`` against a
private keyring built from the configured key files (never the user's keyring), and, for SSH
signatures, ``ssh-keygen -Y verify`` with the configured ``allowed_signers`` file. This module only
decides what their answers mean:

* GPG: a ``GOODSIG`` with a ``VALIDSIG`` whose primary key is one of the configured keys; any
  ``BADSIG``, ``ERRSIG``, ``EXPKEYSIG``, ``EXPSIG`` or ``REVKEYSIG`` refuses the commit. The keyring's
  trust model is "always": being in the configured files *is* the trust decision.
* SSH: git's "Good ... signature for PRINCIPAL" line with exit status 0 (the key was found in the
  allowed signers file under that principal).

The key files are re-read when their content changes (checked at every verification, a stat and,
on a change, a hash), so rotating a key needs no restart; results are cached per commit and the
cache is dropped with the keyring.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.config import VerifyConfig
from setpoint.errors import SetpointError

log = logging.getLogger("setpoint.source.verify")

VERIFY_TIMEOUT = 60
#: Status lines of gpg that refuse a signature whatever else it printed.
_REFUSING = {
    "BADSIG": "the signature does not match the commit (tampered with after signing)",
    "EXPKEYSIG": "the signing key has expired",
    "EXPSIG": "the signature has expired",
    "REVKEYSIG": "the signing key has been revoked",
    "ERRSIG": "the signature could not be checked (unknown key or unsupported algorithm)",
}
_SSH_GOOD = re.compile(r'Good "git" signature for (?P<principal>.+?) with (?P<algo>\S+) key (?P<fpr>\S+)')


class VerificationError(SetpointError):
    """A commit to apply is not signed by a trusted key; nothing of it is applied."""

    def __init__(self, source: str, sha: str, reason: str) -> None:
        super().__init__(f"source {source}: commit {sha[:12]} is not verified: {reason}; nothing is applied "
                         "(sign it with a trusted key, or add the signer's key to the source's verify keys)")
        self.sha = sha
        self.reason = reason


@dataclass(frozen=True)
class Signer:
    """Who vouched for a commit: the key that signed it, not the author the commit claims."""

    sha: str
    format: str  # "gpg" or "ssh"
    fingerprint: str
    identity: str
    author_email: str
    author_matches: bool

    def to_record(self) -> dict[str, Any]:
        return {"commit": self.sha, "format": self.format, "fingerprint": self.fingerprint,
                "identity": self.identity, "author_email": self.author_email,
                "author_matches_signer": self.author_matches}


@dataclass
class _Keyring:
    digest: str
    gnupghome: Path | None
    #: every fingerprint (primary and subkeys) of the configured GPG keys -> (primary, identities)
    gpg_keys: dict[str, tuple[str, tuple[str, ...]]]
    allowed_signers: Path | None


class CommitVerifier:
    """Verifies commits of one source's cache repository. Thread-safe."""

    def __init__(self, source: str, config: VerifyConfig, git_dir: Path, work_dir: Path, base_dir: Path,
                 env: Mapping[str, str]) -> None:
        self.source = source
        self.config = config
        self.git_dir = git_dir
        self.work_dir = work_dir
        self.base_dir = base_dir
        # the user's ~/.gitconfig has no say in what is trusted (gpg.program, allowed signers, trust level)
        self.env = {**env, "GIT_CONFIG_GLOBAL": os.devnull}
        self._lock = threading.RLock()
        self._keyring: _Keyring | None = None
        self._stat: tuple[Any, ...] | None = None
        self._results: dict[str, Signer | VerificationError] = {}

    # ------------------------------------------------------------------ public

    def verify_range(self, head: str, since: str | None) -> Signer:
        """Verify what ``mode`` asks for and return the head's signer (raises VerificationError).

        ``every-commit``: every commit reachable from ``head`` and not from ``since`` (the head last
        applied), merges and their second parents included. Without a usable ``since`` (nothing
        applied yet, or it left the history in a force-push) only the head is checked: the history
        before a source adopted signing is usually unsigned (docs/git-safety.md)."""
        with self._lock:
            if self.config.mode == "every-commit" and since and since != head and self._known(since):
                commits = self._git("rev-list", "--topo-order", "--reverse", head, f"^{since}").split()
                for sha in commits:
                    self.verify(sha)
            return self.verify(head)

    def verify(self, sha: str) -> Signer:
        with self._lock:
            self._refresh_keys()
            cached = self._results.get(sha)
            if cached is None:
                try:
                    cached = self._check(sha)
                except VerificationError as exc:
                    cached = exc
                if len(self._results) > 10000:
                    self._results.clear()
                self._results[sha] = cached
            if isinstance(cached, VerificationError):
                raise cached
            return cached

    def close(self) -> None:
        if self._keyring and self._keyring.gnupghome:
            shutil.rmtree(self._keyring.gnupghome, ignore_errors=True)

    # ------------------------------------------------------------------ keys

    def _key_files(self) -> list[Path]:
        files = [self._resolve(p) for p in self.config.gpg_keys]
        if self.config.ssh_allowed_signers is not None:
            files.append(self._resolve(self.config.ssh_allowed_signers))
        return files

    def _resolve(self, path: Path) -> Path:
        path = Path(os.path.expanduser(str(path)))
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def _refresh_keys(self) -> None:
        """Rebuild the keyring when a key file changed (stat first; the hash decides)."""
        files = self._key_files()
        try:
            stat = tuple((str(f), st.st_mtime_ns, st.st_size, st.st_ino) for f in files for st in [f.stat()])
        except OSError as exc:
            self._drop_keyring()
            raise VerificationError(self.source, "-" * 12, f"a key file cannot be read ({exc.strerror}: "
                                    f"{exc.filename}); check sources.{self.source}.verify") from None
        if stat == self._stat and self._keyring is not None:
            return
        digest = hashlib.sha256(b"".join(str(f).encode() + b"\0" + f.read_bytes() for f in files)).hexdigest()
        self._stat = stat
        if self._keyring is not None and self._keyring.digest == digest:
            return
        self._drop_keyring()
        self._keyring = self._build_keyring(digest)
        log.info("source %s: verification keys (re)loaded: %d GPG key(s)%s", self.source,
                     len({p for p, _ in self._keyring.gpg_keys.values()}),
                     ", SSH allowed signers" if self._keyring.allowed_signers else "")

    def _drop_keyring(self) -> None:
        self.close()
        self._keyring = None
        self._results.clear()  # a revoked or removed key must not keep vouching through the cache

    def _build_keyring(self, digest: str) -> _Keyring:
        home = None
        keys: dict[str, tuple[str, tuple[str, ...]]] = {}
        if self.config.gpg_keys:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            home = Path(tempfile.mkdtemp(prefix="gnupg-", dir=self.work_dir))
            home.chmod(0o700)
            (home / "gpg.conf").write_text("trust-model always\nno-autostart\n")
            files = [str(self._resolve(p)) for p in self.config.gpg_keys]
            if shutil.which("gpg") is None:
                shutil.rmtree(home, ignore_errors=True)
                raise VerificationError(self.source, "-" * 12, "gpg is not installed, so no GPG signature can be "
                                        "checked (install gnupg)")
            proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", "--import", *files],
                                  capture_output=True, timeout=VERIFY_TIMEOUT)
            listing = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--fingerprint",
                                      "--fingerprint", "--list-keys"], capture_output=True, timeout=VERIFY_TIMEOUT)
            keys = _parse_key_listing(listing.stdout.decode(errors="replace"))
            if not keys:
                shutil.rmtree(home, ignore_errors=True)
                why = proc.stderr.decode(errors="replace").strip().splitlines()
                raise VerificationError(self.source, "-" * 12, "no OpenPGP public key could be read from "
                                        f"{', '.join(files)}{': ' + why[-1] if why else ''}")
        signers = self._resolve(self.config.ssh_allowed_signers) if self.config.ssh_allowed_signers else None
        return _Keyring(digest, home, keys, signers)

    # ------------------------------------------------------------------ one commit

    def _known(self, sha: str) -> bool:
        return subprocess.run(["git", "--git-dir", str(self.git_dir), "cat-file", "-e", f"{sha}^{{commit}}"],
                              capture_output=True, env=self.env).returncode == 0

    def _git(self, *args: str) -> str:
        proc = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], capture_output=True, env=self.env,
                              timeout=VERIFY_TIMEOUT)
        if proc.returncode != 0:
            raise VerificationError(self.source, args[-1] if args else "", f"git {args[0]} failed: "
                                    f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode(errors="replace")

    def _check(self, sha: str) -> Signer:
        keyring = self._keyring
        assert keyring is not None
        header = self._git("cat-file", "commit", sha).split("\n\n", 1)[0]
        author = re.search(r"^author .*<([^>]*)>", header, re.M)
        author_email = author.group(1) if author else ""
        signature = re.search(r"^gpgsig(?:-sha256)? (.*)$", header, re.M)
        if signature is None:
            raise VerificationError(self.source, sha, "the commit is not signed")
        fmt = "ssh" if "BEGIN SSH SIGNATURE" in signature.group(1) else "gpg"
        if fmt == "gpg" and keyring.gnupghome is None:
            raise VerificationError(self.source, sha, "it has a GPG signature but the source trusts no GPG keys "
                                    "(verify.gpg_keys)")
        if fmt == "ssh" and keyring.allowed_signers is None:
            raise VerificationError(self.source, sha, "it has an SSH signature but the source has no "
                                    "verify.ssh_allowed_signers file")
        env = dict(self.env)
        if keyring.gnupghome is not None:
            env["GNUPGHOME"] = str(keyring.gnupghome)
        args = ["git", "--git-dir", str(self.git_dir), "-c", "gpg.program=gpg", "-c", "gpg.minTrustLevel=undefined"]
        if keyring.allowed_signers is not None:
            args += ["-c", f"gpg.ssh.allowedSignersFile={keyring.allowed_signers}", "-c", "gpg.ssh.program=ssh-keygen"]
        proc = subprocess.run([*args, "verify-commit", "--raw", sha], capture_output=True, env=env,
                              timeout=VERIFY_TIMEOUT)
        output = proc.stderr.decode(errors="replace")
        signer = self._gpg_signer(sha, output, keyring) if fmt == "gpg" else self._ssh_signer(sha, output, proc)
        matches = _author_matches(author_email, signer[1])
        result = Signer(sha, fmt, signer[0], signer[1][0] if signer[1] else "", author_email, matches)
        if not matches:
            if self.config.require_author_match:
                raise VerificationError(self.source, sha, f"the author email {author_email!r} is not an identity "
                                        f"of the key that signed it ({result.identity}); require_author_match is on")
            log.warning("source %s: commit %s is signed by %s but claims the author %s", self.source, sha[:12],
                        result.identity, author_email)
        return result

    def _gpg_signer(self, sha: str, output: str, keyring: _Keyring) -> tuple[str, tuple[str, ...]]:
        status: dict[str, list[str]] = {}
        for line in output.splitlines():
            if line.startswith("[GNUPG:] "):
                word, _, rest = line[9:].partition(" ")
                status.setdefault(word, []).append(rest)
        for word, reason in _REFUSING.items():
            if word in status:
                if word == "ERRSIG" and "NO_PUBKEY" in status:
                    reason = "it is signed by a key the source does not trust"
                raise VerificationError(self.source, sha, reason)
        if "NO_PUBKEY" in status:
            raise VerificationError(self.source, sha, "it is signed by a key the source does not trust")
        if "GOODSIG" not in status or "VALIDSIG" not in status:
            raise VerificationError(self.source, sha, "gpg did not confirm the signature")
        fields = status["VALIDSIG"][0].split()
        primary = fields[-1] if len(fields) >= 10 else fields[0]
        known = keyring.gpg_keys.get(primary) or keyring.gpg_keys.get(fields[0])
        if known is None:
            raise VerificationError(self.source, sha, f"it is signed by key {primary}, which the source does not trust")
        return known

    def _ssh_signer(self, sha: str, output: str, proc: subprocess.CompletedProcess[bytes]) -> tuple[str, tuple[str, ...]]:
        good = _SSH_GOOD.search(output)
        if proc.returncode == 0 and good:
            return good.group("fpr"), (good.group("principal"),)
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if "No principal matched" in output:  # the key is not in the allowed signers file
            raise VerificationError(self.source, sha, "it is signed by an SSH key that is not in the allowed "
                                    "signers file")
        if "incorrect signature" in output or "verification failed" in output:
            raise VerificationError(self.source, sha, "the signature does not match the commit (tampered with "
                                    "after signing)")
        raise VerificationError(self.source, sha, f"ssh-keygen refused the signature: {lines[-1] if lines else ''}")


def _parse_key_listing(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``gpg --with-colons`` output -> {fingerprint of key or subkey: (primary fingerprint, uids)}."""
    keys: dict[str, tuple[str, tuple[str, ...]]] = {}
    primary: str | None = None
    uids: list[str] = []
    members: list[str] = []
    expecting = ""

    def flush() -> None:
        if primary:
            for fpr in members:
                keys[fpr] = (primary, tuple(uids))

    for line in text.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind == "pub":
            flush()
            primary, uids, members, expecting = None, [], [], "pub"
        elif kind == "sub":
            expecting = "sub"
        elif kind == "fpr" and len(fields) > 9:
            if expecting == "pub":
                primary = fields[9]
            members.append(fields[9])
            expecting = ""
        elif kind == "uid" and len(fields) > 9:
            uids.append(fields[9])
    flush()
    return keys


def _author_matches(email: str, identities: tuple[str, ...]) -> bool:
    """Whether the commit's author email is one of the signing key's identities (a GPG uid
    ``Name <email>`` or an SSH principal)."""
    wanted = email.strip().lower()
    for identity in identities:
        found = re.search(r"<([^>]*)>", identity)
        candidate = (found.group(1) if found else identity).strip().lower()
        if wanted and candidate == wanted:
            return True
    return False
