"""Changes the webhook function forwards over EventBridge (source `pushdeploy.webhook`).

The webhook function only verifies and normalizes; it puts each change on EventBridge so that webhook
pushes reach the controller exactly as AWS events do, with EventBridge's retries and dead-letter queue.
The delivery id travels along, so a redelivered webhook maps to the same change ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushdeploy.domain.changes import Change, ParsedEvent
from pushdeploy.sources._parsing import PayloadModel, validate

FORWARDED_SOURCE = "pushdeploy.webhook"
FORWARDED_DETAIL_TYPE = "Change Pushed"


class ForwardedChange(PayloadModel):
    change: Change
    delivery_id: str
    provider: str
    position: int = 0  # the change's place in its delivery (a Bitbucket push carries several)


def forwarded_entry(detail: ForwardedChange, bus_name: str) -> dict[str, Any]:
    """A PutEvents entry carrying one change."""
    return {
        "Source": FORWARDED_SOURCE,
        "DetailType": FORWARDED_DETAIL_TYPE,
        "Detail": detail.model_dump_json(),
        "EventBusName": bus_name,
    }


def is_forwarded(event: Mapping[str, Any]) -> bool:
    return event.get("source") == FORWARDED_SOURCE


def parse_forwarded(event: Mapping[str, Any]) -> tuple[ParsedEvent, int]:
    """The change and its position in the original delivery; event_id is the delivery id."""
    forwarded = validate(ForwardedChange, event.get("detail"), f"{FORWARDED_DETAIL_TYPE} event detail")
    parsed = ParsedEvent(
        changes=(forwarded.change,), event_id=forwarded.delivery_id, provider=forwarded.provider
    )
    return parsed, forwarded.position
