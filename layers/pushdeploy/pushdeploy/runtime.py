"""Wiring for the Lambda functions: configuration from the environment, AWS clients made on first use
(never at import, so a cold start pays only for what an invocation needs), and the dead-letter path.

Every handler follows one shape: parse the event, call one controller function, answer. An event that
cannot be parsed is logged and sent to the function's dead-letter queue, and the invocation succeeds, so
Lambda does not retry what can never work; any other failure raises, so Lambda retries it and then hands
the event to the same queue (the function's on-failure destination).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger

from pushdeploy import container
from pushdeploy.adapters.apprunner import AppRunnerTarget
from pushdeploy.adapters.ledger import Ledger
from pushdeploy.adapters.notifier import EventBridgeNotifier, MetricsSink
from pushdeploy.adapters.regional import RegionalTarget
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.adapters.scans import ScanReader
from pushdeploy.adapters.sources import AccountClients, SourceReader, roles_by_account
from pushdeploy.container import client as client
from pushdeploy.container import env as _env
from pushdeploy.container import on_reset as on_reset
from pushdeploy.controller import Controller, Settings
from pushdeploy.domain.change_ids import change_id_for, signed_change_id
from pushdeploy.domain.changes import Change, ParsedEvent
from pushdeploy.errors import EventError
from pushdeploy.sources.eventbridge import parse_eventbridge_event
from pushdeploy.sources.forwarded import is_forwarded, parse_forwarded
from pushdeploy.sweeper import Sweeper

logger = Logger(service="pushdeploy", child=True)


def settings() -> Settings:
    return Settings(
        stuck_after=timedelta(seconds=float(_env("STUCK_AFTER_SECONDS", "3600"))),
        start_grace=timedelta(seconds=float(_env("START_GRACE_SECONDS", "120"))),
    )


def make_controller(metrics: MetricsSink | None = None) -> Controller:
    ledger = Ledger(client("dynamodb"), _env("LEDGER_TABLE"))  # type: ignore[arg-type]
    rules = RulesStore(
        client("dynamodb"),  # type: ignore[arg-type]
        _env("RULES_TABLE"),
        cache_seconds=float(_env("RULES_CACHE_SECONDS", "30")),
    )
    target = RegionalTarget(lambda region: AppRunnerTarget(client("apprunner", region)))  # type: ignore[arg-type]
    notifier = EventBridgeNotifier(client("events"), _env("EVENT_BUS_NAME", "default"), metrics)  # type: ignore[arg-type]
    scans = ScanReader(lambda region: client("ecr", region), clock=lambda: container.utc_now())
    return Controller(
        ledger, target, rules, notifier, settings(), clock=lambda: container.utc_now(), scans=scans
    )  # late-bound: tests move time


_controller: Controller | None = None


def controller(metrics: MetricsSink | None = None) -> Controller:
    """The container's controller, made on the first invocation; `metrics` is the handler's, whose
    buffer is flushed at the end of every invocation."""
    global _controller
    if _controller is None:
        _controller = make_controller(metrics)
    return _controller


def reset() -> None:
    """Forget the container's controller and clients (tests change the environment between cases)."""
    global _controller
    _controller = None
    _sweepers.clear()
    container.reset()  # its clients too (whatever a test put in place of `client` here)


def dead_letter(event: Any, error: Exception) -> None:
    """Park an event pushdeploy cannot read in the function's dead-letter queue, with the reason."""
    queue_url = os.environ.get("DEAD_LETTER_QUEUE_URL")
    logger.error("invalid event sent to the dead-letter queue", extra={"error": str(error)})
    if not queue_url:
        logger.error(
            "DEAD_LETTER_QUEUE_URL is not set: the invalid event is only in this log", extra={"event": event}
        )
        return
    body = json.dumps({"error": str(error), "event": event}, default=str)
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)  # type: ignore[attr-defined]


def parse_or_dead_letter(event: Any, parse: Callable[[Mapping[str, Any]], Any]) -> Any | None:
    """`parse(event)`, or None after dead-lettering an event that can never be parsed."""
    try:
        if not isinstance(event, Mapping):
            raise EventError("the event is not a JSON object")
        return parse(event)
    except EventError as error:
        dead_letter(event, error)
        return None


def _parse_push(event: Mapping[str, Any]) -> tuple[ParsedEvent, int]:
    if is_forwarded(event):
        return parse_forwarded(event)
    return parse_eventbridge_event(event), 0


def _count(metrics: MetricsSink | None, name: str, value: float = 1) -> None:
    if metrics is not None:
        metrics.add_metric(name=name, unit="Count", value=value)


