"""Log output: plain lines or JSON lines, with target and revision fields, secrets scrubbed."""

from __future__ import annotations

import json
import logging
import sys
import time

from setpoint.escapes import escape_controls
from setpoint.secrets import RedactingFilter

_FIELDS = ("target", "revision", "trigger", "stage")

__all__ = ["JsonFormatter", "PlainFormatter", "escape_controls", "setup_logging"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{n}={getattr(record, n)}" for n in _FIELDS if getattr(record, n, None) is not None)
        message = escape_controls(record.getMessage())
        line = f"{self.formatTime(record, '%Y-%m-%d %H:%M:%S')} {record.levelname:<7} {record.name}: {message}"
        line = f"{line} [{escape_controls(extra)}]" if extra else line
        return f"{line}\n{record.exc_text}" if record.exc_text else line


def setup_logging(fmt: str = "plain", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    # The filter sits on the handler so records from every logger (plugins, libraries) pass it.
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_setpoint", False):
            root.removeHandler(existing)
    handler._setpoint = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
