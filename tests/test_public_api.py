"""The public names each package exports exist and are listed in a stable order."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module_name", ["opsmith.rag", "opsmith.llm"])
def test_all_is_sorted_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=lambda name: (not name.isupper(), name))
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []


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
