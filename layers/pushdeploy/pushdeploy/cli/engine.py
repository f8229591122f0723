"""What every operator command needs besides the controller (wired in `pushdeploy.installation`): which
service a name means, durations, records without their storage keys."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.domain.rules import ServiceArn
from pushdeploy.installation import Target, TargetError, controller

_DURATION = re.compile(r"^(?P<number>\d+)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def known_services(target: Target) -> list[str]:
    """Every service a rule names or the ledger knows."""
    engine = controller(target)
    named = {
        rule.service
        for rule in RulesStore(target.client("dynamodb"), target.output("RulesTableName")).all_rules()
    }
    return sorted(named | set(engine.ledger.services()))


def service_arn(target: Target, given: str) -> str:
    """An App Runner service ARN, or the ARN of the one known service of that name."""
    if given.startswith("arn:"):
        try:
            return ServiceArn.parse(given).arn
        except ValueError as error:
            raise TargetError(f"{given}: {error}") from None
    matches = [arn for arn in known_services(target) if arn.split("/")[1] == given]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TargetError(f"no known service is named {given}: give its ARN, or apply a rule that names it")
    raise TargetError(f"{len(matches)} known services are named {given}: give the ARN ({', '.join(matches)})")


def duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `7d`, `1w`."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise TargetError(f"{text!r} is not a duration: write a number and a unit, e.g. 90s, 30m, 2h, 7d, 1w")
    return timedelta(**{_UNITS[found["unit"]]: int(found["number"])})


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A ledger record without its storage keys."""
    hidden = {"pk", "sk", "kind", "listing", "listed_key", "change_artifact", "expires_at"}
    return {name: value for name, value in record.items() if name not in hidden}
