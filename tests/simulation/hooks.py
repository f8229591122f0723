"""Crash and overlap injection at the AWS client layer, and who started each App Runner operation.

botocore handlers on the handlers' own DynamoDB client and on the App Runner client number every *hook
point* of an invocation: before and after each DynamoDB call on the ledger table (the rules table is
left alone) and each App Runner call. At the point its `Fault` names, an invocation crashes
(`SimulatedCrash`), or another whole invocation runs first (an overlap), which is how concurrency is
modelled deterministically: one Lambda stops inside an AWS call while another runs from start to end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.simulation.schedule import Fault

_LEDGER_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
_DEPLOY_CALLS = frozenset({"StartDeployment", "UpdateService"})
_MARK = "pushdeploy_simulation_ledger"


class SimulatedCrash(BaseException):
    """The Lambda invocation dies here (timeout, out of memory). A BaseException so that no
    `except Exception` in the code under test can catch it: a dead process runs no handler."""


@dataclass
class _Frame:
    fault: Fault | None
    points: int = 0  # hook points passed so far
    calls: Counter[str] = field(default_factory=Counter)  # of them, at DynamoDB / at App Runner calls


class Hooks:
    """Arm with `begin(fault)` for one invocation and disarm with `end()`; invocations nest (overlaps)."""

    def __init__(self, ledger_table: str, counts: Counter[str]) -> None:
        self.ledger_table = ledger_table
        self.counts = counts
        self.frames: list[_Frame] = []
        self.on_overlap: Callable[[str], None] = lambda kind: None
        # The partition keys every write to the ledger table names (with the `service` of an item put, if
        # any), whoever writes: which services' deployments to read again. None: a write it cannot read.
        self.ledger_writes: list[tuple[str | None, str | None]] = []
        # The change ids whose change record a put tried to write (it may have failed its condition, or
        # crashed): which records to read after a sweep, instead of reading every push's.
        self.change_puts: list[str] = []
        self.decision_puts: set[str] = set()  # change ids an admission tried to commit a decision of
        # App Runner operation id -> "pushdeploy" (started inside a handler) or "outside" (anyone else).
        self.started_by: dict[str, str] = {}
        self.images: dict[str, str] = {}  # UpdateService operation id -> the ImageIdentifier it asked for
        # (service ARN, when) of every StartDeployment or UpdateService call made inside a handler (or an
        # operator's command), answered or not: the gate checks account for each. `clock` gives `when`.
        self.deploy_calls: list[tuple[str, datetime]] = []
        self.clock: Callable[[], datetime] | None = None

    # --- wiring ------------------------------------------------------------------------------------

    def attach_dynamodb(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build.dynamodb", self._mark_ledger_call)
        events.register("before-call.dynamodb", self._before_dynamodb)
        events.register("after-call.dynamodb", self._after_dynamodb)

    def attach_apprunner(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build.apprunner", self._remember_params)
        events.register("before-call.apprunner", self._before_apprunner)
        events.register("after-call.apprunner", self._after_apprunner)

    # --- invocations -------------------------------------------------------------------------------

    def begin(self, fault: Fault | None) -> None:
        self.frames.append(_Frame(fault))

    def end(self) -> None:
        self.frames.pop()

    def _point(self, where: str) -> None:
        """`where`: before_dynamodb, after_dynamodb, before_apprunner or after_apprunner."""
        if not self.frames:
            return
        frame = self.frames[-1]
        service = where.split("_", 1)[1]
        index, of_service = frame.points, frame.calls[service]
        frame.points += 1
        frame.calls[service] += 1
        fault = frame.fault
        if fault is None:
            return
        if fault.overlap_at == index and fault.overlap is not None:
            self.counts["overlap"] += 1
            self.on_overlap(fault.overlap)
        if fault.crash_at == of_service and fault.crash_in == service:
            self.counts[f"crash_{where}"] += 1
            raise SimulatedCrash(f"crash {where} (hook point {of_service} at {service})")

    # --- DynamoDB ----------------------------------------------------------------------------------

    def _mark_ledger_call(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        requests = [(model.name, params)]
        for entry in params.get("TransactItems", []):
            requests.extend(entry.items())
        for table, batch in params.get("RequestItems", {}).items():
            for entry in batch if isinstance(batch, list) else []:
                requests.extend((kind, {**request, "TableName": table}) for kind, request in entry.items())
        ours = [
            (kind, request) for kind, request in requests if request.get("TableName") == self.ledger_table
        ]
        context[_MARK] = bool(ours)
        if model.name in _LEDGER_WRITES:
            for kind, request in ours:
                if kind != "ConditionCheck":
                    self.ledger_writes.append(_written_key(request))
                change_id = _change_record(kind, request)
                if change_id is not None:
                    self.change_puts.append(change_id)
                decided = _decision_record(kind, request)
                if decided is not None:
                    self.decision_puts.add(decided)

    def _before_dynamodb(self, context: dict[str, Any], **_: Any) -> None:
        if context.get(_MARK):
            self._point("before_dynamodb")

    def _after_dynamodb(self, context: dict[str, Any], **_: Any) -> None:
        if context.get(_MARK):
            self._point("after_dynamodb")

    # --- App Runner --------------------------------------------------------------------------------

    def _remember_params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name == "UpdateService":
            repository = params.get("SourceConfiguration", {}).get("ImageRepository", {})
            context["pushdeploy_simulation_image"] = repository.get("ImageIdentifier")
        if model.name in _DEPLOY_CALLS and self.frames and self.clock is not None:
            self.deploy_calls.append((str(params.get("ServiceArn")), self.clock()))

    def _before_apprunner(self, **_: Any) -> None:
        self._point("before_apprunner")

    def _after_apprunner(
        self, model: Any, parsed: dict[str, Any], http_response: Any, context: dict[str, Any], **_: Any
    ) -> None:
        if model.name in _DEPLOY_CALLS and http_response.status_code < 300 and "OperationId" in parsed:
            operation_id = str(parsed["OperationId"])
            self.started_by[operation_id] = "pushdeploy" if self.frames else "outside"
            image = context.get("pushdeploy_simulation_image")
            if image:
                self.images[operation_id] = str(image)
        self._point("after_apprunner")


def _change_record(kind: str, request: dict[str, Any]) -> str | None:
    """The change id of a put of a change record (`CHANGE#<id>` / `CHANGE`, see the ledger's items)."""
    if kind not in ("PutItem", "Put"):
        return None
    item = request.get("Item") or {}
    partition = str(item.get("pk", {}).get("S", ""))
    if not partition.startswith("CHANGE#") or item.get("sk", {}).get("S") != "CHANGE":
        return None
    return partition.removeprefix("CHANGE#")


def _decision_record(kind: str, request: dict[str, Any]) -> str | None:
    """The change id of a put of a decision that made a deployment (`CHANGE#<id>` / `DECISION#<rule>`)."""
    if kind not in ("PutItem", "Put"):
        return None
    item = request.get("Item") or {}
    partition = str(item.get("pk", {}).get("S", ""))
    if not partition.startswith("CHANGE#") or not str(item.get("sk", {}).get("S", "")).startswith(
        "DECISION#"
    ):
        return None
    return partition.removeprefix("CHANGE#")


def _written_key(request: dict[str, Any]) -> tuple[str | None, str | None]:
    """(partition key, the item's `service`) of one write request, as far as it can be read."""
    item = request.get("Item") or request.get("Key") or {}
    partition = item.get("pk", {}).get("S") if isinstance(item, dict) else None
    service = item.get("service", {}).get("S") if isinstance(item, dict) else None
    return partition, service
