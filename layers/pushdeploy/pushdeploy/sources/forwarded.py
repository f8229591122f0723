"""Changes the webhook function forwards over EventBridge (source `pushdeploy.webhook`).

The webhook function only verifies and normalizes; it puts each change on EventBridge so that webhook
pushes reach the controller exactly as AWS events do, with EventBridge's retries and dead-letter queue.
The change id is derived from the signed content (`signed_change_id`), so a push delivered again under any
delivery id is the same change. Only the webhook function may put events on the stack's internal bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushdeploy.domain.changes import Change, ParsedEvent
from pushdeploy.errors import EventError
from pushdeploy.sources._parsing import PayloadModel, one_line, parse_time, validate

FORWARDED_SOURCE = "pushdeploy.webhook"
FORWARDED_DETAIL_TYPE = "Change Pushed"
WEBHOOK_PROVIDERS = frozenset({"github", "bitbucket"})


class ForwardedChange(PayloadModel):
    change: Change
    delivery_id: str
    provider: str
    position: int = 0  # the change's place in its delivery (a Bitbucket push carries several)
    # The change's ordering fields, which the change itself does not serialize.
    pushed_at: str | None = None  # ISO 8601
    previous_commit: str | None = None

    @classmethod
    def of(cls, change: Change, delivery_id: str, provider: str, position: int) -> ForwardedChange:
        return cls(
            change=change,
            delivery_id=delivery_id,
            provider=provider,
            position=position,
            pushed_at=change.pushed_at.isoformat() if change.pushed_at else None,
            previous_commit=change.previous_commit,
        )


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
    change = forwarded.change
    # The webhook forwards only what a signed GitHub or Bitbucket push carried, from the path it came in on.
    if change.kind != "commit" or change.source not in WEBHOOK_PROVIDERS:
        raise EventError(
            f"a forwarded change is a GitHub or Bitbucket commit, not a {change.source} {change.kind}"
        )
    if change.source != forwarded.provider:
        raise EventError(
            one_line(f"a {change.source} change was forwarded as received from {forwarded.provider}")
        )
    change = change.model_copy(
        update={"pushed_at": parse_time(forwarded.pushed_at), "previous_commit": forwarded.previous_commit}
    )
    parsed = ParsedEvent(changes=(change,), event_id=forwarded.delivery_id, provider=forwarded.provider)
    return parsed, forwarded.position
