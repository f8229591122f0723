"""What `template.yaml` declares about its functions, read the way SAM reads it, for the local cloud.

Everything here is pure: specs come from the template and a `Resolver`, never from a hand-kept list, so
a function, rule, variable or output added to the template exists locally too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushdeploy.local.intrinsics import Physical, ResolveError, Resolver, StackIdentity
from pushdeploy.local.template import resources_of_type

FUNCTION_TYPE = "AWS::Serverless::Function"
# Lambda's defaults for what a function's template leaves out.
_DEFAULT_TIMEOUT = 3
_DEFAULT_MEMORY = 128
_DEFAULT_RETRIES = 2
_DEFAULT_MAX_EVENT_AGE = 21600


@dataclass(frozen=True)
class RuleSpec:
    """An EventBridge rule a function subscribes to (SAM event type `EventBridgeRule`)."""

    event_name: str  # the key in the function's Events
    rule_name: str
    pattern: dict[str, Any]
    bus_name: str
    retry_policy: dict[str, Any] | None
    dead_letter_arn: str | None


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule that invokes a function (SAM event type `Schedule`/`ScheduleV2`)."""

    event_name: str
    rule_name: str
    expression: str
    enabled: bool


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    function_name: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    max_retries: int  # Lambda's retries of an asynchronous invocation
    max_event_age: int
    on_failure_arn: str | None  # where an event goes when its retries are exhausted
    rules: tuple[RuleSpec, ...]
    schedules: tuple[ScheduleSpec, ...]
    has_url: bool  # FunctionUrlConfig: invoked synchronously over HTTP

    @property
    def url_logical_id(self) -> str:
        """The `AWS::Lambda::Url` SAM generates for a function with a FunctionUrlConfig."""
        return f"{self.logical_id}Url"


def physical_name(resolver: Resolver, logical_id: str, properties: Mapping[str, Any], key: str) -> str:
    """The resource's name property, or the name CloudFormation would make up (without its random
    suffix, so local names stay readable and stable)."""
    if key in properties:
        return str(resolver.resolve(properties[key]))
    return f"{resolver.identity.stack_name}-{logical_id}"


def globals_of_functions(template: Mapping[str, Any]) -> dict[str, Any]:
    globals_section: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    return globals_section


def function_environment(template: Mapping[str, Any], logical_id: str, resolver: Resolver) -> dict[str, str]:
    """The function's environment variables as Lambda gets them: Globals merged with the function's own
    (the function's win, as SAM merges maps), every value resolved and rendered as a string."""
    merged: dict[str, Any] = dict(globals_of_functions(template).get("Environment", {}).get("Variables", {}))
    properties = template["Resources"][logical_id].get("Properties", {})
    merged.update(properties.get("Environment", {}).get("Variables", {}))
    resolved = resolver.resolve(merged)
    return {name: _rendered(name, value) for name, value in resolved.items()}


def evaluate_outputs(template: Mapping[str, Any], resolver: Resolver) -> dict[str, str]:
    """The stack's outputs (those whose condition holds), as `describe-stacks` would show them."""
    outputs: dict[str, str] = {}
    for name, output in template.get("Outputs", {}).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        outputs[name] = _rendered(name, resolver.resolve(output["Value"]))
    return outputs


def function_specs(template: Mapping[str, Any], template_dir: Path, resolver: Resolver) -> list[FunctionSpec]:
    return [
        _function_spec(template, template_dir, resolver, logical_id, resource)
        for logical_id, resource in resources_of_type(dict(template), FUNCTION_TYPE).items()
    ]


def _function_spec(
    template: Mapping[str, Any],
    template_dir: Path,
    resolver: Resolver,
    logical_id: str,
    resource: Mapping[str, Any],
) -> FunctionSpec:
    properties = resource.get("Properties", {})
    defaults = globals_of_functions(template)
    invoke = properties.get("EventInvokeConfig", {})
    on_failure = invoke.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    events: Mapping[str, Any] = properties.get("Events", {})
    return FunctionSpec(
        logical_id=logical_id,
        function_name=physical_name(resolver, logical_id, properties, "FunctionName"),
        code_dir=(template_dir / str(_setting(properties, defaults, "CodeUri", "."))).resolve(),
        handler=str(_setting(properties, defaults, "Handler", "app.handler")),
        timeout=int(_setting(properties, defaults, "Timeout", _DEFAULT_TIMEOUT)),
        memory=int(_setting(properties, defaults, "MemorySize", _DEFAULT_MEMORY)),
        environment=function_environment(template, logical_id, resolver),
        max_retries=int(invoke.get("MaximumRetryAttempts", _DEFAULT_RETRIES)),
        max_event_age=int(invoke.get("MaximumEventAgeInSeconds", _DEFAULT_MAX_EVENT_AGE)),
        on_failure_arn=None if on_failure is None else str(resolver.resolve(on_failure)),
        rules=tuple(
            _rule_spec(resolver, logical_id, name, event["Properties"])
            for name, event in events.items()
            if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent")
        ),
        schedules=tuple(
            _schedule_spec(resolver, logical_id, name, event["Properties"])
            for name, event in events.items()
            if event.get("Type") in ("Schedule", "ScheduleV2")
        ),
        has_url="FunctionUrlConfig" in properties,
    )


def _setting(properties: Mapping[str, Any], defaults: Mapping[str, Any], key: str, fallback: Any) -> Any:
    return properties.get(key, defaults.get(key, fallback))


def _rule_spec(
    resolver: Resolver, logical_id: str, event_name: str, properties: Mapping[str, Any]
) -> RuleSpec:
    dead_letter = properties.get("DeadLetterConfig", {}).get("Arn")
    return RuleSpec(
        event_name=event_name,
        rule_name=_event_rule_name(resolver, logical_id, event_name, properties, "RuleName"),
        pattern=resolver.resolve(properties["Pattern"]),
        bus_name=str(resolver.resolve(properties.get("EventBusName", "default"))),
        retry_policy=resolver.resolve(properties["RetryPolicy"]) if "RetryPolicy" in properties else None,
        dead_letter_arn=None if dead_letter is None else str(resolver.resolve(dead_letter)),
    )


def _schedule_spec(
    resolver: Resolver, logical_id: str, event_name: str, properties: Mapping[str, Any]
) -> ScheduleSpec:
    enabled = properties.get("Enabled", properties.get("State", "ENABLED") == "ENABLED")
    return ScheduleSpec(
        event_name=event_name,
        rule_name=_event_rule_name(resolver, logical_id, event_name, properties, "Name"),
        expression=str(resolver.resolve(properties["Schedule"])),
        enabled=bool(resolver.resolve(enabled)),
    )


def _event_rule_name(
    resolver: Resolver, logical_id: str, event_name: str, properties: Mapping[str, Any], key: str
) -> str:
    # SAM names an unnamed rule after the function and the event: `<stack>-<Function><Event>-<random>`.
    if key in properties:
        return str(resolver.resolve(properties[key]))
    return f"{resolver.identity.stack_name}-{logical_id}{event_name}"[:64]


def _rendered(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ResolveError(f"{name} does not evaluate to a string: {value!r}")


def function_physical(identity: StackIdentity, spec_name: str) -> Physical:
    """What a function's `Ref` and `Fn::GetAtt ... .Arn` are."""
    arn = f"arn:{identity.partition}:lambda:{identity.region}:{identity.account}:function:{spec_name}"
    return Physical(spec_name, {"Arn": arn})
