"""`pushdeploy explain`: what pushdeploy would decide for one event, offline (DESIGN 4.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushdeploy.domain.decisions import decide
from pushdeploy.domain.rules import RuleIndex
from pushdeploy.sources import parse_any


def explain_event(
    raw: bytes, rules: RuleIndex, headers: Mapping[str, str] | None = None, secret: str | None = None
) -> dict[str, Any]:
    """The contract's JSON object for one event. Raises EventError when the event cannot be read.

    Change and Decision hold exactly the contract's fields, in the contract's order, so they dump as is.
    """
    parsed = parse_any(raw, headers or {}, [secret] if secret is not None else None)
    changes = [
        {**change.model_dump(), "decisions": [d.model_dump() for d in decide(change, rules)]}
        for change in parsed.changes
    ]
    return {
        "changes": changes,
        "ignored": parsed.ignored,
        "signature": parsed.signature,
        "operation": parsed.operation.model_dump() if parsed.operation is not None else None,
    }
