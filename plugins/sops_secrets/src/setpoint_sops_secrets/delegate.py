"""Decrypting with the ``sops`` executable, for key types this plugin does not implement natively.

The file goes in on stdin and the plaintext comes back on stdout: nothing decrypted touches the
disk. sops verifies the MAC itself (and exits non-zero when it does not match).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from setpoint.secrets import scrub
from setpoint_sops_secrets.settings import SopsSettings

# cmd/sops/codes/codes.go
_EXIT_REASONS = {
    51: "sops: MAC mismatch",
    52: "sops: the file has no MAC",
    128: "sops could not retrieve the data key with the configured keys",
}
INTEGRITY_EXIT_CODES = frozenset({51, 52})


@dataclass
class BinaryFailure(Exception):
    reason: str
    integrity: bool = False

    def __str__(self) -> str:
        return self.reason


def _environment(settings: SopsSettings) -> dict[str, str]:
    if settings.use_environment:
        env = dict(os.environ)
    else:
        env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    if settings.age_key_file is not None:
        env["SOPS_AGE_KEY_FILE"] = str(settings.age_key_file)
    if settings.age_keys:
        inline = "\n".join(key.get_secret_value() for key in settings.age_keys)
        env["SOPS_AGE_KEY"] = (env["SOPS_AGE_KEY"] + "\n" + inline) if env.get("SOPS_AGE_KEY") else inline
    if settings.ssh_key_file is not None:
        env["SOPS_AGE_SSH_PRIVATE_KEY_FILE"] = str(settings.ssh_key_file)
    if settings.gnupg_home is not None:
        env["GNUPGHOME"] = str(settings.gnupg_home)
    return env


def decrypt_with_binary(content: bytes, store_format: str, settings: SopsSettings) -> bytes:
    """The plaintext as ``sops decrypt`` prints it in the file's own format."""
    binary = settings.sops_binary
    if not binary:
        raise BinaryFailure("no sops binary is configured (sops_binary)")
    argv = [binary, "decrypt", "--input-type", store_format, "--output-type", store_format, "/dev/stdin"]
    try:
        proc = subprocess.run(
            argv,
            input=content,
            capture_output=True,
            env=_environment(settings),
            timeout=settings.timeout_seconds,
            check=False,
        )
    except FileNotFoundError:
        raise BinaryFailure(f"the configured sops binary {binary!r} was not found") from None
    except subprocess.TimeoutExpired:
        raise BinaryFailure(f"sops did not finish within {settings.timeout_seconds:g} s") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
        detail = scrub(lines[-1])[:300] if lines else ""
        reason = _EXIT_REASONS.get(proc.returncode, f"sops exited with status {proc.returncode}")
        raise BinaryFailure(reason + (f" ({detail})" if detail else ""), proc.returncode in INTEGRITY_EXIT_CODES)
    return proc.stdout
