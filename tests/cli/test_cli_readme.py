"""The README's tour, run as a new user runs it right after ``make demo``: in order, from the repo root.

Every ``$ opsmith ...`` command of "A 30-second tour" runs through a shell with the installed
script and a fresh ``OPSMITH_HOME`` (the tour's first command builds the ``demo`` collection, as
``make demo`` does), plus the offline commands shown later that build on it. A command must exit
as the README says, and the output it shows must be what the command prints: lines elided with
"…" are skipped, timings may differ, and ``| jq`` filters are applied here so jq is not needed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clitools import script_path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
#: Offline commands outside the tour that need only what the tour built.
LATER = ("opsmith compare examples/compare/eval.jsonl", "opsmith advise --answers")


def _tour() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows for it) for each ``$`` line of the tour."""
    section = README[README.index("## A 30-second tour") :]
    block = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert block, "the README's tour has no console block"
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return steps


def _later() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    found = [line for line in lines if line.startswith(LATER) and ("--provider" not in line or "fake" in line)]
    assert len(found) == len(LATER), found
    return found


def _jq(data: Any, expression: str) -> list[Any]:
    """The few jq paths the README uses: ``.a[0].b``, comma-separated."""
    values = []
    for path in expression.split(","):
        value = data
        for key, index in re.findall(r"\.(\w+)|\[(\d+)\]", path.strip()):
            value = value[key] if key else value[int(index)]
        values.append(value)
    return values


def _shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _shown_lines_are_printed(shown: list[str], printed: str, command: str) -> None:
    for line in shown:
        if "…" in line:
            continue
        # Timings differ from run to run; everything else must be as shown.
        pattern = re.escape(line.strip()).replace(r"\ ", " ")
        pattern = re.sub(r"\d+\\\.\d+s", r"\\d+\\.\\d+s", pattern)
        assert re.search(pattern, printed), f"`{command}` did not print the README's line {line!r}:\n{printed}"


@pytest.mark.slow
def test_the_readme_tour_runs_in_order_after_make_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMITH_")}
    env.update(
        OPSMITH_HOME=str(tmp_path / "home"),
        PATH=f"{Path(script_path()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
    )
    steps = _tour()
    assert steps[0][0].startswith("opsmith ingest examples/runbooks --collection demo")  # what `make demo` runs
    for command, shown in [*steps, *((line, []) for line in _later())]:
        program, _, jq = command.partition(" | jq ")
        proc = _shell(program, env)
        assert "Traceback" not in proc.stderr, f"`{command}`:\n{proc.stderr}"
        if "echo $?" in program:
            assert proc.stdout.strip() == "\n".join(shown).strip(), f"`{command}` printed {proc.stdout!r}"
            continue
        if jq:  # a pipeline's status is jq's: only the JSON matters (review exits 1 on its findings)
            values = _jq(json.loads(proc.stdout), jq.split("'")[1])
            if shown:
                assert values == [json.loads(" ".join(shown))], f"`{command}` gave {values}"
        else:
            assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{proc.stderr}"
            _shown_lines_are_printed(shown, proc.stdout, command)
