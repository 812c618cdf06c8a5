"""Load on `opsmith serve`: N concurrent clients for T seconds against POST /v1/ask, loopback only.

    python benchmarks/service_load.py [--clients 1 4 16] [--seconds 30] [--stores qdrant edge]

The server runs as its own process (`opsmith serve`, extractive answers: no LLM, so this
measures the service and retrieval, not a model) on the evaluation corpus, once per vector
store: qdrant-client's embedded mode (the default) and Qdrant Edge (`vector_store = "edge"`). The
clients are asyncio tasks on one httpx connection pool in this process, each sending its next
question as soon as the previous answer arrives (a closed loop), cycling through the corpus's
question set. Client and server share the machine's cores, as they would on one CI runner.

Target (issue 5): zero errors and p95 <= 150 ms at 16 concurrent clients on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx

from _common import free_port, opsmith, percentile, require_corpus, save, scratch_home, wait_ready


async def client_loop(
    client: httpx.AsyncClient, questions: list[str], offset: int, stop_at: float, record: bool, out: dict[str, list]
) -> None:
    i = offset
    while time.perf_counter() < stop_at:
        question = questions[i % len(questions)]
        i += 1
        started = time.perf_counter()
        try:
            response = await client.post("/v1/ask", json={"question": question})
            status = str(response.status_code)
            ok = response.status_code == 200 and "answer" in response.json()
        except httpx.HTTPError as exc:
            status, ok = type(exc).__name__, False
        elapsed = (time.perf_counter() - started) * 1000
        if record:
            out["latency_ms"].append(elapsed)
            out["status"].append(status if ok else f"error:{status}")


async def run_load(base_url: str, questions: list[str], clients: int, seconds: float, warmup: float) -> dict:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        warm: dict[str, list] = {"latency_ms": [], "status": []}
        stop = time.perf_counter() + warmup
        await asyncio.gather(*(client_loop(client, questions, n * 7, stop, False, warm) for n in range(clients)))
        out: dict[str, list] = {"latency_ms": [], "status": []}
        started = time.perf_counter()
        stop = started + seconds
        await asyncio.gather(*(client_loop(client, questions, n * 7, stop, True, out) for n in range(clients)))
        wall = time.perf_counter() - started
    latencies = out["latency_ms"]
    statuses = Counter(out["status"])
    errors = sum(count for status, count in statuses.items() if status.startswith("error"))
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": len(latencies),
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "errors": errors,
        "statuses": dict(statuses),
    }


def serve_and_load(store: str, corpus: Path, questions: list[str], args: argparse.Namespace) -> list[dict]:
    home = scratch_home(f"serve-{store}")
    # The rate limit is off: this measures capacity, and every client shares one address.
    env = {
        **os.environ,
        "OPSMITH_HOME": str(home),
        "OPSMITH_PROVIDER": "none",
        "OPSMITH_RATE_LIMIT_PER_MINUTE": "0",
        "OPSMITH_VECTOR_STORE": store,
    }
    ingest = opsmith("ingest", str(corpus / "runbooks"), "--json")
    subprocess.run(ingest, env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = home / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(opsmith("serve", "--port", str(port)), env=env, stdout=log, stderr=log)
    try:
        wait_ready(base_url, server, log_path, timeout=60)
        runs = [asyncio.run(run_load(base_url, questions, n, args.seconds, args.warmup)) for n in args.clients]
    finally:
        server.terminate()
        server.wait(timeout=30)
    return [{"store": store, **run} for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--stores", nargs="+", default=["qdrant", "edge"], choices=["qdrant", "edge"])
    args = parser.parse_args()

    corpus = require_corpus()
    questions = [json.loads(line)["question"] for line in (corpus / "questions.jsonl").read_text().splitlines() if line]
    runs = [run for store in args.stores for run in serve_and_load(store, corpus, questions, args)]
    verdict = {run["store"]: run["errors"] == 0 and run["p95_ms"] <= 150 for run in runs if run["clients"] == 16}
    save(
        "service_load",
        {
            "corpus": str(corpus),
            "mode": "extractive (provider none), hybrid retrieval, access log on",
            "questions": len(questions),
            "runs": runs,
            "target": "0 errors and p95 <= 150 ms at 16 clients",
            "target_met": verdict,
        },
    )


if __name__ == "__main__":
    main()
