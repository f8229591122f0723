"""Settling from the slot's copy of its in-progress deployment: App Runner's status event reads the ledger
once, and what pushdeploy publishes about the outcome is what the ledger records, even when the slot or
the deployment changed while the operation ran."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pushdeploy import container
from tests.integration.harness import Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 10)]
_TIMINGS = ("push_to_start_seconds", "operation_seconds", "push_to_settled_seconds")


def settled_events(cloud: Cloud, deployment_id: str) -> list[dict[str, Any]]:
    return [
        event["detail"]
        for event in cloud.published()
        if event["detail"]["id"] == deployment_id and event["detail"]["settled_at"] is not None
    ]


def as_published(detail: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in detail.items() if key != "event" and key not in _TIMINGS}


@pytest.mark.parametrize("while_it_ran", ["nothing", "a newer push queued", "flagged stuck"])
def test_the_settled_event_tells_what_the_ledger_records(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch, while_it_ran: str
) -> None:
    monkeypatch.setenv("STUCK_AFTER_SECONDS", "600")
    cloud.sim.operation_seconds = 900
    (first,) = cloud.push_image("latest", DIGESTS[0])["deployments"]
    if while_it_ran == "a newer push queued":
        cloud.push_image("latest", DIGESTS[1])  # the slot changes under the running deployment
    if while_it_ran == "flagged stuck":
        cloud.advance(700)
        cloud.reconcile()
        stuck = cloud.ledger.deployment(first)
        assert stuck is not None
        assert stuck.stuck_at is not None
    cloud.published()
    cloud.settle_operations(1000)
    cloud.deliver_apprunner_events()
    recorded = cloud.ledger.deployment(first)
    assert recorded is not None
    assert str(recorded.status) == "succeeded"
    (published,) = settled_events(cloud, first)
    assert published["event"] == "Succeeded"
    assert as_published(published) == recorded.public_view()


def test_app_runners_status_event_settles_a_deployment_with_one_ledger_read(
    cloud: Cloud, services: dict[str, str]
) -> None:
    cloud.push_image("latest", DIGESTS[0])
    cloud.settle_operations()
    calls: Counter[str] = Counter()
    dynamodb = container.client("dynamodb")
    dynamodb.meta.events.register(
        "before-call.dynamodb",
        lambda model, **_: calls.update([model.name]),  # type: ignore[no-untyped-call]
    )
    cloud.deliver_apprunner_events()
    assert cloud.statuses(services["staging"]) == ["succeeded"]
    assert calls == Counter({"GetItem": 1, "TransactWriteItems": 1})  # read the slot, settle
