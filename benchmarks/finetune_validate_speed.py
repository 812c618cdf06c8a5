"""Validation speed of `opsmith finetune validate` on 100,000 alpaca rows, without a tokenizer.

Generates realistic alert-summary rows (an alert payload in, a JSON incident summary out, about
600 bytes each, with a few planted problems) in a temporary folder and times
``validate_file`` over them: JSON parsing, field checks, exact and near-duplicate detection,
copy detection, the length check and the statistics. Target: at least 20,000 rows/s.

    cd benchmarks && ../.venv/bin/python finetune_validate_speed.py [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from _common import save
from opsmith.finetune.data import validate_file

INSTRUCTION = "Summarise this alert as JSON with title, severity, impact, suspected_cause, next_steps"
SERVICES = ["checkout", "payments", "search", "catalog", "auth", "orders", "inventory", "gateway", "billing", "email"]
ALERTS = [
    ("KubePodCrashLooping", "pod {pod} restarted {n} times in 10m, last exit code 137 (OOMKilled)"),
    ("PostgresReplicationLagHigh", "replica {host} is {n}s behind the primary; wal receiver streaming"),
    ("KafkaConsumerLagHigh", "consumer group {svc}-consumer is {n} messages behind on topic {svc}-events"),
    ("RedisMemoryHigh", "redis {host} used_memory at {n}% of maxmemory, evicted_keys rising"),
    ("NginxIngress5xxHigh", "ingress {svc}.example.com 5xx ratio {n}% over 5m, upstream {pod}"),
    ("NodeFilesystemAlmostFull", "node {host} root filesystem {n}% used, /var/lib/containerd growing"),
    ("TLSCertificateExpiringSoon", "certificate for {svc}.example.com expires in {n} days (issuer letsencrypt)"),
    ("NodeNotReady", "node {host} NotReady for {n}m, kubelet stopped posting status"),
]
WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "deploy rollout canary latency timeout retry backoff queue worker shard replica leader election "
    "connection pool saturation throttling quota disk inode memory heap gc pause socket dns "
    "resolver upstream downstream cache miss hit ratio eviction spike regression release config "
    "flag migration index vacuum checkpoint autovacuum lock contention deadlock partition rebalance "
    "offset commit certificate renewal issuer chain handshake ingress controller annotation pod "
    "node kubelet taint cordon drain scale hpa replicas limit request throttle cpu steal iowait "
    "network packet loss"
).split()


def make_row(rng: random.Random, index: int) -> dict[str, str]:
    svc = rng.choice(SERVICES)
    alert, template = rng.choice(ALERTS)
    pod = f"{svc}-{rng.randrange(16**5):05x}-{rng.randrange(16**4):04x}"
    host = f"ip-10-{rng.randrange(256)}-{rng.randrange(256)}-{rng.randrange(256)}"
    detail = template.format(pod=pod, host=host, svc=svc, n=rng.randrange(2, 5000))
    context = " ".join(rng.choices(WORDS, k=rng.randrange(12, 30)))
    payload = (
        f"FIRING [{alert}] cluster=prod-{rng.choice(['eu', 'us', 'ap'])}-{rng.randrange(1, 9)} service={svc} "
        f"alert_id={index} {detail}. Recent events: {context}."
    )
    summary = {
        "title": f"{svc} {alert} on {host}",
        "severity": rng.choice(["sev1", "sev2", "sev3", "sev4"]),
        "impact": f"{svc} {' '.join(rng.choices(WORDS, k=rng.randrange(6, 14)))}",
        "suspected_cause": " ".join(rng.choices(WORDS, k=rng.randrange(6, 14))),
        "next_steps": [" ".join(rng.choices(WORDS, k=rng.randrange(3, 8))) for _ in range(rng.randrange(2, 4))],
    }
    return {"instruction": INSTRUCTION, "input": payload, "output": json.dumps(summary)}


def write_data(path: Path, rows: int, seed: int = 0) -> dict[str, int]:
    """``rows`` lines, about 1% of them planted problems (bad JSON, empty output, duplicates)."""
    rng = random.Random(seed)
    planted = {"invalid_json": 0, "empty_field": 0, "duplicate": 0}
    previous = ""
    with path.open("w", encoding="utf-8") as handle:
        for index in range(rows):
            roll = rng.random()
            if roll < 0.003:
                line, planted["invalid_json"] = '{"instruction": "truncated', planted["invalid_json"] + 1
            elif roll < 0.006:
                row = make_row(rng, index)
                row["output"] = ""
                line, planted["empty_field"] = json.dumps(row), planted["empty_field"] + 1
            elif roll < 0.01 and previous:
                line, planted["duplicate"] = previous, planted["duplicate"] + 1
            else:
                line = previous = json.dumps(make_row(rng, index))
            handle.write(line + "\n")
    return planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsmith-bench-validate-") as folder:
        path = Path(folder) / "data.jsonl"
        planted = write_data(path, args.rows)
        size = path.stat().st_size
        timings = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            report = validate_file(path, sequence_len=2048)
            timings.append(time.perf_counter() - started)
    best, median = min(timings), statistics.median(timings)
    save(
        "finetune_validate_speed",
        {
            "command": "cd benchmarks && ../.venv/bin/python finetune_validate_speed.py",
            "rows": args.rows,
            "file_mb": round(size / 1e6, 1),
            "token_counter": report.token_counter,
            "seconds": {"best": round(best, 3), "median": round(median, 3), "runs": [round(t, 3) for t in timings]},
            "rows_per_second": {"best": round(args.rows / best), "median": round(args.rows / median)},
            "target_rows_per_second": 20_000,
            "meets_target": args.rows / median >= 20_000,
            "planted": planted,
            "found": report.error_counts(),
        },
    )


if __name__ == "__main__":
    main()
