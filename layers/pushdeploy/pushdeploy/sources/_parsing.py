"""What every source parser shares: strict payload models whose errors become one-line EventErrors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from pushdeploy.domain.changes import Change
from pushdeploy.errors import EventError

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]

_MAX_MESSAGE = 200


class PayloadModel(BaseModel):
    """Base of every model of an incoming payload: JSON types exactly, unknown keys ignored (senders add
    fields over time)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


M = TypeVar("M", bound=PayloadModel)


def one_line(text: str) -> str:
    """Collapse whitespace and cap the length: payload values end up in messages and must not break lines."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."


def validate(model: type[M], data: object, what: str) -> M:
    """`model` from `data`, or an EventError naming the first field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise EventError(one_line(f"{what}: {where}: {first['msg']}{more}")) from None


def load_json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and too-long integers too
        raise EventError(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise EventError(f"{what} is not a JSON object")
    return data


def parse_time(value: str | int | float | None) -> datetime | None:
    """A sender's timestamp (ISO 8601, or Unix seconds) in UTC; None when absent or unreadable, since a
    push is still a push without it (it then orders by arrival)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # Converting can leave datetime's range (year 1 at +01:00): that is unreadable too.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None


def new_change(**fields: Any) -> Change:
    """A Change from a parsed payload, or an EventError when its values are not what the source sends
    (a digest that is not sha256:<64 hex>, a commit id that is not hex...)."""
    try:
        return Change(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise EventError(one_line(f"not a valid change: {first['msg']}")) from None
