"""The DynamoDB ledger: every change, decision and deployment, and each service's slot.

One table (single-table design). Items:
- `DEPLOYMENT#<id>` / `DEPLOYMENT`: a deployment. GSIs: ByService (service, created_key) for a service's
  history newest first; InFlight (inflight, created_key), sparse, only while queued/starting/in progress,
  for the reconciler; ByStatus (status, created_key); ByArtifact (artifact, created_key) by digest or commit.
- `SERVICE#<arn>` / `SLOT`: the service's active and pending deployment, with a version number. Every slot
  change is one transaction conditioned on that version, so concurrent Lambdas cannot both start a
  deployment on one service.
- `CHANGE#<id>` / `CHANGE`: a change with all its decisions and what became of each; expires (TTL) when no
  rule deployed it.
- `RULE#<id>` / `SEMVER`: the highest version a semver rule has deployed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pushdeploy.domain.deployments import IN_FLIGHT, Deployment, Slot, Status
from pushdeploy.errors import PushdeployError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_DATETIME_FIELDS = ("created_at", "claimed_at", "started_at", "settled_at", "stuck_at")
_DEPLOYMENT_SK = "DEPLOYMENT"
_SLOT_SK = "SLOT"


class SlotConflict(PushdeployError):
    """The service's slot changed since it was read: read it again and retry."""


class DuplicateDeployment(PushdeployError):
    """A deployment with this id is already recorded (the same change handled twice)."""


@dataclass(frozen=True)
class Transition:
    """Move one recorded deployment from one status to another, with extra fields to set."""

    deployment_id: str
    from_status: Status
    to_status: Status
    fields: Mapping[str, Any] = field(default_factory=dict)


def _encode(value: Any) -> dict[str, Any]:
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
        return {"M": {str(key): _encode(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_encode(item) for item in value]}
    raise TypeError(f"the ledger does not store {type(value).__name__} values")


def _decode(attribute: Mapping[str, Any]) -> Any:
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
        return {key: _decode(item) for key, item in value.items()}
    if kind == "L":
        return [_decode(item) for item in value]
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def _item(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _encode(value) for name, value in attributes.items() if value is not None}


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _decode(value) for name, value in item.items()}


def _created_key(deployment: Deployment) -> str:
    return f"{deployment.created_at.isoformat()}#{deployment.id}"


def deployment_item(deployment: Deployment) -> dict[str, Any]:
    attributes = deployment.model_dump(mode="python")
    attributes["status"] = str(deployment.status)
    return _item(
        {
            **attributes,
            "pk": f"DEPLOYMENT#{deployment.id}",
            "sk": _DEPLOYMENT_SK,
            "kind": "deployment",
            "created_key": _created_key(deployment),
            "artifact": deployment.artifact or None,
            "inflight": "yes" if deployment.status in IN_FLIGHT else None,
        }
    )


def deployment_from_item(item: Mapping[str, Any]) -> Deployment:
    plain = _plain(item)
    for name in _DATETIME_FIELDS:
        if plain.get(name):
            plain[name] = datetime.fromisoformat(plain[name])
    if "attempts" in plain:
        plain["attempts"] = int(plain["attempts"])
    known = Deployment.model_fields
    return Deployment.model_validate({name: value for name, value in plain.items() if name in known})


