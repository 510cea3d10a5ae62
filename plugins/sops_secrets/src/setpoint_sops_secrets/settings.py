"""The decryptor's settings block (``secrets: sops:`` in setpoint.yaml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class SopsSettings(BaseModel):
    """Where the keys are and which helpers may be used.

    With ``use_environment`` (the default) the variables sops itself reads are honoured as well:
    ``SOPS_AGE_KEY``, ``SOPS_AGE_KEY_FILE``, ``SOPS_AGE_SSH_PRIVATE_KEY_FILE``, ``GNUPGHOME``, and
    sops' default age key file (``$XDG_CONFIG_HOME/sops/age/keys.txt``). There is deliberately no
    option to skip MAC verification.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A file of age identities (``AGE-SECRET-KEY-1...`` lines), possibly passphrase-protected.
    age_key_file: Path | None = None
    #: Age identities given inline (prefer a file or the environment; these live in the config).
    age_keys: list[SecretStr] = Field(default_factory=list)
    #: Passphrase of a passphrase-protected (scrypt) ``age_key_file``, inline or from a file.
    age_key_passphrase: SecretStr | None = None
    age_key_passphrase_file: Path | None = None
    #: An OpenSSH private key (ed25519 or RSA, unencrypted) used as an age identity.
    ssh_key_file: Path | None = None
    #: The GnuPG home holding the PGP secret keys (default: ``GNUPGHOME`` or gpg's own default).
    gnupg_home: Path | None = None
    gpg_binary: str = "gpg"
    #: The ``sops`` executable, used only for files whose data key is wrapped by keys this plugin
    #: cannot use natively (cloud KMS, Vault, post-quantum or plugin age keys). ``None``: never.
    sops_binary: str | None = None
    #: Also read the key locations sops reads from the environment (see the class docstring).
    use_environment: bool = True
    #: Seconds a gpg or sops subprocess may take.
    timeout_seconds: float = Field(default=60.0, gt=0)
