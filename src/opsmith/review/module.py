"""A Terraform module as the rules see it: the .tf files of one folder, parsed, with lookups.

Terraform scopes names (variables, locals, resources) to a folder, so rules run per
folder. ``files`` are the files under review; ``context`` are sibling files that were not
asked for but declare names the reviewed ones use (when a single file is passed).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from opsmith.review.hcl import Block, Expr, HclObject, TfFile, Value, is_literal

__all__ = ["Environment", "Module", "environment_of"]

Environment = str  # "prod" | "nonprod"

_PROD = frozenset({"prod", "production", "prd", "live"})
_NONPROD = frozenset(
    {
        "dev",
        "development",
        "test",
        "testing",
        "qa",
        "stage",
        "staging",
        "stg",
        "sandbox",
        "sbx",
        "nonprod",
        "non-prod",
        "uat",
        "ci",
        "preview",
        "demo",
        "lab",
    }
)
_ENV_KEYS = ("environment", "env", "stage", "tier")
_REF = re.compile(r"^(var|local)\.([A-Za-z_][A-Za-z0-9_-]*)$")


@dataclass(eq=False)
class Module:
    """The reviewed files of one folder, plus any siblings read only for their declarations."""

    directory: Path
    files: list[TfFile] = field(default_factory=list)
    context: list[TfFile] = field(default_factory=list)

    @cached_property
    def blocks(self) -> list[Block]:
        """Top-level blocks of the reviewed files, in file then line order."""
        return [block for f in self.files for block in f.blocks]

    @cached_property
    def all_blocks(self) -> list[Block]:
        """Top-level blocks of reviewed and context files."""
        return self.blocks + [block for f in self.context for block in f.blocks]

    @cached_property
    def _by_kind(self) -> dict[str, list[Block]]:
        index: dict[str, list[Block]] = defaultdict(list)
        for block in self.all_blocks:
            if block.type == "resource":
                index[block.kind].append(block)
        return index

    @cached_property
    def reviewed_files(self) -> set[str]:
        return {f.name for f in self.files}

    @cached_property
    def _lines(self) -> dict[str, list[str]]:
        return {f.name: f.lines for f in (*self.files, *self.context)}

    def source_lines(self, file: str) -> list[str]:
        """The source lines of a file in this module (empty for an unknown name)."""
        return self._lines.get(file, [])

    def resources(self, *kinds: str) -> list[Block]:
        """Reviewed ``resource`` blocks of the given types."""
        return [b for kind in kinds for b in self._by_kind.get(kind, ()) if b.file in self.reviewed_files]

    def all_resources(self, *kinds: str) -> list[Block]:
        """``resource`` blocks of the given types, context files included."""
        return [b for kind in kinds for b in self._by_kind.get(kind, ())]

    def data(self, *kinds: str) -> list[Block]:
        return [b for b in self.blocks if b.type == "data" and b.kind in kinds]

    def of_type(self, block_type: str) -> list[Block]:
        return [b for b in self.blocks if b.type == block_type]

    @cached_property
    def declared(self) -> set[str]:
        """Every address a reference may name: var.x, local.x, module.x, data.t.n, t.n."""
        names: set[str] = set()
        for block in self.all_blocks:
            if block.type == "variable" and block.labels:
                names.add(f"var.{block.labels[0]}")
            elif block.type == "locals":
                names.update(f"local.{name}" for name in block.attributes)
            elif block.type == "module" and block.labels:
                names.add(f"module.{block.labels[0]}")
            elif block.type in {"resource", "data"} and len(block.labels) >= 2:
                names.add(block.address)
        return names

    @cached_property
    def referrers(self) -> dict[str, list[Block]]:
        """Address -> the top-level resource/data/module blocks whose attributes refer to it."""
        found: dict[str, list[Block]] = defaultdict(list)
        for top in self.all_blocks:
            if top.type not in {"resource", "data", "module"}:
                continue
            seen: set[str] = set()
            for block in top.walk():
                for attribute in block.attributes.values():
                    for ref in attribute.refs:
                        if ref.address not in seen:
                            seen.add(ref.address)
                            found[ref.address].append(top)
        return found

    def referring(self, address: str, *kinds: str, attribute: str | None = None) -> list[Block]:
        """Resource blocks of ``kinds`` that refer to ``address`` (in ``attribute`` when given)."""
        out = []
        for block in self.referrers.get(address, ()):
            if kinds and block.kind not in kinds:
                continue
            if attribute is not None:
                attr = block.attr(attribute)
                if attr is None or not any(r.address == address for r in attr.refs):
                    continue
            out.append(block)
        return out

    @cached_property
    def variables(self) -> dict[str, Block]:
        return {b.labels[0]: b for b in self.all_blocks if b.type == "variable" and b.labels}

    @cached_property
    def locals(self) -> dict[str, Value]:
        values: dict[str, Value] = {}
        for block in self.all_blocks:
            if block.type == "locals":
                values.update({name: a.value for name, a in block.attributes.items()})
        return values

    def resolve(self, value: Value, depth: int = 0) -> Value:
        """Follow ``var.x`` (to its default) and ``local.x``, and merge literal ``merge(...)``s."""
        if depth > 5 or not isinstance(value, Expr):
            return value
        match = _REF.match(value.text.strip())
        if match:
            kind, name = match.groups()
            if kind == "var":
                variable = self.variables.get(name)
                return self.resolve(variable.get("default"), depth + 1) if variable is not None else value
            if name in self.locals:
                return self.resolve(self.locals[name], depth + 1)
            return value
        if value.call == "merge":
            merged = HclObject()
            for arg in value.args:
                resolved = self.resolve(arg, depth + 1)
                if isinstance(resolved, dict):
                    merged.update(resolved)
            return merged
        return value

    @cached_property
    def environment(self) -> Environment | None:
        """The environment the module declares (a local or variable default named environment/env/stage)."""
        for key in _ENV_KEYS:
            if key in self.locals:
                env = _normalise_env(self.resolve(self.locals[key]))
                if env:
                    return env
        for key in _ENV_KEYS:
            variable = self.variables.get(key)
            if variable is not None:
                env = _normalise_env(self.resolve(variable.get("default")))
                if env:
                    return env
        return None

    def tags(self, block: Block) -> dict[str, Value]:
        """The block's ``tags`` (resolved through variables, locals and ``merge``), lower-cased keys."""
        tags = self.resolve(block.get("tags"))
        if not isinstance(tags, dict):
            return {}
        return {str(key).lower(): self.resolve(value) for key, value in tags.items()}


def _normalise_env(value: Value) -> Environment | None:
    if not isinstance(value, str) or not is_literal(value):
        return None
    word = value.strip().lower()
    if word in _PROD:
        return "prod"
    if word in _NONPROD:
        return "nonprod"
    return None


def environment_of(block: Block, module: Module) -> Environment | None:
    """prod or nonprod, from the block's tags first, then the module's declared environment."""
    tags = module.tags(block)
    for key in _ENV_KEYS:
        if key in tags:
            env = _normalise_env(tags[key])
            if env:
                return env
    return module.environment
