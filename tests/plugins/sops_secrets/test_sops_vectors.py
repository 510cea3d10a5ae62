"""Differential tests over every vector in ../shared/vectors/sops (see its README and index.json)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from sops_expect import load_index, parse_plain, settings_for

from setpoint.secrets import Secret, iter_secrets, reveal_all
from setpoint_sops_secrets import SopsIntegrityError, SopsKeyError, decrypt_file
from setpoint_sops_secrets.cipher import DataKeyCipher, parse_enc
from setpoint_sops_secrets.mac import normalize_lastmodified
from setpoint_sops_secrets.metadata import parse_metadata
from setpoint_sops_secrets.pipeline import decrypt_with_data_key
from setpoint_sops_secrets.stores import STORES, detect_format

INDEX = load_index()
IDS = [entry["file"] for entry in INDEX]
# Written by older sops with 2-space indentation: our output keeps the file's layout, sops re-indents.
LAYOUT_DIFFERS = {
    "fluxcd-kustomize-controller/age.yaml",
    "fluxcd-kustomize-controller/pgp.yaml",
    "fluxcd-kustomize-controller/global-secret.yaml",
    "fluxcd-kustomize-controller/merge1.yaml",
}


def _entries() -> list[Any]:
    return list(INDEX)


def _same(left: Any, right: Any) -> bool:
    """Equality that treats NaN as equal to NaN and 42 as equal to 42.0 (sops' JSON floats)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers) and float in (type(left), type(right)):
        return not isinstance(left, bool) and not isinstance(right, bool) and float(left) == float(right)
    return bool(left == right)


def test_every_vector_is_listed(vectors: Path) -> None:
    assert len(INDEX) == 35


@pytest.mark.parametrize("entry", _entries(), ids=IDS)
def test_vector_decrypts_to_expected(entry: dict[str, Any], vectors: Path, vector_gnupg_home: Path) -> None:
    path = vectors / entry["file"]
    settings = settings_for(vectors, entry, vector_gnupg_home)
    assert detect_format(entry["file"], path.read_bytes()) == entry["format"]
    if entry["file"].endswith("no_mac.yaml"):
        with pytest.raises(SopsIntegrityError, match="has no MAC"):
            decrypt_file(path, settings)
        return
    if "native_python_error" in entry:  # age-pq: pyrage has no ML-KEM hybrid identity
        with pytest.raises(SopsKeyError, match="post-quantum") as info:
            decrypt_file(path, settings)
        assert "sops_binary" in info.value.reason
        return
    result = decrypt_file(path, settings)
    assert result.format == entry["format"]
    assert result.keys_used and all(label.split(":")[0] in entry["master_keys"] for label in result.keys_used)
    assert isinstance(result.plaintext, Secret)
    expected = (vectors / entry["expected"]).read_bytes()
    plaintext = result.plaintext.reveal()
    if entry["format"] == "binary":
        assert plaintext == expected
        assert result.documents == []
        return
    assert _same(reveal_all(result.documents), parse_plain(entry["format"], expected))
    # what we print parses to the same data as what sops prints
    assert _same(parse_plain(entry["format"], plaintext), parse_plain(entry["format"], expected))
    if entry["file"] not in LAYOUT_DIFFERS:
        assert plaintext == expected
    assert any(True for _ in iter_secrets(result.documents)) or entry.get("mac_only_encrypted") is False


@pytest.mark.parametrize("entry", [e for e in INDEX if e.get("data_key_hex")] or _entries(), ids=lambda e: e["file"] if e else "none")
def test_aes_gcm_and_mac_with_the_data_key(entry: dict[str, Any], vectors: Path) -> None:
    """AES-GCM, AAD paths, typing and the MAC, with the data key from index.json: no age, no PGP."""
    path = vectors / entry["file"]
    content = path.read_bytes()
    key = bytes.fromhex(entry["data_key_hex"])
    store = STORES[entry["format"]]
    metadata = parse_metadata(store.parse(content).metadata)
    if metadata.mac is None:
        with pytest.raises(SopsIntegrityError, match="no MAC"):
            decrypt_with_data_key(entry["file"], content, key)
        return
    stored_mac = DataKeyCipher(key).decrypt(parse_enc(metadata.mac), normalize_lastmodified(metadata.lastmodified).encode())
    assert stored_mac.decode() == entry["mac_hex"]
    result = decrypt_with_data_key(entry["file"], content, key)  # raises unless our MAC equals it
    if entry.get("expected") and entry["format"] != "binary":
        expected = parse_plain(entry["format"], (vectors / entry["expected"]).read_bytes())
        assert _same(reveal_all(result.documents), expected)


def test_wrong_data_key_fails_on_the_first_value(vectors: Path) -> None:
    entry = next(e for e in INDEX if e["file"] == "generated/enc/types.enc.yaml")
    content = (vectors / entry["file"]).read_bytes()
    with pytest.raises(SopsIntegrityError, match="does not authenticate"):
        decrypt_with_data_key(entry["file"], content, bytes(32))


@pytest.mark.parametrize("pair", [(1, 2), (1, 3), (2, 3)])
def test_shamir_any_two_of_three_keys(vectors: Path, pair: tuple[int, int]) -> None:
    lines = [line for line in (vectors / "generated/keys/age-keys.txt").read_text().splitlines()
             if line.startswith("AGE-SECRET-KEY-1")]
    from setpoint_sops_secrets import SopsSettings

    settings = SopsSettings(age_keys=[lines[i - 1] for i in pair], use_environment=False)
    result = decrypt_file(vectors / "generated/enc/shamir.enc.yaml", settings, reveal=True)
    assert len(result.keys_used) == 2
    expected = parse_plain("yaml", (vectors / "generated/expected/shamir.enc.yaml").read_bytes())
    assert result.documents == expected


@pytest.mark.parametrize("single", [1, 2, 3])
def test_shamir_one_key_is_not_enough(vectors: Path, single: int) -> None:
    lines = [line for line in (vectors / "generated/keys/age-keys.txt").read_text().splitlines()
             if line.startswith("AGE-SECRET-KEY-1")]
    from setpoint_sops_secrets import SopsSettings

    settings = SopsSettings(age_keys=[lines[single - 1]], use_environment=False)
    with pytest.raises(SopsKeyError, match="1 of the 2 Shamir key groups"):
        decrypt_file(vectors / "generated/enc/shamir.enc.yaml", settings)
