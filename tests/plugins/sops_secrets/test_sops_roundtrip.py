"""Round trips with the real sops: random documents in every format, random age keys, Shamir 2-of-3,
PGP, SSH and passphrase-protected identities; encrypted by sops, decrypted by setpoint, compared with
the original and with ``sops decrypt``."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
from pathlib import Path
from typing import Any

import pyrage
import pytest
from sops_expect import parse_plain

from setpoint.secrets import Secret, reveal_all
from setpoint_sops_secrets import SopsIntegrityError, SopsKeyError, SopsSettings, decrypt_bytes

pytestmark = pytest.mark.sops

SUFFIX = {"yaml": ".yaml", "json": ".json", "dotenv": ".env", "ini": ".ini", "binary": ".bin"}
TRICKY = ["yes", "no", "on", "null", "~", "0755", "1e3", "1:20", "a: b", "#hash", "- dash", " lead", "trail ",
          "quote'd", 'dq"', "tab\there", "héllo ✓", "2024-01-02", "*star", "&amp", "true", "3.0", "", "x" * 200]


class Sops:
    def __init__(self, binary: str, workdir: Path, env: dict[str, str]) -> None:
        self.binary, self.workdir, self.env = binary, workdir, env

    def run(self, *args: str, data: bytes | None = None, extra: dict[str, str] | None = None) -> bytes:
        proc = subprocess.run([self.binary, *args], input=data, capture_output=True, timeout=120,
                              env={**self.env, **(extra or {})}, cwd=self.workdir)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return proc.stdout

    def encrypt(self, plain: bytes, fmt: str, *flags: str) -> bytes:
        path = self.workdir / f"plain{SUFFIX[fmt]}"
        path.write_bytes(plain)
        return self.run("encrypt", "--input-type", fmt, "--output-type", fmt, *flags, str(path))

    def decrypt(self, enc: bytes, fmt: str, extra: dict[str, str]) -> bytes:
        path = self.workdir / f"enc{SUFFIX[fmt]}"
        path.write_bytes(enc)
        return self.run("decrypt", "--input-type", fmt, "--output-type", fmt, str(path), extra=extra)


@pytest.fixture
def sops(sops_binary: str, tmp_path: Path) -> Sops:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_DISABLE_VERSION_CHECK"] = "1"
    env["GNUPGHOME"] = str(tmp_path / "no-gnupg")
    return Sops(sops_binary, tmp_path, env)


def _identity() -> tuple[str, str]:
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def _word(rng: random.Random, tricky: bool = True) -> str:
    if tricky and rng.random() < 0.3:
        return rng.choice(TRICKY)
    return "".join(rng.choices(string.ascii_letters + string.digits + " _-.", k=rng.randint(1, 24))).strip() or "w"


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randint(-10**6, 10**6)
    if kind == 1:
        return rng.choice([0.5, -2.25, 3.14159, 1e-05, 6.02e23, 1234.5678])
    if kind == 2:
        return rng.random() < 0.5
    if kind == 3:
        return None
    if kind == 4:
        return "\n".join(_word(rng, False) for _ in range(rng.randint(2, 4))) + rng.choice(["", "\n"])
    return _word(rng)


def _tree(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for index in range(rng.randint(1, 5)):
        key = f"k{index}_{_word(rng, False).replace(' ', '_')}"
        roll = rng.random()
        if depth < 3 and roll < 0.25:
            out[key] = _tree(rng, depth + 1)
        elif depth < 3 and roll < 0.4:
            out[key] = [_tree(rng, depth + 1) if rng.random() < 0.3 else _scalar(rng) for _ in range(rng.randint(1, 4))]
        else:
            out[key] = _scalar(rng)
    return out


def _plain(fmt: str, rng: random.Random) -> tuple[bytes, Any]:
    """A random plaintext file and the data it holds."""
    if fmt == "yaml":
        import yaml

        docs = [_tree(rng) for _ in range(rng.randint(1, 2))]
        return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True).encode(), None
    if fmt == "json":
        return json.dumps(_tree(rng), ensure_ascii=False).encode(), None
    if fmt == "dotenv":
        pairs = {f"KEY_{i}": _word(rng).replace("\n", " ") for i in range(rng.randint(1, 8))}
        pairs["MULTI"] = "one\\ntwo"
        return "".join(f"{k}={v}\n" for k, v in pairs.items()).encode(), None
    if fmt == "ini":
        lines = []
        for section in range(rng.randint(1, 3)):
            lines.append(f"[section{section}]")
            for key in range(rng.randint(1, 4)):
                lines.append(f"key{key} = {''.join(rng.choices(string.ascii_letters + string.digits, k=12))}")
        return ("\n".join(lines) + "\n").encode(), None
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 2048))), None


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv", "ini", "binary"])
def test_random_documents_round_trip(sops: Sops, fmt: str, seed: int) -> None:
    rng = random.Random(f"{fmt}-{seed}")
    plain, _ = _plain(fmt, rng)
    secret_key, recipient = _identity()
    encrypted = sops.encrypt(plain, fmt, "--age", recipient)
    by_sops = sops.decrypt(encrypted, fmt, {"SOPS_AGE_KEY": secret_key})
    result = decrypt_bytes(encrypted, SopsSettings(age_keys=[secret_key], use_environment=False), format=fmt,
                           path=f"random{SUFFIX[fmt]}")
    ours = result.plaintext.reveal()
    if fmt == "binary":
        assert ours == plain == by_sops
        return
    assert ours == by_sops  # same bytes as sops decrypt
    assert reveal_all(result.documents) == parse_plain(fmt, by_sops)
    if fmt in ("dotenv", "ini"):
        assert parse_plain(fmt, ours) == parse_plain(fmt, plain)


def test_shamir_two_of_three_round_trip(sops: Sops) -> None:
    keys = [_identity() for _ in range(3)]
    config = sops.workdir / "sops-config.yaml"
    config.write_text("creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
                      + "".join(f"      - age:\n          - {r}\n" for _, r in keys))
    plain = b"db:\n  password: s3cr3t-shamir\n  port: 5432\n"
    path = sops.workdir / "shamir.yaml"
    path.write_bytes(plain)
    encrypted = sops.run("--config", str(config), "encrypt", str(path))
    for pair in ((0, 1), (0, 2), (1, 2)):
        settings = SopsSettings(age_keys=[keys[i][0] for i in pair], use_environment=False)
        result = decrypt_bytes(encrypted, settings, path="shamir.yaml", reveal=True)
        assert result.data == {"db": {"password": "s3cr3t-shamir", "port": 5432}}
        assert len(result.keys_used) == 2
    with pytest.raises(SopsKeyError, match="Shamir"):
        decrypt_bytes(encrypted, SopsSettings(age_keys=[keys[2][0]], use_environment=False), path="shamir.yaml")


def test_encrypted_regex_and_mac_only_encrypted(sops: Sops) -> None:
    secret_key, recipient = _identity()
    manifest = (b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n"
                b"stringData:\n  password: hunter22\n  url: postgres://u@h/db\n")
    config = sops.workdir / "sops-config.yaml"
    config.write_text("creation_rules:\n  - age: " + recipient + "\n    encrypted_regex: ^(data|stringData)$\n"
                      "    mac_only_encrypted: true\n")
    (sops.workdir / "secret.yaml").write_bytes(manifest)
    encrypted = sops.run("--config", str(config), "encrypt", str(sops.workdir / "secret.yaml"))
    assert b"mac_only_encrypted: true" in encrypted
    result = decrypt_bytes(encrypted, SopsSettings(age_keys=[secret_key], use_environment=False), path="s.yaml")
    data = result.data
    assert data["metadata"] == {"name": "db", "namespace": "prod"}  # clear stays plain
    assert isinstance(data["stringData"]["password"], Secret)
    assert data["stringData"]["password"].reveal() == "hunter22"
    # with mac_only_encrypted, clear values are not covered: changing one still decrypts (sops agrees)
    tampered = encrypted.replace(b"namespace: prod", b"namespace: dev")
    assert decrypt_bytes(tampered, SopsSettings(age_keys=[secret_key], use_environment=False),
                         path="s.yaml", reveal=True).data["metadata"]["namespace"] == "dev"


def test_pgp_round_trip(sops: Sops, vectors: Path, vector_gnupg_home: Path) -> None:
    plain = b'{"token": "pgp-secret-value", "n": 3}'
    sops.env["GNUPGHOME"] = str(vector_gnupg_home)
    encrypted = sops.encrypt(plain, "json", "--pgp", "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4")
    settings = SopsSettings(gnupg_home=vector_gnupg_home, use_environment=False)
    result = decrypt_bytes(encrypted, settings, path="p.json", reveal=True)
    assert result.data == {"token": "pgp-secret-value", "n": 3}
    assert result.keys_used == ("pgp:FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4",)


def test_ssh_ed25519_identity(sops: Sops) -> None:
    key = sops.workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=60)
    public = (sops.workdir / "id_ed25519.pub").read_text().split()[:2]
    encrypted = sops.encrypt(b"token: via-ssh-key\n", "yaml", "--age", " ".join(public))
    result = decrypt_bytes(encrypted, SopsSettings(ssh_key_file=key, use_environment=False), path="s.yaml",
                           reveal=True)
    assert result.data == {"token": "via-ssh-key"}


def test_passphrase_protected_identity_file(sops: Sops) -> None:
    secret_key, recipient = _identity()
    protected = sops.workdir / "keys.age"
    protected.write_bytes(pyrage.passphrase.encrypt(f"# test\n{secret_key}\n".encode(), "correct horse"))
    encrypted = sops.encrypt(b"token: behind-a-passphrase\n", "yaml", "--age", recipient)
    ok = SopsSettings(age_key_file=protected, age_key_passphrase="correct horse", use_environment=False)
    assert decrypt_bytes(encrypted, ok, path="s.yaml", reveal=True).data == {"token": "behind-a-passphrase"}
    wrong = SopsSettings(age_key_file=protected, age_key_passphrase="wrong", use_environment=False)
    with pytest.raises(SopsKeyError, match="passphrase"):
        decrypt_bytes(encrypted, wrong, path="s.yaml")


def test_environment_fallbacks(sops: Sops, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_key, recipient = _identity()
    encrypted = sops.encrypt(b"A=1\n", "dotenv", "--age", recipient)
    monkeypatch.setenv("SOPS_AGE_KEY", secret_key)
    assert decrypt_bytes(encrypted, path="a.env", reveal=True).data == {"A": "1"}
    monkeypatch.delenv("SOPS_AGE_KEY")
    key_file = sops.workdir / "env-keys.txt"
    key_file.write_text(secret_key + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    assert decrypt_bytes(encrypted, path="a.env", reveal=True).data == {"A": "1"}
    with pytest.raises(SopsKeyError):  # use_environment=False ignores both
        decrypt_bytes(encrypted, SopsSettings(use_environment=False), path="a.env")


def test_delegation_to_the_sops_binary(sops: Sops, sops_binary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose key only sops can use: simulated by hiding the native identities from the keyring."""
    from setpoint_sops_secrets.keys import datakey

    secret_key, recipient = _identity()
    encrypted = sops.encrypt(b"api:\n  token: delegated\n  port_unencrypted: 80\n", "yaml", "--age", recipient)
    monkeypatch.setattr(datakey, "_native_kind", lambda key: "AWS KMS")
    settings = SopsSettings(age_keys=[secret_key], sops_binary=sops_binary, use_environment=False)
    result = decrypt_bytes(encrypted, settings, path="d.yaml")
    assert result.backend == "sops-binary"
    assert isinstance(result.data["api"]["token"], Secret) and result.data["api"]["token"].reveal() == "delegated"
    assert result.data["api"]["port_unencrypted"] == 80
    assert b"token: delegated" in result.plaintext.reveal()
    tampered = encrypted.replace(b"lastmodified: \"20", b"lastmodified: \"19")
    with pytest.raises(SopsIntegrityError):
        decrypt_bytes(tampered, settings, path="d.yaml")
    with pytest.raises(SopsKeyError, match="set sops_binary"):
        decrypt_bytes(encrypted, SopsSettings(age_keys=[secret_key], use_environment=False), path="d.yaml")


KEYSTORE_NAMES = ["keystore.jks", "certs/server.p12", "krb5.keytab", "ca.der", "blob.bin", "keystore.json",
                  "secret.yaml"]


@pytest.mark.parametrize("name", KEYSTORE_NAMES)
def test_binary_payloads_round_trip_byte_for_byte(sops: Sops, name: str) -> None:
    """Keystores, certificates and keytabs are arbitrary bytes (not UTF-8): the decryptor returns them
    exactly, whatever the file is called (an envelope named *.json/*.yaml cannot hold a non-UTF-8 document)."""
    from setpoint_sops_secrets.plugin import SopsDecryptor

    payload = bytes(range(256)) * 8 + b"\xff\xfe\x00\xc3\x28"
    secret_key, recipient = _identity()
    encrypted = sops.encrypt(payload, "binary", "--age", recipient)
    assert sops.decrypt(encrypted, "binary", {"SOPS_AGE_KEY": secret_key}) == payload
    decryptor = SopsDecryptor(SopsSettings(age_keys=[secret_key], use_environment=False))
    assert decryptor.detect(name, encrypted)
    opened = decryptor.decrypt(name, encrypted)
    assert opened.plaintext.reveal() == payload
    assert opened.format == "binary" and opened.documents == []
