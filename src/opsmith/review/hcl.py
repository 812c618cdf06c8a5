"""Terraform source -> blocks with addresses, line ranges, values and references.

python-hcl2 parses each file into lark's concrete syntax tree, which carries the line of
every node. We walk that tree once (python-hcl2's own dict form drops the lines) and
keep, per block: its type and labels, its Terraform address, its first and last line,
its attributes (each with its lines, a plain Python value and the references it makes)
and its nested blocks.

Values are plain Python where the source is a literal: ``str``, ``int``, ``float``,
``bool``, ``None``, :class:`HclList` and :class:`HclObject` (a list and a dict that also
remember the line of each item). Anything computed (a reference, a call, a conditional)
is an :class:`Expr` holding its source text; a call also keeps its name and converted
arguments, so ``jsonencode({...})`` stays inspectable. A quoted string with
interpolations stays a ``str`` holding the raw template, ``${...}`` and all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

__all__ = [
    "Attribute",
    "Block",
    "Expr",
    "HclList",
    "HclObject",
    "Reference",
    "SyntaxProblem",
    "TfFile",
    "Value",
    "is_literal",
    "parse_text",
]

Value: TypeAlias = Any
"""A converted HCL value: str, int, float, bool, None, HclList, HclObject or Expr."""

#: Names that start a traversal but are not objects declared in the configuration.
_BUILTIN_ROOTS = frozenset({"count", "each", "self", "path", "terraform"})
_HEREDOC = re.compile(r"<<-?([A-Za-z][A-Za-z0-9._-]*)\r?\n(.*?)[ \t]*\1\r?\n?$", re.S)


@dataclass(frozen=True)
class Expr:
    """A value only known at plan time: its source ``text``; for a call, its name and arguments."""

    text: str
    call: str | None = None
    args: tuple[Value, ...] = ()

    def __str__(self) -> str:
        return self.text


class HclList(list[Value]):
    """A tuple literal; ``item_lines[i]`` is the line of item ``i``."""

    item_lines: list[int]

    def __init__(self, items: list[Value] | None = None, lines: list[int] | None = None) -> None:
        super().__init__(items or [])
        self.item_lines = lines or []

    def line_of(self, index: int, default: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else default


class HclObject(dict[str, Value]):
    """An object literal; ``key_lines[k]`` is the line where key ``k`` is set."""

    key_lines: dict[str, int]

    def __init__(self) -> None:
        super().__init__()
        self.key_lines = {}


@dataclass(frozen=True)
class Reference:
    """Something an expression refers to, e.g. ``var.region``, ``aws_s3_bucket.logs``, ``data.x.y``."""

    address: str
    line: int


@dataclass
class Attribute:
    """``name = value`` inside a block, with the lines the whole assignment spans."""

    name: str
    value: Value
    line: int
    end_line: int
    refs: tuple[Reference, ...] = ()


@dataclass(eq=False)
class Block:
    """One block (``resource``, ``variable``, a nested ``ingress`` ...) and everything inside it."""

    type: str
    labels: tuple[str, ...]
    line: int
    end_line: int
    file: str
    attributes: dict[str, Attribute] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    #: Attribute names assigned more than once in this block, with the later lines.
    duplicate_attributes: list[tuple[str, int]] = field(default_factory=list)
    parent: Block | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """The Terraform address of the top-level block this one belongs to."""
        if self.parent is not None:
            return self.parent.address
        labels = self.labels
        if self.type == "resource" and len(labels) >= 2:
            return f"{labels[0]}.{labels[1]}"
        if self.type == "data" and len(labels) >= 2:
            return f"data.{labels[0]}.{labels[1]}"
        if self.type == "provider" and labels:
            alias = self.get("alias")
            return f"provider.{labels[0]}" + (f".{alias}" if isinstance(alias, str) else "")
        return ".".join((self.type, *labels))

    @property
    def kind(self) -> str:
        """The resource or data type (``aws_s3_bucket``), else the block type."""
        return self.labels[0] if self.type in {"resource", "data"} and self.labels else self.type

    @property
    def name(self) -> str:
        """The block's own name: the last label, or the type for an unlabelled block."""
        return self.labels[-1] if self.labels else self.type

    def attr(self, name: str) -> Attribute | None:
        return self.attributes.get(name)

    def get(self, name: str, default: Value = None) -> Value:
        attribute = self.attributes.get(name)
        return default if attribute is None else attribute.value

    def line_of(self, name: str) -> int:
        """Line of attribute ``name``, or of the block itself when it is not set."""
        attribute = self.attributes.get(name)
        return attribute.line if attribute is not None else self.line

    def children(self, block_type: str) -> list[Block]:
        return [b for b in self.blocks if b.type == block_type]

    def child(self, block_type: str) -> Block | None:
        return next((b for b in self.blocks if b.type == block_type), None)

    def walk(self) -> Iterator[Block]:
        """This block and every block nested in it, depth first."""
        yield self
        for block in self.blocks:
            yield from block.walk()

    def address_at(self, line: int) -> str:
        """The address a finding at ``line`` belongs to: ``local.x`` inside ``locals``, else :attr:`address`."""
        if self.type == "locals" and self.parent is None:
            for attribute in self.attributes.values():
                if attribute.line <= line <= attribute.end_line:
                    return f"local.{attribute.name}"
        return self.address

    def enclosing(self, line: int) -> Block:
        """The innermost block (this one or a nested one) that spans ``line``."""
        for block in self.blocks:
            if block.line <= line <= block.end_line:
                return block.enclosing(line)
        return self


