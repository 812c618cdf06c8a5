"""Shared pieces of the CLI tests: a tiny runbook corpus, the result of a run, assertions."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNBOOKS: dict[str, str] = {
    "disk-full.md": """\
# Node disk almost full

Alert `NodeFilesystemAlmostFull` fires when a node's root filesystem passes 85% usage.

## Diagnosis

Find what fills the disk:

```bash
df -h /var/lib/docker
du -xh /var/log | sort -h | tail -20
```

## Mitigation

Prune unused container images and cap the systemd journal:

```bash
docker system prune -af
journalctl --vacuum-size=500M
```
""",
    "postgres-replication-lag.md": """\
# Postgres replication lag

Alert `PostgresReplicationLagHigh` fires when a replica is more than 60 seconds behind the primary.

## Diagnosis

On the replica, measure the lag:

```sql
SELECT now() - pg_last_xact_replay_timestamp() AS replication_lag;
```

Check `pg_stat_replication` on the primary for the replica's state.

## Mitigation

If the lag keeps growing, restart the replica with `systemctl restart postgresql`
and move read traffic to the primary until it catches up.
""",
    "kafka-consumer-lag.md": """\
# Kafka consumer lag

Alert `KafkaConsumerLagHigh` fires when a consumer group falls more than 10000 messages behind.

## Diagnosis

```bash
kafka-consumer-groups.sh --bootstrap-server kafka:9092 --describe --group payments
```

## Mitigation

Scale the consumer deployment: `kubectl scale deploy/payments-consumer --replicas=6`.
""",
    "certs/tls-expiry.md": """\
# TLS certificate expiring

Alert `TLSCertificateExpiringSoon` fires 14 days before a certificate expires.

## Diagnosis

```bash
openssl x509 -enddate -noout -in /etc/nginx/tls/site.pem
```

## Mitigation

Renew with `certbot renew --cert-name site` and reload nginx with `nginx -s reload`.
""",
}

ANSWERABLE = "How do I measure Postgres replication lag on the replica?"
UNRELATED = "What is a good recipe for sourdough bread with rye flour?"


@dataclass
class Run:
    """What one CLI invocation left behind."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    def json(self) -> Any:
        """stdout parsed as exactly one JSON document (fails on anything else on stdout)."""
        return json.loads(self.stdout)


def script_path() -> str:
    """The installed ``opsmith`` console script (beside this Python, else on PATH)."""
    beside = Path(sys.executable).with_name("opsmith")
    found = str(beside) if beside.exists() else shutil.which("opsmith")
    assert found, "the opsmith console script is not installed"
    return found


def write_runbooks(folder: Path, files: dict[str, str] | None = None) -> Path:
    for name, text in (files or RUNBOOKS).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def assert_one_error_line(run: Run, *fragments: str) -> str:
    """A user error: non-zero exit, nothing on stdout, one line on stderr holding ``fragments``."""
    assert run.exit_code != 0
    assert "Traceback" not in run.stderr
    assert "Traceback" not in run.stdout
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {run.stderr!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line
