"""Benchmark: decrypt a ~1 MB YAML with 10,000 encrypted values natively vs ``sops decrypt``.

Run: ``.venv/bin/python tests/plugins/sops_secrets/bench_sops_decrypt.py`` (needs sops on PATH or
SETPOINT_SOPS_BIN). Not collected by pytest; prints the best of several runs for each.
"""

from __future__ import annotations

import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyrage

from setpoint_sops_secrets import SopsSettings, decrypt_bytes


def main(runs: int = 5) -> None:
    sops = os.environ.get("SETPOINT_SOPS_BIN") or shutil.which("sops")
    if not sops:
        sys.exit("sops not found")
    identity = pyrage.x25519.Identity.generate()
    rng = random.Random(6)
    lines = []
    for service in range(100):
        lines += [f"service_{service:03d}:", "    config:"]
        lines += [f"        key_{k:03d}: {''.join(rng.choices(string.ascii_letters, k=24))}" for k in range(100)]
    env = {**os.environ, "SOPS_AGE_KEY": str(identity), "SOPS_DISABLE_VERSION_CHECK": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "big.yaml"
        plain.write_text("\n".join(lines) + "\n")
        encrypted = subprocess.run([sops, "encrypt", "--age", str(identity.to_public()), str(plain)],
                                   capture_output=True, check=True, env=env).stdout
        enc_path = Path(tmp) / "big.enc.yaml"
        enc_path.write_bytes(encrypted)
        settings = SopsSettings(age_keys=[str(identity)], use_environment=False)
        native, binary = [], []
        for _ in range(runs):
            start = time.perf_counter()
            result = decrypt_bytes(encrypted, settings, path="big.yaml")
            native.append(time.perf_counter() - start)
            start = time.perf_counter()
            out = subprocess.run([sops, "decrypt", str(enc_path)], capture_output=True, check=True, env=env).stdout
            binary.append(time.perf_counter() - start)
        assert out == result.plaintext.reveal(), "outputs differ"
    print(f"file: {len(encrypted) / 1e6:.2f} MB, {encrypted.count(b'ENC[') - 1} encrypted values")
    print(f"setpoint native: best {min(native):.3f} s, median {sorted(native)[runs // 2]:.3f} s")
    print(f"sops decrypt:    best {min(binary):.3f} s, median {sorted(binary)[runs // 2]:.3f} s")


if __name__ == "__main__":
    main()
