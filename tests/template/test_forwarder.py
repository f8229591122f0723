"""Sources in other accounts and Regions: forwarder/template.yaml (deployed in each source account and
Region) and the bus policy template.yaml gives the accounts of SourceAccountIds."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from pushdeploy.local.intrinsics import Resolver, StackIdentity
from pushdeploy.local.template import load_template
from tests.template.tools import cfn_lint, sam_validate_lint

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
FORWARDER = ROOT / "forwarder" / "template.yaml"
MAIN = ROOT / "template.yaml"
EVENTS = ROOT / "events"

BUS_ARN = "arn:aws:events:us-east-1:111122223333:event-bus/default"
ACCOUNT_A = "111122223333"  # pushdeploy's
ACCOUNT_B = "444455556666"  # a source account
ACCOUNT_C = "777788889999"

FORWARDER_RULES = {
    "EcrImagePushRule": ("ImagePushedFunction", "EcrImagePush"),
    "EcrReplicationRule": ("ImagePushedFunction", "EcrReplication"),
    "CodeCommitPushRule": ("CommitPushedFunction", "CodeCommitPush"),
}

# Which forwarder rule each sample event matches (None: forwarded by none).
SAMPLES = {
    "ecr-image-push.json": "EcrImagePushRule",
    "ecr-image-push-latest.json": "EcrImagePushRule",
    "ecr-replication-success.json": "EcrReplicationRule",
    "codecommit-branch-updated.json": "CodeCommitPushRule",
    "ecr-image-delete.json": None,
    # Scans are not forwarded: a scan gate on another account's image ends by its `on_timeout`.
    "ecr-image-scan.json": None,
    "inspector2-scan.json": None,
    "codecommit-tag-created.json": None,
    "apprunner-operation-succeeded.json": None,
    "apprunner-service-status-change.json": None,
}


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's pattern matching, as the local cloud's EventBridge (moto) does it."""
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def forwarder() -> dict[str, Any]:
    return load_template(FORWARDER)


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return load_template(MAIN)


def _main_resolver(main: dict[str, Any], source_accounts: str | None) -> Resolver:
    parameters = {} if source_accounts is None else {"SourceAccountIds": source_accounts}
    identity = StackIdentity(stack_name="pushdeploy", region="us-east-1", account=ACCOUNT_A)
    return Resolver(main, identity, resources={}, parameters=parameters)


# --------------------------------------------------------------------------------------------------------
# The forwarder template: linters


