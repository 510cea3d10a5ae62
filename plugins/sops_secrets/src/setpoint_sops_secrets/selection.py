"""Which leaves sops encrypted: the one selection rule in the metadata, applied to key paths.

A rule matches a path when *any* element of it matches (a suffix on a parent key covers the whole
subtree). Walkers carry a "matched so far" flag down the tree instead of re-checking whole paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"


@dataclass
class Selection:
    """``kind`` is one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex, or
    ``None`` (everything encrypted)."""

    kind: str | None
    pattern: str = ""
    _regex: re.Pattern[str] | None = field(default=None, repr=False)
    _cache: dict[str, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.kind in ("unencrypted_regex", "encrypted_regex"):
            # Go's regexp.Match is an unanchored search, like re.search.
            self._regex = re.compile(self.pattern)

    def matches(self, key: str) -> bool:
        """Whether one path element matches the rule (cached: keys repeat a lot)."""
        hit = self._cache.get(key)
        if hit is None:
            if self.kind is None:
                hit = False
            elif self._regex is not None:
                hit = self._regex.search(key) is not None
            else:
                hit = key.endswith(self.pattern)
            self._cache[key] = hit
        return hit

    def encrypted(self, matched: bool) -> bool:
        """Whether a leaf is encrypted, given whether any element of its path matched."""
        if self.kind in ("encrypted_suffix", "encrypted_regex"):
            return matched
        if self.kind in ("unencrypted_suffix", "unencrypted_regex"):
            return not matched
        return True
