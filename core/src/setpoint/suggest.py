""""Did you mean" for names people type: target names, kinds, configuration keys."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The one choice closest to ``word`` when it is close enough to be a typo, else None."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    match = close_match(word, choices)
    return f" (did you mean {match!r}?)" if match else ""


def unknown_target(name: str, known: Iterable[str]) -> str:
    """The message for a target name that is not in the configuration."""
    names = list(known)
    return (f"no target named {name!r} in the configuration{did_you_mean(name, names)}; "
            f"configured targets: {', '.join(names) or 'none'}")
