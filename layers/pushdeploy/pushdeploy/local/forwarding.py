"""The forwarder (`forwarder/template.yaml`) in the local cloud: how a push in another account or Region
reaches pushdeploy's bus, as on AWS.

An event there reaches pushdeploy's default bus only if both hold:

- one of the forwarder's rules, deployed in the account and Region of the push, matches it (its own
  `EventPattern`, matched by moto's EventBridge, the local cloud's);
- pushdeploy's bus policy lets that account put it (`SourceAccountIds`, which the stack turns into the
  statement `SourceAccountsBusPolicy`). The same account needs no statement: there the forwarder's role
  is permission enough.

`decide()` says which, from the forwarder's rules and the bus's policy (pure, for the CLI's answer and the
tests). `deploy()` puts the forwarder's rules on the other account's default bus, aimed at pushdeploy's
bus, so that moto forwards the event itself (keeping its account and Region: `moto_accounts`). moto
enforces no policy, so whoever sends asks `admits()` first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushdeploy.local.accounts import Account
from pushdeploy.local.intrinsics import Resolver, StackIdentity
from pushdeploy.local.template import load_template, resources_of_type

# Where the forwarder is, in the project; the stack name is the README's example.
FORWARDER_TEMPLATE = Path(__file__).resolve().parents[4] / "forwarder" / "template.yaml"
FORWARDER_STACK = "pushdeploy-forwarder"
BUS_PARAMETER = "PushdeployEventBusArn"
SOURCE_ACCOUNTS_PARAMETER = "SourceAccountIds"
_PUT_EVENTS = "events:PutEvents"


@dataclass(frozen=True)
class ForwarderRule:
    """One rule of the forwarder, as deployed in an account and Region."""

    logical_id: str
    name: str
    pattern: dict[str, Any]
    targets: tuple[dict[str, str], ...]  # Id and Arn (pushdeploy's bus): what moto needs to forward


@dataclass(frozen=True)
class Forwarding:
    """What becomes of an event of another account or Region."""

    rule: str | None  # the forwarder's rule that matches it, by name; None: none does
    admitted: bool  # pushdeploy's bus policy lets the event's account put it
    reason: str

    @property
    def delivered(self) -> bool:
        return self.rule is not None and self.admitted


def forwarder_rules(
    account: str, region: str, bus_arn: str, template: Path = FORWARDER_TEMPLATE
) -> list[ForwarderRule]:
    """The forwarder's rules as `aws cloudformation deploy` of `template` in `account` and `region` makes
    them, with `PushdeployEventBusArn` set to `bus_arn`."""
    document = load_template(template)
    resolver = Resolver(
        document, StackIdentity(FORWARDER_STACK, region, account), {}, {BUS_PARAMETER: bus_arn}
    )
    rules = []
    for logical_id, resource in resources_of_type(document, "AWS::Events::Rule").items():
        properties = resource["Properties"]
        # Only what moto needs: the role and dead-letter queue are IAM and failure paths moto does not run.
        targets = tuple(
            {"Id": str(target["Id"]), "Arn": str(resolver.resolve(target["Arn"]))}
            for target in properties.get("Targets", [])
        )
        name = str(resolver.resolve(properties["Name"]))
        rules.append(ForwarderRule(logical_id, name, resolver.resolve(properties["EventPattern"]), targets))
    return rules


def event_of(entry: Mapping[str, Any], account: str, region: str) -> dict[str, Any]:
    """The event EventBridge makes of a PutEvents entry put in `account` and `region` (what a rule's
    pattern is matched against)."""
    return {
        "version": "0",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": account,
        "region": region,
        "resources": list(entry.get("Resources", [])),
        "detail": json.loads(entry["Detail"]),
    }


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's pattern matching, as the local cloud's EventBridge (moto) does it."""
    from moto.events.models import EventPattern  # moto is heavy: only what forwards needs it

    return bool(EventPattern.load(json.dumps(pattern)).matches_event(dict(event)))  # type: ignore[arg-type]


