"""Memory of `opsmith serve` under hostile request bodies, and what oversized requests cost.

    python benchmarks/service_memory.py [--connections 60] [--hold 10] [--only connections]

`opsmith serve` runs as its own process on loopback (extractive answers, bearer tokens on,
examples/runbooks ingested). Each scenario opens N connections at once that declare
`Content-Length: 25000000`, push up to 24 MB each (as far as the server lets them) and then
stall for --hold seconds before closing; the server's resident memory (RSS, psutil) is sampled
every 50 ms before, during and after:

* `healthz`: `GET /healthz` with the body (a route that takes none);
* `v1-no-token`: `POST /v1/ask` without a token (refused before the body);
* `v1-token`: `POST /v1/ask` with a valid token (a route that reads bodies: bounded by the
  shared budget, max_buffered_request_bytes, and cut off by body_read_timeout).

Then single oversized requests, timed from send to answer, with the server's peak RSS: a 9.5 MB
/v1/review, a 5,000-file /v1/review, a 1,000-alert Alertmanager payload, and for scale what the
defaults still accept: 50 alerts, and the largest review (200 files, just under 1 MB).

Target (issue 11): 60 such connections leave the server under +150 MB RSS.

It measures whatever `opsmith` the environment imports: set PYTHONPATH to another checkout's src to
measure that one (with --only connections: an unbounded server buffers 60 x 24 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import threading
import time
from typing import Any

import httpx
import psutil

from _common import REPO, free_port, opsmith, save, scratch_home, wait_ready

DECLARED = 25_000_000
SENT = 24_000_000
CHUNK = 1 << 20
MB = 1024 * 1024


class RssSampler:
    """The server's RSS every 50 ms in a thread: ``peak`` since the last :meth:`reset`."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return int(self.process.memory_info().rss)

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.now())
            except psutil.Error:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int | None, bool]:
    """The status of the server's answer, if any, and whether the server closed the connection."""
    status = None
    try:
        line = await reader.readline()
        if line.startswith(b"HTTP/1.1 "):
            status = int(line.split()[1])
        await reader.read()  # until the server closes
    except (ConnectionError, OSError):
        pass
    return status, True


