"""The YAML store: multi-document files, comments, anchors and ``<<`` merge keys as sops keeps them.

Parsing uses libyaml (PyYAML's C parser) for speed, but not PyYAML's constructor: plain scalars are
typed the way go-yaml v3 types them and ``<<`` stays a literal key. The decrypted file is produced
by replacing each ``ENC[...]`` scalar in the original text with its value written as go-yaml would
write it, so comments, key order and layout survive and nothing is re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from setpoint.yamlsafe import YAMLTooLarge, check_expansion
from setpoint_sops_secrets.errors import FormatProblem
from setpoint_sops_secrets.stores.base import ParsedFile
from setpoint_sops_secrets.stores.goyaml import render_value, resolve_plain
from setpoint_sops_secrets.tree import LeafContext

try:
    from yaml._yaml import CParser as _Parser  # libyaml: an order of magnitude faster
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


PLAIN = "!setpoint/plain"
_TAG = "tag:yaml.org,2002:"
_COMMENT_LINE = re.compile(r"^[ \t]*#(ENC\[AES256_GCM,[^\]\n]*\])[ \t]*\r?$", re.MULTILINE)
_DROP = object()  # an encrypted comment stored as a list item: not data


class _Composer(_Parser, BaseResolver):  # type: ignore[misc, valid-type]
    """libyaml's composer with a resolver that marks plain scalars instead of typing them."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        BaseResolver.__init__(self)

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            return PLAIN
        return BaseResolver.resolve(self, kind, value, implicit)  # type: ignore[arg-type]


