"""Git as the source of desired state: cheap polls, immutable per-commit trees, path-scoped changes.

A poll is one ``git ls-remote`` of the branch; only when the head moved is anything fetched, into
a bare cache repository per source. Each revision a target needs is exported once into
``trees/<sha>`` (read-only files) and shared by every target that uses it. A failed poll keeps the
last good revision: an unreachable remote never means "desired state is empty".
"""

from __future__ import annotations

import io
import logging
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from setpoint.api import REFUSED_LINK_PREFIX, Revision
from setpoint.config import SourceConfig
from setpoint.errors import SourceError
from setpoint.secrets import register_known_values, scrub
from setpoint.source.verify import CommitVerifier, Signer

log = logging.getLogger("setpoint.source")

GIT_TIMEOUT = 120

#: Attributes of the cache repository, which take precedence over any ``.gitattributes`` in the
#: repository: ``git archive`` then exports every committed file byte for byte (no export-ignore,
#: no $Format$ substitution, no end-of-line, ident or filter conversion). What is deployed is the
#: committed tree, exactly.
EXACT_ATTRIBUTES = "* -export-ignore -export-subst -text -ident -filter -working-tree-encoding\n"



@dataclass(frozen=True)
class PollResult:
    head: str
    moved: bool
    forced: bool = False
    previous: str | None = None


#: Commits whose metadata a source keeps in memory (least recently used dropped first).
REVISIONS_KEPT = 1024
#: Heads whose ``last_change`` answers a source keeps in memory (oldest dropped first).
LAST_CHANGE_HEADS = 4


