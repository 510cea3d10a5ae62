"""Tampering must always be caught: a changed value, MAC or lastmodified, swapped or reordered values,
a missing MAC, a clear value where sops encrypts, and a wrong key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from setpoint_sops_secrets import SopsIntegrityError, SopsKeyError, SopsSettings, decrypt_bytes

FILES = {
    "yaml": "generated/enc/types.enc.yaml",
    "json": "generated/enc/types.enc.json",
    "dotenv": "generated/enc/app.enc.env",
    "ini": "generated/enc/app.enc.ini",
    "binary": "generated/enc/blob.enc.bin",
}
ENC = re.compile(r"ENC\[AES256_GCM,data:([^,]+),iv:[^,]+,tag:[^,]+,type:(\w+)\]")


@pytest.fixture(scope="module")
def settings(vectors: Path) -> SopsSettings:
    return SopsSettings(age_key_file=vectors / "generated/keys/age-keys.txt", use_environment=False)


def _load(vectors: Path, fmt: str) -> str:
    return (vectors / FILES[fmt]).read_text(encoding="latin-1")


def _decrypt(text: str, fmt: str, settings: SopsSettings) -> object:
    return decrypt_bytes(text.encode("latin-1"), settings, format=fmt, path=FILES[fmt])


def _flip(text: str, start: int) -> str:
    char = text[start]
    return text[:start] + ("B" if char != "B" else "C") + text[start + 1 :]


def _value_tokens(text: str) -> list[re.Match[str]]:
    """Encrypted data values (not comments, not the MAC)."""
    mac_at = text.find("mac")
    return [m for m in ENC.finditer(text) if m.group(2) not in ("comment",) and not (
        text.rfind("mac", 0, m.start()) > max(text.rfind("\n", 0, m.start()), 0) and m.start() > mac_at > 0)]


@pytest.mark.parametrize("fmt", list(FILES))
def test_untouched_files_decrypt(vectors: Path, settings: SopsSettings, fmt: str) -> None:
    assert _decrypt(_load(vectors, fmt), fmt, settings)


@pytest.mark.parametrize("fmt", list(FILES))
def test_flipped_value_is_caught(vectors: Path, settings: SopsSettings, fmt: str) -> None:
    text = _load(vectors, fmt)
    token = _value_tokens(text)[0]
    with pytest.raises(SopsIntegrityError, match="integrity check failed"):
        _decrypt(_flip(text, token.start(1) + 1), fmt, settings)


@pytest.mark.parametrize("fmt", list(FILES))
def test_flipped_mac_is_caught(vectors: Path, settings: SopsSettings, fmt: str) -> None:
    text = _load(vectors, fmt)
    mac = re.search(r"mac\W*\s*[=:]\s*\"?ENC\[AES256_GCM,data:", text)
    assert mac
    with pytest.raises(SopsIntegrityError, match="MAC"):
        _decrypt(_flip(text, mac.end() + 3), fmt, settings)


@pytest.mark.parametrize("fmt", list(FILES))
def test_changed_lastmodified_is_caught(vectors: Path, settings: SopsSettings, fmt: str) -> None:
    text = _load(vectors, fmt)
    changed = text.replace("2026-11-28T07:0", "2026-11-28T08:0", 1)
    assert changed != text
    with pytest.raises(SopsIntegrityError, match="MAC"):
        _decrypt(changed, fmt, settings)


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini"])
def test_swapped_values_are_caught(vectors: Path, settings: SopsSettings, fmt: str) -> None:
    text = _load(vectors, fmt)
    tokens = [m for m in _value_tokens(text) if m.group(2) == "str"]
    first, second = tokens[0], tokens[1]
    swapped = (text[: first.start()] + second.group() + text[first.end() : second.start()] + first.group()
               + text[second.end() :])
    with pytest.raises(SopsIntegrityError, match="integrity check failed"):
        _decrypt(swapped, fmt, settings)


def test_reordered_list_items_are_caught(vectors: Path, settings: SopsSettings) -> None:
    """List items share their list's AAD, so only the MAC notices a reorder."""
    text = _load(vectors, "yaml")
    block = re.search(r"list:\n(    - .*\n)+", text)
    assert block
    items = block.group().splitlines(keepends=True)
    reordered = items[0] + items[1] + items[3] + items[2] + "".join(items[4:])
    with pytest.raises(SopsIntegrityError, match="MAC mismatch"):
        _decrypt(text.replace(block.group(), reordered), "yaml", settings)


@pytest.mark.parametrize("fmt", list(FILES))
def test_missing_mac_is_refused(vectors: Path, settings: SopsSettings, fmt: str) -> None:
    text = _load(vectors, fmt)
    if fmt in ("json", "binary"):
        stripped = re.sub(r'"mac": "ENC\[[^\]]*\]"', '"mac": ""', text)
    else:  # drop the whole line
        stripped = re.sub(r"(?m)^[ \t]*(sops_)?mac\s*[=:]\s*ENC\[[^\]]*\]\n", "", text)
    assert stripped != text
    with pytest.raises(SopsIntegrityError, match="no MAC"):
        _decrypt(stripped, fmt, settings)


@pytest.mark.parametrize("fmt", ["yaml", "dotenv", "ini"])
def test_clear_value_where_sops_encrypts_is_refused(vectors: Path, settings: SopsSettings, fmt: str) -> None:
    text = _load(vectors, fmt)
    token = _value_tokens(text)[0]
    with pytest.raises(SopsIntegrityError, match="clear"):
        _decrypt(text[: token.start()] + "injected" + text[token.end() :], fmt, settings)


def test_wrong_key_names_the_recipients(vectors: Path) -> None:
    import pyrage

    other = SopsSettings(age_keys=[str(pyrage.x25519.Identity.generate())], use_environment=False)
    with pytest.raises(SopsKeyError) as info:
        _decrypt(_load(vectors, "yaml"), "yaml", other)
    assert "age:age1nhxk0yr94ny346a0wtm5nl4634sughrpdk0mrpy340hv5gxvvu7s295x04" in info.value.reason
    assert "1 age identity loaded" in info.value.reason
    assert FILES["yaml"] in str(info.value)
