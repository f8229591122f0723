"""Telling others: the controller's own EventBridge events (source `pushdeploy`) and its metrics.

Events are best effort: the ledger is the record, so a failed PutEvents is logged, never raised.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger

from pushdeploy.domain.deployments import TERMINAL, Deployment

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

logger = Logger(service="pushdeploy", child=True)

EVENT_SOURCE = "pushdeploy"


class MetricsSink(Protocol):
    """What pushdeploy needs of Powertools Metrics."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def timings(deployment: Deployment) -> dict[str, float | None]:
    """Seconds from push to start, start to settled, and push to settled, where they apply."""

    def between(start: Any, end: Any) -> float | None:
        return round((end - start).total_seconds(), 3) if start and end else None

    return {
        "push_to_start_seconds": between(deployment.created_at, deployment.started_at),
        "operation_seconds": between(deployment.started_at, deployment.settled_at),
        "push_to_settled_seconds": between(deployment.created_at, deployment.settled_at),
    }


def event_detail(deployment: Deployment, what: str) -> dict[str, Any]:
    return {"event": what, **deployment.public_view(), **timings(deployment)}


class EventBridgeNotifier:
    def __init__(self, client: EventBridgeClient, bus_name: str, metrics: MetricsSink | None = None) -> None:
        self._client = client
        self._bus = bus_name
        self._metrics = metrics

    def deployment_changed(self, deployment: Deployment, what: str) -> None:
        self._count(deployment, what)
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": f"Deployment {what}",
            "Detail": json.dumps(event_detail(deployment, what)),
            "Resources": [deployment.service],
            "EventBusName": self._bus,
        }
        try:
            answer = self._client.put_events(Entries=[entry])  # type: ignore[list-item]
        except Exception as error:  # the ledger already holds the truth; never fail the deployment
            logger.warning(
                "could not publish event", extra={"detail_type": entry["DetailType"], "error": str(error)}
            )
            return
        if answer.get("FailedEntryCount"):
            logger.warning(
                "event not accepted", extra={"detail_type": entry["DetailType"], "answer": answer["Entries"]}
            )

    def _count(self, deployment: Deployment, what: str) -> None:
        if self._metrics is None:
            return
        self._metrics.add_metric(name=f"Deployment{what.replace(' ', '')}", unit="Count", value=1)
        settled = timings(deployment)["push_to_settled_seconds"]
        if deployment.status in TERMINAL and settled is not None:
            self._metrics.add_metric(name="PushToSettledSeconds", unit="Seconds", value=settled)
