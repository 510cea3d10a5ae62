"""The ``Duration`` type of the configuration models, apart from :mod:`setpoint.durations` so that
parsing a duration on the command line does not import pydantic."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

from setpoint.durations import parse_duration

#: A duration setting: ``30s``, ``5m``, ``1h30m`` or a number of seconds; validated to seconds (float).
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({
    "anyOf": [{"type": "number", "minimum": 0},
              {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?)\s*$|^\s*((\d+(\.\d+)?)(ms|s|m|h|d|w)\s*)+$"}],
    "description": "A duration: 30s, 5m, 1h30m, 2d, or seconds as a number."})]
