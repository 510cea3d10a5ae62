"""Hostile SOPS files: an alias bomb in a sops YAML file, and files that sops wrote but whose
metadata was removed or mangled, are errors naming the file, never deployed data."""

from __future__ import annotations

import pytest

from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.plugin import SopsDecryptor
from setpoint_sops_secrets.settings import SopsSettings
from setpoint_sops_secrets.stores.yaml import compose_all

ENC = "ENC[AES256_GCM,data:AAAA,iv:BBBBBBBBBBBBBBBB,tag:CCCCCCCCCCCCCCCCCCCCCC==,type:str]"
META = ("sops:\n    age:\n        - recipient: age1qqq\n          enc: x\n    lastmodified: \"2026-01-01T00:00:00Z\"\n"
        "    mac: " + ENC + "\n    version: 3.9.0\n")
BOMB = ('l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
        + "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 8)))


def test_an_alias_bomb_in_a_sops_yaml_file_is_refused_before_it_expands() -> None:
    with pytest.raises(FormatProblem, match="expands to more than"):
        compose_all(f"password: {ENC}\n{BOMB}{META}")
    decryptor = SopsDecryptor(SopsSettings())
    content = f"password: {ENC}\n{BOMB}{META}".encode()
    assert decryptor.detect("secrets.yaml", content)
    with pytest.raises(Exception, match=r"secrets\.yaml.*expands to more than"):
        decryptor.decrypt("secrets.yaml", content)


@pytest.mark.parametrize(("name", "content"), [
    ("a.yaml", f"password: {ENC}\nsops:\n    kms: []\n"),                      # fields removed
    ("b.yaml", f"password: {ENC}\n"),                                           # block removed
    ("c.json", f'{{"password": "{ENC}", "sops": {{"version": "3.9.0"}}}}'),
    ("d.env", f"PASSWORD={ENC}\n"),
    ("e.yaml", f"password: {ENC}\nsops:\n    mac: [broken\n"),
])
def test_a_file_that_looks_like_sops_but_does_not_parse_is_an_error(name: str, content: str) -> None:
    decryptor = SopsDecryptor(SopsSettings())
    assert decryptor.detect(name, content.encode()), "a damaged sops file would be deployed as ciphertext"
    with pytest.raises(Exception, match=name.replace(".", r"\.")):
        decryptor.decrypt(name, content.encode())


def test_an_example_value_in_a_readme_is_data() -> None:
    assert not SopsDecryptor(SopsSettings()).detect("README.md", f"Values look like {ENC}.\n".encode())
