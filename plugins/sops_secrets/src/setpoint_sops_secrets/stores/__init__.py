"""The five sops stores and detection of which one a file uses, by content first."""

from __future__ import annotations

import re

from setpoint_sops_secrets.stores.base import ParsedFile, Store
from setpoint_sops_secrets.stores.binary import BinaryStore
from setpoint_sops_secrets.stores.dotenv import DotenvStore
from setpoint_sops_secrets.stores.ini import IniStore
from setpoint_sops_secrets.stores.json import JsonStore
from setpoint_sops_secrets.stores.yaml import YamlStore

FORMATS = ("yaml", "json", "dotenv", "ini", "binary")
STORES: dict[str, Store] = {
    "yaml": YamlStore(),
    "json": JsonStore(),
    "dotenv": DotenvStore(),
    "ini": IniStore(),
    "binary": BinaryStore(),
}

# Cheap content signatures of the metadata block, per store (a full parse confirms later).
_YAML_META = re.compile(rb"^sops:[ \t]*(#.*)?\r?$", re.MULTILINE)
_YAML_FIELD = re.compile(rb"^[ \t]+(lastmodified|mac|version):", re.MULTILINE)
_JSON_META = re.compile(rb'"sops"\s*:\s*\{')
_JSON_FIELD = re.compile(rb'"(lastmodified|mac)"\s*:')
_DOTENV_META = re.compile(rb"^sops_(lastmodified|mac|version)=", re.MULTILINE)
_INI_META = re.compile(rb"^[ \t]*\[sops\][ \t]*\r?$", re.MULTILINE)
_INI_FIELD = re.compile(rb"^[ \t]*(lastmodified|mac|version)[ \t]*=", re.MULTILINE)
_YAML_SUFFIXES = (".yaml", ".yml")
#: An encrypted value as sops writes it: in a structured file it means "this was meant to be sops".
_ENC_VALUE = re.compile(rb"ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:[a-z]+\]")
_STRUCTURED_SUFFIXES = (*_YAML_SUFFIXES, ".json", ".env", ".ini")


def detect_format(relpath: str, content: bytes) -> str | None:
    """The store of a sops file, judged by its content (its metadata block); None if it is not one.

    The name only breaks ties the content cannot: a JSON envelope is the binary store unless the
    file is named ``*.json`` (or is YAML by name), as with sops itself.
    """
    head = content.lstrip()[:1]
    name = relpath.lower()
    if head in (b"{",) and _JSON_META.search(content) and _JSON_FIELD.search(content):
        if name.endswith(".json"):
            return "json"
        if name.endswith(_YAML_SUFFIXES):
            return "yaml"
        return "binary" if is_envelope(content) else "json"
    if _YAML_META.search(content) and _YAML_FIELD.search(content):
        return "yaml"
    if _DOTENV_META.search(content):
        return "dotenv"
    if _INI_META.search(content) and _INI_FIELD.search(content):
        return "ini"
    return _looks_like_sops(name, head, content)


def _looks_like_sops(name: str, head: bytes, content: bytes) -> str | None:
    """A store to try for a file with a sops block or sops values but no complete metadata signature.

    Such a file was encrypted by sops and then damaged (metadata removed or mangled by a merge or
    an editor). Deploying it as data would put ciphertext where a secret belongs, so it is
    detected, and decrypting it fails with the file named. Encrypted values alone count only in
    files of a structured type (a README quoting an example ``ENC[...]`` is data).
    """
    if _JSON_META.search(content):
        return "json"
    if _YAML_META.search(content):
        return "yaml"
    if _DOTENV_META.search(content):
        return "dotenv"
    if _INI_META.search(content):
        return "ini"
    if name.endswith(_STRUCTURED_SUFFIXES) and _ENC_VALUE.search(content):
        return "json" if head == b"{" else format_from_name(name)
    return None


def is_envelope(content: bytes) -> bool:
    """A JSON object holding exactly `data` and `sops`: the binary store's envelope."""
    import json

    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and set(data) == {"data", "sops"}


def format_from_name(relpath: str) -> str:
    """sops' own choice by file extension (everything unknown is binary)."""
    name = relpath.lower()
    if name.endswith(_YAML_SUFFIXES):
        return "yaml"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".env"):
        return "dotenv"
    if name.endswith(".ini"):
        return "ini"
    return "binary"


__all__ = ["FORMATS", "STORES", "ParsedFile", "Store", "detect_format", "format_from_name", "is_envelope"]
