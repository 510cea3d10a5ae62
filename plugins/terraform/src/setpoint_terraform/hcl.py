"""Reading Terraform configuration with python-hcl2, before any binary runs.

Two jobs: report syntax errors with file and line (so a broken commit stops at render), and find
what a root module depends on -- local modules (for path-scoped change detection), provider
requirements, module sources and the backend (to know when ``init`` must run again).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hcl2

#: python-hcl2 >= 8 keeps the quotes of string literals and block labels.
_QUOTED = re.compile(r'^"(.*)"$', re.S)
#: Fallback when python-hcl2 cannot parse a file terraform accepts: local module sources by regex.
_SOURCE_RE = re.compile(r'^\s*source\s*=\s*"(\.\.?/[^"]*)"', re.M)


class HclSyntaxError(Exception):
    def __init__(self, path: str, line: int | None, column: int | None, message: str) -> None:
        where = path + (f":{line}" if line else "") + (f":{column}" if line and column else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.column, self.message = path, line, column, message


def unquote(value: Any) -> Any:
    if isinstance(value, str):
        match = _QUOTED.match(value)
        return match.group(1) if match else value
    return value


def _describe(exc: Exception) -> tuple[int | None, int | None, str]:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    token = getattr(exc, "token", None)
    if token is not None:
        text = str(token).strip() or "end of file"
        message = f"syntax error: unexpected {text[:40]!r}"
    else:
        message = "syntax error: " + (str(exc).splitlines() or ["cannot parse"])[0][:200]
    expected = sorted(getattr(exc, "expected", None) or [])
    if expected:
        message += "; expected one of " + ", ".join(expected[:6])
    return line if isinstance(line, int) and line > 0 else None, column if isinstance(column, int) else None, message


def parse(path: str, text: str) -> dict[str, Any]:
    """Parse one ``.tf`` or ``.tf.json`` file; raises :class:`HclSyntaxError` with line and column."""
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HclSyntaxError(path, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}") from None
        return _from_json(data) if isinstance(data, dict) else {}
    try:
        return hcl2.loads(text)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - lark raises several unrelated exception types
        line, column, message = _describe(exc)
        raise HclSyntaxError(path, line, column, message) from None


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    """The JSON syntax's blocks into the list-of-blocks shape python-hcl2 returns."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value if isinstance(value, list) else [value]
    return out


def _blocks(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = doc.get(name) or []
    return [b for b in found if isinstance(b, dict)] if isinstance(found, list) else []


def _labelled(doc: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    """``module "x" {...}`` blocks as (label, body)."""
    out = []
    for block in _blocks(doc, name):
        for label, body in block.items():
            if label != "__is_block__" and isinstance(body, dict):
                out.append((str(unquote(label)), body))
    return out


def _plain(value: Any) -> Any:
    """A block body without python-hcl2's markers and quotes, for fingerprints."""
    if isinstance(value, dict):
        return {str(unquote(k)): _plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return unquote(value)


@dataclass
class ModuleScan:
    """What a root module and its local modules need, found without running terraform."""

    #: Directories (relative to the checkout) of local modules called from the root, transitively.
    local_modules: list[str] = field(default_factory=list)
    #: Everything whose change means ``terraform init`` must run again.
    init_inputs: dict[str, Any] = field(default_factory=dict)
    #: The root module's backend type ("cloud" for an HCP Terraform block), or None.
    backend: str | None = None
    #: Files python-hcl2 could not parse although terraform accepts them (scanned by regex instead).
    unparsed: list[str] = field(default_factory=list)


def scan(root: str, files: dict[str, bytes], confirm_syntax: Callable[[str, bytes], str | None]) -> ModuleScan:
    """Scan the root module at ``root`` (a directory relative to the checkout) and its local
    modules. ``files`` maps checkout-relative paths to contents. ``confirm_syntax(path, content)``
    asks terraform itself when python-hcl2 fails (None: terraform accepts the file) so a parser
    gap never blocks a valid commit."""
    result = ModuleScan()
    providers: dict[str, Any] = {}
    modules: dict[str, Any] = {}
    types: set[str] = set()
    pending, seen = [root], set()
    while pending:
        directory = pending.pop(0)
        if directory in seen:
            continue
        seen.add(directory)
        if directory != root:
            result.local_modules.append(directory)
        prefix = "" if directory in ("", ".") else directory + "/"
        names = sorted(p for p in files if p.startswith(prefix) and "/" not in p[len(prefix):]
                       and (p.endswith(".tf") or p.endswith(".tf.json")))
        for path in names:
            text = files[path].decode("utf-8", errors="replace")
            try:
                doc = parse(path, text)
            except HclSyntaxError as exc:
                terraform_says = confirm_syntax(path, files[path])
                if terraform_says is not None:
                    raise HclSyntaxError(exc.path, exc.line, exc.column, exc.message) from None
                result.unparsed.append(path)
                for source in _SOURCE_RE.findall(text):
                    pending.append(posixpath.normpath(posixpath.join(directory, source)))
                    modules[f"{path}:{source}"] = {"source": source}
                continue
            for block in _blocks(doc, "terraform"):
                for req in _blocks(block, "required_providers"):
                    providers.update({f"{directory}:{k}": _plain(v) for k, v in req.items() if k != "__is_block__"})
                for kind in ("backend", "cloud"):
                    for backend in _blocks(block, kind):
                        if directory == root:
                            result.backend = "cloud" if kind == "cloud" else next(
                                (str(unquote(k)) for k in backend if k != "__is_block__"), None)
                            result.init_inputs[f"backend:{path}"] = _plain(backend)
            for name, body in _labelled(doc, "module"):
                source = unquote(body.get("source"))
                modules[f"{directory}:{name}"] = {"source": source, "version": unquote(body.get("version"))}
                if isinstance(source, str) and (source.startswith("./") or source.startswith("../")):
                    pending.append(posixpath.normpath(posixpath.join(directory, source)))
            for kind in ("resource", "data"):
                for block in _blocks(doc, kind):
                    types.update(str(unquote(k)).split("_", 1)[0] for k in block if k != "__is_block__")
    for directory in result.local_modules:
        if directory.startswith("../") or directory == "..":
            raise HclSyntaxError(root, None, None, f"local module {directory} is outside the repository")
    result.init_inputs.update({"providers": providers, "modules": modules, "provider_types": sorted(types)})
    return result