@dataclass(frozen=True)
class SyntaxProblem:
    """Why a file could not be parsed, and where."""

    message: str
    line: int


@dataclass(eq=False)
class TfFile:
    """A parsed .tf file. ``name`` is how findings name it (relative to the PATH given)."""

    path: Path
    name: str
    text: str
    blocks: list[Block] = field(default_factory=list)
    problem: SyntaxProblem | None = None

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    @property
    def line_count(self) -> int:
        return max(1, len(self.lines))

    def block_at(self, line: int) -> Block | None:
        """The top-level block spanning ``line``, if any."""
        for block in self.blocks:
            if block.line <= line <= block.end_line:
                return block
        return None


def is_literal(value: Value) -> bool:
    """True for a string with no ``${...}``/``%{...}`` template parts, or a number or bool."""
    if isinstance(value, str):
        return "${" not in value and "%{" not in value
    return isinstance(value, int | float | bool)


def parse_text(text: str, *, name: str, path: Path | None = None) -> TfFile:
    """Parse one file's text. A syntax error is recorded on the result, never raised."""
    import hcl2
    from lark.exceptions import LarkError

    result = TfFile(path=path or Path(name), name=name, text=text)
    try:
        tree = hcl2.parses_to_tree(text)
    except LarkError as exc:
        result.problem = _syntax_problem(exc, result.line_count)
        return result
    except RecursionError:
        result.problem = _too_deep(1)
        return result
    # The walker and the rules recurse over the tree; a file nested deeper than any real
    # configuration (800 brackets) is a problem on its line, never a RecursionError.
    deepest = _deeper_than(tree, _MAX_NESTING)
    if deepest is not None:
        result.problem = _too_deep(min(deepest, result.line_count))
        return result
    body = tree.children[0] if tree.children else None
    if body is not None:
        try:
            result.blocks = _Walker(text, name).body_blocks(body, parent=None)[0]
        except RecursionError:
            result.problem = _too_deep(1)
    return result


#: Deepest parse tree walked (about 100 levels of nested objects, 150 of lists or blocks).
_MAX_NESTING = 300


def _too_deep(line: int) -> SyntaxProblem:
    return SyntaxProblem(
        f"Nested too deeply to review (brackets, calls or blocks over {_MAX_NESTING // 3} levels deep near line {line})"
        " — flatten the expression, e.g. with locals",
        line,
    )


def _deeper_than(tree: Any, limit: int) -> int | None:
    """The line of the first node more than ``limit`` levels down, or None (walked without recursion)."""
    from lark import Tree

    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return int(node.meta.line) if not node.meta.empty else 1
        # Reversed, so nodes come off the stack in document order and the first line is reported.
        stack.extend((child, depth + 1) for child in reversed(node.children) if isinstance(child, Tree))
    return None


def _syntax_problem(exc: Exception, line_count: int) -> SyntaxProblem:
    line = getattr(exc, "line", None)
    line = line if isinstance(line, int) and line > 0 else line_count
    line = min(line, line_count)
    column = getattr(exc, "column", None)
    token = getattr(exc, "token", None)
    char = getattr(exc, "char", None)
    if token is not None and getattr(token, "type", "") == "$END":
        what = "unexpected end of file (an unclosed block, bracket or string?)"
    elif token is not None:
        words = str(token).split()
        what = f"unexpected {words[0][:40]!r}" if words else "unexpected line break"
    elif char is not None:
        what = f"unexpected character {char!r}"
    else:
        what = str(exc).strip().splitlines()[0][:80] if str(exc).strip() else type(exc).__name__
    where = f"line {line}" + (f", column {column}" if isinstance(column, int) and column > 0 else "")
    return SyntaxProblem(f"HCL syntax error at {where}: {what}", line)


# The walker ---------------------------------------------------------------------------------

_TRAVERSALS = frozenset({"get_attr_expr_term", "index_expr_term", "attr_splat_expr_term", "full_splat_expr_term"})


