"""PGP-wrapped data keys, unwrapped by the ``gpg`` executable (what sops falls back to as well)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Gpg:
    binary: str
    home: Path | None
    timeout: float

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def decrypt(self, armored: str) -> tuple[bytes | None, str]:
        """(plaintext, "") or (None, a short reason). gpg's stderr carries no secret, but only its
        last line is kept to stay short."""
        env = dict(os.environ)
        if self.home is not None:
            env["GNUPGHOME"] = str(self.home)
        try:
            proc = subprocess.run(
                [self.binary, "--batch", "--no-tty", "--quiet", "--yes", "--decrypt"],
                input=armored.encode(),
                capture_output=True,
                env=env,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            return None, f"{self.binary} not found"
        except subprocess.TimeoutExpired:
            return None, f"{self.binary} timed out"
        if proc.returncode != 0 or not proc.stdout:
            lines = [line for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
            return None, (lines[-1].strip() if lines else f"gpg exited with {proc.returncode}")[:200]
        return proc.stdout, ""
