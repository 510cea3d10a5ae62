"""Running the terraform/tofu binary: environment allow-list, timeouts, diagnostics, lock errors.

Every command gets ``-input=false`` where it takes it and a minimal environment: terraform sees
only the variables setpoint was told to pass (credentials included), never setpoint's whole
environment. Messages that leave this module are scrubbed of known secret values.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.errors import PermanentError, TemporaryError
from setpoint.secrets import register_known_values, scrub
from setpoint_terraform.settings import BASE_ENV

#: Names whose values are credentials: registered with the log scrubber when passed through.
_CREDENTIAL_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)


log = logging.getLogger("setpoint.terraform")


class StateLocked(TemporaryError):
    """The backend's state lock is held by someone else. Retried later, never force-unlocked."""


class StalePlan(PermanentError):
    """terraform refused a saved plan because the state changed after it was made."""


def find_binary(configured: str | None) -> str:
    """The configured binary, else ``terraform`` on PATH, else ``tofu``."""
    candidates = [configured] if configured else ["terraform", "tofu"]
    for name in candidates:
        path = name if os.sep in name else shutil.which(name)
        if path and os.access(path, os.X_OK):
            return path
    wanted = configured or "terraform or tofu"
    raise PermanentError(f"no {wanted} binary found (set terraform.binary to its path)")


def build_env(allow: Iterable[str], extra: Mapping[str, str], source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The binary's environment: the base variables, those matching ``allow``, then ``extra``."""
    source = os.environ if source is None else source
    patterns = [*BASE_ENV, *allow]
    env = {k: v for k, v in source.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
    register_known_values(v for k, v in env.items() if _CREDENTIAL_NAME.search(k))
    env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
    env.update(extra)
    return env


@dataclass
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    file: str | None = None
    line: int | None = None

    def describe(self) -> str:
        where = f" ({self.file}:{self.line})" if self.file and self.line else ""
        detail = " ".join(self.detail.split())
        text = f"{self.summary}{where}" + (f": {detail[:400]}" if detail else "")
        return scrub(text)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    #: Lines of ``-json`` output, parsed (empty for commands run without ``-json``).
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        found = []
        for msg in self.messages:
            diag = msg.get("diagnostic")
            if msg.get("type") == "diagnostic" and isinstance(diag, dict):
                rng = diag.get("range") or {}
                found.append(Diagnostic(diag.get("severity", "error"), diag.get("summary", ""), diag.get("detail", ""),
                                        rng.get("filename"), (rng.get("start") or {}).get("line")))
        return found

    def errors(self) -> list[Diagnostic]:
        found = [d for d in self.diagnostics if d.severity == "error"]
        if not found and self.returncode not in (0, 2):
            # plain (non -json) output: terraform prints "Error: summary" blocks on stderr
            text = self.stderr.strip() or self.stdout.strip()
            summary = next((line.strip().removeprefix("Error: ") for line in text.splitlines() if "Error" in line),
                           text.splitlines()[0] if text else f"exit code {self.returncode}")
            found.append(Diagnostic("error", summary, text))
        return found


def _lock_info(text: str) -> dict[str, str]:
    info = {}
    for key in ("ID", "Path", "Operation", "Who", "Version", "Created"):
        match = re.search(rf"^\s*{key}:\s*(.*)$", text, re.M)
        if match:
            info[key] = match.group(1).strip()
    return info


class Terraform:
    """One binary with one environment, run in one working directory."""

    def __init__(self, binary: str, env: dict[str, str], timeout: float) -> None:
        self.binary = binary
        self.env = env
        self.timeout = timeout
        self.name = Path(binary).name

    def run(self, args: list[str], cwd: Path, *, json_lines: bool = False, timeout: float | None = None,
            stdin: bytes | None = None, on_message: Callable[[dict[str, Any]], None] | None = None) -> Result:
        """Run one command. With ``on_message`` the ``-json`` stream is read while the command runs
        and each message is handed over as it arrives (progress of a long apply)."""
        if on_message is not None:
            return self._stream(args, cwd, timeout or self.timeout, on_message)
        started = time.monotonic()
        try:
            proc = subprocess.run([self.binary, *args], cwd=cwd, env=self.env, capture_output=True,
                                  timeout=timeout or self.timeout, input=stdin)
        except subprocess.TimeoutExpired:
            raise TemporaryError(f"{self.name} {args[0]} did not finish within {timeout or self.timeout:g}s") from None
        except OSError as exc:
            raise PermanentError(f"cannot run {self.binary}: {exc.strerror}") from None
        stdout, stderr = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        log.debug("%s %s: exit %d in %.2fs", self.name, args[0], proc.returncode, time.monotonic() - started)
        messages = []
        if json_lines:
            for line in stdout.splitlines():
                if line.startswith("{"):
                    try:
                        messages.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return Result(proc.returncode, stdout, stderr, messages)

    def _stream(self, args: list[str], cwd: Path, timeout: float,
                on_message: Callable[[dict[str, Any]], None]) -> Result:
        started = time.monotonic()
        try:
            proc = subprocess.Popen([self.binary, *args], cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise PermanentError(f"cannot run {self.binary}: {exc.strerror}") from None
        assert proc.stdout is not None and proc.stderr is not None
        err_chunks: list[bytes] = []
        drain = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()) if proc.stderr else None,
                                 daemon=True)
        drain.start()
        # the timeout kills the process; the loop below then sees the end of its output
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        lines: list[str] = []
        messages: list[dict[str, Any]] = []
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                lines.append(line)
                if not line.startswith("{"):
                    continue
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                messages.append(message)
                try:
                    on_message(message)
                except Exception:  # noqa: BLE001 - progress reporting never breaks an apply
                    log.debug("progress callback failed", exc_info=True)
            returncode = proc.wait()
        finally:
            timer.cancel()
            drain.join(timeout=10)
        if time.monotonic() - started >= timeout and returncode < 0:
            raise TemporaryError(f"{self.name} {args[0]} did not finish within {timeout:g}s")
        log.debug("%s %s: exit %d in %.2fs", self.name, args[0], returncode, time.monotonic() - started)
        return Result(returncode, "".join(lines), b"".join(err_chunks).decode(errors="replace"), messages)

    def version(self) -> str:
        result = self.run(["version", "-json"], Path.cwd(), timeout=60)
        try:
            data = json.loads(result.stdout)
            return f"{self.name} {data.get('terraform_version', '?')}"
        except json.JSONDecodeError:
            return f"{self.name} {(result.stdout.splitlines() or ['?'])[0]}"

    def fail(self, command: str, result: Result) -> None:
        """Raise the right error for a failed command (lock held, stale plan, anything else)."""
        errors = result.errors()
        for diag in errors:
            if "state lock" in diag.summary.lower():
                info = _lock_info(diag.detail or result.stderr)
                who = info.get("Who", "someone")
                raise StateLocked(scrub(
                    f"the Terraform state is locked by {who} (operation {info.get('Operation', '?')}, lock ID "
                    f"{info.get('ID', '?')}, since {info.get('Created', '?')}); {command} did not run and "
                    "setpoint retries later. setpoint never force-unlocks: if the holder is gone, run "
                    f"'{self.name} force-unlock {info.get('ID', 'LOCK_ID')}' yourself"))
            if "saved plan is stale" in diag.summary.lower():
                raise StalePlan(diag.describe())
        text = "; ".join(d.describe() for d in errors[:3]) or f"exit code {result.returncode}"
        raise PermanentError(f"{self.name} {command} failed: {text}")
