"""Decrypting one file: parse, recover the data key, walk every value, verify the MAC.

Everything below raises only :class:`setpoint.errors.DecryptError` subclasses with the file's
path and a reason free of values and key material.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from setpoint_sops_secrets.cipher import DataKeyCipher
from setpoint_sops_secrets.delegate import BinaryFailure, decrypt_with_binary
from setpoint_sops_secrets.errors import FormatProblem, SopsFormatError, SopsIntegrityError, SopsKeyError
from setpoint_sops_secrets.keys import Keyring, NoDataKey, recover_data_key
from setpoint_sops_secrets.keys.datakey import not_native_key
from setpoint_sops_secrets.mac import MacMismatch, verify_mac
from setpoint_sops_secrets.metadata import Metadata, parse_metadata
from setpoint_sops_secrets.stores import FORMATS, STORES, ParsedFile, Store, detect_format, is_envelope
from setpoint_sops_secrets.tree import LeafContext, LeafError

log = logging.getLogger("setpoint_sops_secrets")


@dataclass(frozen=True)
class Decrypted:
    """The result before it is wrapped for a caller: documents hold Secret leaves, plaintext is bytes."""

    format: str
    documents: list[Any]
    plaintext: bytes
    keys_used: tuple[str, ...]
    #: "native" or "sops-binary"
    backend: str


def _parse(relpath: str, content: bytes, store_format: str | None) -> tuple[str, Store, ParsedFile, Metadata]:
    if store_format is None:
        store_format = detect_format(relpath, content)
        if store_format is None:
            raise SopsFormatError(relpath, "not a sops file (no sops metadata block found)")
    elif store_format not in FORMATS:
        raise SopsFormatError(relpath, f"unknown sops format {store_format!r} (one of {', '.join(FORMATS)})")
    store = STORES[store_format]
    try:
        parsed = store.parse(content)
        metadata = parse_metadata(parsed.metadata)
    except FormatProblem as exc:
        raise SopsFormatError(relpath, str(exc)) from None
    return store_format, store, parsed, metadata


def _walk_and_verify(
    relpath: str, store_format: str, store: Store, parsed: ParsedFile, metadata: Metadata, data_key: bytes,
    content: bytes,
) -> tuple[str, list[Any], bytes]:
    """Decrypt every value and verify the MAC; returns the store format actually used.

    A binary-store envelope named like JSON or YAML (``keystore.json``) whose payload is not UTF-8
    cannot be a JSON or YAML document: it is decrypted as the binary store, byte for byte."""
    try:
        return store_format, *_walk(relpath, store_format, store, parsed, metadata, data_key)
    except SopsFormatError as exc:
        if store_format not in ("json", "yaml") or "not valid UTF-8" not in str(exc) or not is_envelope(content):
            raise
    binary = STORES["binary"]
    return "binary", *_walk(relpath, "binary", binary, binary.parse(content), metadata, data_key)


def _walk(
    relpath: str, store_format: str, store: Store, parsed: ParsedFile, metadata: Metadata, data_key: bytes
) -> tuple[list[Any], bytes]:
    cipher = DataKeyCipher(data_key)
    ctx = LeafContext(relpath, metadata.selection, cipher, metadata.mac_only_encrypted, store_format == "binary")
    try:
        documents, plaintext = store.decrypt(parsed, ctx)
    except LeafError as exc:
        if exc.integrity:
            raise SopsIntegrityError(relpath, f"integrity check failed: the value at {exc.where} {exc.reason}") from None
        raise SopsFormatError(relpath, str(exc)) from None
    except FormatProblem as exc:
        raise SopsFormatError(relpath, str(exc)) from None
    assert ctx.mac is not None
    try:
        verify_mac(cipher, metadata.mac, metadata.lastmodified, ctx.mac.hexdigest())
    except (MacMismatch, FormatProblem) as exc:
        raise SopsIntegrityError(relpath, f"integrity check failed: {exc}") from None
    return documents, plaintext


def decrypt(relpath: str, content: bytes, keyring: Keyring, store_format: str | None = None) -> Decrypted:
    """Decrypt and verify one file with the keys in ``keyring`` (or the sops binary, see module doc)."""
    store_format, store, parsed, metadata = _parse(relpath, content, store_format)
    try:
        recovery = recover_data_key(metadata, keyring)
    except NoDataKey as exc:
        if exc.delegable and keyring.settings.sops_binary:
            return _delegate(relpath, content, store_format, metadata, keyring, exc)
        raise SopsKeyError(relpath, exc.reason) from None
    store_format, documents, plaintext = _walk_and_verify(relpath, store_format, store, parsed, metadata,
                                                          recovery.data_key, content)
    log.debug("decrypted %s (%s) with %s", relpath, store_format, ", ".join(recovery.keys_used))
    return Decrypted(store_format, documents, plaintext, recovery.keys_used, "native")


def decrypt_with_data_key(
    relpath: str, content: bytes, data_key: bytes, store_format: str | None = None
) -> Decrypted:
    """Decrypt and verify with a known data key (tests, tooling); no master key is consulted."""
    store_format, store, parsed, metadata = _parse(relpath, content, store_format)
    if len(data_key) != 32:
        raise SopsKeyError(relpath, "a sops data key is 32 bytes")
    store_format, documents, plaintext = _walk_and_verify(relpath, store_format, store, parsed, metadata, data_key,
                                                          content)
    return Decrypted(store_format, documents, plaintext, ("data-key",), "native")


def _delegate(
    relpath: str, content: bytes, store_format: str, metadata: Metadata, keyring: Keyring, why: NoDataKey
) -> Decrypted:
    log.debug("%s: no native key fits (%s); using the sops binary", relpath, ", ".join(why.not_native))
    try:
        plaintext = decrypt_with_binary(content, store_format, keyring.settings)
    except BinaryFailure as exc:
        cls = SopsIntegrityError if exc.integrity else SopsKeyError
        raise cls(relpath, f"{why.reason}; the sops binary failed too: {exc.reason}") from None
    ctx = LeafContext(relpath, metadata.selection, None)
    try:
        documents = STORES[store_format].documents_from_plaintext(plaintext, ctx)
    except (FormatProblem, LeafError) as exc:
        raise SopsFormatError(relpath, f"could not read what the sops binary printed: {exc}") from None
    # sops does not say which key it used: report the candidates it alone could use.
    labels = tuple(f"sops-binary:{key.label}" for key in metadata.master_keys if not_native_key(key))
    return Decrypted(store_format, documents, plaintext, labels or ("sops-binary",), "sops-binary")
