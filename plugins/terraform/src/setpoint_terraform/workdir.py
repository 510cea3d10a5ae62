"""The target's working directory: a stable data dir on disk, a private copy of the module in memory.

* ``state_dir/terraform/data`` is ``TF_DATA_DIR``: providers, module manifest and backend settings
  survive between revisions and restarts, so ``init`` runs only when what it installs changed.
* The module itself is written to a private 0700 directory on tmpfs (decrypted var files and
  substituted sensitive outputs included), rebuilt when the revision changes and removed on close.
* A module without a backend gets a local backend whose state lives in ``state_dir/terraform/state``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from setpoint.secrets import reveal_all
from setpoint_terraform.binary import Terraform
from setpoint_terraform.snapshot import ModuleSnapshot

LOCK_FILE = ".terraform.lock.hcl"
BACKEND_FILE = "setpoint_backend.tf.json"
VARIABLES_FILE = ".setpoint-variables.tfvars.json"


def _private_dir(prefix: str) -> Path:
    shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a unique 0700 directory; tmpfs keeps plaintext off disk
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o700)
    return path


def _write(path: Path, content: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Terraform's plugin cache is not safe for concurrent installs: one init at a time per cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class WorkDir:
    def __init__(self, state_dir: Path, cache_dir: Path) -> None:
        self.base = state_dir / "terraform"
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.base.chmod(0o700)  # local state holds secrets in clear
        self.data_dir = self.base / "data"
        self.cache_dir = cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._scratch: Path | None = None
        self._digest: str | None = None
        self._module_dir: Path | None = None

    # ------------------------------------------------------------------ the module copy

    @property
    def state_file(self) -> Path:
        """The local state of a module without its own backend."""
        return self.base / "state" / "terraform.tfstate"

    def default_backend(self) -> dict[str, Any]:
        (self.base / "state").mkdir(exist_ok=True, mode=0o700)
        return {"terraform": {"backend": {"local": {"path": str(self.state_file),
                                                   "workspace_dir": str(self.base / "state" / "terraform.tfstate.d")}}}}

    def materialize(self, snap: ModuleSnapshot) -> Path:
        """The module directory for ``snap`` (rebuilt only when the snapshot changed)."""
        if self._digest == snap.digest and self._module_dir is not None and self._module_dir.is_dir():
            return self._module_dir
        scratch = _private_dir("setpoint-tf-")
        tree = scratch / "src"
        for rel, content in snap.files.items():
            _write(tree / rel, content)
        for rel, secret in snap.secret_files.items():
            _write(tree / rel, secret.reveal())
        module_dir = tree / snap.root if snap.root else tree
        module_dir.mkdir(parents=True, exist_ok=True)
        if snap.variables:
            _write(module_dir / VARIABLES_FILE, json.dumps(reveal_all(dict(snap.variables))).encode())
        if snap.scan.backend is None:
            _write(module_dir / BACKEND_FILE, json.dumps(self.default_backend(), indent=2).encode())
        saved_lock = self.base / LOCK_FILE
        if not (module_dir / LOCK_FILE).exists() and saved_lock.exists():
            shutil.copyfile(saved_lock, module_dir / LOCK_FILE)
        self.close()
        self._scratch, self._module_dir, self._digest = scratch, module_dir, snap.digest
        return module_dir

    def var_file_args(self, snap: ModuleSnapshot) -> list[str]:
        assert self._scratch is not None
        args = [f"-var-file={self._scratch / 'src' / rel}" for rel in snap.var_files]
        if snap.variables:
            args.append(f"-var-file={VARIABLES_FILE}")
        return args

    # ------------------------------------------------------------------ init

    def init_fingerprint(self, snap: ModuleSnapshot, backend_config: dict[str, str], binary_version: str,
                         cli_config: bytes | None) -> str:
        lock = snap.files.get(f"{snap.root}/{LOCK_FILE}" if snap.root else LOCK_FILE, b"")
        data = {"inputs": snap.scan.init_inputs, "lock": hashlib.sha256(lock).hexdigest(),
                "backend": snap.scan.backend or self.default_backend(), "backend_config": backend_config,
                "binary": binary_version, "cli_config": hashlib.sha256(cli_config or b"").hexdigest()}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def _marker(self) -> dict[str, Any]:
        try:
            return json.loads((self.base / "init.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def ensure_init(self, tf: Terraform, snap: ModuleSnapshot, fingerprint: str, backend_config: dict[str, str],
                    workspace: str) -> bool:
        """``init`` when providers, modules, lock file or backend changed; select the workspace.
        Returns True when init ran."""
        assert self._module_dir is not None
        marker = self._marker()
        ran = False
        if marker.get("fingerprint") != fingerprint or not self.data_dir.is_dir():
            args = ["init", "-input=false", "-no-color", "-reconfigure"]
            args += [f"-backend-config={k}={v}" for k, v in sorted(backend_config.items())]
            with _flock(self.cache_dir / ".setpoint-init.lock"):
                result = tf.run(args, self._module_dir)
            if result.returncode != 0:
                tf.fail("init", result)
            generated = self._module_dir / LOCK_FILE
            git_lock = f"{snap.root}/{LOCK_FILE}" if snap.root else LOCK_FILE
            if git_lock not in snap.files and generated.exists():
                shutil.copyfile(generated, self.base / LOCK_FILE)
            marker = {"fingerprint": fingerprint, "workspace": "default"}
            ran = True
        if marker.get("workspace") != workspace:
            result = tf.run(["workspace", "select", "-or-create=true", workspace], self._module_dir)
            if result.returncode != 0:
                tf.fail("workspace select", result)
            marker["workspace"] = workspace
        _write(self.base / "init.json", json.dumps(marker).encode())
        return ran

    def forget_init(self) -> None:
        """Make the next run init again (after an error that says the working dir is stale)."""
        (self.base / "init.json").unlink(missing_ok=True)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch = self._module_dir = self._digest = None
