"""Git repositories for the benchmarks, made fast.

``git fast-import`` writes 10,000 commits in about a second, where 10,000 ``git commit`` runs
would take minutes: the poll benchmark needs a long history, not a realistic way of making one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from setpoint.testing import GitRepo

GIT_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=GIT_ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def bare_with_history(path: Path, commits: int, files: int = 50) -> Path:
    """A bare repository whose ``main`` has ``commits`` commits, each changing one of ``files`` files."""
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(path))
    chunks: list[bytes] = []
    for i in range(commits):
        message = f"change {i}\n".encode()
        content = f"value = {i}\n".encode()
        chunks.append(b"commit refs/heads/main\n")
        chunks.append(f"committer Dev <dev@example.com> {1_700_000_000 + i * 60} +0000\n".encode())
        chunks.append(b"data %d\n%s" % (len(message), message))
        chunks.append(b"M 644 inline dir%02d/file%03d.conf\n" % (i % 10, i % files))
        chunks.append(b"data %d\n%s\n" % (len(content), content))
    proc = subprocess.run(["git", "--git-dir", str(path), "fast-import", "--quiet"], input=b"".join(chunks),
                          capture_output=True, env=GIT_ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"git fast-import: {proc.stderr.decode(errors='replace')}")
    return path


def pushable(base: Path) -> tuple[Path, GitRepo]:
    """A bare "remote" and a working clone that commits and pushes to it (as a developer would)."""
    remote = base / "remote.git"
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(remote))
    work = GitRepo(base / "work")
    work.git("remote", "add", "origin", str(remote))
    return remote, work


def commit_and_push(work: GitRepo, files: dict[str, str | bytes | None], message: str = "change") -> str:
    sha = work.commit(files, message)
    work.git("push", "--quiet", "origin", "HEAD:main")
    return sha