def test_forwarder_passes_cfn_lint_with_serverless_rules() -> None:
    result = cfn_lint(FORWARDER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_forwarder_passes_sam_validate_lint() -> None:
    result = sam_validate_lint(FORWARDER)
    assert result.returncode == 0, result.stdout + result.stderr


def test_forwarder_suppresses_only_es6000_on_its_dead_letter_queue(forwarder: dict[str, Any]) -> None:
    assert "cfn-lint" not in forwarder.get("Metadata", {})
    for logical_id, resource in forwarder["Resources"].items():
        ignored = resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        expected = ["ES6000"] if logical_id == "DeadLetterQueue" else []
        assert ignored == expected, logical_id


# --------------------------------------------------------------------------------------------------------
# The forwarder template: what it forwards, and where


def test_forwarder_parameters_are_described(forwarder: dict[str, Any]) -> None:
    assert set(forwarder["Parameters"]) == {"PushdeployEventBusArn", "PushdeploySweeperRoleArn"}
    for name, parameter in forwarder["Parameters"].items():
        assert len(parameter.get("Description", "")) > 40, name


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (BUS_ARN, True),
        ("arn:aws-cn:events:cn-north-1:111122223333:event-bus/default", True),
        ("arn:aws:events:eu-west-1:111122223333:event-bus/pushdeploy-central", True),
        ("arn:aws:events:us-east-1:111122223333:rule/pushdeploy-ecr-image-push", False),
        ("arn:aws:sqs:us-east-1:111122223333:queue", False),
        ("default", False),
        ("", False),
    ],
)
def test_the_bus_arn_parameter_accepts_only_an_event_bus_arn(
    forwarder: dict[str, Any], value: str, valid: bool
) -> None:
    pattern = forwarder["Parameters"]["PushdeployEventBusArn"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is valid


def _rules(forwarder: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in forwarder["Resources"].items() if v["Type"] == "AWS::Events::Rule"}


def test_the_forwarder_has_exactly_its_three_rules(forwarder: dict[str, Any]) -> None:
    assert set(_rules(forwarder)) == set(FORWARDER_RULES)


@pytest.mark.parametrize("logical_id", sorted(FORWARDER_RULES))
def test_each_rule_forwards_what_pushdeploys_own_rule_hears(
    forwarder: dict[str, Any], main: dict[str, Any], logical_id: str
) -> None:
    """Same pattern as the function's rule in template.yaml: nothing forwarded is dropped there, and
    nothing pushdeploy listens for (of these three kinds) is left behind."""
    function, event = FORWARDER_RULES[logical_id]
    expected = main["Resources"][function]["Properties"]["Events"][event]["Properties"]["Pattern"]
    assert forwarder["Resources"][logical_id]["Properties"]["EventPattern"] == expected


@pytest.mark.parametrize("logical_id", sorted(FORWARDER_RULES))
def test_each_rule_targets_pushdeploys_bus_with_the_role_and_a_dead_letter_queue(
    forwarder: dict[str, Any], logical_id: str
) -> None:
    props = forwarder["Resources"][logical_id]["Properties"]
    assert props["EventBusName"] == "default"  # where ECR and CodeCommit deliver their events
    assert props["State"] == "ENABLED"
    assert props["Name"]["Fn::Sub"].startswith("${AWS::StackName}-")
    (target,) = props["Targets"]
    assert target["Arn"] == {"Ref": "PushdeployEventBusArn"}
    assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    for key in ("Input", "InputPath", "InputTransformer"):
        assert key not in target  # forwarded unchanged


def _load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_sample_events_match_exactly_their_rule(forwarder: dict[str, Any], sample: str) -> None:
    event = _load_event(sample)
    matched = {
        k for k, rule in _rules(forwarder).items() if _matches(rule["Properties"]["EventPattern"], event)
    }
    expected = {SAMPLES[sample]} - {None}
    assert matched == expected


@pytest.mark.parametrize("sample", [name for name, rule in SAMPLES.items() if rule])
def test_events_of_another_account_and_region_match_pushdeploys_rules(
    main: dict[str, Any], sample: str
) -> None:
    """A forwarded event keeps its own account and region; pushdeploy's rules do not look at either, so it
    reaches the function, where the rules file decides by them."""
    event = copy.deepcopy(_load_event(sample))
    event["account"] = ACCOUNT_B
    event["region"] = "ap-southeast-2"
    function, name = FORWARDER_RULES[SAMPLES[sample]]  # type: ignore[index]
    pattern = main["Resources"][function]["Properties"]["Events"][name]["Properties"]["Pattern"]
    assert _matches(pattern, event)


def test_pushdeploys_rules_pin_no_account_or_region(main: dict[str, Any]) -> None:
    for resource in main["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            pattern = event["Properties"].get("Pattern", {})
            assert "account" not in pattern
            assert "region" not in pattern


# --------------------------------------------------------------------------------------------------------
# The forwarder's role: events:PutEvents on that one bus, nothing else


def test_the_role_is_assumed_by_eventbridge_only(forwarder: dict[str, Any]) -> None:
    props = forwarder["Resources"]["ForwarderRole"]["Properties"]
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def test_the_role_may_only_put_events_on_pushdeploys_bus(forwarder: dict[str, Any]) -> None:
    props = forwarder["Resources"]["ForwarderRole"]["Properties"]
    assert "ManagedPolicyArns" not in props
    (policy,) = props["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": {"Ref": "PushdeployEventBusArn"},
    }
    others = [k for k, v in forwarder["Resources"].items() if v["Type"].startswith("AWS::IAM::")]
    assert others == ["ForwarderRole", "SweepRole"]


def test_the_sweep_role_exists_only_when_asked_and_trusts_only_pushdeploys_sweeper(
    forwarder: dict[str, Any],
) -> None:
    role = forwarder["Resources"]["SweepRole"]
    assert role["Condition"] == "CreateSweepRole"
    assert forwarder["Conditions"]["CreateSweepRole"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PushdeploySweeperRoleArn"}, ""]}]
    }
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"AWS": {"Ref": "PushdeploySweeperRoleArn"}},
        "Action": "sts:AssumeRole",
    }


