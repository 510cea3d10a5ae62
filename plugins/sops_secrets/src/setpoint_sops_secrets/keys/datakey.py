"""Recover the 32-byte data key: try each group's keys (age first, then PGP), combine Shamir shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from setpoint_sops_secrets.keys.age import recipient_kind, unwrap
from setpoint_sops_secrets.keys.keyring import Keyring
from setpoint_sops_secrets.metadata import MasterKey, Metadata
from setpoint_sops_secrets.shamir import combine

#: Key types only the sops binary can use (cloud KMS, Vault), and how to name them in messages.
DELEGATED_TYPES = {
    "kms": "AWS KMS",
    "gcp_kms": "GCP KMS",
    "azure_kv": "Azure Key Vault",
    "hc_vault": "HashiCorp Vault",
    "hckms": "Huawei Cloud KMS",
}


@dataclass(frozen=True)
class KeyRecovery:
    data_key: bytes
    #: labels of the master keys that unwrapped the key or its shares (safe to print).
    keys_used: tuple[str, ...]


@dataclass
class NoDataKey(Exception):
    """No configured key recovers the data key. ``reason`` is safe to print."""

    reason: str
    #: True when some master key of the file is one the sops binary could use but this plugin cannot.
    delegable: bool = False
    not_native: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.reason


def _order(keys: tuple[MasterKey, ...]) -> list[MasterKey]:
    # sops' default decryption order: age, then pgp, then the rest in file order.
    rank = {"age": 0, "pgp": 1}
    return sorted(keys, key=lambda k: rank.get(k.type, 2))


def _native_kind(key: MasterKey) -> str | None:
    """Why a key cannot be used natively (a description), or None when it can."""
    if key.type == "age":
        kind = recipient_kind(key.ident)
        if kind == "pq":
            return "post-quantum age"
        if kind == "plugin":
            return "age plugin"
        return None
    if key.type == "pgp":
        return None
    return DELEGATED_TYPES.get(key.type, key.type)


def not_native_key(key: MasterKey) -> bool:
    """True for master keys only the sops binary can use."""
    return _native_kind(key) is not None


def _try_group(group: tuple[MasterKey, ...], keyring: Keyring, notes: list[str]) -> tuple[bytes, MasterKey] | None:
    for key in _order(group):
        if _native_kind(key) is not None:
            continue
        if key.type == "age":
            candidates = keyring.age.identities
            exact = keyring.age.by_recipient.get(key.ident)
            if exact is not None:
                candidates = [exact]  # skip trying every identity when the recipient is known
            plain = unwrap(key.enc, candidates)
            if plain is None and exact is not None:
                plain = unwrap(key.enc, keyring.age.identities)
            if plain is not None:
                return plain, key
        elif key.type == "pgp":
            if not keyring.gpg.available():
                notes.append(f"gpg ({keyring.gpg.binary}) is not installed")
                continue
            plain, why = keyring.gpg.decrypt(key.enc)
            if plain is not None:
                return plain, key
            notes.append(f"pgp:{key.ident}: {why}")
    return None


def recover_data_key(metadata: Metadata, keyring: Keyring) -> KeyRecovery:
    """Raise :class:`NoDataKey` with a clear, secret-free reason when the configured keys do not suffice."""
    notes: list[str] = []
    pieces: list[bytes] = []
    used: list[str] = []
    groups = metadata.key_groups
    needed = 1 if len(groups) == 1 else metadata.shamir_threshold
    for group in groups:
        found = _try_group(group, keyring, notes)
        if found is None:
            continue
        pieces.append(found[0])
        used.append(found[1].label)
        if len(pieces) >= needed:
            break
    if len(pieces) >= needed:
        if len(groups) == 1:
            data_key = pieces[0]
        else:
            try:
                data_key = combine(pieces)
            except ValueError as exc:
                raise NoDataKey(f"the Shamir shares could not be combined ({exc})") from None
        if len(data_key) != 32:
            raise NoDataKey(f"the recovered data key has {len(data_key)} bytes instead of 32")
        return KeyRecovery(data_key, tuple(used))
    raise _explain(metadata, keyring, len(pieces), needed, notes)


def _explain(metadata: Metadata, keyring: Keyring, got: int, needed: int, notes: list[str]) -> NoDataKey:
    not_native = sorted({kind for key in metadata.master_keys if (kind := _native_kind(key)) is not None})
    native = [key for key in metadata.master_keys if _native_kind(key) is None]
    parts: list[str] = []
    if len(metadata.key_groups) > 1:
        parts.append(f"{got} of the {needed} Shamir key groups needed could be unlocked")
    if native:
        labels = ", ".join(key.label for key in native[:6]) + (" ..." if len(native) > 6 else "")
        parts.append(f"no configured key matches {labels}")
    age = keyring.age
    loaded = f"{len(age.identities)} age identit{'y' if len(age.identities) == 1 else 'ies'} loaded"
    if age.sources:
        loaded += " from " + ", ".join(age.sources)
    parts.append(loaded)
    for kind, count in sorted(age.unsupported.items()):
        parts.append(f"{count} {kind} age identit{'y' if count == 1 else 'ies'} cannot be used natively")
    parts.extend(dict.fromkeys(notes))
    parts.extend(keyring.problems)
    if not_native:
        parts.append(
            "the file is also wrapped by " + ", ".join(not_native) + " keys, which need the sops binary"
            + (" (set sops_binary)" if not keyring.settings.sops_binary else "")
        )
    return NoDataKey("could not recover the data key: " + "; ".join(parts), bool(not_native), not_native)
