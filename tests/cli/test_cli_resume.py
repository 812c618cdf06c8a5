"""An ingest killed with SIGKILL part-way is completed by the next run, without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import Run, script_path

SECTION = """\
## {title}

The `{name}` service reports {title}. Check the {name} dashboards and recent deploys first.

```bash
kubectl -n {name} get pods -o wide
kubectl -n {name} logs deploy/{name} --since=15m | grep -i error
```

Escalate to the {name} owners if the {title} lasts longer than {minutes} minutes.
"""


def write_corpus(root: Path, files: int) -> Path:
    for number in range(files):
        name = f"service-{number:02d}"
        sections = "\n".join(
            SECTION.format(title=title, name=name, minutes=5 + number)
            for title in ("high latency", "error spikes", "memory growth", "disk pressure")
        )
        path = root / f"team-{number % 4}" / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {name} runbook\n\n{sections}", encoding="utf-8")
    return root


def collection_points(opsmith_script: Callable[..., Run], env: dict[str, str]) -> dict[str, int]:
    listing = opsmith_script("collections", "list", "--json", env=env).json()
    return {c["name"]: c["points"] for c in listing["collections"]}


@pytest.mark.slow
def test_killed_ingest_resumes_without_duplicates(
    tmp_path: Path, home: Path, opsmith_script: Callable[..., Run]
) -> None:
    corpus = write_corpus(tmp_path / "runbooks", files=48)
    env = {"OPSMITH_INGEST_BATCH": "8"}

    reference = opsmith_script("ingest", str(corpus), "-c", "reference", "--json", env=env)
    assert reference.exit_code == 0, reference.stderr
    expected = reference.json()["chunks"]

    victim = subprocess.Popen(
        [script_path(), "ingest", str(corpus), "-c", "runbooks", "--json"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2.0)  # model loaded, some batches written, far from done (the full ingest takes several seconds)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL, "the ingest finished before it could be killed"

    resumed = opsmith_script("ingest", str(corpus), "-c", "runbooks", "--json", env=env)
    assert resumed.exit_code == 0, resumed.stderr
    report = resumed.json()
    assert report["added"] + report["changed"] + report["unchanged"] == 48
    assert report["chunks"] < expected or report["unchanged"] == 0

    again = opsmith_script("ingest", str(corpus), "-c", "runbooks", "--json", env=env).json()
    assert (again["unchanged"], again["chunks"]) == (48, 0)
    points = collection_points(opsmith_script, env)
    assert points["runbooks"] == points["reference"] == expected