async def hostile_connection(port: int, head: bytes, hold: float, stall_after: float) -> dict[str, Any]:
    """Send ``head``, push the body until the server stops taking it, hold, then close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(read_answer(reader))  # read while sending: a reset loses unread data
    sent = 0
    outcome = "stalled"
    try:
        writer.write(head)
        chunk = b"x" * CHUNK
        while sent < SENT:
            writer.write(chunk[: min(CHUNK, SENT - sent)])
            try:
                await asyncio.wait_for(writer.drain(), timeout=stall_after)
            except TimeoutError:
                outcome = "server stopped reading"
                break
            sent += min(CHUNK, SENT - sent)
        else:
            outcome = "all sent"
    except (ConnectionError, OSError):
        outcome = "closed by server"
    done, _ = await asyncio.wait([answer], timeout=hold)
    status, closed = answer.result() if done else (None, False)
    answer.cancel()
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
    return {"sent_mb": round(sent / MB, 1), "outcome": outcome, "status": status, "closed_by_server": closed}


async def run_connections(port: int, head: bytes, n: int, hold: float) -> list[dict[str, Any]]:
    return await asyncio.gather(*(hostile_connection(port, head, hold, stall_after=2.0) for _ in range(n)))


def scenario(name: str, port: int, head: bytes, sampler: RssSampler, args: argparse.Namespace) -> dict[str, Any]:
    time.sleep(1.0)
    before = sampler.reset()
    started = time.perf_counter()
    results = asyncio.run(run_connections(port, head, args.connections, args.hold))
    during_peak = sampler.peak
    time.sleep(2.0)  # connections are closed: what is left
    after = sampler.now()
    statuses: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    for result in results:
        statuses[str(result["status"])] = statuses.get(str(result["status"]), 0) + 1
        outcomes[result["outcome"]] = outcomes.get(result["outcome"], 0) + 1
    return {
        "scenario": name,
        "connections": args.connections,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_before_mb": round(before / MB, 1),
        "rss_peak_mb": round(during_peak / MB, 1),
        "rss_after_mb": round(after / MB, 1),
        "peak_increase_mb": round((during_peak - before) / MB, 1),
        "after_increase_mb": round((after - before) / MB, 1),
        "statuses": statuses,
        "sending": outcomes,
        "closed_by_server": sum(1 for r in results if r["closed_by_server"]),
        "body_mb_accepted_by_server_total": round(sum(r["sent_mb"] for r in results), 1),
        "target_met": during_peak - before < 150 * MB,
    }


def timed_request(
    client: httpx.Client, sampler: RssSampler, name: str, path: str, body: bytes, token: str
) -> dict[str, Any]:
    time.sleep(0.5)
    before = sampler.reset()
    started = time.perf_counter()
    response = client.post(
        path, content=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    elapsed = time.perf_counter() - started
    detail = response.json().get("detail") if response.status_code >= 400 else None
    return {
        "request": name,
        "body_mb": round(len(body) / 1e6, 2),
        "status": response.status_code,
        "seconds": round(elapsed, 3),
        "rss_peak_increase_mb": round((sampler.peak - before) / MB, 1),
        "detail": detail,
    }


def terraform_files(total_bytes: int, files: int) -> dict[str, str]:
    """Whole example Terraform files, dealt round-robin into ``files`` files, up to ``total_bytes`` in all."""
    sources = [p.read_text(encoding="utf-8") for p in sorted((REPO / "examples" / "terraform").rglob("*.tf"))]
    out = {f"mod{n % 20}/f{n}.tf": "" for n in range(files)}
    names = list(out)
    size, i = 0, 0
    while True:
        text = sources[i % len(sources)] + "\n"
        if size + len(text.encode()) > total_bytes:
            return out
        out[names[i % files]] += text
        size += len(text.encode())
        i += 1


def oversized_requests(port: int, token: str, sampler: RssSampler) -> list[dict[str, Any]]:
    alerts = {
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": f"PostgresReplicationLag{i}", "severity": "critical"},
                "annotations": {"summary": f"Replica db-{i} is far behind the primary."},
            }
            for i in range(1000)
        ]
    }
    largest = terraform_files(990_000, 200)
    requests = [
        ("review 9.5 MB (40 files)", "/v1/review", {"files": terraform_files(9_500_000, 40)}),
        ("review 5,000 files", "/v1/review", {"files": terraform_files(5_000_000, 5_000)}),
        ("alerts 1,000 in one payload", "/v1/alerts/alertmanager", alerts),
        ("alerts 50 (the limit), extractive", "/v1/alerts/alertmanager", {"alerts": alerts["alerts"][:50]}),
        ("review at the defaults' limit (200 files, ~1 MB)", "/v1/review", {"files": largest}),
    ]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        return [
            timed_request(client, sampler, name, path, json.dumps(body).encode(), token)
            for name, path, body in requests
        ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=60)
    parser.add_argument("--hold", type=float, default=10.0, help="Seconds each connection stalls before closing.")
    parser.add_argument("--only", choices=["connections", "requests"], default=None)
    args = parser.parse_args()

    home = scratch_home("serve-memory")
    token = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "OPSMITH_HOME": str(home),
        "OPSMITH_PROVIDER": "none",
        "OPSMITH_RATE_LIMIT_PER_MINUTE": "0",
        "OPSMITH_API_TOKENS": token,
    }
    subprocess.run(
        opsmith("ingest", str(REPO / "examples" / "runbooks"), "--json"), env=env, check=True, stdout=subprocess.DEVNULL
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = home / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            opsmith("serve", "--port", str(port), "--no-access-log"), env=env, stdout=log, stderr=log
        )
    sampler: RssSampler | None = None
    try:
        wait_ready(base_url, server, log_path, timeout=120)
        sampler = RssSampler(server.pid)
        head = f"Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {DECLARED}\r\n"
        scenarios: list[dict[str, Any]] = []
        if args.only in (None, "connections"):
            for name, request_line, extra in (
                ("healthz", "GET /healthz HTTP/1.1", ""),
                ("v1-no-token", "POST /v1/ask HTTP/1.1", ""),
                ("v1-token", "POST /v1/ask HTTP/1.1", f"Authorization: Bearer {token}\r\n"),
            ):
                raw = f"{request_line}\r\n{head}{extra}\r\n".encode()
                scenarios.append(scenario(name, port, raw, sampler, args))
        oversized = oversized_requests(port, token, sampler) if args.only in (None, "requests") else []
    finally:
        if sampler is not None:
            sampler.stop()
        server.terminate()
        server.wait(timeout=30)
    save(
        "service_memory",
        {
            "server": "opsmith serve, provider none, bearer tokens on, examples/runbooks ingested",
            "declared_content_length": DECLARED,
            "body_sent_per_connection_at_most": SENT,
            "hold_seconds": args.hold,
            "scenarios": scenarios,
            "oversized_requests": oversized,
            "target": "+150 MB RSS at most with 60 connections",
        },
    )


if __name__ == "__main__":
    main()
