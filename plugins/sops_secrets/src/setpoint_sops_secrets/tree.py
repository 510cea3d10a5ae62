"""Per-leaf decryption shared by every store: selection rule, AES-GCM, typing, MAC, Secret wrapping."""

from __future__ import annotations

from typing import Any

from setpoint.secrets import Secret
from setpoint_sops_secrets.cipher import DataKeyCipher, InvalidTag, aad_for, is_enc, parse_enc
from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.mac import MacAccumulator
from setpoint_sops_secrets.selection import Selection
from setpoint_sops_secrets.values import Comment, clear_mac_bytes, decode


class LeafError(Exception):
    """A problem with one value; ``where`` is its dotted key path, ``integrity`` marks tampering."""

    def __init__(self, where: str, reason: str, integrity: bool) -> None:
        super().__init__(f"{where or '(root)'}: {reason}")
        self.where = where
        self.reason = reason
        self.integrity = integrity


#: (value for the documents, clear value for the store's plaintext, sops type tag or None if clear)
Leaf = tuple[Any, Any, str | None]


class LeafContext:
    """Decrypts the leaves of one file. Stores walk their own syntax and call :meth:`leaf`.

    ``cipher`` is None in *trusted* mode, used when the sops binary already decrypted and verified
    the file: leaves at encrypted paths are then only wrapped, and no MAC is computed.
    """

    def __init__(
        self,
        relpath: str,
        selection: Selection,
        cipher: DataKeyCipher | None,
        mac_only_encrypted: bool = False,
        keep_bytes: bool = False,
    ) -> None:
        self.relpath = relpath
        self.selection = selection
        self.cipher = cipher
        self.mac = MacAccumulator(mac_only_encrypted) if cipher is not None else None
        self._hash_clear = not mac_only_encrypted
        self._keep_bytes = keep_bytes
        self.decrypted_count = 0

    def origin(self, where: str) -> str:
        return f"{self.relpath}:{where}"

    def leaf(self, value: Any, path: tuple[str, ...], matched: bool, where: str) -> Leaf:
        if value is None:
            return None, None, None  # nulls are neither encrypted nor hashed
        if self.selection.encrypted(matched):
            return self._encrypted(value, path, where)
        if self.mac is not None and self._hash_clear:
            try:
                self.mac.update(clear_mac_bytes(value))
            except FormatProblem as exc:
                raise LeafError(where, str(exc), integrity=False) from None
        return value, value, None

    def _encrypted(self, value: Any, path: tuple[str, ...], where: str) -> Leaf:
        if self.cipher is None:
            return Secret(value, self.origin(where)), value, "str"
        if not isinstance(value, str):
            raise LeafError(where, "holds a clear value where sops encrypts values", integrity=True)
        if value == "":
            return "", "", None  # sops never encrypts empty strings
        if not is_enc(value):
            raise LeafError(where, "holds a clear string where sops encrypts values", integrity=True)
        try:
            enc = parse_enc(value)
            raw = self.cipher.decrypt(enc, aad_for(path))
            plain, mac_bytes = decode(raw, enc.type, self._keep_bytes)
        except InvalidTag:
            raise LeafError(
                where,
                "does not authenticate (changed, moved from another key, or encrypted with another data key)",
                integrity=True,
            ) from None
        except FormatProblem as exc:
            raise LeafError(where, str(exc), integrity=False) from None
        if mac_bytes is None:
            return plain, plain, "comment"
        assert self.mac is not None
        self.mac.update(mac_bytes)
        self.decrypted_count += 1
        return Secret(plain, self.origin(where)), plain, enc.type

    def comment(self, text: str, candidates: list[tuple[str, ...]]) -> Comment | None:
        """Decrypt an encrypted comment, trying the likely enclosing paths; None if none fits
        (sops then keeps the comment as it is, assuming an older clear comment)."""
        if self.cipher is None or not is_enc(text):
            return None
        try:
            enc = parse_enc(text)
        except FormatProblem:
            return None
        for path in dict.fromkeys(candidates):
            try:
                raw = self.cipher.decrypt(enc, aad_for(path))
            except InvalidTag:
                continue
            try:
                return Comment(raw.decode("utf-8"))
            except UnicodeDecodeError:
                return None
        return None
