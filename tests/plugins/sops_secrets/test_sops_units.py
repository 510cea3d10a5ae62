"""Unit tests of the building blocks: Go number formatting, go-yaml typing and styles, Shamir, rules."""

from __future__ import annotations

import math
import os
import random

import pytest

from setpoint_sops_secrets.cipher import aad_for, parse_enc
from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.gofmt import (
    format_float_f,
    format_float_g,
    format_float_json,
    parse_bool,
    parse_int,
)
from setpoint_sops_secrets.mac import normalize_lastmodified
from setpoint_sops_secrets.metadata import parse_metadata, unflatten
from setpoint_sops_secrets.selection import Selection
from setpoint_sops_secrets.shamir import _div, _mul, combine
from setpoint_sops_secrets.stores.goyaml import Timestamp, render_string, render_value, resolve_plain
from setpoint_sops_secrets.stores.ini import go_ini_value


@pytest.mark.parametrize(
    ("value", "f", "g"),
    [
        (3.14159, "3.14159", "3.14159"),
        (1.0, "1", "1"),
        (1e21, "1000000000000000000000", "1e+21"),
        (1e-05, "0.00001", "1e-05"),
        (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"),
        (1234568000.0, "1234568000", "1.234568e+09"),
        (100000.0, "100000", "100000"),
        (-2.5, "-2.5", "-2.5"),
        (0.0, "0", "0"),
        (6.02e23, "602000000000000000000000", "6.02e+23"),
        (math.inf, "+Inf", "+Inf"),
        (-math.inf, "-Inf", "-Inf"),
    ],
)
def test_go_float_formats(value: float, f: str, g: str) -> None:
    assert format_float_f(value) == f
    assert format_float_g(value) == g


def test_go_json_float_and_parsers() -> None:
    assert format_float_json(1e21) == "1e+21"
    assert format_float_json(1e-7) == "1e-7"
    assert format_float_json(1234567890123456789.0) == "1234567890123456800"
    assert parse_bool("True") and parse_bool("1") and not parse_bool("F")
    with pytest.raises(ValueError):
        parse_bool("yes")
    assert parse_int("-7") == -7
    with pytest.raises(ValueError):
        parse_int("1_000")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"), ("true", True), ("False", False), ("~", None), ("null", None), ("0755", 493),
        ("0o755", 493), ("0x1F", 31), ("1_000", 1000), ("1:20", "1:20"), (".inf", math.inf),
        ("6.02e+23", 6.02e23), ("1e+21", 1e21), ("-7", -7), ("3.5", 3.5), ("hello", "hello"), ("<<", "<<"),
        ("2024-01-02", Timestamp("2024-01-02")), ("2024-01-02T03:04:05Z", Timestamp("2024-01-02T03:04:05Z")),
    ],
)  # fmt: skip
def test_resolve_plain_like_go_yaml_v3(text: str, value: object) -> None:
    resolved = resolve_plain(text)
    assert resolved == value and type(resolved) is type(value)


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("hello world", "hello world"), ("yes", '"yes"'), ("y", '"y"'), ("2", '"2"'), ("1.5", '"1.5"'),
        ("null", '"null"'), ("2024-01-01", '"2024-01-01"'), ("  leading", "'  leading'"), ("a: b", "'a: b'"),
        ("a #b", "'a #b'"), ("- x", "'- x'"), ("*x", "'*x'"), ("abc:", "'abc:'"), ("it's", "it's"),
        ('say "hi"', 'say "hi"'), ("a\tb", '"a\\tb"'), ("\x85x", '"\\Nx"'), ("back\\slash", "back\\slash"),
        ("1:20", '"1:20"'), ("héllo ✓", "héllo ✓"), ("😀", '"\\U0001F600"'),
    ],
)  # fmt: skip
def test_render_string_like_go_yaml(value: str, rendered: str) -> None:
    assert render_string(value, 4) == rendered


def test_render_block_scalars() -> None:
    assert render_string("line1\nline2\n", 4) == "|\n    line1\n    line2"
    assert render_string("x\ny", 8) == "|-\n        x\n        y"
    assert render_string("trailing\n\n", 4) == "|+\n    trailing\n"
    assert render_string(" lead\nx", 4) == '" lead\\nx"'  # would need an indentation indicator
    assert render_value(1e21, "float", 4) == "1e+21"
    assert render_value(True, "bool", 4) == "true"