def process_push(event: Any, metrics: MetricsSink | None = None) -> dict[str, Any]:
    """An ECR, CodeCommit or forwarded webhook event: decide, deploy, record.

    Safe to run again for the same event, with no record of events kept here: EventBridge delivers at
    least once and Lambda retries. A change is known by its change id (the EventBridge event id and the
    change's position in it, or what a webhook push signed), and the controller reads the change's record
    first: a change already decided is answered from it, deploying nothing. Two deliveries decided at
    the same time make one deployment per rule: its id comes from the change id and the rule, and the
    admission transaction writes it only if new (and only on the slot it read); the change's record is
    a conditional put, written once. A scan event only says when to look: the gate facts are written
    on conditions (a deployment still held, a scan not recorded yet), so a scan event delivered again
    finds nothing held for it, or looks at the same facts again."""
    parsed_at = parse_or_dead_letter(event, _parse_push)
    if parsed_at is None:
        _count(metrics, "EventsRejected")
        return {"status": "rejected"}
    parsed, first_position = parsed_at
    if parsed.scan is not None:
        looked_at = controller(metrics).gates.on_scan(parsed.scan)
        _count(metrics, "ScansReceived")
        return {"status": "scanned", "digest": parsed.scan.digest, "deployments": looked_at}
    if not parsed.changes:
        logger.info("event ignored", extra={"reason": parsed.ignored})
        _count(metrics, "EventsIgnored")
        return {"status": "ignored", "reason": parsed.ignored}
    _count(metrics, "ChangesReceived", len(parsed.changes))
    # No id means no redelivery to recognise; the parsers require one for every real event.
    event_id = parsed.event_id or ""
    engine = controller(metrics)
    reports = [
        engine.handle_change(change, _change_id(parsed, event_id, first_position + offset, change), event_id)
        for offset, change in enumerate(parsed.changes)
    ]
    return {
        "status": "decided",
        "changes": [report.change_id for report in reports],
        "deployments": [deployment for report in reports for deployment in report.deployments],
    }


def _change_id(parsed: ParsedEvent, event_id: str, position: int, change: Change) -> str:
    # A webhook push is known by what was signed; an AWS event by its EventBridge id.
    return signed_change_id(change) if parsed.provider is not None else change_id_for(event_id, position)


def process_operation(event: Any, metrics: MetricsSink | None = None) -> dict[str, Any]:
    """An App Runner operation status event: confirm with ListOperations and settle."""
    parsed = parse_or_dead_letter(event, parse_eventbridge_event)
    if parsed is None:
        _count(metrics, "EventsRejected")
        return {"status": "rejected"}
    if parsed.operation is None:
        _count(metrics, "EventsIgnored")
        return {"status": "ignored", "reason": parsed.ignored}
    _count(metrics, "OperationEvents")
    controller(metrics).handle_operation(parsed.operation)
    return {"status": "confirmed", "service": parsed.operation.service, "outcome": parsed.operation.outcome}


def process_schedule(metrics: MetricsSink | None = None) -> dict[str, Any]:
    report = controller(metrics).reconcile()
    _count(metrics, "ServicesInFlight", report.services)
    _count(metrics, "ReconcileFailures", report.failures)
    return {"status": "reconciled", "services": report.services, "failures": report.failures}


def process_sweep(context: Any, metrics: MetricsSink | None = None) -> dict[str, Any]:
    """The sweep's schedule: look at every watched source for pushes whose events were lost."""
    own_account = str(context.invoked_function_arn).split(":")[4]
    report = _sweeper(own_account, metrics).sweep()
    _count(metrics, "SourcesSwept", report.sources)
    _count(metrics, "SourcesSkipped", len(report.skipped))
    _count(metrics, "PushesFoundBySweep", len(report.found))
    _count(metrics, "SourcesFailed", len(report.failed))
    return {
        "status": "swept",
        "sources": report.sources,
        "skipped": report.skipped,
        "failed": report.failed,
        "found": report.found,
        "deployments": report.deployments,
    }


_sweepers: dict[str, Sweeper] = {}


def _sweeper(own_account: str, metrics: MetricsSink | None) -> Sweeper:
    """The container's sweeper: its clients in other accounts keep their role sessions between runs."""
    if own_account not in _sweepers:
        clients = AccountClients(
            own_account,
            roles_by_account(_env("SWEEP_ROLE_ARNS", "")),
            own_client=client,
            sts=lambda: client("sts"),
            make_client=lambda *args: container.new_client(*args),  # late-bound: tests record it
        )
        rules = RulesStore(client("dynamodb"), _env("RULES_TABLE"))  # type: ignore[arg-type]
        grace = timedelta(seconds=float(_env("SWEEP_GRACE_SECONDS", "120")))
        _sweepers[own_account] = Sweeper(
            controller(metrics), SourceReader(clients), rules, grace, clock=lambda: container.utc_now()
        )
    return _sweepers[own_account]
