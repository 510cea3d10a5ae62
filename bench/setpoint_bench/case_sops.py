"""Case 6: SOPS decryption of a ~1 MB YAML with 10,000 encrypted values, setpoint's native
decryptor (``setpoint_sops_secrets.decrypt_bytes``, what the decrypt stage calls for each
encrypted file) versus the ``sops decrypt`` binary on the same file and the same age key.

Both outputs are compared byte for byte once, so a fast wrong answer cannot win.
"""

from __future__ import annotations

import os
import random
import string
import subprocess

from setpoint_bench.harness import Ctx, Row, compare, speedup_row

CASE = "6 SOPS decryption"


def run(ctx: Ctx) -> list[Row]:
    import pyrage

    from setpoint_sops_secrets import SopsSettings, decrypt_bytes

    sops = os.environ["SETPOINT_SOPS_BIN"]
    groups, per_group = (10, 50) if ctx.smoke else (100, 100)
    identity = pyrage.x25519.Identity.generate()
    rng = random.Random(6)
    lines: list[str] = []
    for group in range(groups):
        lines += [f"service_{group:03d}:", "    config:"]
        lines += [f"        key_{k:03d}: {''.join(rng.choices(string.ascii_letters, k=24))}" for k in range(per_group)]
    base = ctx.scratch("sops")
    plain = base / "big.yaml"
    plain.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SOPS_AGE_KEY": str(identity), "SOPS_DISABLE_VERSION_CHECK": "1"}
    encrypted = subprocess.run([sops, "encrypt", "--age", str(identity.to_public()), str(plain)],
                               capture_output=True, check=True, env=env).stdout
    enc_path = base / "big.enc.yaml"
    enc_path.write_bytes(encrypted)
    settings = SopsSettings(age_keys=[str(identity)], use_environment=False)
    values = encrypted.count(b"ENC[") - 1  # minus the data key's MAC
    binary_out = subprocess.run([sops, "decrypt", str(enc_path)], capture_output=True, check=True, env=env).stdout
    assert decrypt_bytes(encrypted, settings, path="big.yaml").plaintext.reveal() == binary_out, "outputs differ"

    def native() -> None:
        decrypt_bytes(encrypted, settings, path="big.yaml")

    def binary() -> None:
        subprocess.run([sops, "decrypt", str(enc_path)], capture_output=True, check=True, env=env)

    ours, theirs = compare(native, binary, ctx.reps, ctx.warmup)
    return [speedup_row(CASE, f"decrypt {len(encrypted) / 1e6:.2f} MB, {values} values", ours, "sops decrypt",
                        theirs, min_ratio=1.0, target="no slower than sops (ratio >= 1)",
                        note="in-process (age key loaded per call) vs one sops process")]
