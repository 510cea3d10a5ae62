"""The redacting secret type and the helpers that keep decrypted values out of every output.

A decrypted value is wrapped in :class:`Secret` the moment it leaves a decryptor. The wrapper
prints as ``<secret>`` in ``str``/``repr``/``format``/f-strings, refuses pickling and JSON encoding
by default, and compares by value so diffs still work. Code that really needs the value calls
:meth:`Secret.reveal` (rendering a manifest, writing a private file, calling an API). A diff of a
secret field shows :meth:`Secret.fingerprint`, a salted digest that says "changed" without
disclosing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

REDACTED = "<secret>"

# One process-wide salt for fingerprints. The state store replaces it with the installation's
# persistent salt (see setpoint.state) so fingerprints stay comparable across restarts without
# being comparable across installations (a fingerprint is never a precomputable hash).
_salt_lock = threading.Lock()
_salt: bytes = os.urandom(32)


def set_fingerprint_salt(salt: bytes) -> None:
    """Set the salt used by :meth:`Secret.fingerprint` (called once by the state store)."""
    global _salt
    with _salt_lock:
        _salt = bytes(salt)


class Secret(Generic[T]):
    """A value that must never be printed, logged, stored or sent in clear.

    ``Secret`` is deliberately small: wrap, compare, fingerprint, reveal. Everything that turns an
    object into text (``str``, ``repr``, ``format``, ``json.dumps`` via :func:`to_jsonable`) yields
    the redaction marker instead of the value.
    """

    __slots__ = ("_value", "_origin")
    _value: T
    _origin: str

    def __init__(self, value: T, origin: str = "") -> None:
        if isinstance(value, Secret):  # never double-wrap
            value = value.reveal()
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_origin", origin)
        _registry.add(value)

    def reveal(self) -> T:
        """Return the clear value. Call it only where the value must leave the process (an API call,
        a private file), never to build a message."""
        return self._value

    @property
    def origin(self) -> str:
        """Where the value came from (file and key path), safe to print."""
        return self._origin

    def fingerprint(self) -> str:
        """A salted digest of the value: equal values give equal fingerprints within an installation."""
        raw = self._value
        data = raw if isinstance(raw, bytes) else json.dumps(raw, sort_keys=True, default=str).encode()
        return "sha256:" + hmac.new(_salt, data, hashlib.sha256).hexdigest()[:16]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(_as_bytes(self._value), _as_bytes(other._value))
        return False

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("Secret values cannot be pickled")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value, sort_keys=True, default=str).encode()


class _SecretRegistry:
    """Remembers the text of every secret seen in this process so log records can be scrubbed.

    This is the second line of defence: the first is that nothing formats a ``Secret`` into text.
    Should a plugin reveal a value and then put it in an exception message, the log filter and the
    error sanitiser still replace it. Only values of four characters or more are tracked, so that
    ``true`` or ``1`` does not blank out ordinary words.
    """

    MIN_LENGTH = 4
    #: With more known values than this, a scrub looks up the values that start with one of the
    #: text's 4-character windows instead of searching the text for each value: a decrypted file can
    #: add thousands, and the dashboard scrubs every string of a 1,000-row page and then the whole
    #: page (400 kB), which took 0.8 s per request with 500 values and would take seconds with 10,000.
    INDEXED_ABOVE = 64

    def __init__(self) -> None:
        self._values: set[str] = set()
        #: the values longest first, and by their first MIN_LENGTH characters (each longest first)
        self._lookup: tuple[list[str], dict[str, list[str]]] | None = None
        self._lock = threading.Lock()

    def add(self, value: Any) -> None:
        # Hot path: a decryptor wraps every leaf of a file (10,000 values in a large one), so this
        # stays cheap: no lock (set.add is atomic), the scrub pattern is rebuilt lazily.
        if isinstance(value, str):
            text = value
        elif isinstance(value, bytes):
            try:
                text = value.decode()
            except UnicodeDecodeError:
                return
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
        else:
            return
        if "\n" in text:
            for line in text.splitlines():
                self._add_line(line.strip())
        else:
            self._add_line(text.strip())

    def clear(self) -> None:
        with self._lock:
            self._values = set()
            self._lookup = None

    def _add_line(self, line: str) -> None:
        if len(line) >= self.MIN_LENGTH and line not in self._values:
            self._values.add(line)

    def scrub(self, text: str) -> str:
        # Few values: a substring test each (about 50 ns). Many: only the values whose first
        # characters occur in the text are tested, so the cost follows the text, not the number of
        # secrets. Both replace longer values first (a value inside another goes with it). Nothing is
        # compiled when secrets are added (a regex alternation of 10,000 takes half a second).
        if not self._values or len(text) < self.MIN_LENGTH:
            return text
        ordered, by_prefix = self._current_lookup()
        if len(ordered) > self.INDEXED_ABOVE:
            width = self.MIN_LENGTH
            windows = {text[i:i + width] for i in range(len(text) - width + 1)}
            hits = windows & by_prefix.keys()
            if not hits:
                return text
            ordered = sorted((value for prefix in hits for value in by_prefix[prefix]), key=len, reverse=True)
        for value in ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def _current_lookup(self) -> tuple[list[str], dict[str, list[str]]]:
        lookup = self._lookup
        if lookup is None or len(lookup[0]) != len(self._values):
            with self._lock:
                ordered = sorted(list(self._values), key=len, reverse=True)
                by_prefix: dict[str, list[str]] = {}
                for value in ordered:
                    by_prefix.setdefault(value[:self.MIN_LENGTH], []).append(value)
                lookup = self._lookup = (ordered, by_prefix)
        return lookup


_registry = _SecretRegistry()


def forget_known_values() -> None:
    """Empty the scrubber's memory of secret values (between tests: one test's secrets, such as a
    short word, must not blank out another test's messages)."""
    _registry.clear()


