"""YAML loading with a bound on alias expansion, for every YAML file setpoint or a plugin parses.

An alias is a reference, so ``a: &a [x, x]; b: &b [*a, *a]; ...`` is a few hundred bytes that
stands for billions of nodes: parsing is cheap, but anything that walks the result (a diff, a
digest, JSON for the API server) expands it and exhausts memory. PyYAML has no limit, so the
composed node graph is measured here before anything is constructed: the size each node stands
for, counted once per node through a memo (linear in the graph, never in the expansion), must stay
under :data:`MAX_NODES`. A recursive alias (a node containing itself) is refused too.

Public: plugins may import this module (it is part of the API, like ``setpoint.api``).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

#: Expanded nodes one file may stand for. A 10 MB manifest without aliases is around a million.
MAX_NODES = 2_000_000


class YAMLTooLarge(yaml.YAMLError):  # noqa: N818 - reads as a sentence: "YAML too large"
    """The document expands to more than the limit (an alias bomb), or refers to itself."""


def _loader() -> type[yaml.SafeLoader]:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_expansion(node: Node | None, origin: str = "", limit: int = MAX_NODES) -> int:
    """The number of nodes ``node`` stands for with every alias expanded; :class:`YAMLTooLarge` over ``limit``."""
    if node is None:
        return 0
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    where = f"{origin}: " if origin else ""
    # Iterative post-order walk: deeply nested documents must not hit Python's recursion limit.
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        key = id(current)
        if key in sizes:
            continue
        children = _children(current)
        if not children_done:
            if key in in_progress:
                raise YAMLTooLarge(f"{where}a YAML alias refers to a node that contains it (recursive alias)")
            in_progress.add(key)
            stack.append((current, True))
            for child in children:
                if id(child) in in_progress and id(child) not in sizes:
                    raise YAMLTooLarge(f"{where}a YAML alias refers to a node that contains it (recursive alias)")
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        total = 1 + sum(sizes[id(child)] for child in children)
        if total > limit:
            raise YAMLTooLarge(f"{where}YAML expands to more than {limit:,} nodes (aliases that multiply, "
                               "a \"billion laughs\" document?); refused before use")
        sizes[key] = total
        in_progress.discard(key)
    return sizes[id(node)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def load_all(text: str | bytes, origin: str = "", limit: int = MAX_NODES) -> list[Any]:
    """Every document of ``text`` (safe loader, the C one when available), each bounded by ``limit``."""
    loader = _loader()(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            check_expansion(node, origin, limit)
            documents.append(loader.construct_document(node))
        return documents
    finally:
        loader.dispose()


def load(text: str | bytes, origin: str = "", limit: int = MAX_NODES) -> Any:
    """The single document of ``text`` (None when empty), bounded like :func:`load_all`."""
    loader = _loader()(text)
    try:
        node = loader.get_single_node()
        check_expansion(node, origin, limit)
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def compose(text: str | bytes, origin: str = "", limit: int = MAX_NODES) -> Node | None:
    """The node graph of the single document of ``text``, bounded like :func:`load_all`."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        check_expansion(node, origin, limit)
        return node
    finally:
        loader.dispose()