class GitSource:
    """One configured source (URL + branch). Thread-safe: a lock serialises Git operations."""

    def __init__(self, name: str, config: SourceConfig, cache_dir: Path, base_dir: Path = Path(".")) -> None:
        self.name = name
        self.config = config
        self.cache_dir = cache_dir
        self.repo = cache_dir / "git" / f"{name}.git"
        self.trees = cache_dir / "trees" / name
        self.base_dir = base_dir
        self._lock = threading.RLock()
        self._head: str | None = None
        #: The head this process fetched or found in the cache repository: an unchanged poll of it
        #: needs no ``cat-file`` (one process fewer per poll, half of an idle source's cost).
        self._verified: str | None = None
        #: Commit metadata by SHA, least recently used first; bounded so a daemon following a busy
        #: branch for months does not keep every commit it ever saw.
        self._revisions: OrderedDict[str, Revision] = OrderedDict()
        #: ``last_change`` answers per head, oldest head first: only the newest LAST_CHANGE_HEADS heads
        #: are kept, since every target asks about the current head (and at most a few older ones while a
        #: pass that started before a poll finishes).
        self._last_changes: OrderedDict[str, dict[tuple[str, ...], str]] = OrderedDict()
        self.last_error: str | None = None
        self.last_poll_at: float | None = None
        self._env = self._git_env()
        self.verifier = (CommitVerifier(name, config.verify, self.repo, cache_dir / "verify" / name, base_dir, self._env)
                         if config.verify is not None else None)

    # ------------------------------------------------------------------ plumbing

    @property
    def url(self) -> str:
        url = self.config.url
        if "://" not in url and not _is_scp_like(url):
            path = Path(os.path.expanduser(url))
            return str(path if path.is_absolute() else (self.base_dir / path).resolve())
        return url

    def _git_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"})
        creds = self.config.credentials
        if creds is not None:
            if creds.ssh_key_file:
                # Git runs GIT_SSH_COMMAND through a shell: every user-supplied word is quoted.
                words = ["ssh", "-i", str(creds.ssh_key_file), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
                if creds.ssh_known_hosts_file:
                    words += ["-o", f"UserKnownHostsFile={creds.ssh_known_hosts_file}"]
                env["GIT_SSH_COMMAND"] = shlex.join(words)
            password = None
            if creds.password_file:
                password = Path(creds.password_file).read_text().strip()
            elif creds.password_env:
                password = os.environ.get(creds.password_env)
            if password:
                # Handed to git through an askpass helper reading the environment: never on a command line.
                register_known_values([password])
                env["SETPOINT_GIT_PASSWORD"] = password
                env["SETPOINT_GIT_USERNAME"] = creds.username or "git"
                env["GIT_ASKPASS"] = str(_askpass_script(self.cache_dir))
        return env

    def _git(self, *args: str, input: bytes | None = None, check: bool = True, git_dir: bool = True) -> bytes:
        cmd = ["git"] + (["--git-dir", str(self.repo)] if git_dir else []) + list(args)
        try:
            proc = subprocess.run(cmd, input=input, capture_output=True, env=self._env, timeout=GIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SourceError(f"source {self.name}: git {args[0]} timed out after {GIT_TIMEOUT}s") from None
        if check and proc.returncode != 0:
            raise SourceError(f"source {self.name}: git {args[0]} failed: {self._explain(proc.stderr)}"
                              f"{'' if proc.stderr.strip() else f'exit {proc.returncode}'}")
        return proc.stdout

    def _explain(self, stderr: bytes) -> str:
        """The line of git's complaint that says what is wrong (its last line is often generic advice)."""
        lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
        fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
        message = scrub(fatal[0] if fatal else (lines[-1] if lines else ""))
        if "does not appear to be a git repository" in message and "://" not in self.url \
                and not _is_scp_like(self.url):
            where = Path(self.url)
            if not where.exists():
                return f"{self.url} does not exist (check sources.{self.name}.url)"
            return f"{self.url} exists but is not a Git repository (check sources.{self.name}.url)"
        return message

    def _ensure_repo(self) -> None:
        if not (self.repo / "HEAD").exists():
            self._verified = None  # the cache repository was removed: nothing in it is known any more
            self.repo.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", str(self.repo)], check=True, env=self._env)

    # ------------------------------------------------------------------ polling

    @property
    def head(self) -> str | None:
        return self._head

    def poll(self) -> PollResult:
        """Resolve the branch head; fetch only when it moved. Raises SourceError (last head is kept)."""
        with self._lock:
            self._ensure_repo()
            ref = f"refs/heads/{self.config.branch}"
            try:
                out = self._git("ls-remote", "--", self.url, ref, git_dir=False)
            except SourceError as exc:
                self.last_error = str(exc)
                raise
            self.last_poll_at = time.time()
            line = next((row for row in out.decode().splitlines() if row.endswith("\t" + ref)), None)
            if line is None:
                empty = "" if out.strip() else " (the repository has no branches yet: push a first commit)"
                self.last_error = (f"source {self.name}: branch {self.config.branch!r} not found at "
                                   f"{self.config.url}{empty}")
                raise SourceError(self.last_error)
            head = line.split("\t", 1)[0]
            previous = self._head or self._stored_head()
            if head == previous and (head == self._verified or self._has_commit(head)):
                self._head = self._verified = head
                self.last_error = None
                return PollResult(head, moved=False, previous=previous)
            self._git("fetch", "--quiet", "--force", "--no-tags", "--", self.url, f"+{ref}:refs/setpoint/head")
            forced = bool(previous) and self._has_commit(previous or "") and not self._is_ancestor(previous or "", head)
            self._head = self._verified = head
            self.last_error = None
            return PollResult(head, moved=head != previous, forced=forced, previous=previous)

    def last_good_head(self) -> str | None:
        """The head of the last successful poll: this process's, else the one the cache repository
        kept from an earlier run (None if this source was never fetched)."""
        return self._head or self._stored_head()

    def _stored_head(self) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", "refs/setpoint/head").decode().strip() or None
        except SourceError:
            return None

    def _has_commit(self, sha: str) -> bool:
        if not sha:
            return False
        return subprocess.run(["git", "--git-dir", str(self.repo), "cat-file", "-e", f"{sha}^{{commit}}"],
                              capture_output=True, env=self._env).returncode == 0

    def is_ancestor(self, old: str, new: str) -> bool:
        """Whether commit ``old`` is ``new`` or in its history (False if either is unknown here)."""
        return self._has_commit(old) and self._has_commit(new) and self._is_ancestor(old, new)

    def _is_ancestor(self, old: str, new: str) -> bool:
        proc = subprocess.run(["git", "--git-dir", str(self.repo), "merge-base", "--is-ancestor", old, new],
                              capture_output=True, env=self._env)
        return proc.returncode == 0

    def verify(self, head: str, since: str | None) -> Signer | None:
        """The signer of ``head`` when the source has ``verify`` (None without); raises
        :class:`~setpoint.source.verify.VerificationError` when a commit the mode covers is not
        signed by a trusted key (``since``: the head last applied, for ``every-commit``)."""
        if self.verifier is None:
            return None
        with self._lock:
            return self.verifier.verify_range(head, since)

    # ------------------------------------------------------------------ revisions and trees

    def revision(self, sha: str) -> Revision:
        with self._lock:
            if sha in self._revisions:
                self._revisions.move_to_end(sha)
                return self._revisions[sha]
            out = self._git("show", "-s", "--format=%H%x00%an%x00%ae%x00%cn%x00%ct%x00%B", sha)
            full, author, email, committer, stamp, message = out.decode(errors="replace").split("\x00", 5)
            revision = Revision(full.strip(), author, email, committer,
                                datetime.fromtimestamp(int(stamp), UTC), message.strip())
            self._revisions[sha] = revision
            while len(self._revisions) > REVISIONS_KEPT:
                self._revisions.popitem(last=False)
            return revision

    def has_folder(self, sha: str, path: str) -> bool:
        """Whether ``path`` is a folder in the committed tree of ``sha`` (False for an unknown commit)."""
        inner = path.strip("/")
        spec = f"{sha}:{inner}" if inner not in ("", ".") else f"{sha}^{{tree}}"
        proc = subprocess.run(["git", "--git-dir", str(self.repo), "cat-file", "-t", spec],
                              capture_output=True, env=self._env)
        return proc.returncode == 0 and proc.stdout.strip() == b"tree"

    def last_change(self, head: str, paths: Iterable[str]) -> str | None:
        """The newest commit at or before ``head`` that touched any of ``paths`` (None: never touched)."""
        key = tuple(sorted(set(paths)))
        with self._lock:
            answers = self._answers_for(head)
            if key not in answers:
                pathspec = [p if p not in ("", ".") else ":/" for p in key]
                answers[key] = self._git("log", "-1", "--format=%H", head, "--", *pathspec).decode().strip()
            return answers[key] or None

    def _answers_for(self, head: str) -> dict[tuple[str, ...], str]:
        """The ``last_change`` answers of ``head`` (caller holds the lock); drops the oldest heads."""
        answers = self._last_changes.get(head)
        if answers is None:
            answers = self._last_changes[head] = {}
            while len(self._last_changes) > LAST_CHANGE_HEADS:
                self._last_changes.popitem(last=False)
        else:
            self._last_changes.move_to_end(head)
        return answers

    def prime_last_changes(self, head: str, path_sets: Iterable[Iterable[str]]) -> None:
        """Resolve :meth:`last_change` for many targets with one walk of the history.

        One ``git log --name-only`` streams commits newest first; each file name is matched against
        the targets' paths through its parent folders (a dictionary lookup per folder level), and the
        walk stops as soon as every target has its answer. With a thousand targets this replaces a
        thousand ``git log -1 -- PATH`` processes.
        """
        with self._lock:
            answers = self._answers_for(head)
            wanted: dict[str, list[tuple[str, ...]]] = {}
            pending: set[tuple[str, ...]] = set()
            for paths in path_sets:
                key = tuple(sorted(set(paths)))
                if key in answers:
                    continue
                if any(p in ("", ".") for p in key):
                    continue  # the whole repository: the head itself, resolved lazily
                pending.add(key)
                for path in key:
                    wanted.setdefault(path.strip("/"), []).append(key)
            if not pending:
                return
            proc = subprocess.Popen(["git", "--git-dir", str(self.repo), "log", "--format=%x00%H", "--name-only",
                                     "--no-renames", head], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env=self._env)
            assert proc.stdout is not None
            current = ""
            try:
                for raw in proc.stdout:
                    if raw.startswith(b"\0"):
                        current = raw[1:].strip().decode()
                        continue
                    name = raw.rstrip(b"\n").decode(errors="replace")
                    if not name:
                        continue
                    parts = name.split("/")
                    for depth in range(1, len(parts) + 1):
                        for key in wanted.get("/".join(parts[:depth]), ()):
                            if key in pending:
                                answers[key] = current
                                pending.discard(key)
                    if not pending:
                        break
            finally:
                proc.kill()
                proc.wait()
            for key in pending:  # never touched: no commit
                answers[key] = ""

    def changed(self, old: str, new: str, paths: Iterable[str]) -> bool:
        pathspec = [p if p not in ("", ".") else ":/" for p in paths]
        out = self._git("diff", "--name-only", old, new, "--", *pathspec)
        return bool(out.strip())

    def checkout(self, sha: str) -> Path:
        """The whole tree of ``sha``, exported once, read-only, shared by every target."""
        dest = self.trees / sha
        if dest.exists():
            return dest
        with self._lock:
            if dest.exists():
                return dest
            self.trees.mkdir(parents=True, exist_ok=True)
            attributes = self.repo / "info" / "attributes"
            if not attributes.is_file() or attributes.read_text() != EXACT_ATTRIBUTES:
                attributes.parent.mkdir(parents=True, exist_ok=True)
                attributes.write_text(EXACT_ATTRIBUTES)
            # The tree, not the commit: no pax header with the commit id, so an empty tree is an empty archive.
            archive = self._git("archive", "--format=tar", f"{sha}^{{tree}}")
            tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=self.trees))
            try:
                _extract_readonly(archive, tmp)
                tmp.rename(dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return dest

    # ------------------------------------------------------------------ previews (setpoint preview)

    def resolve_ref(self, ref: str) -> str:
        """The commit ``ref`` names: a commit the cache repository already holds (full or abbreviated
        SHA), else a branch, tag or other ref of the remote (``feature``, ``refs/pull/7/merge``),
        fetched into a ref of this call's own under ``refs/setpoint/previews/`` and read back from it.
        Never moves the branch head setpoint deploys.

        The ref is per call because a daemon's webhook previews and an operator's ``setpoint preview``
        share the cache repository from two processes: with one shared ref, the second fetch could land
        between the first's fetch and its read, and the first preview would show the other's commit."""
        if not ref or ref.startswith("-") or any(c.isspace() or c in "~^:?*[\\" for c in ref):
            raise SourceError(f"source {self.name}: {ref!r} is not a commit or ref name")
        with self._lock:
            self._ensure_repo()
            if re.fullmatch(r"[0-9a-fA-F]{7,64}", ref):
                proc = subprocess.run(["git", "--git-dir", str(self.repo), "rev-parse", "--verify", "--quiet",
                                       f"{ref}^{{commit}}"], capture_output=True, env=self._env)
                if proc.returncode == 0:
                    return proc.stdout.decode().strip()
            own = f"refs/setpoint/previews/{os.getpid()}-{uuid.uuid4().hex}"
            try:
                self._git("fetch", "--quiet", "--force", "--no-tags", "--", self.url, f"+{ref}:{own}")
                return self._git("rev-parse", "--verify", f"{own}^{{commit}}").decode().strip()
            finally:
                # an unnamed commit is only pruned after git's expiry (two weeks), long after this preview
                self._git("update-ref", "-d", own, check=False)

    def merge_base(self, a: str, b: str) -> str | None:
        proc = subprocess.run(["git", "--git-dir", str(self.repo), "merge-base", a, b], capture_output=True,
                              env=self._env)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    # ------------------------------------------------------------------ read-only questions (setpoint wait)

    def remote_head(self) -> str:
        """The branch head on the remote right now, without fetching anything (raises SourceError)."""
        ref = f"refs/heads/{self.config.branch}"
        out = self._git("ls-remote", "--", self.url, ref, git_dir=False)
        line = next((row for row in out.decode().splitlines() if row.endswith("\t" + ref)), None)
        if line is None:
            raise SourceError(f"source {self.name}: branch {self.config.branch!r} not found at {self.config.url}")
        return line.split("\t", 1)[0]

    def includes(self, head: str, sha: str) -> bool:
        """Whether commit ``sha`` (full or abbreviated) is ``head`` or one of its ancestors, as far as
        the cache repository knows (a commit it never fetched: False)."""
        if not (self.repo / "HEAD").exists():
            return False
        return self._has_commit(sha) and self._is_ancestor(sha, head)

    def exported_trees(self) -> list[str]:
        """The commits whose trees are exported on disk."""
        if not self.trees.exists():
            return []
        return sorted(entry.name for entry in self.trees.iterdir() if not entry.name.startswith("."))

    def prune_trees(self, keep: Iterable[str]) -> int:
        """Remove exported trees no target needs any more; returns how many were removed."""
        keep_set = set(keep)
        removed = 0
        if not self.trees.exists():
            return 0
        with self._lock:
            for entry in self.trees.iterdir():
                if entry.name not in keep_set and not entry.name.startswith("."):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed


def _extract_readonly(archive: bytes, dest: Path) -> None:
    """Write the tar of ``git archive`` into ``dest``, files read-only.

    ``TarFile.extractall(filter="data")`` took 2-3 ms per file (a realpath of every member, then
    owner, times and mode set one call at a time, then a second walk to drop write bits): 27 s for
    a 10,000-file repository on a loaded 2-core machine, most of a 1000-target first pass. Here each
    file is one open/write/close, created with its final mode. The "data" filter's rules are kept:
    no absolute or ``..`` names; a symlink that is absolute or resolves outside ``dest`` is written
    as a link that never resolves, refused by the targets that contain it.
    """
    root = os.path.realpath(dest)
    made: set[Path] = {dest}
    if not archive.strip(b"\0"):
        return  # a commit with an empty tree: git archive writes only the end-of-archive blocks
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not parts or member.name.startswith("/") or ".." in parts:
                raise tarfile.OutsideDestinationError(member, os.path.join(root, member.name))
            path = dest.joinpath(*parts)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                made.add(path)
                continue
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            if member.issym():
                resolved = os.path.realpath(os.path.join(root, *parts[:-1], member.linkname))
                if os.path.isabs(member.linkname) or os.path.commonpath([resolved, root]) != root:
                    # Refused, but only for the targets whose path holds it (see REFUSED_LINK_PREFIX).
                    os.symlink(REFUSED_LINK_PREFIX + member.linkname, path)
                else:
                    os.symlink(member.linkname, path)
            elif member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                mode = 0o555 if member.mode & 0o111 else 0o444
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                with os.fdopen(fd, "wb") as handle:
                    shutil.copyfileobj(source, handle)
            # git archive writes nothing else (no hard links, devices or FIFOs); skip anything that is


def _is_scp_like(url: str) -> bool:
    # git@host:path (but not C:\path)
    head = url.split("/", 1)[0]
    return "@" in head and ":" in head


def _askpass_script(cache_dir: Path) -> Path:
    path = cache_dir / "git-askpass.sh"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        path.write_text('#!/bin/sh\ncase "$1" in Username*) echo "$SETPOINT_GIT_USERNAME";; *) echo "$SETPOINT_GIT_PASSWORD";; esac\n')
        path.chmod(0o700)
    return path