def test_go_ini_quoting() -> None:
    assert go_ini_value("plain") == "plain"
    assert go_ini_value("a;b") == "`a;b`"
    assert go_ini_value(" padded ") == '" padded "'
    assert go_ini_value("two\nlines") == '"""two\nlines"""'


def _split(secret: bytes, parts: int, threshold: int) -> list[bytes]:
    """Vault's Shamir split, written independently for the test: one random polynomial per byte."""
    xs = random.sample(range(1, 256), parts)
    shares = [bytearray() for _ in range(parts)]
    for byte in secret:
        coefficients = [byte] + [random.randrange(256) for _ in range(threshold - 1)]
        for share, x in zip(shares, xs, strict=True):
            y, power = 0, 1
            for c in coefficients:
                y ^= _mul(c, power)
                power = _mul(power, x)
            share.append(y)
    return [bytes(share) + bytes([x]) for share, x in zip(shares, xs, strict=True)]


def test_gf256_field_laws() -> None:
    for a in range(1, 256):
        assert _mul(a, _div(1, a)) == 1
    assert _mul(0x57, 0x83) == 0xC1  # FIPS-197's worked example


@pytest.mark.parametrize(("parts", "threshold"), [(3, 2), (5, 3), (2, 2), (4, 4)])
def test_shamir_combine_any_threshold_subset(parts: int, threshold: int) -> None:
    secret = os.urandom(32)
    shares = _split(secret, parts, threshold)
    for _ in range(5):
        assert combine(random.sample(shares, threshold)) == secret
    if threshold > 2:
        assert combine(shares[: threshold - 1]) != secret


def test_shamir_rejects_duplicates() -> None:
    share = os.urandom(33)
    with pytest.raises(ValueError):
        combine([share, share])


def test_selection_rules() -> None:
    assert Selection("unencrypted_suffix", "_unencrypted").encrypted(False)
    sel = Selection("encrypted_regex", "^(data|stringData)$")
    assert sel.matches("stringData") and not sel.matches("metadata")
    assert sel.encrypted(True) and not sel.encrypted(False)
    assert Selection("unencrypted_regex", "^pub").matches("public_key")  # unanchored like Go
    assert Selection(None).encrypted(False)


def test_metadata_validation() -> None:
    base = {"lastmodified": "2024-01-01T00:00:00Z", "mac": "x", "age": [{"recipient": "r", "enc": "e"}]}
    meta = parse_metadata(base)
    assert meta.selection.kind == "unencrypted_suffix" and meta.shamir_threshold == 1
    with pytest.raises(FormatProblem, match="more than one"):
        parse_metadata({**base, "encrypted_regex": "a", "unencrypted_suffix": "_u"})
    with pytest.raises(FormatProblem, match="no master key"):
        parse_metadata({"lastmodified": "2024-01-01T00:00:00Z"})
    with pytest.raises(FormatProblem, match="lastmodified"):
        parse_metadata({"age": [{"recipient": "r", "enc": "e"}]})
    flat = unflatten({"key_groups__list_0__map_age__list_0__map_enc": "e", "shamir_threshold": "2",
                      "key_groups__list_0__map_age__list_0__map_recipient": "r", "mac_only_encrypted": "true"})
    assert flat["key_groups"][0]["age"][0] == {"enc": "e", "recipient": "r"}
    assert parse_metadata({**flat, "lastmodified": "2024-01-01T00:00:00Z"}).mac_only_encrypted


def test_enc_parsing_and_aad() -> None:
    with pytest.raises(FormatProblem):
        parse_enc("ENC[AES256_GCM,data:AA==,iv:AA==,type:str]")
    with pytest.raises(FormatProblem):
        parse_enc("plain")
    assert aad_for(("a", "b")) == b"a:b:" and aad_for(()) == b":"
    assert normalize_lastmodified("2024-01-01T00:00:00.5+00:00") == "2024-01-01T00:00:00Z"
