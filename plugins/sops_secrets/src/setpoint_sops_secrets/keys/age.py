"""age identities (X25519, OpenSSH, passphrase-protected identity files) via pyrage."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pyrage

from setpoint.secrets import register_known_values

log = logging.getLogger(__name__)

# X25519 recipients: "age1" + 58 bech32 characters. Anything else starting with age1 is a plugin
# or post-quantum recipient that pyrage cannot unwrap.
_X25519_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
_ARMOR_HEADER = "-----BEGIN AGE ENCRYPTED FILE-----"


def recipient_kind(recipient: str) -> str:
    """``x25519``, ``ssh``, ``pq`` (ML-KEM hybrid) or ``plugin``."""
    recipient = recipient.strip()
    if _X25519_RECIPIENT.fullmatch(recipient):
        return "x25519"
    if recipient.startswith(("ssh-ed25519 ", "ssh-rsa ")):
        return "ssh"
    if recipient.startswith("age1pq1"):
        return "pq"
    return "plugin"


@dataclass
class AgeIdentities:
    #: pyrage identity objects, usable with pyrage.decrypt.
    identities: list[Any] = field(default_factory=list)
    #: recipient string -> identity, for identities whose recipient is known (X25519).
    by_recipient: dict[str, Any] = field(default_factory=dict)
    #: counts of identities pyrage cannot use, by kind ("post-quantum", "plugin"), for messages.
    unsupported: dict[str, int] = field(default_factory=dict)
    #: where identities came from (file names and variable names, never contents).
    sources: list[str] = field(default_factory=list)

    def add_text(self, text: str, source: str) -> None:
        """Add the identities in an age key file's text (``#`` lines are comments)."""
        found = 0
        for raw_line in text.splitlines():
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            register_known_values([line])  # the log scrubber must know key material
            if line.startswith("AGE-SECRET-KEY-PQ-"):
                self.unsupported["post-quantum"] = self.unsupported.get("post-quantum", 0) + 1
            elif line.startswith("AGE-PLUGIN-"):
                self.unsupported["plugin"] = self.unsupported.get("plugin", 0) + 1
            elif line.startswith("AGE-SECRET-KEY-1"):
                try:
                    identity = pyrage.x25519.Identity.from_str(line)
                except Exception:  # noqa: BLE001 - pyrage raises its own types; never echo the line
                    log.warning("ignoring an unparsable age identity in %s", source)
                    continue
                self.identities.append(identity)
                self.by_recipient[str(identity.to_public())] = identity
                found += 1
            else:
                log.warning("ignoring a line that is not an age identity in %s", source)
        if found or self.unsupported:
            self.sources.append(source)

    def add_ssh(self, pem: bytes, source: str) -> None:
        register_known_values([pem.decode(errors="replace")])
        try:
            identity = pyrage.ssh.Identity.from_buffer(pem)
        except Exception:  # noqa: BLE001 - pyrage's error types vary by version
            log.warning("ignoring an unusable SSH private key in %s (encrypted or unsupported)", source)
            return
        self.identities.append(identity)
        self.sources.append(source)


def read_identity_file(data: bytes, passphrase: str | None, source: str) -> str:
    """The text of an age identity file, decrypting it first when it is passphrase-protected."""
    if data.startswith(b"age-encryption.org/v1") or data.lstrip().startswith(_ARMOR_HEADER.encode()):
        if passphrase is None:
            raise ValueError(f"{source} is passphrase-protected; set age_key_passphrase or age_key_passphrase_file")
        try:
            return bytes(pyrage.passphrase.decrypt(data, passphrase)).decode()
        except Exception as exc:  # noqa: BLE001 - pyrage.DecryptError and friends
            raise ValueError(f"{source} could not be decrypted with the configured passphrase") from exc
    return data.decode("utf-8", errors="replace")


def unwrap(enc: str, identities: list[Any]) -> bytes | None:
    """Decrypt one ``enc`` stanza (armored age file) with any of ``identities``; None if none fits."""
    if not identities:
        return None
    try:
        return bytes(pyrage.decrypt(enc.encode(), identities))
    except Exception:  # noqa: BLE001 - "no matching identity" and malformed stanzas alike
        return None
