"""The controller, wired for the operator CLI against a stack or the local cloud, as the functions wire it;
and what every operator command needs besides: who is asking, which service a name means, durations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pushdeploy.adapters.apprunner import AppRunnerTarget
from pushdeploy.adapters.ledger import Ledger
from pushdeploy.adapters.notifier import EventBridgeNotifier
from pushdeploy.adapters.regional import RegionalTarget
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.cli.context import Target, TargetError
from pushdeploy.controller import Controller, utc_now
from pushdeploy.domain.rules import ServiceArn
from pushdeploy.operators import Operator

_DURATION = re.compile(r"^(?P<number>\d+)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def controller(target: Target) -> Controller:
    dynamodb = target.client("dynamodb")
    ledger = Ledger(dynamodb, target.output("LedgerTableName"))
    rules = RulesStore(dynamodb, target.output("RulesTableName"), cache_seconds=0)
    regional = RegionalTarget(lambda region: AppRunnerTarget(target.client_in("apprunner", region)))
    notifier = EventBridgeNotifier(target.client("events"), target.outputs.get("EventBusName", "default"))
    return Controller(ledger, regional, rules, notifier, clock=lambda: utc_now())  # late-bound for tests


def operator(target: Target) -> Operator:
    return Operator(controller(target))


def caller(target: Target) -> str | None:
    """The IAM identity of whoever runs the command (STS GetCallerIdentity), recorded as the actor."""
    from botocore.exceptions import BotoCoreError, ClientError

    sts = target.client("sts")
    try:
        arn: str = sts.get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot tell who you are (sts:GetCallerIdentity): {error}") from None
    return arn


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


def now() -> datetime:
    """The operator commands' clock: the controller's, looked up late so that a test can move it."""
    return utc_now()
