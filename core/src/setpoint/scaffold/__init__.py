"""``setpoint plugin new NAME``: write a working skeleton distribution for a new target kind.

The skeleton (templates in ``template/``) is a complete plugin: a pyproject with the entry point, a
driver with settings over a trivial live system (a key/value store in a JSON file), the driver
conformance suite wired to it, and a README. It passes its own tests as written.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SUFFIX = ".tmpl"


class ScaffoldError(ValueError):
    """The name or the destination cannot be used; the message says why."""


@dataclass(frozen=True)
class PluginNames:
    """Every name the skeleton derives from the kind's name."""

    kind: str

    @property
    def dist(self) -> str:
        return "setpoint-" + self.kind.replace("_", "-")

    @property
    def module(self) -> str:
        return "setpoint_" + self.kind

    @property
    def cls(self) -> str:
        return "".join(part.capitalize() for part in self.kind.split("_") if part) + "Target"

    def substitutions(self) -> dict[str, str]:
        return {"kind": self.kind, "dist": self.dist, "module": self.module, "cls": self.cls}


def check_name(name: str) -> PluginNames:
    if not _NAME.match(name) or keyword.iskeyword(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(f"{name!r} is not a usable kind name: use lowercase letters, digits and single "
                            "underscores, starting with a letter (e.g. 'ansible' or 'dns_records')")
    return PluginNames(name)


def _templates(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found = []
    for entry in folder.iterdir():
        if entry.is_dir():
            found.extend(_templates(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(_SUFFIX):
            found.append((prefix + entry.name.removesuffix(_SUFFIX), entry))
    return sorted(found, key=lambda item: item[0])


def write_skeleton(name: str, parent: Path) -> Path:
    """Write the skeleton of kind ``name`` into ``parent/setpoint-<name>``; returns that folder.

    Refuses to write into an existing non-empty folder (nothing is overwritten)."""
    names = check_name(name)
    destination = parent / names.dist
    if destination.exists() and any(destination.iterdir()):
        raise ScaffoldError(f"{destination} already exists and is not empty; choose another --directory")
    values = names.substitutions()
    for relpath, template in _templates(resources.files(__package__).joinpath("template")):
        target = destination / relpath.replace("__module__", names.module)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(template.read_text()).substitute(values))
    return destination
