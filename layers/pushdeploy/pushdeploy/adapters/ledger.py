"""The DynamoDB ledger: every change, decision and deployment, and each service's slot.

One table (single-table design). Items:
- `DEPLOYMENT#<id>` / `DEPLOYMENT`: a deployment. GSIs: ByService (service, created_key) for a service's
  history newest first; InFlight (inflight, created_key), sparse, only while queued/starting/in progress
  or held for a gate, for the reconciler; ByStatus (status, created_key); ByArtifact (artifact,
  created_key) by digest or commit.
- `SERVICE#<arn>` / `SLOT`: the service's active, pending and live deployment, each with its place in its
  rule's order, and a version number. Every slot change is one transaction conditioned on that version,
  so concurrent Lambdas cannot both start a deployment on one service, nor both pass an order check.
  While the active deployment is in progress the slot also keeps a copy of it (`active_record`, written
  in the transaction that records its operation, dropped when another becomes active), so App Runner's
  status event settles it from one read.
- `SERVICE#<arn>` / `FAILED#<artifact>`: an artifact that failed or rolled back there (never redeployed
  automatically), written in the transaction that settles it.
- `SERVICE#<arn>` / `OUTSIDE#<operation id>`: an App Runner operation pushdeploy did not start.
- `CHANGE#<id>` / `DECISION#<rule>`: a decision that created a deployment, in the admission's transaction.
- `CHANGE#<id>` / `CHANGE`: a change with all its decisions and what became of each, written once when it
  has been decided (in the admission's transaction when one rule deploys it); expires (TTL) when no rule
  deployed it.
- `SWEEP` / `MARKS`: how far the sweep has looked at each watched source, and a version number.

Nothing is overwritten: records are created with `attribute_not_exists` and moved only by conditional
updates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pushdeploy.adapters.records import (
    CHANGE_SK,
    WEBHOOK_SK,
    change_item,
    decode_item,
    encode_item,
    encode_value,
    put_new,
    record_webhook_note,
)
from pushdeploy.domain.changes import Change
from pushdeploy.domain.deployments import IN_FLIGHT, Attempt, Deployment, Status, gated
from pushdeploy.domain.slot import Entry, Pause, Slot
from pushdeploy.domain.sweep import same_push
from pushdeploy.errors import PushdeployError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_DATETIME_FIELDS = ("created_at", "claimed_at", "started_at", "settled_at", "stuck_at", "pushed_at")
_DEPLOYMENT_SK = "DEPLOYMENT"
_SLOT_SK = "SLOT"
_ACTIVE_RECORD = "active_record"  # the slot's copy of its in-progress active deployment


class SlotConflict(PushdeployError):
    """The service's slot changed since it was read: read it again and retry."""


class DuplicateDeployment(PushdeployError):
    """A deployment with this id is already recorded (the same change handled twice)."""


class ChangeRecorded(PushdeployError):
    """The change's record, put in a slot's transaction, was already written: another delivery of the
    same change decided it first, and its record stands."""


@dataclass(frozen=True)
class Put:
    """An item to create in a slot's transaction, only if it does not exist yet."""

    item: Mapping[str, Any]
    only_if_new: bool = True


@dataclass(frozen=True)
class Transition:
    """Move one recorded deployment from one status to another, with extra fields to set."""

    deployment_id: str
    from_status: Status
    to_status: Status
    fields: Mapping[str, Any] = field(default_factory=dict)


def followed(status: Status, held_by: Iterable[str] | None) -> bool:
    """Whether the reconciler looks at a deployment on every tick: in flight, or held for a gate."""
    return status in IN_FLIGHT or (status is Status.HELD and gated(tuple(held_by or ())))


def _created_key(deployment: Deployment) -> str:
    return f"{deployment.created_at.isoformat()}#{deployment.id}"


def _deployment_attributes(deployment: Deployment) -> dict[str, Any]:
    attributes = deployment.model_dump(mode="python")
    attributes["status"] = str(deployment.status)
    return attributes


def deployment_item(deployment: Deployment) -> dict[str, Any]:
    return encode_item(
        {
            **_deployment_attributes(deployment),
            "pk": f"DEPLOYMENT#{deployment.id}",
            "sk": _DEPLOYMENT_SK,
            "kind": "deployment",
            "created_key": _created_key(deployment),
            "artifact": deployment.artifact or None,
            "inflight": "yes" if followed(deployment.status, deployment.held_by) else None,
        }
    )


