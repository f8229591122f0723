"""moto as the local cloud's accounts: one account by default, others reached with their own credentials,
and events forwarded between them as EventBridge forwards them.

How moto tells accounts apart (moto 5, `moto.core.responses.BaseResponse.get_current_account`), for every
request, first match wins:

1. the variable `MOTO_ACCOUNT_ID`, if set: every request is that account, whatever its credentials;
2. the request header `x-moto-account-id`;
3. the request's access key id, looked up in every account's IAM backend (`moto.iam.models.
   get_account_id_from`): keys made by IAM CreateAccessKey in an account, and the temporary keys of STS
   AssumeRole, which moto makes in the account named by the role's ARN (the role need not exist);
4. moto's default account, 123456789012, for any other key.

The local cloud used to set `MOTO_ACCOUNT_ID`, which pins every request to one account, so that an STS
AssumeRole into another account changed nothing. `install()` replaces it with step 4's fallback: a key moto
did not issue (the local cloud's own `testing`, or none) is the local cloud's account, and a key from
AssumeRole is the role's account. So `sts assume-role --role-arn arn:aws:iam::222233334444:role/any`
gives credentials for account 222233334444's ECR, EventBridge and so on, as on AWS.

moto also forwards an event to an event bus of another account or Region (a rule whose target is a bus
ARN) by putting a *new* event there, made by the receiving account: its `account`, `region`, `time`,
`id` and `resources` are the receiver's or lost. EventBridge keeps the event as it was, so that a rule on
the receiving bus, and the function behind it, see where the event happened. `install()` forwards the
event itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from moto.events import models as events_models
from moto.iam import models as iam_models
from moto.utilities.arns import parse_arn
from moto.utilities.utils import PARTITION_NAMES

Patch = tuple[object, str, Any]
_ORIGINAL_SEND_TO_TARGETS = events_models.Rule.send_to_targets


def account_of_key(default_account: str) -> Callable[[str], str]:
    """moto's lookup of a request's account by its access key id, with `default_account` for a key that
    no account's IAM issued (moto's own lookup answers 123456789012 there)."""

    def get_account_id_from(access_key: str) -> str:
        # list(): another request may add an account meanwhile (moto does the same, issue #5881).
        for account_id, account in list(iam_models.iam_backends.items()):
            for partition in PARTITION_NAMES:
                if access_key in account[partition].access_keys:
                    return str(account_id)
        return default_account

    return get_account_id_from


def _is_bus(target: dict[str, Any]) -> bool:
    arn = parse_arn(target["Arn"])
    return bool(arn.service == "events" and arn.resource_type == "event-bus")


def send_to_targets(self: events_models.Rule, original_event: Any, transform_input: bool = True) -> None:
    """`Rule.send_to_targets`, forwarding to an event bus the event itself (see the module docstring);
    other targets are moto's."""
    buses = [target for target in self.targets if _is_bus(target)]
    if not buses:
        _ORIGINAL_SEND_TO_TARGETS(self, original_event, transform_input)
        return
    if self.event_pattern.matches_event(original_event):
        for target in buses:
            forward(target["Arn"], original_event)
    if len(buses) < len(self.targets):
        others = copy.copy(self)  # a shallow copy with the other targets: the rule itself stays as it is
        others.targets = [target for target in self.targets if not _is_bus(target)]
        _ORIGINAL_SEND_TO_TARGETS(others, original_event, transform_input)


def forward(bus_arn: str, event: Any) -> None:
    """Hand `event`, unchanged, to every rule of the bus `bus_arn` (any account and Region)."""
    arn = parse_arn(bus_arn)
    bus = events_models.events_backends[arn.account][arn.region].describe_event_bus(arn.resource_id)
    for rule in list(bus.rules.values()):
        rule.send_to_targets(copy.deepcopy(event))


def patches(default_account: str) -> list[Patch]:
    """What `install()` replaces, as (owner, attribute, value), for a test to apply with monkeypatch."""
    return [
        (iam_models, "get_account_id_from", account_of_key(default_account)),
        (events_models.Rule, "send_to_targets", send_to_targets),
    ]


def install(default_account: str) -> None:
    """Apply `patches()` for the life of the process (the local cloud's moto server)."""
    for owner, attribute, value in patches(default_account):
        setattr(owner, attribute, value)
