"""The GitHub Action's structure. Actions cannot run here, so this checks what can go wrong
statically: the schema a composite action needs, every input and step output referenced,
shell scripts that parse, and the workflow shown in docs/integrations.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
INPUT_REF = re.compile(r"\binputs\.([A-Za-z0-9_-]+)")
STEP_OUTPUT_REF = re.compile(r"\bsteps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _steps(action: dict[str, Any]) -> list[dict[str, Any]]:
    steps = action["runs"]["steps"]
    assert isinstance(steps, list)
    assert steps
    return steps


def _expressions(action: dict[str, Any]) -> list[str]:
    """Every expression: inside ${{ }} anywhere, plus the bare ones of `if:` conditions."""
    text = (REPO / "action.yml").read_text(encoding="utf-8")
    found = EXPRESSION.findall(text)
    found += [step["if"] for step in _steps(action) if isinstance(step.get("if"), str)]
    return found


def test_composite_action_schema(action: dict[str, Any]) -> None:
    assert action["name"]
    assert action["description"]
    assert action["runs"]["using"] == "composite"
    for name, spec in action["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name), name
        assert spec["description"]
        assert "default" in spec or spec.get("required") is True, f"input {name} has no default"
    for name, spec in action["outputs"].items():
        assert spec["description"], name
        assert "value" in spec, name
    for step in _steps(action):
        assert step.get("name"), step
        assert ("uses" in step) != ("run" in step), f"a step either uses an action or runs a script: {step}"
        if "run" in step:
            assert step.get("shell") == "bash", f"composite run steps need a shell: {step['name']}"


def test_every_reference_exists(action: dict[str, Any]) -> None:
    inputs = set(action["inputs"])
    step_ids = {step["id"] for step in _steps(action) if "id" in step}
    written: dict[str, set[str]] = {sid: set() for sid in step_ids}
    for step in _steps(action):
        if "id" in step and "run" in step:
            written[step["id"]] |= set(re.findall(r'echo "([a-z0-9-]+)=.*>> "\$GITHUB_OUTPUT"', step["run"]))
    for expression in _expressions(action):
        for name in INPUT_REF.findall(expression):
            assert name in inputs, f"unknown input {name!r} in {expression!r}"
        for sid, output in STEP_OUTPUT_REF.findall(expression):
            assert sid in step_ids, f"unknown step {sid!r} in {expression!r}"
            assert output in written[sid], f"step {sid!r} never writes output {output!r}"


def test_scripts_take_inputs_through_env_and_parse(action: dict[str, Any]) -> None:
    for step in _steps(action):
        if "run" not in step:
            continue
        # Inputs reach scripts as env vars, never pasted into the script (no script injection).
        assert "${{" not in step["run"], step["name"]
        if shutil.which("bash"):
            subprocess.run(["bash", "-n"], input=step["run"], text=True, check=True)


def test_installs_reviews_uploads_and_fails(action: dict[str, Any]) -> None:
    steps = _steps(action)
    uses = [step.get("uses", "") for step in steps]
    assert uses[0].startswith("actions/setup-python@")
    install = next(step for step in steps if "pip install" in step.get("run", ""))
    assert "$GITHUB_ACTION_PATH" in install["run"]
    review = next(step for step in steps if step.get("id") == "review")
    assert "opsmith review" in review["run"]
    assert all(flag in review["run"] for flag in ("--sarif", "--fail-on", "--no-llm"))
    upload = next(step for step in steps if step.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert upload["uses"].endswith("@v3")
    assert "always()" in upload["if"]
    assert upload["with"]["sarif_file"] == "${{ inputs.sarif-file }}"
    assert steps.index(upload) < len(steps) - 1, "fail after the upload, so findings reach code scanning"
    last = steps[-1]
    assert "exit 1" in last["run"]
    assert "exit-code" in last["if"]
    assert action["inputs"]["fail-on"]["default"] == "critical"


def test_the_documented_workflow_uses_declared_inputs(action: dict[str, Any]) -> None:
    docs = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", docs, flags=re.S) if "your-org/opsmith@" in b]
    workflows = [b for b in blocks if isinstance(b, dict) and "jobs" in b]
    assert workflows, "docs/integrations.md shows no workflow using the action"
    for workflow in workflows:
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith("your-org/opsmith@"):
                    assert set(step.get("with", {})) <= set(action["inputs"]), step
                    assert job["permissions"]["security-events"] == "write"
