"""Helpers shared by the SOPS tests: parse plain (decrypted) files of each format into comparable data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from setpoint_sops_secrets import SopsSettings
from setpoint_sops_secrets.stores.dotenv import _parse as parse_dotenv
from setpoint_sops_secrets.stores.ini import _parse as parse_ini
from setpoint_sops_secrets.stores.yaml import compose_all, to_python

REPO_ROOT = Path(__file__).resolve().parents[3]  # tests/plugins/sops_secrets/ -> repo root


#: Real SOPS files with their throwaway keys, kept in the repository (tests/data/sops-vectors/README.md),
#: so a fresh clone runs every test.
VECTORS = REPO_ROOT / "tests" / "data" / "sops-vectors"


def load_index() -> list[dict[str, Any]]:
    """The vector index (tests/data/sops-vectors/index.json); missing is an error, never an empty suite."""
    index: list[dict[str, Any]] = json.loads((VECTORS / "index.json").read_text())
    assert index, f"{VECTORS / 'index.json'} lists no vectors"
    return index


def parse_plain(fmt: str, content: bytes) -> Any:
    """The documents a decrypted file holds, as plain data (what a consumer would read)."""
    if fmt == "yaml":
        return [to_python(node) for node in compose_all(content.decode())]
    if fmt == "json":
        return [json.loads(content)]
    if fmt == "dotenv":
        items, _ = parse_dotenv(content)
        return [{key: value for key, value in items if key is not None}]
    if fmt == "ini":
        _, sections = parse_ini(content.decode())
        return [
            {s.name: {e.key: e.value for e in s.entries if e.key is not None}
             for s in sections if s.name != "DEFAULT" or any(e.key for e in s.entries)}
        ]
    return content


def settings_for(vectors: Path, entry: dict[str, Any], gnupg_home: Path | None) -> SopsSettings:
    """Settings holding exactly the keys index.json lists for a vector (no environment)."""
    age = [(vectors / k).read_text() for k in entry["keys"] if k.endswith(".txt")]
    return SopsSettings(age_keys=age, gnupg_home=gnupg_home, use_environment=False)


def make_sops_yaml(values: dict[str, str], recipient: str, lastmodified: str = "2026-11-28T00:00:00Z") -> bytes:
    """A minimal sops YAML file written by the test itself (flat string values, one age recipient),
    so tests can hold a canary without the sops binary. Follows the format in shared/notes/sops.md."""
    import base64
    import hashlib

    import pyrage
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key = os.urandom(32)
    aead = AESGCM(data_key)

    def enc(plain: bytes, aad: bytes, type_tag: str = "str") -> str:
        iv = os.urandom(32)
        sealed = aead.encrypt(iv, plain, aad)
        b64 = base64.b64encode
        return (f"ENC[AES256_GCM,data:{b64(sealed[:-16]).decode()},iv:{b64(iv).decode()},"
                f"tag:{b64(sealed[-16:]).decode()},type:{type_tag}]")

    mac = hashlib.sha512()
    lines = []
    for key, value in values.items():
        mac.update(value.encode())
        if key.endswith("_unencrypted"):
            lines.append(f"{key}: {value}")
        else:
            lines.append(f"{key}: {enc(value.encode(), f'{key}:'.encode())}")
    wrapped = base64.b64encode(pyrage.encrypt(data_key, [pyrage.x25519.Recipient.from_str(recipient)])).decode()
    armor = "\n".join(wrapped[i : i + 64] for i in range(0, len(wrapped), 64))
    stanza = "\n".join("            " + line for line in
                       ["-----BEGIN AGE ENCRYPTED FILE-----", *armor.splitlines(), "-----END AGE ENCRYPTED FILE-----"])
    lines += [
        "sops:",
        "    age:",
        f"        - recipient: {recipient}",
        "          enc: |",
        stanza,
        f'    lastmodified: "{lastmodified}"',
        f"    mac: {enc(mac.hexdigest().upper().encode(), lastmodified.encode())}",
        "    unencrypted_suffix: _unencrypted",
        "    version: 3.11.0",
    ]
    return ("\n".join(lines) + "\n").encode()