class Ledger:
    """All ledger reads and writes. Takes a DynamoDB client; never creates one."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # --- the service slot -------------------------------------------------------------------------

    def slot(self, service: str) -> Slot:
        found = self._client.get_item(
            TableName=self._table,
            Key=_item({"pk": f"SERVICE#{service}", "sk": _SLOT_SK}),
            ConsistentRead=True,
        ).get("Item")
        if not found:
            return Slot()
        plain = _plain(found)
        return Slot(
            active=plain.get("active"),
            pending=plain.get("pending"),
            version=int(plain["version"]),
            active_artifact=plain.get("active_artifact"),
            pending_artifact=plain.get("pending_artifact"),
            live_artifact=plain.get("live_artifact"),
        )

    def commit(
        self,
        service: str,
        expected: Slot,
        new: Slot,
        transitions: Sequence[Transition] = (),
        created: Deployment | None = None,
    ) -> None:
        """Atomically: replace the slot (if still at `expected.version`), apply status transitions (each
        only from its expected status), and record a new deployment (only if its id is new).

        Raises SlotConflict when the slot or a deployment moved meanwhile, DuplicateDeployment when
        `created` is already recorded.
        """
        actions: list[dict[str, Any]] = []
        if created is not None:
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": deployment_item(created),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        actions.append(self._slot_put(service, expected, new))
        actions.extend(self._transition_update(t) for t in transitions)
        try:
            self._client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if created is not None and reasons and reasons[0] == "ConditionalCheckFailed":
                raise DuplicateDeployment(created.id) from None
            if "ConditionalCheckFailed" in reasons or "TransactionConflict" in reasons:
                raise SlotConflict(service) from None
            raise

    def _slot_put(self, service: str, expected: Slot, new: Slot) -> dict[str, Any]:
        item = _item(
            {
                "pk": f"SERVICE#{service}",
                "sk": _SLOT_SK,
                "kind": "slot",
                "service": service,
                "active": new.active,
                "pending": new.pending,
                "version": new.version,
                "active_artifact": new.active_artifact,
                "pending_artifact": new.pending_artifact,
                "live_artifact": new.live_artifact,
            }
        )
        if expected.version == 0:
            condition, values = "attribute_not_exists(pk)", None
        else:
            condition, values = "version = :expected", _item({":expected": expected.version})
        put: dict[str, Any] = {"TableName": self._table, "Item": item, "ConditionExpression": condition}
        if values:
            put["ExpressionAttributeValues"] = values
        return {"Put": put}

    def _transition_update(self, transition: Transition) -> dict[str, Any]:
        names = {"#status": "status"}
        values: dict[str, Any] = {":from": str(transition.from_status), ":to": str(transition.to_status)}
        assignments, removals = ["#status = :to"], []
        for position, (name, value) in enumerate(transition.fields.items()):
            names[f"#f{position}"] = name
            if value is None:  # a field that no longer applies is removed, so it reads back as null
                removals.append(f"#f{position}")
                continue
            values[f":f{position}"] = value
            assignments.append(f"#f{position} = :f{position}")
        if transition.to_status in IN_FLIGHT:
            values[":inflight"] = "yes"
            assignments.append("inflight = :inflight")
        else:
            removals.append("inflight")
        expression = "SET " + ", ".join(assignments)
        if removals:
            expression += " REMOVE " + ", ".join(removals)
        return {
            "Update": {
                "TableName": self._table,
                "Key": _item({"pk": f"DEPLOYMENT#{transition.deployment_id}", "sk": _DEPLOYMENT_SK}),
                "UpdateExpression": expression,
                "ConditionExpression": "#status = :from",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _item(values),
            }
        }

    # --- deployments outside the slot ------------------------------------------------------------

    def record(self, deployment: Deployment) -> bool:
        """Record a deployment that never takes a slot (dry run). False if it was already recorded."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=deployment_item(deployment),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update(self, transition: Transition) -> bool:
        """Apply one transition that does not touch the slot. False if the deployment had moved on."""
        update = self._transition_update(transition)["Update"]
        try:
            self._client.update_item(**update)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def deployment(self, deployment_id: str) -> Deployment | None:
        found = self._client.get_item(
            TableName=self._table,
            Key=_item({"pk": f"DEPLOYMENT#{deployment_id}", "sk": _DEPLOYMENT_SK}),
            ConsistentRead=True,
        ).get("Item")
        return deployment_from_item(found) if found else None

    # --- queries ---------------------------------------------------------------------------------

    def in_flight(self) -> list[Deployment]:
        """Everything queued, starting or in progress: one query on a sparse index, cheap when empty."""
        return list(self._query("InFlight", "inflight", "yes", limit=None, newest_first=False))

    def for_service(self, service: str, limit: int | None = 50) -> list[Deployment]:
        return list(self._query("ByService", "service", service, limit))

    def with_status(self, status: Status, limit: int | None = 50) -> list[Deployment]:
        return list(self._query("ByStatus", "status", str(status), limit))

    def for_artifact(self, artifact: str, limit: int | None = 50) -> list[Deployment]:
        return list(self._query("ByArtifact", "artifact", artifact, limit))

    def recent(self, limit: int = 50) -> list[Deployment]:
        """Newest first across all statuses: one indexed query per status, merged."""
        merged = [d for status in Status for d in self.with_status(status, limit)]
        merged.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        return merged[:limit]

    def _query(
        self, index: str, key: str, value: str, limit: int | None, newest_first: bool = True
    ) -> Iterator[Deployment]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#key = :value",
            "ExpressionAttributeNames": {"#key": key},
            "ExpressionAttributeValues": _item({":value": value}),
            "ScanIndexForward": not newest_first,
        }
        returned = 0
        while True:
            if limit is not None:
                request["Limit"] = limit - returned
            page = self._client.query(**request)
            # Only deployment items carry `created_key`, so these indexes hold nothing else.
            for item in page.get("Items", []):
                returned += 1
                yield deployment_from_item(item)
            if "LastEvaluatedKey" not in page or (limit is not None and returned >= limit):
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- changes and semver marks ----------------------------------------------------------------

    def record_change(self, change_id: str, attributes: Mapping[str, Any], expires_at: int | None) -> None:
        """Record a change and its decisions. Re-recording the same change (a redelivery) overwrites it
        with the same content, so the audit trail keeps one entry per change."""
        item = {
            **attributes,
            "pk": f"CHANGE#{change_id}",
            "sk": "CHANGE",
            "kind": "change",
            "change_id": change_id,
            "expires_at": expires_at,
        }
        self._client.put_item(TableName=self._table, Item=_item(item))

    def change(self, change_id: str) -> dict[str, Any] | None:
        found = self._client.get_item(
            TableName=self._table, Key=_item({"pk": f"CHANGE#{change_id}", "sk": "CHANGE"})
        ).get("Item")
        return _plain(found) if found else None

    def semver_mark(self, rule_id: str) -> str | None:
        found = self._client.get_item(
            TableName=self._table, Key=_item({"pk": f"RULE#{rule_id}", "sk": "SEMVER"}), ConsistentRead=True
        ).get("Item")
        return str(_plain(found)["version"]) if found else None

    def set_semver_mark(self, rule_id: str, version: str, previous: str | None) -> bool:
        """Raise the rule's mark from `previous` to `version`; False if another writer moved it first."""
        condition = "attribute_not_exists(pk)" if previous is None else "version = :previous"
        request: dict[str, Any] = {
            "TableName": self._table,
            "Item": _item({"pk": f"RULE#{rule_id}", "sk": "SEMVER", "kind": "semver", "version": version}),
            "ConditionExpression": condition,
        }
        if previous is not None:
            request["ExpressionAttributeValues"] = _item({":previous": previous})
        try:
            self._client.put_item(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
