"""Creates in moto what `template.yaml` declares, the way CloudFormation and SAM would.

- Tables, queues, secrets and event buses: every `AWS::DynamoDB::Table`, `AWS::SQS::Queue`,
  `AWS::SecretsManager::Secret` and `AWS::Events::EventBus` of the template, with its keys, indexes, TTL,
  attributes and a generated secret value (Secrets Manager's own GetRandomPassword, with the template's
  GenerateSecretString).
- Bus policies: every `AWS::Events::EventBusPolicy` whose condition holds, put on its bus (PutPermission),
  so that `DescribeEventBus` shows it as on AWS. moto does not enforce it (nor any IAM): what reads it is
  the local cloud's forwarding of another account's events (`forwarding`).
- For each function: the same EventBridge rules (name, bus, pattern) and schedules, each targeting one
  SQS queue per function that stands for Lambda's asynchronous invocation queue, with the template's
  retry policy and dead-letter queue.
- Names only (nothing to create locally): functions, their generated execution roles, Function URLs,
  log groups, layers and alarms, so that `Ref` and `Fn::GetAtt` on them resolve.

Then each function's environment and the stack's outputs are evaluated from the template over all that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushdeploy.local.intrinsics import Physical, ResolveError, Resolver, StackIdentity
from pushdeploy.local.stack import (
    FunctionSpec,
    RuleSpec,
    ScheduleSpec,
    evaluate_outputs,
    function_physical,
    function_specs,
    physical_name,
)
from pushdeploy.local.template import load_template, resources_of_type, table_specs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# moto delivers an event to an SQS target without the envelope's `account` (its default input template
# lacks it), which pushdeploy's parsers require. `<aws.events.event.json>` is EventBridge's documented
# variable for the whole event, so this transformer delivers exactly what AWS delivers by default.
WHOLE_EVENT = {"InputTemplate": "<aws.events.event.json>"}
# Queue properties of AWS::SQS::Queue that are SQS queue attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)
# The Lambda service needs a little longer than the function's timeout before an event may be retried.
_VISIBILITY_MARGIN = 5


@dataclass(frozen=True)
class Clients:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    secretsmanager: SecretsManagerClient
    events: EventBridgeClient


@dataclass
class LocalStack:
    """What `local up` provisioned, by the template's logical ids."""

    identity: StackIdentity
    resolver: Resolver
    resources: dict[str, Physical]
    functions: list[FunctionSpec] = field(default_factory=list)
    event_queues: dict[str, str] = field(default_factory=dict)  # function logical id -> queue URL
    queue_urls: dict[str, str] = field(default_factory=dict)  # queue ARN -> URL
    outputs: dict[str, str] = field(default_factory=dict)

    def function(self, logical_id: str) -> FunctionSpec:
        return next(spec for spec in self.functions if spec.logical_id == logical_id)

    def on_failure_queue(self, spec: FunctionSpec) -> str | None:
        return None if spec.on_failure_arn is None else self.queue_urls.get(spec.on_failure_arn)


def provision(
    template_path: Path,
    identity: StackIdentity,
    clients: Clients,
    *,
    function_url: str | None = None,
    parameters: Mapping[str, str] | None = None,
) -> LocalStack:
    """Create everything the template declares that the local cloud emulates; see the module docstring."""
    template = load_template(template_path)
    resources: dict[str, Physical] = {}
    # The resolver reads `resources` as it fills up: each phase may reference what earlier ones made.
    stack = LocalStack(identity, Resolver(template, identity, resources, parameters), resources)
    _create_tables(template, stack, clients.dynamodb)
    _create_queues(template, stack, clients.sqs)
    _create_secrets(template, stack, clients.secretsmanager)
    _create_buses(template, stack, clients.events)
    _put_bus_policies(template, stack, clients.events)
    _name_the_rest(template, stack, function_url)
    stack.functions = function_specs(template, template_path.parent, stack.resolver)
    for spec in stack.functions:
        if spec.rules or spec.schedules:
            _wire_events(spec, stack, clients)
    stack.outputs = evaluate_outputs(template, stack.resolver)
    return stack


# ----- resources of the template -----


