"""Each module's ``__all__`` is its whole public API: sorted, existing, complete (as httpx checks).

A *public name* is one a module defines at top level (``def``, ``class``, assignment) without a
leading underscore, and for a package also what it imports from its own submodules. Every such
name is in ``__all__``, and everything in ``__all__`` exists. Not API: loggers, ``TypeVar``s, and
functions a decorator registers on a router or app (reached through it, never imported). The
packages behind the seams (``opsmith.rag``, ``opsmith.llm``) and ``opsmith.testing`` declare
``__all__`` in every public module, as does every package that exports anything (but the CLI's,
whose interface is its commands).
"""

from __future__ import annotations

import ast
import importlib
import logging
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import pytest

import opsmith

SRC = Path(opsmith.__file__).parent
#: Packages each of whose public modules must declare ``__all__``; the modules themselves too.
DECLARED = ("opsmith.rag", "opsmith.llm", "opsmith.testing")
#: Its interface is the command line (tests/cli), not Python names.
CLI = "opsmith.cli"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements that run at import, including those in top-level ``if``/``try`` blocks (not TYPE_CHECKING)."""
    found: list[ast.stmt] = []
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If):
            type_checking = isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            pending.extend(node.orelse if type_checking else [*node.body, *node.orelse])
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *(s for h in node.handlers for s in h.body), *node.orelse, *node.finalbody])
        else:
            found.append(node)
    return found


def _bound_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _bound_names(element)]
    return []


def _registers(decorator: ast.expr) -> bool:
    """``@router.get("/x")``, ``@app.command()``: a method call on an object that keeps the function."""
    return isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)


def _declares_all(name: str) -> bool:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    return any(
        "__all__" in _bound_names(target)
        for node in _top_level(tree)
        for target in (node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)])
        if target is not None
    )


def _from_inside(node: ast.ImportFrom, package: str) -> bool:
    return node.level == 1 or (node.module or "").startswith(f"{package}.")


def _defined_names(source: str, name: str, *, package: bool) -> set[str]:
    """What module ``name`` binds at top level, plus for a package what it takes from its own submodules."""
    names: set[str] = set()
    for node in _top_level(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(_registers, node.decorator_list)):
            continue  # reached through what it is registered on (``@router.get(...)``), never imported
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(n for target in node.targets for n in _bound_names(target))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            names.update(_bound_names(node.target))
        elif isinstance(node, ast.ImportFrom) and package and _from_inside(node, name):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _public(names: set[str], module: ModuleType) -> set[str]:
    """``names`` less the private ones and those whose values are not API."""
    return {
        n
        for n in names
        if not n.startswith("_") and not isinstance(getattr(module, n, None), ModuleType | TypeVar | logging.Logger)
    }


def _public_names(name: str, module: ModuleType) -> set[str]:
    path = MODULES[name]
    return _public(_defined_names(path.read_text(encoding="utf-8"), name, package=path.name == "__init__.py"), module)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional stack this environment lacks
        if (exc.name or "").startswith("opsmith"):
            raise
        pytest.skip(f"{name} needs {exc.name}")


WITH_ALL = [name for name in MODULES if _declares_all(name)]


@pytest.mark.parametrize("module_name", WITH_ALL)
def test_all_is_sorted_and_lists_only_what_exists(module_name: str) -> None:
    module = _import(module_name)
    exported = list(module.__all__)
    # ruff's isort-style order (RUF022): constants, then classes, then the rest.
    assert exported == sorted(
        exported, key=lambda n: (0 if len(n) > 1 and n.isupper() else 1 if n[0].isupper() else 2, n)
    )
    assert len(exported) == len(set(exported))
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module_name", WITH_ALL)
def test_all_lists_every_public_name(module_name: str) -> None:
    module = _import(module_name)
    unlisted = sorted(_public_names(module_name, module) - set(module.__all__))
    assert unlisted == [], f"add to {module_name}.__all__, or give them a leading underscore"


def test_the_seams_and_every_exporting_package_declare_all() -> None:
    lacking = []
    for name, path in MODULES.items():
        if any(part.startswith("_") for part in name.split(".")) or _declares_all(name):
            continue
        exporting_package = path.name == "__init__.py" and name != CLI and bool(_public_names(name, _import(name)))
        if exporting_package or name.startswith(tuple(f"{prefix}." for prefix in DECLARED)) or name in DECLARED:
            lacking.append(name)
    assert lacking == [], f"declare __all__ in {lacking}"


def test_public_names_are_read_from_the_source() -> None:
    source = (
        "import logging\n"
        "from typing import TypeVar\n"
        "from pkg.sub import Thing\n"
        "from . import other\n"
        "from elsewhere import Far\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.sub import OnlyForMypy\n"
        "log = logging.getLogger(__name__)\n"
        "T = TypeVar('T')\n"
        "LIMIT, _HIDDEN = 3, 4\n"
        "class Router:\n"
        "    def get(self, path): return lambda function: function\n"
        "router = Router()\n"
        "@router.get('/x')\n"
        "def handler(): ...\n"
        "def helper(): ...\n"
    )
    # A package lists what it takes from its own submodules; a module only what it defines.
    assert _defined_names(source, "pkg", package=True) == {
        *("Thing", "other", "log", "T", "LIMIT", "_HIDDEN", "Router", "router", "helper")
    }
    assert _defined_names(source, "pkg.mod", package=False) == {
        "log",
        "T",
        "LIMIT",
        "_HIDDEN",
        "Router",
        "router",
        "helper",
    }
    module = ModuleType("pkg")
    module.log, module.T, module.other = logging.getLogger("pkg"), TypeVar("T"), ModuleType("pkg.other")
    names = {"Thing", "other", "log", "T", "LIMIT", "_HIDDEN", "helper"}
    assert _public(names, module) == {"Thing", "LIMIT", "helper"}


def test_cli_help_does_not_import_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, opsmith.cli\n"
        "heavy = [m for m in ('torch', 'qdrant_client', 'onnxruntime', 'sentence_transformers', 'matplotlib')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_missing_optional_stack_names_the_extra_to_install() -> None:
    from opsmith.cli import missing_extra_message

    message = missing_extra_message(ModuleNotFoundError("No module named 'qdrant_client'", name="qdrant_client"))
    assert message is not None
    assert "pip install 'opsmith[rag]'" in message
    assert "opsmith[train]" in (missing_extra_message(ModuleNotFoundError(name="peft.tuners")) or "")
    # torch and the plots are not in the server's stack: each names its own extra.
    assert "opsmith[train]" in (missing_extra_message(ModuleNotFoundError(name="torch")) or "")
    assert "opsmith[plots]" in (missing_extra_message(ModuleNotFoundError(name="matplotlib.pyplot")) or "")
    sentence_transformers = ModuleNotFoundError(name="sentence_transformers")
    assert "opsmith[sentence-transformers]" in (missing_extra_message(sentence_transformers) or "")
    assert missing_extra_message(ModuleNotFoundError(name="some_typo_module")) is None


def test_core_modules_import_without_the_optional_stacks() -> None:
    import subprocess
    import sys

    # Block the optional stacks, then import what `pip install opsmith` must support: the CLI,
    # prompt templates, structured output and the Terraform reviewer.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED: raise ModuleNotFoundError(name=name)\n"
        "BLOCKED = {'numpy', 'qdrant_client', 'torch', 'onnxruntime', 'transformers', 'mcp', 'peft', 'trl'}\n"
        "sys.meta_path.insert(0, Block())\n"
        "import opsmith.cli, opsmith.prompts, opsmith.llm.structured, opsmith.review\n"
        "from pathlib import Path\n"
        "from opsmith.config import load_settings\n"
        "result = opsmith.review.review([Path(sys.argv[1])], settings=load_settings(), use_llm=False)\n"
        "print(sum(len(v) for v in result.to_dict().values()))\n"
    )
    examples = Path(__file__).resolve().parents[1] / "examples" / "terraform" / "vulnerable"
    run = subprocess.run([sys.executable, "-c", code, str(examples)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout.strip()) > 0
