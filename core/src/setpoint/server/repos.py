"""Repository URL normalisation, so a push names the same repository however its URL is spelt.

A Git host describes a repository by several URLs (HTTPS clone, SSH clone, web page) and
setpoint.yaml may use any of them. Each is reduced to ``host/owner/name``: scheme, user,
password and port dropped (SSH and HTTPS of one repository use different ports), host and path
lower-cased (GitHub, GitLab, Gitea and Bitbucket treat them case-insensitively), a trailing
``.git`` and slashes removed, and Bitbucket Data Center's ``scm/`` prefix of HTTP clone URLs
dropped. Local paths and ``file://`` URLs become ``file:<absolute path>``, case kept.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")


def normalize_repo(url: str) -> str:
    """``host/path`` for a remote URL, ``file:/abs/path`` for a local one ('' if unusable)."""
    text = url.strip()
    if not text:
        return ""
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme == "file":
            return "file:" + os.path.normpath(parts.path)
        host, path = (parts.hostname or "").lower(), parts.path
    else:
        match = _SCP.match(text)
        if match is None or text.startswith(("/", ".", "~")):
            return "file:" + os.path.normpath(os.path.abspath(os.path.expanduser(text)))
        host, path = match.group("host").lower(), match.group("path")
    path = path.strip("/").lower().removesuffix(".git").strip("/")
    if path.startswith("scm/"):
        path = path[4:]
    return f"{host}/{path}" if host and path else ""


def repo_path(normalized: str) -> str:
    """The ``owner/name`` part of a normalised remote URL (for payloads that carry no host)."""
    if normalized.startswith("file:"):
        return ""
    return normalized.split("/", 1)[1] if "/" in normalized else ""