def deployment_from_item(item: Mapping[str, Any]) -> Deployment:
    plain = decode_item(item)
    for name in _DATETIME_FIELDS:
        if plain.get(name):
            plain[name] = datetime.fromisoformat(plain[name])
    if "attempts" in plain:
        plain["attempts"] = int(plain["attempts"])
    plain["attempt_log"] = tuple(_attempt(record) for record in plain.get("attempt_log") or [])
    known = Deployment.model_fields
    return Deployment.model_validate({name: value for name, value in plain.items() if name in known})


def _slot_from(item: Mapping[str, Any] | None) -> Slot:
    if not item:
        return Slot()
    plain = decode_item(item)
    return Slot(
        active=Entry.from_record(plain.get("active")),
        pending=Entry.from_record(plain.get("pending")),
        live=Entry.from_record(plain.get("live")),
        version=int(plain["version"]),
        paused=Pause.from_record(plain.get("paused")),
    )


def _slot_key(service: str) -> dict[str, Any]:
    return encode_item({"pk": f"SERVICE#{service}", "sk": _SLOT_SK})


def _update_expression(assignments: Sequence[str], removals: Sequence[str]) -> str:
    """`SET a = :a, ...` and, if anything is removed, `REMOVE b, ...`."""
    expression = "SET " + ", ".join(assignments)
    return expression + (" REMOVE " + ", ".join(removals) if removals else "")


def _deployment_or_none(item: Mapping[str, Any] | None) -> Deployment | None:
    return deployment_from_item(item) if item else None


