"""``POST /v1/alerts/alertmanager``: Alertmanager's webhook receiver."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter

from opsmith.errors import LimitExceededError
from opsmith.integrations.alertmanager import AlertmanagerPayload
from opsmith.integrations.webhook import notify
from opsmith.schemas import AlertsResponse
from opsmith.serve.service import ServiceDep, in_thread, with_llm_slot

__all__ = ["router"]

log = logging.getLogger("opsmith.serve")

router = APIRouter(prefix="/v1", tags=["incidents"])


@router.post("/alerts/alertmanager", response_model=AlertsResponse)
async def alertmanager(payload: AlertmanagerPayload, service: ServiceDep) -> AlertsResponse:
    """Alertmanager webhook receiver: answers each firing alert from the runbooks (an alert's
    `runbook_url` that matches an indexed runbook is searched first), and posts the answers to
    the configured Slack-compatible webhook, if any."""
    limit = service.settings.max_alerts_per_request
    if len(payload.alerts) > limit:
        raise LimitExceededError(
            f"The notification carries {len(payload.alerts):,} alerts",
            limit=limit,
            setting="OPSMITH_MAX_ALERTS_PER_REQUEST",
            advice=f"set max_alerts: {limit} in Alertmanager's webhook_configs for opsmith",
        )
    metrics = service.metrics
    for alert in payload.alerts:
        metrics.alerts.labels(status=alert.status).inc()
    results = await with_llm_slot(service, lambda: service.backend.answer_alerts(payload.alerts))
    for result in results:
        metrics.observe_answer(result["answer"])
    notified, notify_error = await in_thread(
        lambda: notify(results, settings=service.settings, external_url=payload.external_url)
    )
    if notified is False:
        metrics.webhook_errors.inc()
        log.warning(json.dumps({"event": "alert_webhook_failed", "detail": notify_error}))
    return {
        "alerts": results,
        "resolved": len(payload.alerts) - len(payload.firing_alerts()),
        "notified": notified,
        "notify_error": notify_error,
    }
