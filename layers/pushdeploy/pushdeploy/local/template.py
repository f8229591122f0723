"""Reads `template.yaml` so the local cloud and the tests provision exactly what the SAM template
declares: the same tables, keys and indexes, and the same EventBridge rules with their patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (`!Ref X` becomes `{"Ref": "X"}`)."""


def _intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    create_args: dict[str, Any]  # CreateTable arguments, without TableName
    ttl_attribute: str | None


def table_specs(template: dict[str, Any]) -> list[TableSpec]:
    """CreateTable arguments for every DynamoDB table of the template."""
    specs = []
    for name, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        properties = resource["Properties"]
        args: dict[str, Any] = {
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if properties.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        ttl = properties.get("TimeToLiveSpecification", {})
        specs.append(TableSpec(name, args, ttl.get("AttributeName") if ttl.get("Enabled") else None))
    return specs


@dataclass(frozen=True)
class EventRuleSpec:
    function: str  # the function's logical id
    name: str  # the event's name in the function's Events
    pattern: dict[str, Any]


def event_rules(template: dict[str, Any]) -> list[EventRuleSpec]:
    """Every EventBridge rule that a function of the template subscribes to, with its pattern."""
    rules = []
    for function, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                rules.append(EventRuleSpec(function, name, event["Properties"]["Pattern"]))
    return rules
