"""Whether a push in another account or Region reaches pushdeploy on the local cloud: the forwarder's rules
(forwarder/template.yaml) must match its event, and pushdeploy's bus policy (template.yaml's
SourceAccountsBusPolicy, as SourceAccountIds makes it) must admit its account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pushdeploy.local import forwarding, pushes
from pushdeploy.local.intrinsics import Resolver, StackIdentity
from pushdeploy.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_A = "111122223333"  # pushdeploy's
ACCOUNT_B = "222233334444"
ACCOUNT_C = "777788889999"
BUS = f"arn:aws:events:us-east-1:{ACCOUNT_A}:event-bus/default"
DIGEST = "sha256:" + "ab" * 32


def bus_policy(source_accounts: str) -> dict[str, Any] | None:
    """The default bus's policy after `local up --parameter SourceAccountIds=...` (None when empty)."""
    template = load_template(ROOT / "template.yaml")
    identity = StackIdentity("pushdeploy", "us-east-1", ACCOUNT_A)
    resolver = Resolver(template, identity, {}, {"SourceAccountIds": source_accounts})
    resource = template["Resources"]["SourceAccountsBusPolicy"]
    if not resolver.condition(resource["Condition"]):
        return None
    properties = resolver.resolve(resource["Properties"])
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": properties["StatementId"], **properties["Statement"]}],
    }


def ecr_push(account: str, region: str = "us-east-1") -> dict[str, Any]:
    return forwarding.event_of(pushes.ecr_push_entry("web", "v1.2.0", DIGEST), account, region)


def rules(account: str, region: str = "us-east-1") -> list[forwarding.ForwarderRule]:
    return forwarding.forwarder_rules(account, region, BUS)


def test_the_forwarder_is_read_from_its_template_as_deployed_in_the_source_account() -> None:
    deployed = {rule.logical_id: rule for rule in rules(ACCOUNT_B, "eu-west-1")}
    assert sorted(deployed) == ["CodeCommitPushRule", "EcrImagePushRule", "EcrReplicationRule"]
    push = deployed["EcrImagePushRule"]
    assert push.name == "pushdeploy-forwarder-ecr-image-push"
    assert push.targets == ({"Id": "pushdeploy", "Arn": BUS},)
    assert push.pattern["detail"] == {"action-type": ["PUSH"], "result": ["SUCCESS"]}


def test_an_image_pushed_in_an_admitted_account_is_forwarded() -> None:
    decided = forwarding.decide(ecr_push(ACCOUNT_B), rules(ACCOUNT_B), bus_policy(ACCOUNT_B), BUS)
    assert decided.delivered
    assert decided.rule == "pushdeploy-forwarder-ecr-image-push"
    assert "SourceAccountIds lists it" in decided.reason


def test_an_account_source_account_ids_does_not_list_is_refused() -> None:
    for policy in (bus_policy(""), bus_policy(ACCOUNT_C)):
        decided = forwarding.decide(ecr_push(ACCOUNT_B), rules(ACCOUNT_B), policy, BUS)
        assert (decided.rule, decided.admitted, decided.delivered) == (
            "pushdeploy-forwarder-ecr-image-push",
            False,
            False,
        )
        assert "SourceAccountIds does not list it" in decided.reason


def test_several_source_accounts_are_each_admitted() -> None:
    policy = bus_policy(f"{ACCOUNT_B},{ACCOUNT_C}")
    for account in (ACCOUNT_B, ACCOUNT_C):
        assert forwarding.decide(ecr_push(account), rules(account), policy, BUS).delivered


def test_another_region_of_pushdeploys_own_account_needs_no_policy() -> None:
    decided = forwarding.decide(ecr_push(ACCOUNT_A, "eu-west-1"), rules(ACCOUNT_A, "eu-west-1"), None, BUS)
    assert decided.delivered
    assert "same account" in decided.reason


def test_a_codecommit_branch_update_is_forwarded_and_a_tag_is_not() -> None:
    entry = pushes.codecommit_push_entry("api", "main", "c" * 40, account=ACCOUNT_B, region="us-east-1")
    event = forwarding.event_of(entry, ACCOUNT_B, "us-east-1")
    decided = forwarding.decide(event, rules(ACCOUNT_B), bus_policy(ACCOUNT_B), BUS)
    assert (decided.rule, decided.delivered) == ("pushdeploy-forwarder-codecommit-push", True)
    event["detail"]["referenceType"] = "tag"
    decided = forwarding.decide(event, rules(ACCOUNT_B), bus_policy(ACCOUNT_B), BUS)
    assert (decided.rule, decided.delivered) == (None, False)
    assert "no forwarder rule matches it" in decided.reason


def test_an_image_delete_stays_on_its_own_bus() -> None:
    event = ecr_push(ACCOUNT_B)
    event["detail"]["action-type"] = "DELETE"
    decided = forwarding.decide(event, rules(ACCOUNT_B), bus_policy(ACCOUNT_B), BUS)
    assert (decided.rule, decided.admitted, decided.delivered) == (None, True, False)


def test_the_policy_admits_the_three_forwarded_kinds_only() -> None:
    policy = bus_policy(ACCOUNT_B)
    for source, detail_type in (
        ("aws.ecr", "ECR Image Action"),
        ("aws.ecr", "ECR Replication Action"),
        ("aws.codecommit", "CodeCommit Repository State Change"),
    ):
        event = {"source": source, "detail-type": detail_type}
        assert forwarding.admits(policy, ACCOUNT_B, event, BUS)[0], (source, detail_type)
    for source, detail_type in (("aws.ecr", "ECR Image Scan"), ("aws.apprunner", "ECR Image Action")):
        event = {"source": source, "detail-type": detail_type}
        assert not forwarding.admits(policy, ACCOUNT_B, event, BUS)[0], (source, detail_type)


@pytest.mark.parametrize(
    ("statement", "admitted"),
    [
        ({"Principal": "*"}, True),
        ({"Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"}}, True),
        ({"Principal": {"AWS": ACCOUNT_C}}, False),
        ({"Action": "events:PutRule"}, False),
        ({"Resource": f"arn:aws:events:us-east-1:{ACCOUNT_A}:event-bus/other"}, False),
        ({"Condition": {"StringLike": {"events:source": ["aws.*"]}}}, False),  # not understood: nobody
        ({"Condition": {"StringEquals": {"events:source": "aws.ecr"}}}, True),
    ],
)
def test_a_statement_admits_only_what_it_names(statement: dict[str, Any], admitted: bool) -> None:
    base = {"Sid": "s", "Effect": "Allow", "Principal": {"AWS": [ACCOUNT_B]}, "Action": "events:PutEvents"}
    policy = {"Statement": [{**base, "Resource": BUS, **statement}]}
    assert forwarding.admits(policy, ACCOUNT_B, ecr_push(ACCOUNT_B), BUS)[0] is admitted


def test_a_deny_wins_over_an_allow() -> None:
    policy = bus_policy(ACCOUNT_B)
    assert policy is not None
    deny = {"Sid": "no", "Effect": "Deny", "Principal": "*", "Action": "events:*", "Resource": "*"}
    policy["Statement"].append(deny)
    admitted, why = forwarding.admits(policy, ACCOUNT_B, ecr_push(ACCOUNT_B), BUS)
    assert (admitted, why) == (False, "its policy denies the account")
