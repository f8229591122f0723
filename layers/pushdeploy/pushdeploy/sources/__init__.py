"""Source events, whatever sent them, become one ParsedEvent: EventBridge events and push webhooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pushdeploy.domain.changes import ParsedEvent
from pushdeploy.errors import EventError
from pushdeploy.sources._parsing import load_json_object
from pushdeploy.sources.eventbridge import parse_eventbridge_event
from pushdeploy.sources.webhooks import detect_provider, parse_webhook

__all__ = ["detect_provider", "parse_any", "parse_eventbridge_event", "parse_webhook"]


def parse_any(
    raw: bytes, headers: Mapping[str, str] | None = None, secrets: Sequence[str] | None = None
) -> ParsedEvent:
    """A webhook delivery when the headers name a provider, else an EventBridge event."""
    if headers and detect_provider(headers) is not None:
        return parse_webhook(raw, headers, secrets)
    event = load_json_object(raw, "the event")
    if "source" in event and "detail-type" in event:
        return parse_eventbridge_event(event)
    raise EventError("not an EventBridge event and no webhook headers say which provider sent it")
