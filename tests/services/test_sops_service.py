"""Smoke tests: the real sops binary decrypts the shared vectors (dev/services up sops)."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from service_fixtures import SOPS_VECTORS

pytestmark = pytest.mark.sops


def vectors():
    assert SOPS_VECTORS.is_dir(), f"the SOPS vectors are missing from the repository ({SOPS_VECTORS})"
    return SOPS_VECTORS


def test_decrypt_age_vector(sops_env):
    d = vectors() / "fluxcd-kustomize-controller"
    proc = sops_env.run(
        "decrypt", "--input-type", "yaml", "--output-type", "json", str(d / "age.yaml"),
        extra_env={"SOPS_AGE_KEY_FILE": str(d / "keys" / "age.txt")},
    )
    got = json.loads(proc.stdout)
    expected = yaml.safe_load((d / "expected" / "age.yaml").read_text())
    assert got == expected
    assert got["stringData"]["key"] == "value"


def test_decrypt_pgp_vector_with_gpg(sops_env, tmp_path):
    d = vectors() / "getsops-sops"
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    subprocess.run([sops_env.gpg, "--homedir", str(home), "--batch", "--import",
                    str(d / "keys" / "sops_functional_tests_key.asc")], check=True, capture_output=True, timeout=60)
    proc = sops_env.run("decrypt", str(d / "functional-tests" / "format.enc.yaml"), extra_env={"GNUPGHOME": str(home)})
    assert yaml.safe_load(proc.stdout) == {"foo": "bar"}


def test_wrong_key_fails(sops_env):
    d = vectors() / "fluxcd-kustomize-controller"
    proc = sops_env.run("decrypt", str(d / "age.yaml"), check=False)  # the session's fresh key is not a recipient
    assert proc.returncode != 0


def test_round_trip_with_fresh_age_key(sops_env, tmp_path):
    plain = tmp_path / "secret.yaml"
    plain.write_text("password: hunter2\n")
    enc = sops_env.run("encrypt", "--age", sops_env.age_recipient, str(plain)).stdout
    assert b"hunter2" not in enc and b"ENC[AES256_GCM" in enc
    enc_file = tmp_path / "secret.enc.yaml"
    enc_file.write_bytes(enc)
    assert yaml.safe_load(sops_env.run("decrypt", str(enc_file)).stdout) == {"password": "hunter2"}
