"""The decryptor as the core sees it: registration, settings, detection by content, check_tree."""

from __future__ import annotations

import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import ValidationError

from setpoint.api import DecryptedFile
from setpoint.errors import DecryptError
from setpoint.secrets import Secret
from setpoint_sops_secrets import CheckResult, SopsSettings, check_tree, decrypt_file, detect_format
from setpoint_sops_secrets.plugin import SopsDecryptor, setpoint_register_decryptors


def test_entry_point_registers_the_decryptor() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="setpoint")}
    assert names.get("sops_secrets") == "setpoint_sops_secrets.plugin"
    registered: list[type] = []
    setpoint_register_decryptors(registered.append)
    assert registered == [SopsDecryptor]
    assert SopsDecryptor.name == "sops" and SopsDecryptor.Settings is SopsSettings


def test_settings_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        SopsSettings.model_validate({"age_key_file": "k.txt", "ignore_mac": True})
    settings = SopsSettings.model_validate({"age_key_file": "k.txt", "sops_binary": "/usr/bin/sops"})
    assert settings.age_key_file == Path("k.txt")
    assert "AGE-SECRET" not in repr(SopsSettings(age_keys=["AGE-SECRET-KEY-1XYZ"]))


def test_detection_is_by_content(vectors: Path) -> None:
    types = (vectors / "generated/enc/types.enc.yaml").read_bytes()
    assert detect_format("no-extension", types) == "yaml"
    assert detect_format("app.env.enc", (vectors / "generated/enc/app.enc.env").read_bytes()) == "dotenv"
    assert detect_format("x.conf", (vectors / "generated/enc/app.enc.ini").read_bytes()) == "ini"
    assert detect_format("blob", (vectors / "generated/enc/blob.enc.bin").read_bytes()) == "binary"
    assert detect_format("t.json", (vectors / "generated/enc/types.enc.json").read_bytes()) == "json"
    assert detect_format("secrets.enc.yaml", b"apiVersion: v1\nkind: ConfigMap\n") is None
    assert detect_format("values.json", b'{"sops": "is just a word here"}') is None
    plain_secret = (vectors / "fluxcd-kustomize-controller/inside-secret.yaml").read_bytes()
    assert detect_format("inside-secret.yaml", plain_secret) is None  # a sops file base64'd inside: not one
    assert not SopsDecryptor(None).detect("a.yaml", b"sops: true\n")


def test_decrypt_returns_a_decrypted_file(vectors: Path) -> None:
    decryptor = SopsDecryptor({"age_key_file": str(vectors / "generated/keys/age-keys.txt"), "use_environment": False})
    content = (vectors / "generated/enc/multidoc.enc.yaml").read_bytes()
    result = decryptor.decrypt("k8s/secrets.yaml", content)
    assert isinstance(result, DecryptedFile)
    assert result.format == "yaml" and result.decryptor == "sops" and len(result.documents) == 2
    token = result.documents[1]["stringData"]["token"]
    assert isinstance(token, Secret) and token.reveal() == "second-token"
    assert token.origin == "k8s/secrets.yaml:stringData.token"
    assert result.documents[0]["metadata"] == {"name": "first"}  # clear under encrypted_regex
    assert isinstance(result.plaintext, Secret) and b"sops:" not in result.plaintext.reveal()
    assert result.keys_used == ("age:age1nhxk0yr94ny346a0wtm5nl4634sughrpdk0mrpy340hv5gxvvu7s295x04",)
    with pytest.raises(DecryptError):
        decryptor.decrypt("k8s/plain.yaml", b"a: b\n")


def test_public_api_reveal_flag(vectors: Path) -> None:
    settings = SopsSettings(age_key_file=vectors / "generated/keys/age-keys.txt", use_environment=False)
    wrapped = decrypt_file(vectors / "generated/enc/app.enc.env", settings)
    plain = decrypt_file(vectors / "generated/enc/app.enc.env", settings, reveal=True)
    assert isinstance(wrapped.data["DB_PASSWORD"], Secret)
    assert plain.data["DB_PASSWORD"] == "p@ss=word" and plain.data["MULTI"] == "line1\nline2"
    assert plain.data["EMPTY"] == ""
    blob = decrypt_file(vectors / "generated/enc/blob.enc.bin", settings, reveal=True)
    assert blob.data == (vectors / "generated/plain/blob.bin").read_bytes()
    assert wrapped.to_decrypted_file().path.endswith("app.enc.env")


def test_check_tree(vectors: Path, tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    (tree / "apps" / ".git").mkdir(parents=True)
    shutil.copy(vectors / "generated/enc/types.enc.yaml", tree / "apps/secrets.yaml")
    shutil.copy(vectors / "generated/enc/app.enc.env", tree / "apps/app.env")
    shutil.copy(vectors / "generated/enc/types.enc.yaml", tree / "apps/.git/ignored.yaml")
    (tree / "apps/plain.yaml").write_text("a: b\n")
    broken = (vectors / "generated/enc/app.enc.ini").read_text().replace("2026-11-28T07", "2026-11-28T09")
    (tree / "broken.ini").write_text(broken)
    (tree / "other.yaml").write_bytes((vectors / "fluxcd-kustomize-controller/age.yaml").read_bytes())
    settings = SopsSettings(age_key_file=vectors / "generated/keys/age-keys.txt", use_environment=False)
    results = {r.path: r for r in check_tree(tree, settings)}
    assert set(results) == {"apps/app.env", "apps/secrets.yaml", "broken.ini", "other.yaml"}
    assert results["apps/secrets.yaml"] == CheckResult(
        "apps/secrets.yaml", True, "yaml", ("age:age1nhxk0yr94ny346a0wtm5nl4634sughrpdk0mrpy340hv5gxvvu7s295x04",))
    assert not results["broken.ini"].ok and "MAC" in results["broken.ini"].reason
    assert not results["other.yaml"].ok and "age1l44xcng8" in results["other.yaml"].reason
    assert results["broken.ini"].describe().startswith("FAIL  broken.ini: integrity check failed")
    single = check_tree(tree / "apps/app.env", settings)
    assert [r.path for r in single] == ["app.env"] and single[0].ok