def decide(
    event: Mapping[str, Any], rules: Sequence[ForwarderRule], policy: Mapping[str, Any] | None, bus_arn: str
) -> Forwarding:
    """Whether `event` (a whole event, with its `account` and `region`) reaches the bus `bus_arn`."""
    matched = next((rule for rule in rules if matches(rule.pattern, event)), None)
    admitted, why = admits(policy, str(event["account"]), event, bus_arn)
    if matched is None:
        return Forwarding(None, admitted, "no forwarder rule matches it: it stays on its own bus")
    if not admitted:
        return Forwarding(
            matched.name, False, f"forwarded by {matched.name}, refused by pushdeploy's bus: {why}"
        )
    return Forwarding(matched.name, True, f"forwarded by {matched.name}; {why}")


def admits(
    policy: Mapping[str, Any] | None, account: str, event: Mapping[str, Any], bus_arn: str
) -> tuple[bool, str]:
    """Whether the bus `bus_arn`, with resource policy `policy`, lets `account` PutEvents `event` (its
    `source` and `detail-type`), and why. A Deny that applies wins over any Allow."""
    if account == _arn_account(bus_arn):
        return True, "the same account: the forwarder's role is permission enough"
    context = {
        "events:source": [str(event.get("source"))],
        "events:detail-type": [str(event.get("detail-type"))],
    }
    statements = [s for s in _statements(policy) if _applies(s, account, bus_arn, context)]
    if any(s.get("Effect") == "Deny" for s in statements):
        return False, "its policy denies the account"
    if any(s.get("Effect") == "Allow" for s in statements):
        return True, f"its policy admits the account ({SOURCE_ACCOUNTS_PARAMETER} lists it)"
    return False, f"its policy does not admit the account ({SOURCE_ACCOUNTS_PARAMETER} does not list it)"


def deploy(account: Account, rules: Sequence[ForwarderRule]) -> int:
    """Put the forwarder's rules that `account` lacks on its default bus: how many were put."""
    events = account.client("events")
    listed = events.list_rules(NamePrefix=f"{FORWARDER_STACK}-")["Rules"]
    present = {rule["Name"] for rule in listed}
    missing = [rule for rule in rules if rule.name not in present]
    for rule in missing:
        events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern), State="ENABLED")
        events.put_targets(Rule=rule.name, Targets=[dict(target) for target in rule.targets])
    return len(missing)


# ----- the bus's resource policy -----


def _arn_account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def _statements(policy: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not policy:
        return []
    statements = policy.get("Statement", [])
    return [s for s in (statements if isinstance(statements, list) else [statements]) if isinstance(s, dict)]


def _listed(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _applies(
    statement: Mapping[str, Any], account: str, bus_arn: str, context: Mapping[str, list[str]]
) -> bool:
    actions = _listed(statement.get("Action", []))
    if not any(action in (_PUT_EVENTS, "events:*", "*") for action in actions):
        return False
    if not any(resource in (bus_arn, "*") for resource in _listed(statement.get("Resource", []))):
        return False
    return _names(statement.get("Principal"), account) and _holds(statement.get("Condition", {}), context)


def _names(principal: Any, account: str) -> bool:
    """Whether a statement's Principal names the account: `*`, its id, or its root ARN."""
    if principal == "*":
        return True
    named = _listed(principal.get("AWS", [])) if isinstance(principal, dict) else []
    return any(p in ("*", account) or p.endswith(f":iam::{account}:root") for p in named)


def _holds(condition: Mapping[str, Any], context: Mapping[str, list[str]]) -> bool:
    """The string conditions a bus policy uses: StringEquals, with ForAllValues / ForAnyValue. Any other
    operator does not hold: an unknown condition admits nobody."""
    for operator, tests in condition.items():
        for key, allowed in tests.items():
            values, wanted = context.get(key, []), set(_listed(allowed))
            if operator == "ForAllValues:StringEquals":
                held = all(value in wanted for value in values)
            elif operator in ("StringEquals", "ForAnyValue:StringEquals"):
                held = any(value in wanted for value in values)
            else:
                held = False
            if not held:
                return False
    return True
