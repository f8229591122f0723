"""The ledger's items as DynamoDB stores them, and the one record the webhook writes.

Light on purpose (no domain model, no botocore beyond its exceptions): the webhook imports it at cold
start instead of the whole ledger (`pushdeploy.adapters.ledger`, which builds on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CHANGE_SK = "CHANGE"  # the sort key of a change's record (`CHANGE#<id>`)
WEBHOOK_SK = "WEBHOOK"  # the sort key of the webhook's note about a push it did not hand on


def encode_value(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value. The ledger stores only these types; boto3's own codec is not used
    because importing it imports all of boto3 (and s3transfer) at cold start."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, datetime):
        return {"S": value.isoformat()}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping):
        return {"M": {str(key): encode_value(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [encode_value(item) for item in value]}
    raise TypeError(f"the ledger does not store {type(value).__name__} values")


def decode_value(attribute: Mapping[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {key: decode_value(item) for key, item in value.items()}
    if kind == "L":
        return [decode_value(item) for item in value]
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def encode_item(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: encode_value(value) for name, value in attributes.items() if value is not None}


def decode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: decode_value(value) for name, value in item.items()}


def listed_keys(change_id: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a change record in the Changes and ChangesByArtifact indexes."""
    received = attributes.get("received_at")
    when = received.isoformat() if isinstance(received, datetime) else str(received or "")
    change = attributes.get("change") or {}
    return {
        "listing": "change",
        "listed_key": f"{when}#{change_id}",
        "change_artifact": change.get("digest") or change.get("commit"),
    }


def change_item(
    change_id: str, sort_key: str, attributes: Mapping[str, Any], expires_at: int | None
) -> dict[str, Any]:
    """A change's record (`CHANGE_SK`) or the webhook's note (`WEBHOOK_SK`), listed with the changes."""
    return {
        **attributes,
        **listed_keys(change_id, attributes),
        "pk": f"CHANGE#{change_id}",
        "sk": sort_key,
        "kind": "change",
        "change_id": change_id,
        "expires_at": expires_at,
    }


def put_new(client: DynamoDBClient, table: str, attributes: Mapping[str, Any]) -> bool:
    """Create the item unless one with its key exists: False when it did (nothing is overwritten)."""
    try:
        client.put_item(
            TableName=table, Item=encode_item(attributes), ConditionExpression="attribute_not_exists(pk)"
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def record_webhook_note(
    client: DynamoDBClient, table: str, change_id: str, attributes: Mapping[str, Any], expires_at: int
) -> bool:
    """Record, once, a webhook push that never reached the controller (no rule watched it, or it was too
    old). Kept apart from the change's record, which the controller writes if the push is delivered again
    once a rule watches it."""
    return put_new(client, table, change_item(change_id, WEBHOOK_SK, attributes, expires_at))
