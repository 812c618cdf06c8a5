"""Cold start of ``opsmith ask`` (process start to printed answer, extractive), and what it is made of.

    python benchmarks/cold_start.py [--runs 5]

Ingests the corpus once into a scratch home, then times fresh ``opsmith ask --json``
processes. A second pass breaks one start-up down: interpreter and CLI imports, embedder
load, opening the local index, and answering.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import CORPUS, percentile, require_corpus, save, scratch_home

QUESTION = "Alertmanager keeps failing to reload its configuration. Where do I look?"

BREAKDOWN = r"""
import time, json
t0 = time.perf_counter()
import opsmith.cli
t1 = time.perf_counter()
from opsmith.config import load_settings
from opsmith.rag.embedder import load_embedder
from opsmith.rag.store import open_store
from opsmith.rag.retrieve import Retriever
from opsmith.rag.answer import answer_question
s = load_settings()
t2 = time.perf_counter()
e = load_embedder(s)
t3 = time.perf_counter()
st = open_store(s)
r = Retriever(e, st, "cold", s.retrieval_mode, s.hybrid_sparse_weight)
t4 = time.perf_counter()
a = answer_question(QUESTION, retriever=r, k=s.top_k, refusal_threshold=s.refusal_threshold)
t5 = time.perf_counter()
st.close()
print(json.dumps({"import_cli_ms": (t1-t0)*1000, "import_rag_ms": (t2-t1)*1000, "load_embedder_ms": (t3-t2)*1000,
                  "open_index_ms": (t4-t3)*1000, "answer_ms": (t5-t4)*1000}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    require_corpus()
    home = scratch_home("cold")
    env = {**os.environ, "OPSMITH_HOME": str(home)}
    opsmith = str(Path(sys.executable).with_name("opsmith"))
    subprocess.run(
        [opsmith, "ingest", str(CORPUS / "runbooks"), "--collection", "cold", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    walls = []
    for _ in range(args.runs):
        start = time.perf_counter()
        run = subprocess.run(
            [opsmith, "ask", QUESTION, "--collection", "cold", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        walls.append(time.perf_counter() - start)
        answer = json.loads(run.stdout)
        if answer["refused"] or not answer["citations"]:
            raise SystemExit(f"cold-start question was not answered: {answer}")
    interpreter = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter.append(time.perf_counter() - start)
    breakdown = json.loads(
        subprocess.run(
            [sys.executable, "-c", f"QUESTION = {QUESTION!r}\n" + BREAKDOWN],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    save(
        "cold_start",
        {
            "runs": args.runs,
            "ask_wall_s": {
                "p50": round(percentile(walls, 50), 3),
                "min": round(min(walls), 3),
                "max": round(max(walls), 3),
            },
            "python_startup_s": round(min(interpreter), 3),
            "breakdown_ms": {k: round(v, 1) for k, v in breakdown.items()},
        },
    )


if __name__ == "__main__":
    main()