def _create_tables(template: dict[str, Any], stack: LocalStack, dynamodb: DynamoDBClient) -> None:
    declared = resources_of_type(template, "AWS::DynamoDB::Table")
    for spec in table_specs(template):
        name = physical_name(
            stack.resolver, spec.logical_id, declared[spec.logical_id]["Properties"], "TableName"
        )
        created = dynamodb.create_table(TableName=name, **spec.create_args)
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        stack.resources[spec.logical_id] = Physical(name, {"Arn": created["TableDescription"]["TableArn"]})


def _create_buses(template: dict[str, Any], stack: LocalStack, events: EventBridgeClient) -> None:
    for logical_id, resource in resources_of_type(template, "AWS::Events::EventBus").items():
        name = physical_name(stack.resolver, logical_id, resource.get("Properties", {}), "Name")
        arn = events.create_event_bus(Name=name)["EventBusArn"]
        stack.resources[logical_id] = Physical(name, {"Arn": arn, "Name": name})


def _put_bus_policies(template: dict[str, Any], stack: LocalStack, events: EventBridgeClient) -> None:
    for logical_id, resource in resources_of_type(template, "AWS::Events::EventBusPolicy").items():
        if "Condition" in resource and not stack.resolver.condition(resource["Condition"]):
            continue
        properties = stack.resolver.resolve(resource.get("Properties", {}))
        if "Statement" not in properties:
            # The older form (Action, Principal, Condition properties) is not emulated: say so.
            raise ResolveError(f"{logical_id}: the local cloud emulates a bus policy given as Statement only")
        statement = {"Sid": properties["StatementId"], **properties["Statement"]}
        bus = str(properties.get("EventBusName", "default"))
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        events.put_permission(EventBusName=bus, Policy=json.dumps(policy))
        stack.resources[logical_id] = Physical(str(properties["StatementId"]))


