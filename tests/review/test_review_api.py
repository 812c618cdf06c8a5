"""The review package's public names exist, are sorted, and importing the CLI stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module_name", ["opsmith.review", "opsmith.review.rules", "opsmith.review.hcl"])
def test_all_is_sorted_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=lambda name: (not name.isupper(), name))
    assert [name for name in exported if not hasattr(module, name)] == []


def test_cli_import_does_not_load_the_parser() -> None:
    code = "import sys, opsmith.cli\nprint(','.join(m for m in ('hcl2', 'lark', 'opsmith.review') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
