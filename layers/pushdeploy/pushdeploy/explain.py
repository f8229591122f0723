"""`pushdeploy explain`: what pushdeploy would decide for one event, offline (DESIGN 4.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushdeploy.domain.decisions import Decision, decide
from pushdeploy.domain.gates import describe
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
        {**change.model_dump(), "decisions": [_explained(d, rules) for d in decide(change, rules)]}
        for change in parsed.changes
    ]
    return {
        "changes": changes,
        "ignored": parsed.ignored,
        "signature": parsed.signature,
        "operation": parsed.operation.model_dump() if parsed.operation is not None else None,
    }


def _explained(decision: Decision, rules: RuleIndex) -> dict[str, Any]:
    """The contract's decision and, for a deploying one whose rule has gates (DESIGN 4.7), the gates it
    would wait for (`gates`, only then: a decision without gates keeps the contract's exact shape)."""
    explained = decision.model_dump()
    rule = next((r for r in rules.rules if r.id == decision.rule), None)
    gates = rule.rule.gates if rule is not None and decision.deploys else None
    if gates is not None and gates.names:
        explained["gates"] = [{"gate": name, "waits_for": words} for name, words in describe(gates)]
    return explained