def _create_queues(template: dict[str, Any], stack: LocalStack, sqs: SQSClient) -> None:
    for logical_id, resource in resources_of_type(template, "AWS::SQS::Queue").items():
        properties = stack.resolver.resolve(resource.get("Properties", {}))
        attributes = {key: _attribute(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
        if "RedrivePolicy" in properties:
            attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
        name = physical_name(stack.resolver, logical_id, properties, "QueueName")
        url, arn = _create_queue(sqs, name, attributes)
        stack.queue_urls[arn] = url
        stack.resources[logical_id] = Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def _create_queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _attribute(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _create_secrets(template: dict[str, Any], stack: LocalStack, secrets: SecretsManagerClient) -> None:
    for logical_id, resource in resources_of_type(template, "AWS::SecretsManager::Secret").items():
        properties = stack.resolver.resolve(resource.get("Properties", {}))
        name = physical_name(stack.resolver, logical_id, properties, "Name")
        created = secrets.create_secret(
            Name=name,
            Description=str(properties.get("Description", "")),
            SecretString=_secret_value(properties, secrets),
        )
        # A secret's Ref is its ARN; its `Id` attribute is the ARN too.
        stack.resources[logical_id] = Physical(created["ARN"], {"Id": created["ARN"]})


def _secret_value(properties: Mapping[str, Any], secrets: SecretsManagerClient) -> str:
    if "SecretString" in properties:
        return str(properties["SecretString"])
    generate: dict[str, Any] = dict(properties.get("GenerateSecretString", {}))
    template = generate.pop("SecretStringTemplate", None)
    key = generate.pop("GenerateStringKey", None)
    password = secrets.get_random_password(**generate)["RandomPassword"]
    if template is None or key is None:
        return password
    return json.dumps({**json.loads(template), key: password})


# Resources that only need a name locally, and the property that names each.
_NAME_KEYS = {
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::CloudWatch::Alarm": "AlarmName",
}


def _name_the_rest(template: dict[str, Any], stack: LocalStack, function_url: str | None) -> None:
    """Physical ids of what the local cloud runs itself or does not need: nothing is created."""
    for resource_type, name_key in _NAME_KEYS.items():
        for logical_id, resource in resources_of_type(template, resource_type).items():
            name = physical_name(stack.resolver, logical_id, resource.get("Properties", {}), name_key)
            stack.resources[logical_id] = _named(stack.identity, resource_type, name)
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        properties = resource.get("Properties", {})
        function = function_physical(
            stack.identity, physical_name(stack.resolver, logical_id, properties, "FunctionName")
        )
        stack.resources[logical_id] = function
        if "Role" not in properties:
            stack.resources[f"{logical_id}Role"] = _function_role(stack.identity, logical_id)
        if "FunctionUrlConfig" in properties and function_url is not None:
            # SAM's generated AWS::Lambda::Url: its Ref is the function's ARN; the URL ends with '/'.
            attributes = {"FunctionUrl": function_url, "FunctionArn": function.attributes["Arn"]}
            stack.resources[f"{logical_id}Url"] = Physical(function.attributes["Arn"], attributes)


def _function_role(identity: StackIdentity, logical_id: str) -> Physical:
    """The execution role SAM generates for a function without a `Role` (`<LogicalId>Role`), which the
    template may reference (an output with its ARN). Its name without CloudFormation's random suffix."""
    name = f"{identity.stack_name}-{logical_id}Role"
    return Physical(name, {"Arn": f"arn:{identity.partition}:iam::{identity.account}:role/{name}"})


def _named(identity: StackIdentity, resource_type: str, name: str) -> Physical:
    prefix = f"arn:{identity.partition}"
    where = f"{identity.region}:{identity.account}"
    if resource_type == "AWS::Logs::LogGroup":
        return Physical(name, {"Arn": f"{prefix}:logs:{where}:log-group:{name}:*"})
    if resource_type == "AWS::Serverless::LayerVersion":
        return Physical(f"{prefix}:lambda:{where}:layer:{name}:1")
    return Physical(name, {"Arn": f"{prefix}:cloudwatch:{where}:alarm:{name}"})


# ----- the functions' event sources -----


def _wire_events(spec: FunctionSpec, stack: LocalStack, clients: Clients) -> None:
    """One queue per function (Lambda's asynchronous invocation queue) behind all its rules."""
    attributes = {"VisibilityTimeout": str(spec.timeout + _VISIBILITY_MARGIN)}
    url, arn = _create_queue(clients.sqs, f"{spec.function_name}-invocations", attributes)
    stack.event_queues[spec.logical_id] = url
    for rule in spec.rules:
        _put_rule(clients.events, spec, rule, arn)
    for schedule in spec.schedules:
        _put_schedule(clients.events, schedule)


def _put_rule(events: EventBridgeClient, spec: FunctionSpec, rule: RuleSpec, queue_arn: str) -> None:
    events.put_rule(
        Name=rule.rule_name,
        EventPattern=json.dumps(rule.pattern),
        EventBusName=rule.bus_name,
        State="ENABLED",
    )
    target: dict[str, Any] = {
        "Id": _target_id(spec, rule.event_name),
        "Arn": queue_arn,
        "InputTransformer": WHOLE_EVENT,
    }
    if rule.retry_policy is not None:
        target["RetryPolicy"] = rule.retry_policy
    if rule.dead_letter_arn is not None:
        target["DeadLetterConfig"] = {"Arn": rule.dead_letter_arn}
    events.put_targets(Rule=rule.rule_name, EventBusName=rule.bus_name, Targets=[target])  # type: ignore[list-item]


def _put_schedule(events: EventBridgeClient, schedule: ScheduleSpec) -> None:
    """The rule exists (so the local rules mirror the template) but has no target: moto never fires a
    schedule, and it delivers every event put on the bus to a schedule rule's targets (a rule without a
    pattern matches everything there), which would run the reconciler on every push. Its ticks come from
    `local up`'s timer instead, at the local interval, straight into the function's queue."""
    events.put_rule(
        Name=schedule.rule_name,
        ScheduleExpression=schedule.expression,
        State="ENABLED" if schedule.enabled else "DISABLED",
    )


def _target_id(spec: FunctionSpec, event_name: str) -> str:
    return f"{spec.logical_id}{event_name}LambdaTarget"[:64]  # SAM's target id