def compose_all(text: str) -> list[Node]:
    loader = _Composer(text)
    try:
        nodes: list[Node] = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                check_expansion(node)  # an alias bomb is refused before any walk expands it
                nodes.append(node)
        return nodes
    except YAMLTooLarge as exc:
        raise FormatProblem(str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        # The message may quote the offending line, which may hold a value: keep the position only.
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FormatProblem(f"not valid YAML{where}") from None
    except yaml.YAMLError:
        raise FormatProblem("not valid YAML") from None
    finally:
        loader.dispose()


def scalar_value(node: ScalarNode) -> Any:
    tag = node.tag
    if tag == PLAIN:
        return resolve_plain(node.value)
    if not tag.startswith(_TAG):
        return node.value  # custom tags (!Ref ...): sops keeps the text
    short = tag[len(_TAG) :]
    if short in ("str", "timestamp", "merge"):
        return node.value
    if short == "binary":
        try:
            return base64.b64decode(node.value)
        except binascii.Error:
            raise FormatProblem("invalid !!binary value") from None
    resolved = resolve_plain(node.value)
    if short == "null":
        return None
    if short == "bool" and isinstance(resolved, bool):
        return resolved
    if short == "int" and isinstance(resolved, int) and not isinstance(resolved, bool):
        return resolved
    if short == "float" and isinstance(resolved, int | float) and not isinstance(resolved, bool):
        return float(resolved)
    raise FormatProblem(f"cannot interpret a scalar tagged !!{short}")


def to_python(node: Node) -> Any:
    """A plain conversion, for the metadata block."""
    if isinstance(node, MappingNode):
        return {str(k.value): to_python(v) for k, v in node.value}
    if isinstance(node, SequenceNode):
        return [to_python(v) for v in node.value]
    assert isinstance(node, ScalarNode)
    return scalar_value(node)


class _Walker:
    def __init__(self, ctx: LeafContext, text: str) -> None:
        self.ctx = ctx
        self.text = text
        self.edits: dict[int, tuple[int, str]] = {}
        self.key_lines: list[int] = []
        self.key_cols: list[int] = []
        self.key_paths: list[tuple[str, ...]] = []
        self.multiline: list[tuple[int, int]] = []

    def document(self, node: Node) -> Any:
        if not isinstance(node, MappingNode):
            raise FormatProblem("a YAML document is not a mapping (sops refuses those)")
        return self.mapping(node, (), False, "", top=True)

    def mapping(self, node: MappingNode, path: tuple[str, ...], matched: bool, where: str, top: bool = False) -> Any:
        out: dict[str, Any] = {}
        selection = self.ctx.selection
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise FormatProblem(f"a key under {where or 'the document root'} is not a scalar")
            key = key_node.value
            if top and key == "sops":
                self._strip(key_node, value_node)
                continue
            child_where = f"{where}.{key}" if where else key
            if key in out:
                raise FormatProblem(f"duplicate key {child_where}")
            mark = key_node.start_mark
            self.key_lines.append(mark.line)
            self.key_cols.append(mark.column)
            self.key_paths.append(path)
            child_path = path + (key,)
            child_matched = matched or selection.matches(key)
            if isinstance(value_node, ScalarNode):
                # go-yaml aligns a block scalar's lines to the next multiple of its indent (4)
                value = self.scalar(value_node, child_path, child_matched, child_where, (mark.column // 4 + 1) * 4)
                out[key] = value if value is not _DROP else None
            elif isinstance(value_node, MappingNode):
                out[key] = self.mapping(value_node, child_path, child_matched, child_where)
            else:
                out[key] = self.sequence(value_node, child_path, child_matched, child_where)
        return out

    def sequence(self, node: SequenceNode, path: tuple[str, ...], matched: bool, where: str) -> list[Any]:
        out: list[Any] = []
        for index, item in enumerate(node.value):
            item_where = f"{where}[{index}]"
            if isinstance(item, ScalarNode):
                value = self.scalar(item, path, matched, item_where, item.start_mark.column, in_sequence=True)
                if value is not _DROP:
                    out.append(value)
            elif isinstance(item, MappingNode):
                out.append(self.mapping(item, path, matched, item_where))
            else:
                out.append(self.sequence(item, path, matched, item_where))
        return out

    def scalar(
        self, node: ScalarNode, path: tuple[str, ...], matched: bool, where: str, indent: int, in_sequence: bool = False
    ) -> Any:
        start, end = node.start_mark, node.end_mark
        if start.line != end.line:
            self.multiline.append((start.index, end.index))
        tree, plain, type_tag = self.ctx.leaf(scalar_value(node), path, matched, where)
        if type_tag is None:
            return tree
        if type_tag == "comment":
            if in_sequence and self.text[start.index - 2 : start.index] == "- ":
                # sops writes comments inside lists as list items; its output shows them as comments
                self.edits[start.index - 2] = (end.index, "#" + plain)
            return _DROP
        self.edits[start.index] = (end.index, render_value(plain, type_tag, indent))
        return tree

    def _strip(self, key_node: Node, value_node: Node) -> None:
        """Remove a document's ``sops`` block from the output (whole lines)."""
        begin = key_node.start_mark.index - key_node.start_mark.column
        finish = value_node.end_mark.index
        if finish < len(self.text) and self.text[finish] == "\n" and self.text[begin - 1 : begin] in ("", "\n"):
            finish += 1
        self.edits[begin] = (finish, "")

    def comments(self) -> None:
        """Decrypt ``#ENC[...]`` comment lines, which libyaml does not report."""
        matches = list(_COMMENT_LINE.finditer(self.text))
        if not matches:
            return
        starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        blocks = sorted(self.multiline)
        block_starts = [b[0] for b in blocks]
        for match in matches:
            position = match.start(1)
            hit = bisect_right(block_starts, position) - 1
            if hit >= 0 and blocks[hit][0] <= position < blocks[hit][1]:
                continue  # the text of a block scalar, not a comment
            line = bisect_right(starts, position) - 1
            column = position - 1 - starts[line]
            decrypted = self.ctx.comment(match.group(1), self._comment_paths(line, column))
            if decrypted is not None:
                self.edits[position - 1] = (match.end(1), "#" + decrypted)

    def _comment_paths(self, line: int, column: int) -> list[tuple[str, ...]]:
        """Likely paths of the mapping a comment belongs to: that of the key it precedes or follows
        at the same indentation, then any neighbour, then the root."""
        after = bisect_right(self.key_lines, line)
        same: list[tuple[str, ...]] = []
        near: list[tuple[str, ...]] = []
        for index in (*range(after, min(after + 2, len(self.key_lines))), *range(after - 1, max(after - 64, -1), -1)):
            (same if self.key_cols[index] == column else near).append(self.key_paths[index])
        return same + near[:4] + [()]

    def output(self) -> bytes:
        pieces: list[str] = []
        cursor = 0
        for begin in sorted(self.edits):
            finish, replacement = self.edits[begin]
            if begin < cursor:
                continue  # an alias repeats a node: its edit is already applied
            pieces.append(self.text[cursor:begin])
            pieces.append(replacement)
            cursor = finish
        pieces.append(self.text[cursor:])
        return "".join(pieces).encode("utf-8")


def _decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatProblem("a YAML file must be UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


class YamlStore:
    format = "yaml"

    def parse(self, content: bytes) -> ParsedFile:
        text = _decode(content)
        nodes = compose_all(text)
        metadata = None
        for node in nodes:
            if isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, ScalarNode) and key_node.value == "sops":
                        metadata = to_python(value_node)
                        break
            if metadata is not None:
                break  # every document carries a copy; sops reads the first
        if metadata is None:
            raise FormatProblem("no sops metadata block (not a sops file)")
        return ParsedFile(metadata, (text, nodes))

    def decrypt(self, parsed: ParsedFile, ctx: LeafContext) -> tuple[list[Any], bytes]:
        text, nodes = parsed.payload
        walker = _Walker(ctx, text)
        documents = [walker.document(node) for node in nodes]
        walker.comments()
        return documents, walker.output()

    def documents_from_plaintext(self, plaintext: bytes, ctx: LeafContext) -> list[Any]:
        text = _decode(plaintext)
        walker = _Walker(ctx, text)
        return [walker.document(node) for node in compose_all(text)]
