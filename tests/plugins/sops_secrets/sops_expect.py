"""Helpers shared by the SOPS tests: parse plain (decrypted) files of each format into comparable data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from setpoint_sops_secrets import SopsSettings
from setpoint_sops_secrets.stores.dotenv import _parse as parse_dotenv
from setpoint_sops_secrets.stores.ini import _parse as parse_ini
from setpoint_sops_secrets.stores.yaml import compose_all, to_python


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
