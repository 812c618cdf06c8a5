"""The public names each package exports exist and are listed in a stable order."""

from __future__ import annotations

import importlib
from pathlib import Path

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


def test_a_missing_optional_stack_names_the_extra_to_install() -> None:
    from opsmith.cli import missing_extra_message

    message = missing_extra_message(ModuleNotFoundError("No module named 'qdrant_client'", name="qdrant_client"))
    assert message is not None
    assert "pip install 'opsmith[rag]'" in message
    assert "opsmith[train]" in (missing_extra_message(ModuleNotFoundError(name="peft.tuners")) or "")
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
