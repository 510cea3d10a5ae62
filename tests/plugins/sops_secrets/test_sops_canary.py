"""A canary value must never appear in anything printable: results, documents, errors, logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyrage
import pytest
from sops_expect import make_sops_yaml

from setpoint.errors import DecryptError
from setpoint.secrets import safe_error, to_jsonable
from setpoint_sops_secrets import SopsSettings, check_tree, decrypt_bytes
from setpoint_sops_secrets.plugin import SopsDecryptor

CANARY = "CANARY-7f3a9c1e-must-never-leak"


@pytest.fixture
def identity() -> tuple[str, str]:
    ident = pyrage.x25519.Identity.generate()
    return str(ident), str(ident.to_public())


def _renderings(*objects: object) -> str:
    out = []
    for obj in objects:
        out += [str(obj), repr(obj), f"{obj}", json.dumps(to_jsonable(obj), default=str)]
    return "\n".join(out)


def test_canary_never_printed(identity: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret_key, recipient = identity
    content = make_sops_yaml({"password": CANARY, "user_unencrypted": "admin"}, recipient)
    caplog.set_level(logging.DEBUG)
    decryptor = SopsDecryptor(SopsSettings(age_keys=[secret_key], use_environment=False))
    assert decryptor.detect("secret.yaml", content)
    decrypted = decryptor.decrypt("secret.yaml", content)
    assert decrypted.data["password"].reveal() == CANARY  # it is there...
    assert decrypted.plaintext.reveal().count(CANARY.encode()) == 1
    via_api = decrypt_bytes(content, SopsSettings(age_keys=[secret_key], use_environment=False), path="s.yaml")
    text = _renderings(decrypted, decrypted.documents, decrypted.data, decrypted.plaintext, via_api, via_api.data)
    assert CANARY not in text  # ...but never printed
    assert decrypted.data["user_unencrypted"] == "admin"

    # errors: a MAC failure and a clear value injected where sops encrypts
    tampered = content.replace(b'lastmodified: "2026', b'lastmodified: "2027')
    injected = content.replace(content.split(b"password: ")[1].split(b"\n")[0], CANARY.encode())
    for bad in (tampered, injected):
        with pytest.raises(DecryptError) as info:
            decryptor.decrypt("secret.yaml", bad)
        assert CANARY not in _renderings(info.value, info.value.reason, safe_error(info.value))

    # check results
    (tmp_path / "secret.yaml").write_bytes(content)
    (tmp_path / "broken.yaml").write_bytes(tampered)
    results = check_tree(tmp_path, SopsSettings(age_keys=[secret_key], use_environment=False))
    assert [r.ok for r in results] == [False, True]
    assert CANARY not in _renderings(results, [r.to_record() for r in results], [r.describe() for r in results])

    # logs: neither the value nor the key material
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert CANARY not in logged and secret_key not in logged


def test_key_material_never_in_errors(identity: tuple[str, str], tmp_path: Path) -> None:
    secret_key, recipient = identity
    other_key, other_recipient = identity[0], str(pyrage.x25519.Identity.generate().to_public())
    content = make_sops_yaml({"password": CANARY}, other_recipient)
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# created: now\n{secret_key}\nnot-a-key-line\n")
    with pytest.raises(DecryptError) as info:
        decrypt_bytes(content, SopsSettings(age_key_file=key_file, use_environment=False), path="s.yaml")
    text = _renderings(info.value, info.value.reason)
    assert secret_key not in text and other_key not in text and CANARY not in text
    assert str(key_file) in text and other_recipient in text  # names what was tried, safely
