"""Prometheus metrics of one app instance, in its own registry.

A registry per app (not prometheus_client's global one) keeps two apps in one process, as in
the tests, from sharing counters. Route labels are route *templates* (``/v1/jobs/{job_id}``),
never raw paths, so a scanner probing random URLs cannot blow up the label cardinality.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from opsmith import __version__

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

# Requests are milliseconds to seconds; generation with an LLM can take tens of seconds.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    """The counters and histograms ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "opsmith_http_requests", "HTTP requests by route and status.", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "opsmith_http_request_duration_seconds",
            "Time to the end of the response, by route (streams included).",
            ["method", "route"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("opsmith_http_requests_in_flight", "Requests being served now.", registry=r)
        self.retrieval_seconds = Histogram(
            "opsmith_retrieval_duration_seconds",
            "Embedding the question and querying the store, per answer or search.",
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.generation_seconds = Histogram(
            "opsmith_generation_duration_seconds",
            "Writing the answer after retrieval (an LLM call, or quoting passages with provider none).",
            ["provider"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "opsmith_answers", "Answers by outcome: answered, refused, fallback (LLM failed).", ["outcome"], registry=r
        )
        self.llm_tokens = Counter(
            "opsmith_llm_tokens", "LLM tokens used, by provider and kind.", ["provider", "kind"], registry=r
        )
        self.llm_errors = Counter("opsmith_llm_errors", "Failed LLM calls, by provider.", ["provider"], registry=r)
        self.ingest_jobs = Counter("opsmith_ingest_jobs", "Ingest jobs finished, by status.", ["status"], registry=r)
        self.ingest_files = Counter(
            "opsmith_ingest_files",
            "Files seen by ingest jobs, by result (added, changed, unchanged, removed, skipped).",
            ["result"],
            registry=r,
        )
        self.ingest_chunks = Counter("opsmith_ingest_chunks", "Chunks embedded and written by ingest jobs.", registry=r)
        self.alerts = Counter(
            "opsmith_alerts", "Alertmanager alerts received, by status (firing, resolved).", ["status"], registry=r
        )
        self.webhook_errors = Counter(
            "opsmith_alert_webhook_errors", "Alert messages the webhook did not accept.", registry=r
        )
        info = Gauge("opsmith_build_info", "Always 1; the labels say what is running.", ["version"], registry=r)
        info.labels(version=__version__).set(1)

    def observe_answer(self, answer: Mapping[str, object]) -> None:
        """Record the stages, outcome and tokens of one ``Answer.to_dict()``."""
        timings = answer.get("timings_ms")
        provider = str(answer.get("provider") or "none")
        if isinstance(timings, dict):
            self.retrieval_seconds.observe(float(timings.get("retrieve", 0.0)) / 1000)
            self.generation_seconds.labels(provider=provider).observe(float(timings.get("generate", 0.0)) / 1000)
        if answer.get("error"):
            self.answers.labels(outcome="fallback").inc()
            self.llm_errors.labels(provider=provider).inc()
        else:
            self.answers.labels(outcome="refused" if answer.get("refused") else "answered").inc()
        usage = answer.get("usage")
        if isinstance(usage, dict):
            for kind in ("input_tokens", "output_tokens"):
                if usage.get(kind):
                    self.llm_tokens.labels(provider=provider, kind=kind.removesuffix("_tokens")).inc(int(usage[kind]))

    def render(self) -> bytes:
        return generate_latest(self.registry)
