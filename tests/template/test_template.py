"""template.yaml: cfn-lint with the serverless rules, what users rely on in it, sam validate, sam build."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from moto.events.models import EventPattern

from tests.template.tools import cfn_lint, run, sam_cli, sam_validate_lint

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER_MAKEFILE = ROOT / "layers" / "pushdeploy" / "Makefile"

RULE_ARN_PREFIX = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
EVENT_BUS_ARN = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"

FUNCTIONS = {
    "ImagePushedFunction": "image_pushed",
    "CommitPushedFunction": "commit_pushed",
    "OperationChangedFunction": "operation_changed",
    "ReconcilerFunction": "reconciler",
    "SweeperFunction": "sweeper",
    "WebhookFunction": "webhook",
}
# Invoked asynchronously (EventBridge rules, schedules): retries, on-failure destination, dead-letter queue.
# The webhook is invoked synchronously by its URL: its sender sees a failure and delivers again.
ASYNC_FUNCTIONS = [name for name in FUNCTIONS if name != "WebhookFunction"]
EVENT_FUNCTIONS = ["ImagePushedFunction", "CommitPushedFunction", "OperationChangedFunction"]

# The event patterns the functions are invoked with (the local cloud routes events with them too).
EXPECTED_PATTERNS = {
    "ImagePushedFunction": [
        {
            "source": ["aws.ecr"],
            "detail-type": ["ECR Image Action"],
            "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]},
        },
        {"source": ["aws.ecr"], "detail-type": ["ECR Replication Action"], "detail": {"result": ["SUCCESS"]}},
        # Scans, for the scan gate: ECR's basic scanning, and Inspector's enhanced scanning of an image.
        {
            "source": ["aws.ecr"],
            "detail-type": ["ECR Image Scan"],
            "detail": {"scan-status": ["COMPLETE", "FAILED"]},
        },
        {
            "source": ["aws.inspector2"],
            "detail-type": ["Inspector2 Scan"],
            "detail": {"scan-status": ["INITIAL_SCAN_COMPLETE"], "image-digest": [{"exists": True}]},
        },
    ],
    "CommitPushedFunction": [
        {
            "source": ["aws.codecommit"],
            "detail-type": ["CodeCommit Repository State Change"],
            "detail": {"event": ["referenceCreated", "referenceUpdated"], "referenceType": ["branch"]},
        },
        {"source": ["pushdeploy.webhook"], "detail-type": ["Change Pushed"]},
    ],
    "OperationChangedFunction": [
        {"source": ["aws.apprunner"], "detail-type": ["AppRunner Service Operation Status Change"]},
    ],
    "ReconcilerFunction": [],
    "SweeperFunction": [],
}

GLOBAL_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "LEDGER_TABLE",
    "RULES_TABLE",
    "EVENT_BUS_NAME",
    "ENVIRONMENT_NAME",
    "STUCK_AFTER_SECONDS",
}

# The only cfn-lint suppressions the template may carry (the template's header says why).
ALLOWED_SUPPRESSIONS = {"AWS::SQS::Queue": {"ES6000"}, "AWS::Serverless::Function": {"WS1004"}}


# --------------------------------------------------------------------------------------------------------
# Helpers


def _plain(value: Any) -> Any:
    """cfn-lint's nodes as plain dicts, lists and strings (so that == works as expected)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ref(value: Any) -> str:
    assert isinstance(value, dict), value
    assert set(value) == {"Ref"}, value
    return str(value["Ref"])


def _getatt(value: Any) -> tuple[str, str]:
    assert isinstance(value, dict), value
    assert set(value) == {"Fn::GetAtt"}, value
    target = value["Fn::GetAtt"]
    if isinstance(target, str):
        logical_id, attribute = target.split(".", 1)
        return logical_id, attribute
    return str(target[0]), str(target[1])


def _sub(value: Any) -> str:
    assert isinstance(value, dict), value
    assert set(value) == {"Fn::Sub"}, value
    assert isinstance(value["Fn::Sub"], str), value
    return str(value["Fn::Sub"])


def _leaves(value: Any) -> Iterator[Any]:
    """Every value a Resource can take: both branches of an Fn::If, every list item."""
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict) and "Fn::If" in value:
        _, if_true, if_false = value["Fn::If"]
        yield from _leaves(if_true)
        yield from _leaves(if_false)
    else:
        yield value


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in function["Properties"].get("Policies", []):
        assert isinstance(policy, dict), f"only inline policies expected: {policy}"
        assert "Statement" in policy, f"only inline policies expected: {policy}"
        for statement in _as_list(policy["Statement"]):
            # A statement only present under a condition: `!If [Cond, statement, !Ref AWS::NoValue]`.
            present = statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
            statements.extend(s for s in present if s != {"Ref": "AWS::NoValue"})
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in _as_list(statement["Action"])]


