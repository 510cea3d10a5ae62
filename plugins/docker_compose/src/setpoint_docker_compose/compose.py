"""Running the Compose v2 CLI for one target: environment (host, TLS), version, errors without secrets."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from setpoint.errors import PermanentError, RenderError, TemporaryError
from setpoint.secrets import scrub
from setpoint_docker_compose.settings import ComposeSettings

#: Compose reads these from the environment; a stray one on the setpoint host (COMPOSE_FILE,
#: COMPOSE_PROFILES, COMPOSE_REMOVE_ORPHANS...) would change what a target deploys.
_DROPPED_ENV = re.compile(r"^(COMPOSE_|DOCKER_HOST$|DOCKER_CONTEXT$|DOCKER_TLS|DOCKER_CERT_PATH$)")


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def tuple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @classmethod
    def parse(cls, text: str) -> Version:
        match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
        if not match:
            raise PermanentError(f"cannot read a Compose version from {text.strip()[:80]!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))


class ComposeCli:
    def __init__(self, settings: ComposeSettings, project: str) -> None:
        self.settings = settings
        self.project = project
        self.command = settings.compose_command()
        self._version: Version | None = None

    def env(self) -> dict[str, str]:
        host = self.settings.connect_host()  # first: an ssh host alias puts its wrapper on PATH
        env = {k: v for k, v in os.environ.items() if not _DROPPED_ENV.match(k)}
        env["DOCKER_HOST"] = host
        tls = self.settings.tls
        if tls is not None:
            env["DOCKER_CERT_PATH"] = str(tls.cert_path)
            env["DOCKER_TLS_VERIFY"] = "1" if tls.verify else ""
            env["DOCKER_TLS"] = "1"
        return env

    def version(self) -> Version:
        if self._version is None:
            proc = self._run(["version", "--short"], cwd=None, timeout=60)
            if proc.returncode != 0:
                raise PermanentError(f"{' '.join(self.command)} version failed: {_tail(proc.stderr)}")
            self._version = Version.parse(proc.stdout)
            if self._version.major < 2:
                raise PermanentError(f"Compose {self._version} is Compose v1; setpoint needs Compose v2 or newer")
        return self._version

    def project_args(self, project_dir: Path, files: list[Path]) -> list[str]:
        args = ["-p", self.project, "--project-directory", str(project_dir)]
        for file in files:
            args += ["-f", str(file)]
        for profile in self.settings.profiles:
            args += ["--profile", profile]
        return args

    def run(self, args: list[str], *, cwd: Path | None, stage: str, timeout: float | None = None,
            input_text: str | None = None) -> str:
        """Run compose; a failure raises RenderError (stage render) or an apply error, scrubbed of secrets."""
        proc = self._run(args, cwd=cwd, timeout=timeout or self.settings.command_timeout, input_text=input_text)
        if proc.returncode != 0:
            message = _tail(proc.stderr) or _tail(proc.stdout) or f"exit code {proc.returncode}"
            if stage == "render":
                raise RenderError(f"docker compose: {message}")
            if _unreachable(message):
                raise TemporaryError(f"Docker host {self.settings.docker_host()} is unreachable: {message}")
            raise PermanentError(f"docker compose {_subcommand(args)} failed: {message}")
        return proc.stdout

    def _run(self, args: list[str], *, cwd: Path | None, timeout: float,
             input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([*self.command, *args], cwd=cwd, env=self.env(), capture_output=True, text=True,
                                  timeout=timeout, input=input_text if input_text is not None else "")
        except FileNotFoundError:
            raise PermanentError(f"Compose executable not found: {self.command[0]} (set compose_binary)") from None
        except subprocess.TimeoutExpired:
            raise TemporaryError(f"docker compose {_subcommand(args)} did not finish within {timeout:g}s") from None


def _tail(text: str, lines: int = 6) -> str:
    """The last lines of a compose message, secrets replaced (a bad env file can echo a value)."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return scrub(" | ".join(kept))[:1000]


def _unreachable(message: str) -> bool:
    lowered = message.lower()
    return any(s in lowered for s in ("cannot connect to the docker daemon", "connection refused", "no such host",
                                      "i/o timeout", "is the docker daemon running", "error during connect"))


def _subcommand(args: list[str]) -> str:
    for word in ("up", "down", "config", "version"):
        if word in args:
            return word
    return args[0] if args else ""