class _Walker:
    """Turns lark's tree for one file into :class:`Block` objects."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file

    # Structure ------------------------------------------------------------------------------

    def body_blocks(
        self, body: Any, *, parent: Block | None, skip: frozenset[str] = frozenset()
    ) -> tuple[list[Block], dict[str, Attribute], list[tuple[str, int]]]:
        from lark import Tree

        blocks: list[Block] = []
        attributes: dict[str, Attribute] = {}
        duplicates: list[tuple[str, int]] = []
        for child in body.children:
            if not isinstance(child, Tree):
                continue
            if child.data == "attribute":
                attribute = self.attribute(child, skip)
                if attribute.name in attributes:
                    duplicates.append((attribute.name, attribute.line))
                attributes[attribute.name] = attribute
            elif child.data == "block":
                blocks.append(self.block(child, parent, skip))
        return blocks, attributes, duplicates

    def block(self, node: Any, parent: Block | None, skip: frozenset[str]) -> Block:
        from lark import Tree

        labels: list[str] = []
        body = None
        for child in node.children:
            if not isinstance(child, Tree):
                continue
            if child.data == "body":
                body = child
            elif child.data == "string":
                labels.append(self.string_literal(child))
            elif child.data in {"identifier", "keyword", "literal_value"}:
                labels.append(_token_text(child))
        block_type, labels = labels[0], labels[1:]
        block = Block(
            type=block_type,
            labels=tuple(labels),
            line=node.meta.line,
            end_line=self.end_line(node),
            file=self.file,
            parent=parent,
        )
        if block_type == "dynamic" and labels:
            # Inside `content`, the iterator (the label, or `iterator = x`) is not a resource.
            skip = skip | {labels[0]}
            iterator = _iterator_name(body)
            if iterator:
                skip = skip | {iterator}
        if body is not None:
            blocks, attributes, duplicates = self.body_blocks(body, parent=block, skip=skip)
            block.blocks, block.attributes, block.duplicate_attributes = blocks, attributes, duplicates
        return block

    def attribute(self, node: Any, skip: frozenset[str]) -> Attribute:
        name = _token_text(node.children[0])
        expression = node.children[-1]
        refs: list[Reference] = []
        self.collect_refs(expression, refs, skip)
        return Attribute(
            name=name,
            value=self.value(expression),
            line=node.meta.line,
            end_line=self.end_line(node),
            refs=tuple(dict.fromkeys(refs)),
        )

    def end_line(self, node: Any) -> int:
        # A heredoc's token swallows the newline after its closing marker.
        meta = node.meta
        return int(meta.end_line) - (1 if self.text[meta.end_pos - 1 : meta.end_pos] == "\n" else 0)

    # Values ---------------------------------------------------------------------------------

    def source(self, node: Any) -> str:
        meta = node.meta
        if getattr(meta, "empty", True):
            return ""
        return self.text[meta.start_pos : meta.end_pos].strip()

    def value(self, node: Any) -> Value:
        from lark import Token, Tree

        if isinstance(node, Token):
            return str(node)
        data = node.data
        if data == "expr_term":
            kids = [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]
            if len(kids) == 1 and not any(isinstance(c, Token) for c in node.children):
                return self.value(kids[0])
            return Expr(self.source(node))
        if data == "string":
            return self.string_value(node)
        if data == "int_lit":
            return int(str(node.children[0]))
        if data == "float_lit":
            return float(str(node.children[0]))
        if data == "literal_value":
            return {"true": True, "false": False}.get(str(node.children[0]))
        if data == "tuple":
            items = HclList()
            for child in node.children:
                if isinstance(child, Tree) and child.data != "new_line_or_comment":
                    items.append(self.value(child))
                    items.item_lines.append(child.meta.line)
            return items
        if data == "object":
            obj = HclObject()
            for child in node.children:
                if isinstance(child, Tree) and child.data == "object_elem":
                    key = self.object_key(child.children[0])
                    obj[key] = self.value(child.children[-1])
                    obj.key_lines[key] = child.meta.line
            return obj
        if data in {"heredoc_template", "heredoc_template_trim"}:
            return _heredoc_body(str(node.children[0]), trim=data.endswith("_trim"))
        if data == "unary_op":
            operand = self.value(node.children[-1])
            if str(node.children[0]) == "-" and isinstance(operand, int | float) and not isinstance(operand, bool):
                return -operand
            return Expr(self.source(node))
        if data == "function_call":
            name = _token_text(node.children[0])
            args: list[Value] = []
            for child in node.children:
                if isinstance(child, Tree) and child.data == "arguments":
                    args = [
                        self.value(a) for a in child.children if isinstance(a, Tree) and a.data != "new_line_or_comment"
                    ]
            return Expr(self.source(node), call=name, args=tuple(args))
        return Expr(self.source(node))

    def object_key(self, node: Any) -> str:
        from lark import Tree

        inner = node.children[0] if node.children else node
        if isinstance(inner, Tree) and inner.data == "keyword":
            return _token_text(inner)
        value = self.value(inner)
        if isinstance(value, Expr):
            return value.text
        return str(value)

    def string_literal(self, node: Any) -> str:
        value = self.string_value(node)
        return value if isinstance(value, str) else str(value)

    def string_value(self, node: Any) -> str:
        from hcl2.utils import process_escape_sequences
        from lark import Token, Tree

        pieces: list[str] = []
        for part in node.children:
            if not (isinstance(part, Tree) and part.data == "string_part"):
                continue
            inner = part.children[0]
            if isinstance(inner, Token) and inner.type == "STRING_CHARS":
                pieces.append(str(inner))
            elif isinstance(inner, Token) and inner.type in {"ESCAPED_INTERPOLATION", "ESCAPED_DIRECTIVE"}:
                pieces.append(str(inner)[1:])
            else:
                # A template: keep the raw source between the quotes.
                meta = node.meta
                return self.text[meta.start_pos + 1 : meta.end_pos - 1]
        return process_escape_sequences("".join(pieces))

    # References -----------------------------------------------------------------------------

    def collect_refs(self, node: Any, out: list[Reference], skip: frozenset[str]) -> None:
        from lark import Tree

        if not isinstance(node, Tree):
            return
        data = node.data
        if data in _TRAVERSALS:
            chain, inner = _traversal(node)
            if chain:
                address = _address(chain, skip)
                if address:
                    out.append(Reference(address, node.meta.line))
            for child in inner:
                self.collect_refs(child, out, skip)
            return
        if data in {"for_tuple_expr", "for_object_expr"}:
            skip = skip | _for_names(node)
        for child in node.children:
            self.collect_refs(child, out, skip)


def _token_text(node: Any) -> str:
    from lark import Token

    if isinstance(node, Token):
        return str(node)
    for child in node.children:
        text = _token_text(child)
        if text:
            return text
    return ""


def _iterator_name(body: Any) -> str | None:
    from lark import Tree

    if body is None:
        return None
    for child in body.children:
        if isinstance(child, Tree) and child.data == "attribute" and _token_text(child.children[0]) == "iterator":
            return _token_text(child.children[-1]) or None
    return None


def _for_names(node: Any) -> frozenset[str]:
    from lark import Tree

    names: set[str] = set()
    for child in node.children:
        if isinstance(child, Tree) and child.data == "for_intro":
            for part in child.children:
                if isinstance(part, Tree) and part.data == "identifier":
                    names.add(_token_text(part))
    return frozenset(names)


def _traversal(node: Any) -> tuple[list[str], list[Any]]:
    """Split ``a.b[i].c`` into its leading names (``[a, b]``) and the index expressions inside."""
    from lark import Token, Tree

    steps: list[str | None] = []  # attribute names, None for an index or splat
    inner: list[Any] = []
    current = node
    root: str | None = None
    while isinstance(current, Tree):
        data = current.data
        if data == "expr_term":
            kids = [c for c in current.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]
            if len(kids) == 1 and not any(isinstance(c, Token) for c in current.children):
                current = kids[0]
                continue
            inner.append(current)
            break
        if data == "get_attr_expr_term":
            steps.append(_token_text(current.children[1].children[-1]))
            current = current.children[0]
        elif data in {"index_expr_term", "attr_splat_expr_term", "full_splat_expr_term"}:
            steps.append(None)
            inner.extend(current.children[1:])
            current = current.children[0]
        elif data == "identifier":
            root = _token_text(current)
            break
        else:
            inner.append(current)
            break
    if root is None:
        return [], inner
    chain = [root]
    for step in reversed(steps):
        if step is None:
            break
        chain.append(step)
    return chain, inner


def _address(chain: list[str], skip: frozenset[str]) -> str | None:
    root = chain[0]
    if root in _BUILTIN_ROOTS or root in skip:
        return None
    if root in {"var", "local", "module"}:
        return f"{root}.{chain[1]}" if len(chain) >= 2 else None
    if root == "data":
        return f"data.{chain[1]}.{chain[2]}" if len(chain) >= 3 else None
    # Resource types are always `provider_type`; this also passes over iterator names.
    if "_" in root and len(chain) >= 2:
        return f"{root}.{chain[1]}"
    return None


def _heredoc_body(token: str, *, trim: bool) -> str:
    match = _HEREDOC.match(token)
    if not match:
        return token
    body = match.group(2)
    if trim:
        lines = body.splitlines()
        indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
        cut = min(indents, default=0)
        body = "\n".join(line[cut:] for line in lines) + ("\n" if body.endswith("\n") else "")
    return body
