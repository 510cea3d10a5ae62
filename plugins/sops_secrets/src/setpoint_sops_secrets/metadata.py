"""The ``sops`` metadata block: master keys, key groups, selection rule, MAC, lastmodified.

INI and dotenv files store it flattened (``age__list_0__map_enc``); :func:`unflatten` rebuilds the
nested form so one parser serves all stores.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.selection import DEFAULT_UNENCRYPTED_SUFFIX, Selection

#: Master key types and the field that identifies a key of that type (safe to print).
KEY_TYPES: dict[str, str] = {
    "age": "recipient",
    "pgp": "fp",
    "kms": "arn",
    "gcp_kms": "resource_id",
    "azure_kv": "vault_url",
    "hc_vault": "key_name",
    "hckms": "key_id",
}
VALUE_RULES = ("unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex")
COMMENT_RULES = ("unencrypted_comment_regex", "encrypted_comment_regex")

_FLAT_TOKEN = re.compile(r"__(list|map)_")


@dataclass(frozen=True)
class MasterKey:
    type: str
    #: recipient, fingerprint, ARN...: what the key is, safe to print.
    ident: str
    #: the wrapped data key (or Shamir share) as stored in the file.
    enc: str
    #: the raw entry, for key types that need more fields (KMS context, Vault address).
    raw: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.type}:{self.ident}"


@dataclass(frozen=True)
class Metadata:
    key_groups: tuple[tuple[MasterKey, ...], ...]
    shamir_threshold: int
    lastmodified: str
    mac: str | None
    version: str
    selection: Selection
    mac_only_encrypted: bool

    @property
    def master_keys(self) -> tuple[MasterKey, ...]:
        return tuple(key for group in self.key_groups for key in group)


def _as_bool(value: Any) -> bool:
    # dotenv and INI store every value as a string; mapstructure's weak typing accepts these.
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "t")
    return bool(value)


def _group(raw: Mapping[str, Any]) -> tuple[MasterKey, ...]:
    keys: list[MasterKey] = []
    for key_type, ident_field in KEY_TYPES.items():
        entries = raw.get(key_type) or []
        if not isinstance(entries, list):
            raise FormatProblem(f"sops.{key_type} is not a list")
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise FormatProblem(f"an entry of sops.{key_type} is not a mapping")
            enc = entry.get("enc")
            if not isinstance(enc, str) or not enc:
                raise FormatProblem(f"an entry of sops.{key_type} has no enc")
            keys.append(MasterKey(key_type, str(entry.get(ident_field, "?")).strip(), enc, entry))
    return tuple(keys)


def parse_metadata(raw: Any) -> Metadata:
    """Validate the raw ``sops`` mapping; raises :class:`FormatProblem` on anything sops would refuse."""
    if not isinstance(raw, Mapping):
        raise FormatProblem("the sops metadata block is not a mapping")
    groups_raw = raw.get("key_groups")
    if groups_raw:
        if not isinstance(groups_raw, list):
            raise FormatProblem("sops.key_groups is not a list")
        groups = tuple(_group(g) for g in groups_raw if isinstance(g, Mapping))
    else:
        groups = (_group(raw),)
    if not any(groups):
        raise FormatProblem("the sops metadata lists no master key")
    threshold_raw = raw.get("shamir_threshold")
    try:
        threshold = int(threshold_raw) if threshold_raw not in (None, "", 0, "0") else len(groups)
    except (TypeError, ValueError) as exc:
        raise FormatProblem("sops.shamir_threshold is not a number") from exc
    if len(groups) > 1 and not 1 <= threshold <= len(groups):
        raise FormatProblem("sops.shamir_threshold is out of range")
    lastmodified = raw.get("lastmodified")
    if not isinstance(lastmodified, str) or not lastmodified:
        raise FormatProblem("sops.lastmodified is missing")
    rules = [name for name in VALUE_RULES if raw.get(name) not in (None, "")]
    comment_rules = [name for name in COMMENT_RULES if raw.get(name) not in (None, "")]
    if len(rules) > 1:
        raise FormatProblem("more than one of " + ", ".join(VALUE_RULES) + " is set")
    if rules:
        selection = Selection(rules[0], str(raw[rules[0]]))
    elif comment_rules:
        selection = Selection(None)
    else:
        selection = Selection("unencrypted_suffix", DEFAULT_UNENCRYPTED_SUFFIX)
    mac = raw.get("mac")
    return Metadata(
        key_groups=groups,
        shamir_threshold=threshold,
        lastmodified=lastmodified,
        mac=mac if isinstance(mac, str) and mac else None,
        version=str(raw.get("version", "")),
        selection=selection,
        mac_only_encrypted=_as_bool(raw.get("mac_only_encrypted", False)),
    )


def unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """Rebuild nested metadata from sops' flattened keys (``key_groups__list_1__map_pgp__list_0__map_fp``)."""
    root: dict[str, Any] = {}
    for flat_key, value in flat.items():
        pieces = _FLAT_TOKEN.split(flat_key)
        # pieces: [top, kind, name, kind, name, ...]
        steps: list[tuple[str, str]] = [("map", pieces[0])]
        for index in range(1, len(pieces) - 1, 2):
            steps.append((pieces[index], pieces[index + 1]))
        container: Any = root
        for position, (kind, name) in enumerate(steps):
            last = position == len(steps) - 1
            following = None if last else steps[position + 1][0]
            empty: Any = None if last else ([] if following == "list" else {})
            if kind == "map":
                if not isinstance(container, dict):
                    raise FormatProblem("inconsistent flattened sops metadata")
                if last:
                    container[name] = value
                else:
                    container = container.setdefault(name, empty)
            else:
                if not isinstance(container, list) or not name.isdigit():
                    raise FormatProblem("inconsistent flattened sops metadata")
                slot = int(name)
                while len(container) <= slot:
                    container.append(None)
                if last:
                    container[slot] = value
                else:
                    if container[slot] is None:
                        container[slot] = empty
                    container = container[slot]
    return root