# --------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = _plain(cfn_yaml.load(str(TEMPLATE)))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def functions(resources: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}


def _dlq_of(resources: dict[str, Any], function: dict[str, Any]) -> str:
    queue = _ref(function["Properties"]["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"])
    assert resources[queue]["Type"] == "AWS::SQS::Queue"
    return queue


def _rule_names(function: dict[str, Any]) -> list[str]:
    """The !Sub names of a function's EventBridge rules (schedules included)."""
    names = []
    for event in function["Properties"].get("Events", {}).values():
        props = event["Properties"]
        if event["Type"] == "EventBridgeRule":
            names.append(_sub(props["RuleName"]))
        elif event["Type"] == "Schedule":
            names.append(_sub(props["Name"]))
    return names


# --------------------------------------------------------------------------------------------------------
# cfn-lint


def test_cfn_lint_with_serverless_rules_finds_nothing() -> None:
    result = cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cfn_lint_suppressions_are_only_the_documented_ones(resources: dict[str, Any]) -> None:
    for logical_id, resource in resources.items():
        config = resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {})
        ignored = set(config.get("ignore_checks", []))
        assert set(config) <= {"ignore_checks"}, logical_id
        assert ignored <= ALLOWED_SUPPRESSIONS.get(resource["Type"], set()), logical_id


def test_no_template_wide_cfn_lint_suppression(template: dict[str, Any]) -> None:
    assert "cfn-lint" not in template.get("Metadata", {})


# --------------------------------------------------------------------------------------------------------
# Functions: code, layer, settings


def test_the_functions_exist(functions: dict[str, Any]) -> None:
    assert set(functions) == set(FUNCTIONS)


