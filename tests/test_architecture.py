"""docs/architecture.md's tree is the tree: every path it names exists, and nothing public is left out."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import opsmith

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
SRC = Path(opsmith.__file__).parent
# A name in the tree's first column: a module, a folder, or several joined by ", ".
_NAME = re.compile(r"^[A-Za-z_][\w.]*(\.py|/)$")


def _tree_block() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The tree", 1)[1]
    return section.split("```", 2)[1].splitlines()[1:]


def _listed() -> set[Path]:
    """Every path the tree names, resolved from its indentation."""
    stack: list[tuple[int, Path]] = []
    found: set[Path] = set()
    for line in _tree_block():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        tokens = line.split()
        if tokens[0] == "src/opsmith/":
            stack = [(indent, SRC)]
            continue
        names = [tokens[0].rstrip(",")]
        for previous, token in itertools.pairwise(tokens):  # "jobs.py, limits.py, static/": siblings
            if not previous.endswith(","):
                break
            names.append(token.rstrip(","))
        if not all(_NAME.match(name) for name in names):
            continue  # a description carried over to the next line
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        for name in names:
            path = parent / name.rstrip("/")
            found.add(path)
            if name.endswith("/"):
                stack.append((indent, path))
    return found


def test_every_path_in_the_tree_exists() -> None:
    listed = _listed()
    assert len(listed) > 30
    missing = sorted(str(path.relative_to(SRC)) for path in listed if not path.exists())
    assert missing == []


def test_every_public_module_of_the_main_packages_is_in_the_tree() -> None:
    listed = _listed()
    # The routes are named together, by noun, on the line of their folder.
    folders = [SRC, SRC / "serve", SRC / "rag", SRC / "integrations"]
    left_out = [
        str(path.relative_to(SRC))
        for folder in folders
        for path in sorted(folder.iterdir())
        if not path.name.startswith(("_", "."))
        and (path.suffix == ".py" or (path / "__init__.py").exists())
        and path not in listed
    ]
    assert left_out == []
