"""The local cloud's CloudFormation resolver: intrinsic functions, and each function's environment and the
stack's outputs evaluated from the real template.yaml (so local and AWS cannot drift apart)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pushdeploy.local.intrinsics import Physical, ResolveError, Resolver, StackIdentity
from pushdeploy.local.provision import Clients, LocalStack, provision
from pushdeploy.local.stack import evaluate_outputs, function_environment, function_specs
from pushdeploy.local.template import load_template, resources_of_type
from tests.conftest import ROOT

TEMPLATE = ROOT / "template.yaml"
IDENTITY = StackIdentity("pushdeploy", "us-east-1", "111122223333")
FUNCTIONS = sorted(resources_of_type(load_template(TEMPLATE), "AWS::Serverless::Function"))


def fake_resources(template: dict[str, Any]) -> dict[str, Physical]:
    """Every resource of the template with recognisable values, and SAM's generated Function URLs and
    execution roles."""
    resources = {}
    for logical_id, resource in template["Resources"].items():
        attributes = {"Arn": f"arn:{logical_id}", "QueueName": f"name:{logical_id}"}
        resources[logical_id] = Physical(f"ref:{logical_id}", attributes)
        if resource["Type"] == "AWS::Serverless::Function" and "Role" not in resource.get("Properties", {}):
            resources[f"{logical_id}Role"] = Physical(
                f"ref:{logical_id}Role", {"Arn": f"arn:{logical_id}Role"}
            )
        if "FunctionUrlConfig" in resource.get("Properties", {}):
            resources[f"{logical_id}Url"] = Physical(
                f"arn:{logical_id}", {"FunctionUrl": f"https://{logical_id}/"}
            )
    return resources


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture
def resolver(template: dict[str, Any]) -> Resolver:
    return Resolver(template, IDENTITY, fake_resources(template))


def mini(parameters: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    return {"Parameters": parameters or {}, "Resources": {}, **sections}


# ----- intrinsic functions -----


def test_ref_reads_parameters_pseudo_parameters_and_resources() -> None:
    template = mini({"Env": {"Type": "String", "Default": "dev"}, "Size": {"Type": "Number", "Default": 5}})
    resolver = Resolver(template, IDENTITY, {"Queue": Physical("https://queue")})
    assert resolver.resolve({"Ref": "Env"}) == "dev"
    assert resolver.resolve({"Ref": "Size"}) == "5"  # CloudFormation passes numbers as strings
    assert resolver.resolve({"Ref": "AWS::StackName"}) == "pushdeploy"
    assert resolver.resolve({"Ref": "AWS::AccountId"}) == "111122223333"
    assert resolver.resolve({"Ref": "AWS::Partition"}) == "aws"
    assert resolver.resolve({"Ref": "Queue"}) == "https://queue"


def test_parameter_overrides_win_and_unknown_ones_are_refused() -> None:
    template = mini({"Env": {"Type": "String", "Default": "dev"}})
    assert Resolver(template, IDENTITY, {}, {"Env": "prod"}).resolve({"Ref": "Env"}) == "prod"
    with pytest.raises(ResolveError, match="unknown template parameter: Nope"):
        Resolver(template, IDENTITY, {}, {"Nope": "x"})


def test_partition_follows_the_region() -> None:
    china = Resolver(mini(), StackIdentity("s", "cn-north-1", "111122223333"), {})
    assert china.resolve({"Fn::Sub": "${AWS::Partition} ${AWS::URLSuffix}"}) == "aws-cn amazonaws.com.cn"


def test_sub_with_attributes_variables_and_literals() -> None:
    resolver = Resolver(mini(), IDENTITY, {"Table": Physical("t", {"Arn": "arn:table"})})
    assert resolver.resolve({"Fn::Sub": "${Table.Arn}/index/*"}) == "arn:table/index/*"
    assert (
        resolver.resolve({"Fn::Sub": ["${Name}-${AWS::Region}", {"Name": {"Ref": "Table"}}]}) == "t-us-east-1"
    )
    assert resolver.resolve({"Fn::Sub": "${!Literal} ${Table}"}) == "${Literal} t"


def test_get_att_join_select_split_and_base64() -> None:
    resolver = Resolver(mini(), IDENTITY, {"Queue": Physical("url", {"Arn": "arn:q"})})
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:q"
    assert resolver.resolve({"Fn::Join": ["/", ["a", {"Ref": "Queue"}]]}) == "a/url"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert resolver.resolve({"Fn::Base64": "hi"}) == "aGk="


def test_conditions_and_if() -> None:
    template = mini(
        {"Arns": {"Type": "CommaDelimitedList", "Default": ""}},
        Conditions={
            "NoArns": {"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Arns"}]}, ""]},
            "SomeArns": {"Fn::Not": [{"Condition": "NoArns"}]},
        },
    )
    value = {"Fn::If": ["NoArns", "all", {"Ref": "Arns"}]}
    assert Resolver(template, IDENTITY, {}).resolve(value) == "all"
    some = Resolver(template, IDENTITY, {}, {"Arns": "a,b"})
    assert some.resolve(value) == ["a", "b"]
    assert some.condition("SomeArns") is True


def test_find_in_map_reads_number_keys_as_strings() -> None:
    template = mini(
        {"Minutes": {"Type": "Number", "Default": 60}}, Mappings={"Seconds": {"60": {"Value": 3600}}}
    )
    resolved = Resolver(template, IDENTITY, {}).resolve(
        {"Fn::FindInMap": ["Seconds", {"Ref": "Minutes"}, "Value"]}
    )
    assert resolved == 3600


def test_no_value_removes_the_key_or_item() -> None:
    resolver = Resolver(mini(), IDENTITY, {})
    value = {"Keep": 1, "Drop": {"Ref": "AWS::NoValue"}, "List": ["a", {"Ref": "AWS::NoValue"}]}
    assert resolver.resolve(value) == {"Keep": 1, "List": ["a"]}


def test_unknown_names_and_unemulated_resources_fail_loudly() -> None:
    template = mini(Resources={"Topic": {"Type": "AWS::SNS::Topic"}})
    resolver = Resolver(template, IDENTITY, {"Queue": Physical("url")})
    with pytest.raises(ResolveError, match="unknown name Nope"):
        resolver.resolve({"Ref": "Nope"})
    with pytest.raises(ResolveError, match="does not emulate AWS::SNS::Topic Topic"):
        resolver.resolve({"Fn::Sub": "${Topic}"})
    with pytest.raises(ResolveError, match="no attribute Missing of Queue"):
        resolver.resolve({"Fn::GetAtt": ["Queue", "Missing"]})


# ----- the real template -----


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_gets_the_globals_and_its_own_variables(
    template: dict[str, Any], resolver: Resolver, function: str
) -> None:
    environment = function_environment(template, function, resolver)
    globals_ = template["Globals"]["Function"]["Environment"]["Variables"]
    own = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    assert set(environment) == set(globals_) | set(own)
    assert environment["LEDGER_TABLE"] == "ref:LedgerTable"
    assert environment["RULES_TABLE"] == "ref:RulesTable"
    assert environment["STUCK_AFTER_SECONDS"] == "3600"  # FindInMap of the 60-minute default
    assert all(isinstance(value, str) for value in environment.values())


def test_each_function_has_its_own_dead_letter_queue(template: dict[str, Any], resolver: Resolver) -> None:
    queues = {
        function: function_environment(template, function, resolver).get("DEAD_LETTER_QUEUE_URL")
        for function in FUNCTIONS
    }
    asynchronous = {name: url for name, url in queues.items() if url is not None}
    assert len(asynchronous) >= 4
    assert len(set(asynchronous.values())) == len(asynchronous)
    assert queues["ImagePushedFunction"] == "ref:ImagePushedDeadLetterQueue"


def test_parameters_flow_into_the_environment(template: dict[str, Any]) -> None:
    resolver = Resolver(template, IDENTITY, fake_resources(template), {"StuckAfterMinutes": "5"})
    environment = function_environment(template, "ReconcilerFunction", resolver)
    assert environment["STUCK_AFTER_SECONDS"] == "300"


def test_outputs_are_all_evaluated(template: dict[str, Any], resolver: Resolver) -> None:
    outputs = evaluate_outputs(template, resolver)
    assert set(outputs) == set(template["Outputs"])
    assert outputs["LedgerTableName"] == "ref:LedgerTable"
    assert outputs["EventBusArn"] == "arn:aws:events:us-east-1:111122223333:event-bus/default"
    if "WebhookUrl" in outputs:
        assert outputs["WebhookUrl"] == "https://WebhookFunction/"


def test_function_specs_follow_the_template(template: dict[str, Any], resolver: Resolver) -> None:
    specs = {spec.logical_id: spec for spec in function_specs(template, ROOT, resolver)}
    assert sorted(specs) == FUNCTIONS
    image = specs["ImagePushedFunction"]
    assert image.function_name == "pushdeploy-image-pushed"
    assert image.code_dir == ROOT / "functions" / "image_pushed"
    assert image.handler == "app.handler"
    assert image.timeout == 30  # from Globals
    assert image.max_retries == 2
    assert image.on_failure_arn == "arn:ImagePushedDeadLetterQueue"
    assert [rule.rule_name for rule in image.rules] == [
        "pushdeploy-ecr-image-push",
        "pushdeploy-ecr-replication",
        "pushdeploy-ecr-image-scan",
        "pushdeploy-inspector-scan",
    ]
    assert image.rules[0].pattern["source"] == ["aws.ecr"]
    reconciler = specs["ReconcilerFunction"]
    assert reconciler.timeout == 55
    assert reconciler.max_event_age == 600
    assert [s.rule_name for s in reconciler.schedules] == ["pushdeploy-reconcile"]
    assert reconciler.schedules[0].expression == "rate(1 minute)"


# ----- provisioning in moto -----


@pytest.fixture
def provisioned(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalStack, Clients]]:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", IDENTITY.account)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(variable, "testing")
    with mock_aws():
        region = IDENTITY.region
        clients = Clients(
            boto3.client("dynamodb", region_name=region),
            boto3.client("sqs", region_name=region),
            boto3.client("secretsmanager", region_name=region),
            boto3.client("events", region_name=region),
        )
        yield provision(TEMPLATE, IDENTITY, clients, function_url="http://127.0.0.1:9000/"), clients


def test_provisioning_creates_the_tables_with_their_keys_and_indexes(
    provisioned: tuple[LocalStack, Clients], template: dict[str, Any]
) -> None:
    stack, clients = provisioned
    ledger = clients.dynamodb.describe_table(TableName=stack.outputs["LedgerTableName"])["Table"]
    declared = template["Resources"]["LedgerTable"]["Properties"]
    assert ledger["KeySchema"] == declared["KeySchema"]
    assert {index["IndexName"] for index in ledger["GlobalSecondaryIndexes"]} == {
        index["IndexName"] for index in declared["GlobalSecondaryIndexes"]
    }
    ttl = clients.dynamodb.describe_time_to_live(TableName=stack.outputs["LedgerTableName"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_provisioning_wires_each_rule_to_its_function_queue(provisioned: tuple[LocalStack, Clients]) -> None:
    stack, clients = provisioned
    for spec in stack.functions:
        queue_arn = (
            clients.sqs.get_queue_attributes(
                QueueUrl=stack.event_queues[spec.logical_id], AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            if spec.rules
            else None
        )
        for rule in spec.rules:
            described = clients.events.describe_rule(Name=rule.rule_name, EventBusName=rule.bus_name)
            assert json.loads(described["EventPattern"]) == rule.pattern
            (target,) = clients.events.list_targets_by_rule(Rule=rule.rule_name, EventBusName=rule.bus_name)[
                "Targets"
            ]
            assert target["Arn"] == queue_arn
            assert target["DeadLetterConfig"]["Arn"] == rule.dead_letter_arn


def test_provisioning_generates_the_secrets_and_evaluates_the_outputs(
    provisioned: tuple[LocalStack, Clients], template: dict[str, Any]
) -> None:
    stack, clients = provisioned
    assert set(stack.outputs) == set(template["Outputs"])
    secrets = resources_of_type(template, "AWS::SecretsManager::Secret")
    for logical_id, resource in secrets.items():
        value = clients.secretsmanager.get_secret_value(SecretId=stack.resources[logical_id].ref)[
            "SecretString"
        ]
        length = resource["Properties"].get("GenerateSecretString", {}).get("PasswordLength", 32)
        assert len(value) == length
    url_outputs = [
        name for name, output in template["Outputs"].items() if "FunctionUrl" in json.dumps(output)
    ]
    for name in url_outputs:
        assert stack.outputs[name] == "http://127.0.0.1:9000/"
    dead_letter = stack.outputs["ImagePushedDeadLetterQueueUrl"]
    assert stack.function("ImagePushedFunction").environment["DEAD_LETTER_QUEUE_URL"] == dead_letter
    assert stack.on_failure_queue(stack.function("ImagePushedFunction")) == dead_letter


def test_the_template_path_is_relative_to_the_functions_code(tmp_path: Path) -> None:
    copied = tmp_path / "template.yaml"
    copied.write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    template = load_template(copied)
    specs = function_specs(template, tmp_path, Resolver(template, IDENTITY, fake_resources(template)))
    assert all(spec.code_dir.is_relative_to(tmp_path) for spec in specs)


def test_provisioning_names_the_execution_roles_sam_generates(
    provisioned: tuple[LocalStack, Clients],
) -> None:
    stack, _ = provisioned
    role = stack.resources["SweeperFunctionRole"]
    assert role.ref == "pushdeploy-SweeperFunctionRole"
    assert stack.outputs["SweeperRoleArn"] == "arn:aws:iam::111122223333:role/pushdeploy-SweeperFunctionRole"


def test_no_bus_policy_without_source_accounts(provisioned: tuple[LocalStack, Clients]) -> None:
    _, clients = provisioned
    assert "Policy" not in clients.events.describe_event_bus(Name="default")
