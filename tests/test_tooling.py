"""The developer loop: CI runs what the README says, lint included; pytest starts without torch."""

from __future__ import annotations

import builtins
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_target(name: str) -> tuple[list[str], list[str]]:
    """The prerequisites and recipe lines of ``name`` in the Makefile."""
    lines = (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"{name}:"):
            recipe = []
            for step in lines[index + 1 :]:
                if not step.startswith("\t"):
                    break
                recipe.append(step.strip())
            return line.split(":", 1)[1].split(), recipe
    raise AssertionError(f"no `{name}` target in the Makefile")


def test_ci_runs_the_readme_test_command_and_it_lints() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"^(make \S+)\s+# .*what CI runs", readme, re.MULTILINE)
    assert stated is not None, "README no longer says which command CI runs"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert stated.group(1) in ci
    prerequisites, recipe = make_target(stated.group(1).split()[1])
    assert "lint" in prerequisites
    assert any("pytest" in step and "not slow" not in step for step in recipe)  # every test, slow ones too
    _, lint = make_target("lint")
    assert any("ruff check" in step for step in lint)
    assert any("ruff format --check" in step for step in lint)
    assert any(step.endswith("mypy") or "mypy " in step for step in lint)


def test_the_fast_loop_skips_only_slow_tests() -> None:
    _, recipe = make_target("test-fast")
    assert any("pytest" in step and '-m "not slow"' in step for step in recipe)


def test_warning_filters_name_only_builtin_categories() -> None:
    # pytest resolves a filter's category at startup; one naming torch.jit.TracerWarning
    # imports torch, and pytest fails to start where torch is not installed.
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    filters = config["tool"]["pytest"]["ini_options"]["filterwarnings"]
    for entry in filters:
        parts = entry.split(":")
        category = parts[2] if len(parts) > 2 else ""
        assert not category or isinstance(getattr(builtins, category, None), type), entry