def test_globals(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["MemorySize"] >= 128
    assert 1 <= glob["Timeout"] <= 900
    assert glob["Tracing"] == "Active"
    assert glob["LoggingConfig"]["LogFormat"] == "JSON"
    variables = glob["Environment"]["Variables"]
    assert set(variables) == GLOBAL_ENV
    assert variables["POWERTOOLS_SERVICE_NAME"] == "pushdeploy"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "pushdeploy"
    assert variables["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert variables["EVENT_BUS_NAME"] == "default"
    assert _ref(variables["LEDGER_TABLE"]) == "LedgerTable"
    assert _ref(variables["RULES_TABLE"]) == "RulesTable"
    assert _ref(variables["ENVIRONMENT_NAME"]) == "EnvironmentName"


def test_stuck_after_seconds_is_minutes_times_sixty(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    mapping_name, key, attribute = variables["STUCK_AFTER_SECONDS"]["Fn::FindInMap"]
    assert _ref(key) == "StuckAfterMinutes"
    mapping = template["Mappings"][mapping_name]
    allowed = template["Parameters"]["StuckAfterMinutes"]["AllowedValues"]
    assert {str(v) for v in allowed} == set(mapping)
    for minutes, values in mapping.items():
        assert values[attribute] == int(minutes) * 60
    assert str(template["Parameters"]["StuckAfterMinutes"]["Default"]) in mapping


@pytest.mark.parametrize(("logical_id", "folder"), FUNCTIONS.items())
def test_function_code_and_build(functions: dict[str, Any], logical_id: str, folder: str) -> None:
    function = functions[logical_id]
    props = function["Properties"]
    assert props["CodeUri"].rstrip("/") == f"functions/{folder}"
    assert props["Handler"] == "app.handler"
    assert [_ref(layer) for layer in props["Layers"]] == ["SharedLayer"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    makefile = (ROOT / "functions" / folder / "Makefile").read_text()
    assert f"build-{logical_id}:" in makefile


def test_shared_layer(resources: dict[str, Any]) -> None:
    layer = resources["SharedLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/pushdeploy"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "build-SharedLayer:" in LAYER_MAKEFILE.read_text()


@pytest.mark.parametrize("logical_id", ASYNC_FUNCTIONS)
def test_function_has_a_dead_letter_queue_env_var(
    resources: dict[str, Any], functions: dict[str, Any], logical_id: str
) -> None:
    queue = resources[_dlq_of(resources, functions[logical_id])]
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "FifoQueue" not in queue["Properties"]  # EventBridge dead-letter queues must be standard queues


def test_each_function_has_its_own_dead_letter_queue(
    resources: dict[str, Any], functions: dict[str, Any]
) -> None:
    queues = [_dlq_of(resources, functions[name]) for name in ASYNC_FUNCTIONS]
    assert len(set(queues)) == len(queues)


@pytest.mark.parametrize("logical_id", ASYNC_FUNCTIONS)
def test_function_async_failures_go_to_its_dead_letter_queue(
    resources: dict[str, Any], functions: dict[str, Any], logical_id: str
) -> None:
    function = functions[logical_id]
    config = function["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert _getatt(on_failure["Destination"]) == (_dlq_of(resources, function), "Arn")


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_logs_to_its_log_group_with_retention(
    resources: dict[str, Any], functions: dict[str, Any], logical_id: str
) -> None:
    props = functions[logical_id]["Properties"]
    log_group = resources[_ref(props["LoggingConfig"]["LogGroup"])]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert _ref(log_group["Properties"]["RetentionInDays"]) == "LogRetentionDays"
    assert _sub(log_group["Properties"]["LogGroupName"]) == "/aws/lambda/" + _sub(props["FunctionName"])


def test_function_and_rule_names_follow_the_stack(functions: dict[str, Any]) -> None:
    for function in functions.values():
        assert _sub(function["Properties"]["FunctionName"]).startswith("${AWS::StackName}-")
        for name in _rule_names(function):
            assert name.startswith("${AWS::StackName}-")


def test_log_retention_parameter(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["LogRetentionDays"]
    assert parameter["Default"] == 30
    assert 30 in parameter["AllowedValues"]
    assert 90 in parameter["AllowedValues"]


# --------------------------------------------------------------------------------------------------------
# Events


@pytest.mark.parametrize("logical_id", EVENT_FUNCTIONS)
def test_event_patterns(functions: dict[str, Any], logical_id: str) -> None:
    events = functions[logical_id]["Properties"]["Events"].values()
    patterns = [e["Properties"]["Pattern"] for e in events if e["Type"] == "EventBridgeRule"]
    assert sorted(map(repr, patterns)) == sorted(map(repr, EXPECTED_PATTERNS[logical_id]))
    for event in events:
        pattern = event["Properties"].get("Pattern", {})
        if pattern.get("source") == ["pushdeploy.webhook"]:
            # Forwarded webhook changes are heard only on the internal bus, where only the webhook puts.
            assert event["Properties"]["EventBusName"] == {"Ref": "InternalEventBus"}
        else:
            assert "EventBusName" not in event["Properties"]  # AWS's own events: the default bus


@pytest.mark.parametrize(
    ("sample", "heard"),
    [
        ("ecr-image-scan.json", True),
        ("inspector2-scan.json", True),
        ("ecr-image-push.json", True),
        ("ecr-image-delete.json", False),
    ],
)
def test_image_pushed_hears_pushes_and_scans(functions: dict[str, Any], sample: str, heard: bool) -> None:
    event = json.loads((ROOT / "events" / sample).read_text())
    assert _heard_by_image_pushed(functions, event) == heard


def test_image_pushed_hears_no_scan_that_is_not_of_an_image(functions: dict[str, Any]) -> None:
    """Inspector sends `Inspector2 Scan` for EC2 instances and Lambda functions as well (AWS's samples
    carry `instance-id`, no image): the function is not invoked for those, nor for a scan still running."""
    scan = json.loads((ROOT / "events" / "inspector2-scan.json").read_text())
    instance = {
        **scan,
        "detail": {"scan-status": "INITIAL_SCAN_COMPLETE", "instance-id": "i-087d63509b8c9709"},
    }
    assert not _heard_by_image_pushed(functions, instance)
    running = json.loads((ROOT / "events" / "ecr-image-scan.json").read_text())
    running["detail"]["scan-status"] = "IN_PROGRESS"
    assert not _heard_by_image_pushed(functions, running)


def _heard_by_image_pushed(functions: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's pattern matching, as the local cloud's EventBridge (moto) does it."""
    events = functions["ImagePushedFunction"]["Properties"]["Events"].values()
    patterns = [json.dumps(e["Properties"]["Pattern"]) for e in events]
    return any(EventPattern.load(pattern).matches_event(event) for pattern in patterns)  # type: ignore[arg-type]


def test_only_the_webhook_role_may_put_on_the_internal_bus(resources: dict[str, Any]) -> None:
    bus = resources["InternalEventBus"]["Properties"]
    (statement,) = bus["Policy"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["WebhookFunctionRole", "Arn"]}}
    }


@pytest.mark.parametrize("logical_id", ASYNC_FUNCTIONS)
def test_every_rule_has_retry_policy_and_dead_letter_queue(
    resources: dict[str, Any], functions: dict[str, Any], logical_id: str
) -> None:
    function = functions[logical_id]
    queue = _dlq_of(resources, function)
    events = function["Properties"].get("Events", {})
    assert events
    for name, event in events.items():
        assert event["Type"] in {"EventBridgeRule", "Schedule"}, name
        props = event["Properties"]
        retry = props["RetryPolicy"]
        assert retry["MaximumEventAgeInSeconds"] >= 60, name
        assert retry["MaximumRetryAttempts"] >= 0, name
        assert _getatt(props["DeadLetterConfig"]["Arn"]) == (queue, "Arn"), name


@pytest.mark.parametrize("logical_id", ASYNC_FUNCTIONS)
def test_dead_letter_queue_policy_admits_only_the_functions_rules(
    resources: dict[str, Any], functions: dict[str, Any], logical_id: str
) -> None:
    function = functions[logical_id]
    queue = _dlq_of(resources, function)
    policies = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and [_ref(q) for q in r["Properties"]["Queues"]] == [queue]
    ]
    assert len(policies) == 1
    (statement,) = _as_list(policies[0]["Properties"]["PolicyDocument"]["Statement"])
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert _actions(statement) == ["sqs:SendMessage"]
    assert _getatt(statement["Resource"]) == (queue, "Arn")
    source_arns = sorted(_sub(a) for a in _as_list(statement["Condition"]["ArnEquals"]["aws:SourceArn"]))
    assert source_arns == sorted(RULE_ARN_PREFIX + name for name in _rule_names(function))


def test_sweeper_schedule_and_reach(template: dict[str, Any], functions: dict[str, Any]) -> None:
    """Every SweepIntervalMinutes (default 5); it reads this account's ECR repositories and CodeCommit
    branches, and other accounts' only through the roles named in SweepRoleArns."""
    props = functions["SweeperFunction"]["Properties"]
    (event,) = props["Events"].values()
    condition, singular, plural = event["Properties"]["Schedule"]["Fn::If"]
    assert singular == "rate(1 minute)"
    assert _sub(plural) == "rate(${SweepIntervalMinutes} minutes)"
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "SweepIntervalMinutes"}, "1"]}
    assert template["Parameters"]["SweepIntervalMinutes"]["Default"] == 5
    statements = props["Policies"][0]["Statement"]
    by_sid = {s["Sid"]: s for s in _statements(functions["SweeperFunction"])}
    assert (
        _sub(by_sid["EcrImages"]["Resource"]) == "arn:${AWS::Partition}:ecr:*:${AWS::AccountId}:repository/*"
    )
    assert (
        _sub(by_sid["CodeCommitBranches"]["Resource"])
        == "arn:${AWS::Partition}:codecommit:*:${AWS::AccountId}:*"
    )
    (optional,) = [s for s in statements if "Fn::If" in s]
    condition, assume, absent = optional["Fn::If"]
    assert condition == "HasSweepRoles"
    assert (assume["Action"], _ref(assume["Resource"])) == ("sts:AssumeRole", "SweepRoleArns")
    assert absent == {"Ref": "AWS::NoValue"}
    assert props["Environment"]["Variables"]["SWEEP_ROLE_ARNS"] == {
        "Fn::Join": [",", {"Ref": "SweepRoleArns"}]
    }


def test_reconciler_schedule(template: dict[str, Any], functions: dict[str, Any]) -> None:
    props = functions["ReconcilerFunction"]["Properties"]
    assert "ReservedConcurrentExecutions" not in props  # safe to overlap; reserving can fail to deploy
    (event,) = props["Events"].values()
    assert event["Type"] in {"Schedule", "ScheduleV2"}
    schedule = event["Properties"].get("Schedule") or event["Properties"]["ScheduleExpression"]
    condition, singular, plural = schedule["Fn::If"]
    assert singular == "rate(1 minute)"
    assert _sub(plural) == "rate(${ReconcileIntervalMinutes} minutes)"
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "ReconcileIntervalMinutes"}, "1"]}
    assert template["Parameters"]["ReconcileIntervalMinutes"]["Default"] == 1
    assert props["Timeout"] < 60  # a run ends before the next one-minute tick


@pytest.mark.parametrize("logical_id", ASYNC_FUNCTIONS)
def test_alarm_on_each_dead_letter_queue(
    resources: dict[str, Any], functions: dict[str, Any], logical_id: str
) -> None:
    queue = _dlq_of(resources, functions[logical_id])
    alarms = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Namespace") == "AWS/SQS"
        and any(_getatt(d["Value"]) == (queue, "QueueName") for d in r["Properties"].get("Dimensions", []))
    ]
    assert len(alarms) == 1
    (alarm,) = alarms
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["Dimensions"][0]["Name"] == "QueueName"


# --------------------------------------------------------------------------------------------------------
# Tables


@pytest.mark.parametrize("logical_id", ["LedgerTable", "RulesTable"])
def test_durable_tables(resources: dict[str, Any], logical_id: str) -> None:
    table = resources[logical_id]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True


def _keys(key_schema: list[dict[str, str]]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in key_schema}


def _attribute_types(props: dict[str, Any]) -> dict[str, str]:
    return {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}


def test_ledger_table_layout(resources: dict[str, Any]) -> None:
    props = resources["LedgerTable"]["Properties"]
    assert _keys(props["KeySchema"]) == {"HASH": "pk", "RANGE": "sk"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert {name: _keys(i["KeySchema"]) for name, i in indexes.items()} == {
        "ByService": {"HASH": "service", "RANGE": "created_key"},
        "InFlight": {"HASH": "inflight", "RANGE": "created_key"},
        "ByArtifact": {"HASH": "artifact", "RANGE": "created_key"},
        "ByStatus": {"HASH": "status", "RANGE": "created_key"},
        # `changes list` and `changes show DIGEST|COMMIT`: change records, newest first.
        "Changes": {"HASH": "listing", "RANGE": "listed_key"},
        "ChangesByArtifact": {"HASH": "change_artifact", "RANGE": "listed_key"},
    }
    assert all(i["Projection"]["ProjectionType"] == "ALL" for i in indexes.values())
    keys = ("pk", "sk", "service", "inflight", "artifact", "created_key", "status")
    change_keys = ("listing", "listed_key", "change_artifact")
    assert _attribute_types(props) == {name: "S" for name in (*keys, *change_keys)}


def test_rules_table_layout(resources: dict[str, Any]) -> None:
    props = resources["RulesTable"]["Properties"]
    assert _keys(props["KeySchema"]) == {"HASH": "source_key", "RANGE": "rule_id"}
    assert _attribute_types(props) == {"source_key": "S", "rule_id": "S"}


def test_idempotency_table_layout(resources: dict[str, Any]) -> None:
    props = resources["IdempotencyTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert _keys(props["KeySchema"]) == {"HASH": "id"}
    assert _attribute_types(props) == {"id": "S"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_only_the_webhook_uses_the_idempotency_table(functions: dict[str, Any]) -> None:
    """The push functions keep no idempotency records: a redelivered event is answered from its change's
    record in the ledger. The webhook remembers its deliveries there (its own variable, its own grants)."""
    table = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    for logical_id, function in functions.items():
        granted = {a for s in _statements(function) if table in _as_list(s["Resource"]) for a in _actions(s)}
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if logical_id == "WebhookFunction":
            assert _ref(variables["IDEMPOTENCY_TABLE"]) == "IdempotencyTable"
            assert granted == {f"dynamodb:{a}" for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")}
        else:
            assert "IDEMPOTENCY_TABLE" not in variables, logical_id
            assert granted == set(), logical_id


# --------------------------------------------------------------------------------------------------------
# IAM


def test_no_statement_on_resource_star(functions: dict[str, Any]) -> None:
    for logical_id, function in functions.items():
        for statement in _statements(function):
            for resource in _leaves(statement["Resource"]):
                assert resource != "*", (logical_id, statement.get("Sid"))
            assert not any(a == "*" or a.endswith(":*") for a in _actions(statement)), logical_id


def test_app_runner_statements_are_scoped_to_the_service_arns(functions: dict[str, Any]) -> None:
    for logical_id in ASYNC_FUNCTIONS:
        function = functions[logical_id]
        statements = [
            s for s in _statements(function) if any(a.startswith("apprunner:") for a in _actions(s))
        ]
        assert statements, logical_id
        for statement in statements:
            resource = statement["Resource"]
            condition, all_services, chosen = resource["Fn::If"]
            assert condition == "AllAppRunnerServices"
            assert _sub(all_services) == "arn:${AWS::Partition}:apprunner:*:${AWS::AccountId}:service/*"
            assert _ref(chosen) == "AppRunnerServiceArns"


def test_app_runner_parameters_default_to_this_account(template: dict[str, Any]) -> None:
    for name, condition in [
        ("AppRunnerServiceArns", "AllAppRunnerServices"),
        ("AppRunnerAccessRoleArns", "AllAccessRoles"),
    ]:
        parameter = template["Parameters"][name]
        assert parameter["Type"] == "CommaDelimitedList"
        assert parameter["Default"] == ""
        assert template["Conditions"][condition] == {"Fn::Equals": [{"Fn::Join": ["", {"Ref": name}]}, ""]}


def _app_runner_actions(function: dict[str, Any]) -> set[str]:
    return {a for s in _statements(function) for a in _actions(s) if a.startswith("apprunner:")}


def test_commit_pushed_cannot_pass_roles_or_update_services(functions: dict[str, Any]) -> None:
    function = functions["CommitPushedFunction"]
    actions = {a for s in _statements(function) for a in _actions(s)}
    assert "iam:PassRole" not in actions
    assert _app_runner_actions(function) == {
        "apprunner:StartDeployment",
        "apprunner:DescribeService",
        "apprunner:ListOperations",
    }


def test_scan_gate_readers_read_scans_of_this_accounts_repositories_only(functions: dict[str, Any]) -> None:
    """Each function that may look at a scan gate (a push, a scan event, the reconciler's tick, a sweep)
    reads scans with DescribeImageScanFindings, on this account's repositories only."""
    repositories = {"Fn::Sub": "arn:${AWS::Partition}:ecr:*:${AWS::AccountId}:repository/*"}
    readers = {
        name: _resources_for(function, "ecr:DescribeImageScanFindings")
        for name, function in functions.items()
    }
    assert {name: found for name, found in readers.items() if found} == {
        name: [repositories] for name in ("ImagePushedFunction", "ReconcilerFunction", "SweeperFunction")
    }


@pytest.mark.parametrize(
    "logical_id", ["ImagePushedFunction", "OperationChangedFunction", "ReconcilerFunction", "SweeperFunction"]
)
def test_image_deployers_pass_only_access_roles_to_app_runner(
    functions: dict[str, Any], logical_id: str
) -> None:
    function = functions[logical_id]
    assert _app_runner_actions(function) == {
        "apprunner:StartDeployment",
        "apprunner:UpdateService",
        "apprunner:DescribeService",
        "apprunner:ListOperations",
    }
    (statement,) = [s for s in _statements(function) if "iam:PassRole" in _actions(s)]
    assert _actions(statement) == ["iam:PassRole"]
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": "build.apprunner.amazonaws.com"}
    }
    condition, all_roles, chosen = statement["Resource"]["Fn::If"]
    assert condition == "AllAccessRoles"
    assert _sub(all_roles) == "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"
    assert _ref(chosen) == "AppRunnerAccessRoleArns"


def _resources_for(function: dict[str, Any], action: str) -> list[Any]:
    return [
        r
        for s in _statements(function)
        if action in _actions(s) and s["Effect"] == "Allow"
        for r in _as_list(s["Resource"])
    ]


@pytest.mark.parametrize("logical_id", ASYNC_FUNCTIONS)
def test_data_access(resources: dict[str, Any], functions: dict[str, Any], logical_id: str) -> None:
    """The safety properties of each role; that it grants exactly what its code calls is checked by
    running the code (tests/integration/test_iam_matches_code.py)."""
    function = functions[logical_id]
    ledger = {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    for action in ("GetItem", "PutItem", "UpdateItem"):
        assert ledger in _resources_for(function, f"dynamodb:{action}"), action
    # The audit trail is written once and moved by conditional updates: no function deletes from it.
    assert ledger not in _resources_for(function, "dynamodb:DeleteItem")

    rules = {"Fn::GetAtt": ["RulesTable", "Arn"]}
    for action in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"):
        assert rules not in _resources_for(function, f"dynamodb:{action}"), "the rules table is read-only"

    actions = {a for s in _statements(function) for a in _actions(s)}
    assert "dynamodb:BatchWriteItem" not in actions
    # Only the sweep lists every rule (the sources they watch), on its schedule; no function scans the ledger.
    scanned = _resources_for(function, "dynamodb:Scan")
    assert scanned == ([rules] if logical_id == "SweeperFunction" else [])

    assert _resources_for(function, "events:PutEvents") == [{"Fn::Sub": EVENT_BUS_ARN}]
    (publish,) = [s for s in _statements(function) if "events:PutEvents" in _actions(s)]
    assert publish["Condition"] == {"StringEquals": {"events:source": "pushdeploy"}}
    queue = _dlq_of(resources, function)
    assert _resources_for(function, "sqs:SendMessage") == [{"Fn::GetAtt": [queue, "Arn"]}]


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    expected = {
        "LedgerTableName",
        "RulesTableName",
        "IdempotencyTableName",
        "ImagePushedDeadLetterQueueUrl",
        "CommitPushedDeadLetterQueueUrl",
        "OperationChangedDeadLetterQueueUrl",
        "ReconcilerDeadLetterQueueUrl",
        "EventBusName",
        "EventBusArn",
        "SharedLayerArn",
    }
    assert expected <= set(outputs)
    assert outputs["EventBusName"]["Value"] == "default"
    assert _sub(outputs["EventBusArn"]["Value"]) == EVENT_BUS_ARN
    assert _ref(outputs["SharedLayerArn"]["Value"]) == "SharedLayer"
    for name in ("ImagePushed", "CommitPushed", "OperationChanged", "Reconciler"):
        assert _ref(outputs[f"{name}DeadLetterQueueUrl"]["Value"]) == f"{name}DeadLetterQueue"


# --------------------------------------------------------------------------------------------------------
# The webhook

WEBHOOK_SECRETS = {"GitHubWebhookSecret": "GITHUB", "BitbucketWebhookSecret": "BITBUCKET"}


def test_webhook_url_is_public_because_the_signature_authenticates(functions: dict[str, Any]) -> None:
    props = functions["WebhookFunction"]["Properties"]
    assert props["FunctionUrlConfig"] == {"AuthType": "NONE"}  # no CORS: browsers have no business here
    assert "Events" not in props  # only its URL invokes it


def test_webhook_is_synchronous_and_quick(functions: dict[str, Any]) -> None:
    props = functions["WebhookFunction"]["Properties"]
    assert props["Timeout"] <= 10  # GitHub gives a delivery 10 seconds
    assert props["MemorySize"] >= 256
    # A synchronous invocation is not retried by Lambda: no on-failure destination, no dead-letter queue.
    assert "EventInvokeConfig" not in props
    assert "DEAD_LETTER_QUEUE_URL" not in props["Environment"]["Variables"]


@pytest.mark.parametrize(("logical_id", "provider"), WEBHOOK_SECRETS.items())
def test_webhook_secrets_are_generated(
    resources: dict[str, Any], functions: dict[str, Any], logical_id: str, provider: str
) -> None:
    secret = resources[logical_id]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated == {"PasswordLength": 40, "ExcludePunctuation": True}
    assert "SecretString" not in secret["Properties"]  # never a value written in the template
    variables = functions["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    assert _ref(variables[f"{provider}_WEBHOOK_SECRET_ARN"]) == logical_id


def _grants(function: dict[str, Any]) -> dict[str, list[Any]]:
    """Every allowed action with the resources it is allowed on."""
    grants: dict[str, list[Any]] = {}
    for statement in _statements(function):
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            grants.setdefault(action, []).extend(_as_list(statement["Resource"]))
    return grants


def test_webhook_role_is_least_privilege(functions: dict[str, Any]) -> None:
    function = functions["WebhookFunction"]
    secrets = [{"Ref": name} for name in WEBHOOK_SECRETS]
    ledger, rules = {"Fn::GetAtt": ["LedgerTable", "Arn"]}, {"Fn::GetAtt": ["RulesTable", "Arn"]}
    idempotency = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    grants = {action: sorted(map(repr, found)) for action, found in _grants(function).items()}
    expected = {
        "secretsmanager:GetSecretValue": secrets,
        "secretsmanager:ListSecretVersionIds": secrets,  # when the current secret was made
        "events:PutEvents": [{"Fn::GetAtt": ["InternalEventBus", "Arn"]}],
        "dynamodb:PutItem": [ledger, idempotency],  # the ledger only for "no rule" and "stale" notes
        "dynamodb:Query": [rules],
        "dynamodb:GetItem": [idempotency, rules],  # rules: the version that confirms "no rule watches it"
        "dynamodb:UpdateItem": [idempotency],
        "dynamodb:DeleteItem": [idempotency],
    }
    assert grants == {action: sorted(map(repr, found)) for action, found in expected.items()}
    (publish,) = [s for s in _statements(function) if "events:PutEvents" in _actions(s)]
    # It can only speak as the webhook: never as `pushdeploy` (deployment events) or as AWS.
    assert publish["Condition"] == {"StringEquals": {"events:source": "pushdeploy.webhook"}}
    # In the ledger it may only create change items (its notes), never touch deployments or slots.
    (notes,) = [s for s in _statements(function) if ledger in _as_list(s["Resource"])]
    assert notes["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["CHANGE#*"]}}
    assert function["Properties"]["ReservedConcurrentExecutions"] == {"Ref": "WebhookReservedConcurrency"}


def test_only_the_webhook_reads_the_webhook_secrets(functions: dict[str, Any]) -> None:
    for logical_id, function in functions.items():
        reads = [a for s in _statements(function) for a in _actions(s) if a.startswith("secretsmanager:")]
        assert bool(reads) == (logical_id == "WebhookFunction"), logical_id


def test_webhook_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert _getatt(outputs["WebhookUrl"]["Value"]) == ("WebhookFunctionUrl", "FunctionUrl")
    assert _ref(outputs["GitHubWebhookSecretArn"]["Value"]) == "GitHubWebhookSecret"
    assert _ref(outputs["BitbucketWebhookSecretArn"]["Value"]) == "BitbucketWebhookSecret"


# --------------------------------------------------------------------------------------------------------
# SAM CLI


@pytest.fixture(scope="module")
def sam() -> str:
    return sam_cli()


def test_sam_validate_lint() -> None:
    result = sam_validate_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def build_dir(sam: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `sam build` (no Docker, no cache) of the whole template, shared by the tests below."""
    out = tmp_path_factory.mktemp("sam-build") / "build"
    result = run(
        [sam, "build", "--build-dir", str(out), "--template", "template.yaml", "--no-cached"], timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _size_mb(folder: Path) -> tuple[float, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6, len(files)


def test_sam_build_functions(build_dir: Path) -> None:
    for logical_id in FUNCTIONS:
        assert (build_dir / logical_id / "app.py").is_file(), logical_id
    assert (build_dir / "template.yaml").is_file()


def test_sam_build_layer_contents(build_dir: Path, record_property: Any) -> None:
    python = build_dir / "SharedLayer" / "python"
    assert (python / "pushdeploy" / "__init__.py").is_file()
    for absent in ("boto3", "botocore", "s3transfer", "pushdeploy/cli", "pushdeploy/local", "bin"):
        assert not (python / absent).exists(), absent
    for package in ("aws_lambda_powertools", "pydantic", "pydantic_core", "yaml", "semver"):
        assert (python / package).is_dir(), package
    extensions = list((python / "pydantic_core").glob("_pydantic_core*.so"))
    assert len(extensions) == 1
    assert "cpython-313-aarch64" in extensions[0].name
    assert not list(python.glob("*.dist-info/RECORD"))
    assert list(python.glob("pydantic-*.dist-info/METADATA"))

    size_mb, count = _size_mb(build_dir / "SharedLayer")
    record_property("layer_size_mb", round(size_mb, 1))
    record_property("layer_files", count)
    print(f"\nSharedLayer: {size_mb:.1f} MB unzipped, {count} files")
    assert size_mb < 100  # far below Lambda's 250 MB (function + layers, unzipped)


def _pyc_flags(path: Path) -> int:
    with path.open("rb") as f:
        header = f.read(16)
    return int(struct.unpack("<I", header[4:8])[0])


def test_sam_build_layer_bytecode(build_dir: Path) -> None:
    """Precompiled bytecode, when there is some, is CPython 3.13's and valid inside the zip."""
    python = build_dir / "SharedLayer" / "python"
    pycs = list(python.rglob("*.pyc"))
    for pyc in pycs:
        assert ".cpython-313." in pyc.name, pyc
        assert _pyc_flags(pyc) == 0b01, f"{pyc} is not an unchecked-hash .pyc"
    if pycs:
        own = [p for p in (python / "pushdeploy").rglob("*.py")]
        for source in own:
            assert (source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc").is_file(), source


def test_layer_builds_without_python313(tmp_path: Path) -> None:
    """With no Python 3.13 (PYTHON313 empty) the layer is still built, only without bytecode."""
    if shutil.which("make") is None:
        pytest.skip("make not found")
    artifacts = tmp_path / "layer"
    make = ["make", "--makefile", str(LAYER_MAKEFILE), "build-SharedLayer", f"ARTIFACTS_DIR={artifacts}"]
    result = run([*make, "PYTHON313="], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "without precompiled bytecode" in result.stdout
    python = artifacts / "python"
    assert (python / "pushdeploy" / "__init__.py").is_file()
    assert not list(python.rglob("*.pyc"))
    assert not (python / "pushdeploy" / "cli").exists()