def test_the_sweep_role_may_only_list_images_and_branch_heads_of_its_account(
    forwarder: dict[str, Any],
) -> None:
    (policy,) = forwarder["Resources"]["SweepRole"]["Properties"]["Policies"]
    granted = {
        (action, statement["Resource"]["Fn::Sub"])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert granted == {
        ("ecr:DescribeImages", "arn:${AWS::Partition}:ecr:*:${AWS::AccountId}:repository/*"),
        ("codecommit:GetBranch", "arn:${AWS::Partition}:codecommit:*:${AWS::AccountId}:*"),
        ("codecommit:ListBranches", "arn:${AWS::Partition}:codecommit:*:${AWS::AccountId}:*"),
    }


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("", True),
        ("arn:aws:iam::111122223333:role/pushdeploy-SweeperFunctionRole-AbC123", True),
        ("arn:aws:iam::111122223333:user/someone", False),
        ("111122223333", False),
    ],
)
def test_the_sweeper_role_parameter_takes_a_role_arn_or_nothing(
    forwarder: dict[str, Any], value: str, valid: bool
) -> None:
    pattern = forwarder["Parameters"]["PushdeploySweeperRoleArn"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is valid


def test_only_the_forwarders_rules_may_write_to_its_dead_letter_queue(forwarder: dict[str, Any]) -> None:
    props = forwarder["Resources"]["DeadLetterQueuePolicy"]["Properties"]
    assert props["Queues"] == [{"Ref": "DeadLetterQueue"}]
    (statement,) = props["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    sources = {s["Fn::Sub"] for s in statement["Condition"]["ArnEquals"]["aws:SourceArn"]}
    names = {rule["Properties"]["Name"]["Fn::Sub"] for rule in _rules(forwarder).values()}
    prefix = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
    assert sources == {prefix + name for name in names}


def test_forwarder_outputs(forwarder: dict[str, Any]) -> None:
    outputs = forwarder["Outputs"]
    assert set(outputs) == {
        "PushdeployEventBusArn",
        "ForwarderRoleArn",
        "RuleArns",
        "DeadLetterQueueUrl",
        "SweepRoleArn",
    }
    assert outputs["SweepRoleArn"]["Condition"] == "CreateSweepRole"
    for name, output in outputs.items():
        assert output.get("Description"), name


# --------------------------------------------------------------------------------------------------------
# template.yaml: SourceAccountIds and the bus policy


def test_source_account_ids_parameter(main: dict[str, Any]) -> None:
    parameter = main["Parameters"]["SourceAccountIds"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert parameter["Default"] == ""
    assert "12-digit" in parameter["Description"]
    # CloudFormation applies AllowedPattern to each item of a CommaDelimitedList.
    pattern = parameter["AllowedPattern"]
    for item, valid in [
        (ACCOUNT_B, True),
        ("", True),
        ("44445555666", False),
        ("4444555566667", False),
        ("*", False),
        ("arn:aws:iam::444455556666:root", False),
    ]:
        assert bool(re.fullmatch(pattern, item)) is valid, item


def test_with_no_source_account_there_is_no_bus_policy(main: dict[str, Any]) -> None:
    policies = {k: v for k, v in main["Resources"].items() if v["Type"] == "AWS::Events::EventBusPolicy"}
    assert set(policies) == {"SourceAccountsBusPolicy"}
    assert policies["SourceAccountsBusPolicy"]["Condition"] == "HasSourceAccounts"
    resolver = _main_resolver(main, None)
    assert resolver.condition("HasSourceAccounts") is False
    assert _main_resolver(main, "").condition("HasSourceAccounts") is False


def _rendered_policy(main: dict[str, Any], source_accounts: str) -> dict[str, Any]:
    resolver = _main_resolver(main, source_accounts)
    assert resolver.condition("HasSourceAccounts") is True
    properties: dict[str, Any] = resolver.resolve(main["Resources"]["SourceAccountsBusPolicy"]["Properties"])
    return properties


def test_with_two_source_accounts_the_policy_names_exactly_them(main: dict[str, Any]) -> None:
    properties = _rendered_policy(main, f"{ACCOUNT_B},{ACCOUNT_C}")
    assert properties["EventBusName"] == "default"
    assert properties["StatementId"] == "pushdeploy-source-accounts"
    statement = properties["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"AWS": [ACCOUNT_B, ACCOUNT_C]}
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == "arn:aws:events:us-east-1:111122223333:event-bus/default"
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {
            "events:source": ["aws.ecr", "aws.codecommit"],
            "events:detail-type": [
                "ECR Image Action",
                "ECR Replication Action",
                "CodeCommit Repository State Change",
            ],
        }
    }
    assert "NotPrincipal" not in statement
    assert "NotAction" not in statement


def test_with_one_source_account_the_policy_names_only_it(main: dict[str, Any]) -> None:
    statement = _rendered_policy(main, ACCOUNT_B)["Statement"]
    assert statement["Principal"] == {"AWS": [ACCOUNT_B]}


def test_the_policy_admits_only_what_the_forwarder_sends(
    main: dict[str, Any], forwarder: dict[str, Any]
) -> None:
    condition = _rendered_policy(main, ACCOUNT_B)["Statement"]["Condition"]["ForAllValues:StringEquals"]
    patterns = [rule["Properties"]["EventPattern"] for rule in _rules(forwarder).values()]
    assert set(condition["events:source"]) == {s for p in patterns for s in p["source"]}
    assert set(condition["events:detail-type"]) == {d for p in patterns for d in p["detail-type"]}
