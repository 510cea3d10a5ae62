"""Combining Shamir shares the way sops (HashiCorp Vault's scheme) splits data keys.

Arithmetic is in GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1. Each share is the y values for
every secret byte followed by one byte x (the share's x coordinate, never 0). The secret is the
polynomial's value at x = 0, found per byte by Lagrange interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence


def _tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        # multiply by the generator 3 (x + 1): value*2 xor value, reduced by the polynomial
        doubled = value << 1
        if doubled & 0x100:
            doubled ^= 0x11B
        value = doubled ^ value
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


_EXP, _LOG = _tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


def combine(shares: Sequence[bytes]) -> bytes:
    """Recover the secret from at least ``threshold`` shares (fewer give a wrong key, which the
    MAC then rejects; callers check the count against ``shamir_threshold`` first)."""
    if len(shares) < 2:
        raise ValueError("at least two shares are needed")
    length = len(shares[0])
    if length < 2 or any(len(share) != length for share in shares):
        raise ValueError("shares differ in length")
    xs = [share[-1] for share in shares]
    if len(set(xs)) != len(xs) or 0 in xs:
        raise ValueError("duplicate or zero share coordinates")
    # Lagrange basis at x = 0: prod_{j != i} x_j / (x_i - x_j); subtraction is xor in GF(2^8).
    basis = []
    for i, xi in enumerate(xs):
        weight = 1
        for j, xj in enumerate(xs):
            if i != j:
                weight = _mul(weight, _div(xj, xi ^ xj))
        basis.append(weight)
    secret = bytearray(length - 1)
    for position in range(length - 1):
        acc = 0
        for share, weight in zip(shares, basis, strict=True):
            acc ^= _mul(share[position], weight)
        secret[position] = acc
    return bytes(secret)
