"""Everything that can unwrap a data key, loaded once from settings and the environment."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from setpoint_sops_secrets.keys.age import AgeIdentities, read_identity_file
from setpoint_sops_secrets.keys.pgp import Gpg
from setpoint_sops_secrets.settings import SopsSettings

log = logging.getLogger(__name__)


def _default_age_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sops" / "age" / "keys.txt"


@dataclass
class Keyring:
    settings: SopsSettings
    age: AgeIdentities
    gpg: Gpg
    #: problems met while loading (unreadable files...), reported when no key fits.
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, settings: SopsSettings) -> Keyring:
        """Read identities from the settings and, with ``use_environment``, from sops' variables.

        Key material is never logged; only file and variable names appear in messages.
        """
        age = AgeIdentities()
        problems: list[str] = []
        passphrase = cls._passphrase(settings, problems)
        for index, secret in enumerate(settings.age_keys):
            age.add_text(secret.get_secret_value(), f"age_keys[{index}]")
        files: list[tuple[Path, str]] = []
        if settings.age_key_file is not None:
            files.append((settings.age_key_file, "age_key_file"))
        env = os.environ if settings.use_environment else {}
        if env.get("SOPS_AGE_KEY"):
            age.add_text(env["SOPS_AGE_KEY"], "SOPS_AGE_KEY")
        if env.get("SOPS_AGE_KEY_FILE"):
            files.append((Path(env["SOPS_AGE_KEY_FILE"]), "SOPS_AGE_KEY_FILE"))
        if settings.use_environment:
            default = _default_age_key_file()
            if default.is_file():
                files.append((default, "sops' default age key file"))
        for path, origin in files:
            try:
                text = read_identity_file(path.read_bytes(), passphrase, str(path))
            except OSError as exc:
                problems.append(f"{origin} {path} could not be read ({exc.strerror or exc.__class__.__name__})")
                continue
            except ValueError as exc:
                problems.append(str(exc))
                continue
            age.add_text(text, str(path))
        ssh_files: list[Path] = []
        if settings.ssh_key_file is not None:
            ssh_files.append(settings.ssh_key_file)
        if env.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE"):
            ssh_files.append(Path(env["SOPS_AGE_SSH_PRIVATE_KEY_FILE"]))
        for path in ssh_files:
            try:
                age.add_ssh(path.read_bytes(), str(path))
            except OSError as exc:
                problems.append(f"SSH key {path} could not be read ({exc.strerror or exc.__class__.__name__})")
        home = settings.gnupg_home
        if home is None and env.get("GNUPGHOME"):
            home = Path(env["GNUPGHOME"])
        gpg = Gpg(settings.gpg_binary, home, settings.timeout_seconds)
        log.debug("loaded %d age identities from %s", len(age.identities), ", ".join(age.sources) or "nowhere")
        return cls(settings, age, gpg, problems)

    @staticmethod
    def _passphrase(settings: SopsSettings, problems: list[str]) -> str | None:
        if settings.age_key_passphrase is not None:
            return settings.age_key_passphrase.get_secret_value()
        if settings.age_key_passphrase_file is not None:
            try:
                return settings.age_key_passphrase_file.read_text().rstrip("\r\n")
            except OSError as exc:
                problems.append(f"age_key_passphrase_file could not be read ({exc.strerror})")
        return None