def scrub(text: str) -> str:
    """Replace every known secret value in ``text`` by the redaction marker."""
    return _registry.scrub(text)


def _is_setpoint_error(exc: BaseException) -> bool:
    # by name: secrets and errors are one layer and may not import each other (.importlinter)
    return any(c.__module__ == "setpoint.errors" and c.__name__ == "SetpointError" for c in type(exc).__mro__)


def safe_error(exc: BaseException) -> str:
    """Describe an exception for status, audit and notifications without any secret in it.

    setpoint's own errors say what is wrong and what to do, so their class name is noise for the
    reader; anything else is a bug or an unforeseen failure, named as such so it can be reported."""
    message = scrub(str(exc))
    if _is_setpoint_error(exc) and message:
        return message
    kind = exc.__class__.__name__
    return (f"{message or 'no message'} (unexpected {kind}; run with --log-level DEBUG for the traceback "
            "and report it if it persists)")


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs known secret values out of every record, arguments included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not break logging
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
            del exc
        return True


def contains_secret(value: Any) -> bool:
    """True when ``value`` (any nesting of dicts, lists and tuples) holds a :class:`Secret`."""
    if isinstance(value, Secret):
        return True
    if isinstance(value, Mapping):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_secret(v) for v in value)
    return False


def reveal_all(value: Any) -> Any:
    """Return a copy of ``value`` with every :class:`Secret` replaced by its clear value.

    For drivers that must hand a whole document to an API or a file; keep the result local.
    """
    if isinstance(value, Secret):
        return reveal_all(value.reveal())
    if isinstance(value, Mapping):
        return {k: reveal_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal_all(v) for v in value]
    if isinstance(value, tuple):
        return tuple(reveal_all(v) for v in value)
    return value


def to_jsonable(value: Any) -> Any:
    """Return a JSON-safe copy of ``value`` in which each secret is replaced by its fingerprint marker."""
    if isinstance(value, Secret):
        return {"secret": value.fingerprint()}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes": hashlib.sha256(value).hexdigest()[:16]}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def iter_secrets(value: Any) -> Iterator[Secret[Any]]:
    """Yield every :class:`Secret` inside ``value``."""
    if isinstance(value, Secret):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from iter_secrets(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from iter_secrets(v)


def register_known_values(values: Iterable[str]) -> None:
    """Tell the scrubber about clear values that reached the process without a :class:`Secret`
    (for example environment variables a plugin reads)."""
    for value in values:
        _registry.add(value)


def wrap_like(value: Any, template: Any) -> Any:
    """Wrap the leaves of ``value`` (e.g. a live object read from an API) in :class:`Secret`
    wherever ``template`` (the desired object) holds a secret, so the two compare by value and
    the live value is protected from then on."""
    if isinstance(template, Secret):
        return value if isinstance(value, Secret) else Secret(value)
    if isinstance(template, Mapping) and isinstance(value, Mapping):
        return {k: wrap_like(v, template[k]) if k in template else v for k, v in value.items()}
    if isinstance(template, list) and isinstance(value, list) and len(template) == len(value):
        return [wrap_like(v, t) for v, t in zip(value, template, strict=True)]
    return value