def _plain_or_none(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return decode_item(item) if item else None


def _attempt(record: Mapping[str, Any]) -> Attempt:
    until = record.get("until")
    return Attempt(
        at=datetime.fromisoformat(record["at"]),
        until=datetime.fromisoformat(until) if until else None,
        outcome=record.get("outcome"),
    )


def attempt_record(attempt: Attempt) -> dict[str, Any]:
    return {
        "at": attempt.at.isoformat(),
        "until": attempt.until.isoformat() if attempt.until else None,
        "outcome": attempt.outcome,
    }


@dataclass(frozen=True)
class ChangeReads:
    """What deciding a change needs from the ledger, read in one call: the change's record, and for each
    deployment it may create, whether it exists, its service's slot and its artifact's failure mark. Each
    deployment's slot and failure mark are read atomically (one snapshot), so an admission planned from
    them is exactly as sound as one planned from separate reads, and its commit still checks the slot."""

    recorded: dict[str, Any] | None = None
    deployments: Mapping[str, Deployment | None] = field(default_factory=dict)
    slots: Mapping[str, Slot] = field(default_factory=dict)
    failures: Mapping[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    also: Sequence[dict[str, Any] | None] = ()  # the items of `also`'s gets, in order (None: absent)


# TransactGetItems reads at most 100 items; a change's record and three items per deployment fit in one call
# for up to 33 deployments (a push that many rules deploy falls back to separate reads).
_MOST_ITEMS_READ_AT_ONCE = 100


class Ledger:
    """All ledger reads and writes. Takes a DynamoDB client; never creates one."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # --- the service slot -------------------------------------------------------------------------

    def slot(self, service: str) -> Slot:
        return _slot_from(self._slot_item(service))

    def slot_with_active(self, service: str) -> tuple[Slot, Deployment | None]:
        """The service's slot and, while its active deployment is in progress, that deployment as the slot
        keeps it (the same read: what settling it needs). None when the slot keeps no copy of it."""
        found = self._slot_item(service)
        slot = _slot_from(found)
        kept = (found or {}).get(_ACTIVE_RECORD, {}).get("M")
        if not kept or slot.active is None or kept.get("id", {}).get("S") != slot.active.id:
            return slot, None
        active = deployment_from_item(kept)
        return slot, active if active.status is Status.IN_PROGRESS else None

    def _slot_item(self, service: str) -> dict[str, Any] | None:
        found = self._client.get_item(TableName=self._table, Key=_slot_key(service), ConsistentRead=True)
        return found.get("Item")

    def record_start(self, transition: Transition, started: Deployment) -> Deployment | None:
        """Move a starting deployment to in progress (`transition`) and keep `started`, the deployment as
        that leaves it, in its service's slot, in one transaction: the deployment as recorded, or None if
        it had moved on. If the slot no longer names it active (or another transaction is writing the
        slot), the deployment alone is moved, and settling it will read it."""
        copy = {"M": encode_item(_deployment_attributes(started))}
        slot_update = {
            "Update": self._active_copy_update(started.service, started.id, "SET #record = :record", copy)
        }
        try:
            self._client.transact_write_items(
                TransactItems=[self._transition_update(transition), slot_update]  # type: ignore[list-item]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return None  # the deployment moved on
            return self.update_returning(transition)
        return started

    def forget_active(self, service: str, deployment_id: str) -> None:
        """Drop the slot's copy of its active deployment (before that deployment is changed otherwise)."""
        update = self._active_copy_update(service, deployment_id, "REMOVE #record")
        self._conditional(lambda: self._client.update_item(**update))

    def _active_copy_update(
        self, service: str, deployment_id: str, expression: str, copy: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """An update of the slot's copy of its active deployment, only while that is `deployment_id`."""
        values: dict[str, Any] = {":id": {"S": deployment_id}}
        if copy is not None:
            values[":record"] = copy
        return {
            "TableName": self._table,
            "Key": _slot_key(service),
            "UpdateExpression": expression,
            "ConditionExpression": "#active.#id = :id",
            "ExpressionAttributeNames": {"#record": _ACTIVE_RECORD, "#active": "active", "#id": "id"},
            "ExpressionAttributeValues": values,
        }

    def reads_for_change(
        self, change_id: str, deployments: Sequence[Deployment], also: Sequence[dict[str, Any]] = ()
    ) -> ChangeReads | None:
        """The change's record and, for each deployment it may create, the deployment, its service's slot
        and its artifact's failure mark, in one serializable read (TransactGetItems), with `also`'s gets
        (items of other tables: the version of the rules that decided). None when that read is not
        possible (too many items, or a write in progress on one of them): read them one by one."""
        keys: list[tuple[str, str]] = [(f"CHANGE#{change_id}", CHANGE_SK)]
        for deployment in deployments:
            keys.append((f"DEPLOYMENT#{deployment.id}", _DEPLOYMENT_SK))
            keys.append((f"SERVICE#{deployment.service}", _SLOT_SK))
            keys.append((f"SERVICE#{deployment.service}", f"FAILED#{deployment.artifact}"))
        unique = list(dict.fromkeys(keys))
        if len(unique) + len(also) > _MOST_ITEMS_READ_AT_ONCE:
            return None
        gets = [
            {"Get": {"TableName": self._table, "Key": encode_item({"pk": pk, "sk": sk})}} for pk, sk in unique
        ]
        try:
            answer = self._client.transact_get_items(TransactItems=[*gets, *also])  # type: ignore[list-item]
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return None  # a transaction was writing one of them: read them one by one instead
            raise
        responses = [response.get("Item") for response in answer["Responses"]]
        found = dict(zip(unique, responses[: len(unique)], strict=True))
        record = found[keys[0]]
        return ChangeReads(
            recorded=decode_item(record) if record else None,
            deployments={
                d.id: _deployment_or_none(found[(f"DEPLOYMENT#{d.id}", _DEPLOYMENT_SK)]) for d in deployments
            },
            slots={d.service: _slot_from(found[(f"SERVICE#{d.service}", _SLOT_SK)]) for d in deployments},
            failures={
                (d.service, d.artifact): _plain_or_none(
                    found[(f"SERVICE#{d.service}", f"FAILED#{d.artifact}")]
                )
                for d in deployments
            },
            also=responses[len(unique) :],
        )

    def commit(
        self,
        service: str,
        expected: Slot,
        new: Slot,
        transitions: Sequence[Transition] = (),
        created: Deployment | None = None,
        puts: Sequence[Put] = (),
    ) -> None:
        """Atomically: replace the slot (if still at `expected.version`), apply status transitions (each
        only from its expected status), record a new deployment (only if its id is new) and create other
        items (decisions, failure marks), each only if new.

        Raises SlotConflict when the slot or a deployment moved meanwhile, DuplicateDeployment when
        `created` is already recorded, ChangeRecorded when a change's record among `puts` is.
        """
        actions: list[dict[str, Any]] = []
        if created is not None:
            actions.append(self._create(deployment_item(created)))
        actions.append(self._slot_write(service, expected, new))
        actions.extend(self._put(put) for put in puts)
        actions.extend(self._transition_update(t) for t in transitions)
        try:
            self._client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if created is not None and reasons and reasons[0] == "ConditionalCheckFailed":
                raise DuplicateDeployment(created.id) from None
            first_put = 2 if created is not None else 1
            for put, reason in zip(puts, reasons[first_put:], strict=False):
                if reason == "ConditionalCheckFailed" and put.item.get("sk") == CHANGE_SK:
                    raise ChangeRecorded(str(put.item["change_id"])) from None
            if "ConditionalCheckFailed" in reasons or "TransactionConflict" in reasons:
                raise SlotConflict(service) from None
            raise

    def _create(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        }

    def _put(self, put: Put) -> dict[str, Any]:
        if put.only_if_new:
            return self._create(encode_item(put.item))
        return {"Put": {"TableName": self._table, "Item": encode_item(put.item)}}

    def _slot_write(self, service: str, expected: Slot, new: Slot) -> dict[str, Any]:
        fields = {
            "kind": "slot",
            "service": service,
            "active": new.active.as_record() if new.active else None,
            "pending": new.pending.as_record() if new.pending else None,
            "live": new.live.as_record() if new.live else None,
            "paused": new.paused.as_record() if new.paused else None,
            "version": new.version,
        }
        if expected.version == 0:
            item = {**_slot_key(service), **encode_item(fields)}
            return {
                "Put": {
                    "TableName": self._table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        # An update, not a put: the active deployment's copy stays while that deployment stays active.
        names = {f"#{name}": name for name in fields}
        values = {f":{name}": value for name, value in fields.items() if value is not None}
        assignments = [f"#{name} = :{name}" for name, value in fields.items() if value is not None]
        removals = [f"#{name}" for name, value in fields.items() if value is None]
        if (new.active.id if new.active else None) != (expected.active.id if expected.active else None):
            names["#record"] = _ACTIVE_RECORD
            removals.append("#record")
        expression = _update_expression(assignments, removals)
        return {
            "Update": {
                "TableName": self._table,
                "Key": _slot_key(service),
                "UpdateExpression": expression,
                "ConditionExpression": "#version = :expected",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": encode_item({**values, ":expected": expected.version}),
            }
        }

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
        if followed(transition.to_status, transition.fields.get("held_by")):
            values[":inflight"] = "yes"
            assignments.append("inflight = :inflight")
        elif transition.to_status is not Status.HELD or "held_by" in transition.fields:
            removals.append("inflight")  # a held one whose holds are not told keeps its place
        expression = _update_expression(assignments, removals)
        return {
            "Update": {
                "TableName": self._table,
                "Key": encode_item({"pk": f"DEPLOYMENT#{transition.deployment_id}", "sk": _DEPLOYMENT_SK}),
                "UpdateExpression": expression,
                "ConditionExpression": "#status = :from",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": encode_item(values),
            }
        }

    # --- deployments outside the slot ------------------------------------------------------------

    def record(self, deployment: Deployment) -> bool:
        """Record a deployment that never takes a slot (dry run). False if it was already recorded."""
        return self._conditional(
            lambda: self._client.put_item(
                TableName=self._table,
                Item=deployment_item(deployment),
                ConditionExpression="attribute_not_exists(pk)",
            )
        )

    def update(self, transition: Transition) -> bool:
        """Apply one transition that does not touch the slot. False if the deployment had moved on."""
        update = self._transition_update(transition)["Update"]
        return self._conditional(lambda: self._client.update_item(**update))

    def update_returning(self, transition: Transition) -> Deployment | None:
        """As `update`, answering with the deployment as the transition left it (one call, no re-read);
        None if the deployment had moved on."""
        update = self._transition_update(transition)["Update"]
        try:
            answer = self._client.update_item(**update, ReturnValues="ALL_NEW")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return deployment_from_item(answer["Attributes"])

    def record_gate_fact(
        self, deployment_id: str, name: str, record: Mapping[str, Any], *, over_failed: bool = False
    ) -> bool:
        """Record what a gate of a held deployment was told (`scan`, `approval`), once: False when it was
        told already, or the deployment is no longer held. `over_failed`: a fact whose status is FAILED
        (a scan that failed) may be replaced. Kept apart from the moves of `update`, so that a
        reconciler run that read the deployment earlier cannot write over it."""
        condition = "#status = :held AND (attribute_not_exists(gate_facts.#name)"
        values: dict[str, Any] = {":record": record, ":held": str(Status.HELD)}
        if over_failed:
            condition += " OR gate_facts.#name.#status = :failed"
            values[":failed"] = "FAILED"
        return self._conditional(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=encode_item({"pk": f"DEPLOYMENT#{deployment_id}", "sk": _DEPLOYMENT_SK}),
                UpdateExpression="SET gate_facts.#name = :record",
                ConditionExpression=condition + ")",
                ExpressionAttributeNames={"#name": name, "#status": "status"},
                ExpressionAttributeValues=encode_item(values),
            )
        )

    def deployment(self, deployment_id: str) -> Deployment | None:
        found = self._client.get_item(
            TableName=self._table,
            Key=encode_item({"pk": f"DEPLOYMENT#{deployment_id}", "sk": _DEPLOYMENT_SK}),
            ConsistentRead=True,
        ).get("Item")
        return deployment_from_item(found) if found else None

    # --- queries ---------------------------------------------------------------------------------

    def followed(self) -> list[Deployment]:
        """Everything queued, starting or in progress, and what is held for a gate: the reconciler's one
        query per tick, on a sparse index, cheap when empty."""
        return list(self._query("InFlight", "inflight", "yes", limit=None, newest_first=False))

    def in_flight(self) -> list[Deployment]:
        """Everything queued, starting or in progress."""
        return [deployment for deployment in self.followed() if deployment.status in IN_FLIGHT]

    def held_for_rule(self, service: str, rule: str) -> list[Deployment]:
        """The rule's held deployments on the service (one query of the held ones, which are few)."""
        held = self.with_status(Status.HELD, limit=None)
        return [d for d in held if d.service == service and d.rule == rule]

    def for_service(self, service: str, limit: int | None = 50) -> list[Deployment]:
        return list(self._query("ByService", "service", service, limit))

    def with_status(self, status: Status, limit: int | None = 50) -> list[Deployment]:
        return list(self._query("ByStatus", "status", str(status), limit))

    def changes(self, since: datetime | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
        """Change records (decided, or noted by the webhook), newest first, received since `since`."""
        condition = "listing = :listing"
        values: dict[str, Any] = {":listing": "change"}
        if since is not None:
            condition += " AND listed_key >= :since"
            values[":since"] = since.isoformat()
        return self._records("Changes", condition, values, limit)

    def changes_of_artifact(self, artifact: str, limit: int | None = 50) -> list[dict[str, Any]]:
        """The changes that pushed a digest or commit, newest first."""
        return self._records("ChangesByArtifact", "change_artifact = :a", {":a": artifact}, limit)

    def _records(
        self, index: str, condition: str, values: dict[str, Any], limit: int | None
    ) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": encode_item(values),
            "ScanIndexForward": False,
        }
        found: list[dict[str, Any]] = []
        while limit is None or len(found) < limit:
            if limit is not None:
                request["Limit"] = limit - len(found)
            page = self._client.query(**request)
            found.extend(decode_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found

    def held(self, service: str) -> list[Deployment]:
        """The service's held deployments, newest first (one indexed query over its history)."""
        return [d for d in self.for_service(service, limit=None) if d.status is Status.HELD]

    def services(self) -> list[str]:
        """Every service the ledger has a slot for (a scan of slot items: for the operator CLI only)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "kind = :slot",
            "ExpressionAttributeValues": encode_item({":slot": "slot"}),
            "ProjectionExpression": "service",
        }
        found: set[str] = set()
        while True:
            page = self._client.scan(**request)
            found.update(
                str(decode_item(item)["service"]) for item in page.get("Items", []) if "service" in item
            )
            if "LastEvaluatedKey" not in page:
                return sorted(found)
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

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
            "ExpressionAttributeValues": encode_item({":value": value}),
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

    # --- changes and decisions -------------------------------------------------------------------

    def record_change(self, change_id: str, attributes: Mapping[str, Any], expires_at: int | None) -> bool:
        """Record a change and all its decisions, once: a redelivered or retried event finds it recorded
        and leaves it as it is. False when it was already recorded."""
        return self._put_new(Ledger.change_put(change_id, attributes, expires_at).item)

    @staticmethod
    def change_put(change_id: str, attributes: Mapping[str, Any], expires_at: int | None) -> Put:
        """The change's record (see `record_change`), to commit with the deployment it creates."""
        return Put(change_item(change_id, CHANGE_SK, attributes, expires_at))

    def record_webhook_note(self, change_id: str, attributes: Mapping[str, Any], expires_at: int) -> bool:
        """See `pushdeploy.adapters.records.record_webhook_note`."""
        return record_webhook_note(self._client, self._table, change_id, attributes, expires_at)

    def decided_change(self, change_id: str) -> dict[str, Any] | None:
        """The change's record, if the controller decided it already (the webhook's note is not one)."""
        found = self._client.get_item(
            TableName=self._table,
            Key=encode_item({"pk": f"CHANGE#{change_id}", "sk": CHANGE_SK}),
            ConsistentRead=True,
        ).get("Item")
        return decode_item(found) if found else None

    def change(self, change_id: str, from_decisions: bool = False) -> dict[str, Any] | None:
        """The change's record, or else the webhook's note about it; with `from_decisions`, or else what
        its deploying decisions say (each written with its deployment: the run that decided it stopped
        before writing the change's record, and no retry came to write it, as can happen to a sweep raced
        by another)."""
        for sort_key in (CHANGE_SK, WEBHOOK_SK):
            found = self._client.get_item(
                TableName=self._table,
                Key=encode_item({"pk": f"CHANGE#{change_id}", "sk": sort_key}),
                ConsistentRead=True,
            ).get("Item")
            if found:
                return decode_item(found)
        return self._from_decisions(change_id) if from_decisions else None

    def _from_decisions(self, change_id: str) -> dict[str, Any] | None:
        page = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :decision)",
            ExpressionAttributeValues=encode_item({":pk": f"CHANGE#{change_id}", ":decision": "DECISION#"}),
            ConsistentRead=True,
        )
        decisions = [decode_item(item) for item in page.get("Items", [])]
        if not decisions:
            return None
        return {
            "change_id": change_id,
            "kind": "change",
            "decisions": decisions,
            "received_at": min(str(d.get("decided_at", "")) for d in decisions),
            "note": "read from its deploying decisions: the run that decided it stopped before writing "
            "the change's record",
        }

    @staticmethod
    def decision_put(change_id: str, rule_id: str, record: Mapping[str, Any]) -> Put:
        """The decision that creates a deployment, committed with it (see `commit`)."""
        return Put({**record, "pk": f"CHANGE#{change_id}", "sk": f"DECISION#{rule_id}", "kind": "decision"})

    # --- what happened to a service outside the slot ----------------------------------------------

    @staticmethod
    def failure_put(service: str, deployment: Deployment, status: Status, at: datetime) -> Put:
        """Marks the deployment's artifact as failed on the service, committed with its settlement."""
        record = {
            "pk": f"SERVICE#{service}",
            "sk": f"FAILED#{deployment.artifact}",
            "kind": "failed",
            "artifact": deployment.artifact,
            "deployment": deployment.id,
            "status": str(status),
            "at": at,
        }
        return Put(record, only_if_new=False)

    def failure(self, service: str, artifact: str) -> dict[str, Any] | None:
        """How `artifact` failed on the service, if it did."""
        found = self._client.get_item(
            TableName=self._table,
            Key=encode_item({"pk": f"SERVICE#{service}", "sk": f"FAILED#{artifact}"}),
            ConsistentRead=True,
        ).get("Item")
        return decode_item(found) if found else None

    def record_outside(self, service: str, record: Mapping[str, Any]) -> bool:
        """An App Runner operation pushdeploy did not start (`operation_id`, `type`, `status`, ...), once."""
        item = {
            **record,
            "pk": f"SERVICE#{service}",
            "sk": f"OUTSIDE#{record['operation_id']}",
            "kind": "outside",
            "service": service,
        }
        return self._put_new(item)

    def recorded_outside(self, service: str, operation_ids: Iterable[str]) -> frozenset[str]:
        """Which of these operations the ledger recorded as made outside pushdeploy (one read each: the
        caller passes the few operations of one deployment's call windows)."""
        found: set[str] = set()
        for operation_id in operation_ids:
            item = self._client.get_item(
                TableName=self._table,
                Key=encode_item({"pk": f"SERVICE#{service}", "sk": f"OUTSIDE#{operation_id}"}),
                ConsistentRead=True,
                ProjectionExpression="sk",
            ).get("Item")
            if item:
                found.add(operation_id)
        return frozenset(found)

    def outside_operations(self, service: str) -> list[dict[str, Any]]:
        """Operations made outside pushdeploy on the service, oldest recorded first."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": encode_item({":pk": f"SERVICE#{service}", ":prefix": "OUTSIDE#"}),
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            page = self._client.query(**request)
            found.extend(decode_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found.sort(key=lambda record: str(record.get("recorded_at", "")))
        return found

    # --- attempts ---------------------------------------------------------------------------------

    def claim_attempt(self, deployment: Deployment, attempt: Attempt) -> bool:
        """Record a call about to be made to App Runner, if nobody else made one since `deployment` was
        read (its attempt count) and it still waits to start. False means: do not call."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": encode_item({"pk": f"DEPLOYMENT#{deployment.id}", "sk": _DEPLOYMENT_SK}),
            "UpdateExpression": (
                "SET attempt_log = list_append(if_not_exists(attempt_log, :empty), :attempt), "
                "attempts = :next"
            ),
            "ConditionExpression": "#status = :starting AND attempts = :count",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":empty": {"L": []},
                ":attempt": {"L": [encode_value(attempt_record(attempt))]},
                ":next": {"N": str(deployment.attempts + 1)},
                ":count": {"N": str(deployment.attempts)},
                ":starting": {"S": str(Status.STARTING)},
            },
        }
        return self._conditional(lambda: self._client.update_item(**request))

    def close_attempt(self, deployment_id: str, number: int, attempt: Attempt) -> bool:
        """Fill in how attempt `number` (1-based) ended. False when the deployment moved on meanwhile."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": encode_item({"pk": f"DEPLOYMENT#{deployment_id}", "sk": _DEPLOYMENT_SK}),
            "UpdateExpression": f"SET attempt_log[{number - 1}] = :attempt",
            "ConditionExpression": "attempts = :count",
            "ExpressionAttributeValues": {
                ":attempt": encode_value(attempt_record(attempt)),
                ":count": {"N": str(number)},
            },
        }
        return self._conditional(lambda: self._client.update_item(**request))

    # --- the sweep --------------------------------------------------------------------------------

    def knows_push(self, change: Change) -> bool:
        """Whether a change record holds this push (its event arrived, or a sweep found it already)."""
        return bool(self.push_records(change))

    def push_records(self, change: Change) -> set[str]:
        """The ids of the change records that hold this push."""
        recorded = self.changes_of_artifact(change.artifact, limit=None)
        return {str(r["change_id"]) for r in recorded if same_push(change, r.get("change") or {})}

    def deployed_by_change(self, artifact: str, change_id: str) -> bool:
        """Whether a deployment of the artifact was made for this change (its record may still be due)."""
        return any(d.change_id == change_id for d in self.for_artifact(artifact, limit=None))

    def sweep_marks(self) -> tuple[dict[str, Any], int]:
        """How far each source was swept (by source key), and the version the marks were written at."""
        found = self._client.get_item(
            TableName=self._table, Key=encode_item({"pk": "SWEEP", "sk": "MARKS"}), ConsistentRead=True
        ).get("Item")
        if not found:
            return {}, 0
        plain = decode_item(found)
        return dict(plain.get("marks") or {}), int(plain["version"])

    def record_sweep_marks(self, marks: Mapping[str, Any], version: int, swept_at: datetime) -> bool:
        """Write the marks if no other sweep wrote since they were read at `version`; False when one did
        (its marks stand: sweeps overlap safely, since every push found is looked up in the ledger)."""
        item = {
            "pk": "SWEEP",
            "sk": "MARKS",
            "kind": "sweep",
            "marks": marks,
            "version": version + 1,
            "swept_at": swept_at,
        }
        if version == 0:
            return self._put_new(item)
        return self._conditional(
            lambda: self._client.put_item(
                TableName=self._table,
                Item=encode_item(item),
                ConditionExpression="version = :read",
                ExpressionAttributeValues=encode_item({":read": version}),
            )
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _put_new(self, attributes: Mapping[str, Any]) -> bool:
        return put_new(self._client, self._table, attributes)

    @staticmethod
    def _conditional(call: Callable[[], object]) -> bool:
        try:
            call()
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
