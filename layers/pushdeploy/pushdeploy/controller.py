"""The controller: changes in, deployments out, each followed until it settles.

It composes the pure core (decisions, the slot algebra) with three ports: the ledger (DynamoDB), the
deploy target (App Runner) and a notifier (events and metrics). Every slot change is one conditional
transaction; on a conflict the controller reads again and retries, so concurrent Lambdas never start two
operations on one service.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from pushdeploy.adapters.apprunner import (
    DeployTarget,
    Operation,
    TargetBusy,
    TargetRejected,
    TargetUnavailable,
)
from pushdeploy.adapters.ledger import DuplicateDeployment, Ledger, SlotConflict, Transition
from pushdeploy.domain.changes import Change, OperationEvent
from pushdeploy.domain.decisions import Decision, decide
from pushdeploy.domain.deployments import (
    Deployment,
    Slot,
    Status,
    admit,
    check_transition,
    promote,
    release,
    requeue,
    settled_status,
)
from pushdeploy.domain.matching import parse_version
from pushdeploy.domain.rules import CompiledRule
from pushdeploy.errors import PushdeployError

logger = Logger(service="pushdeploy", child=True)

_MAX_SLOT_ATTEMPTS = 25
# App Runner's and Lambda's clocks are NTP-synchronised; allow this much disagreement when matching an
# operation's start time to the moment a deployment took its service's slot.
_CLOCK_SKEW = timedelta(seconds=1)
_EVENT_NAMES = {
    Status.QUEUED: "Queued",
    Status.IN_PROGRESS: "Started",
    Status.SUCCEEDED: "Succeeded",
    Status.FAILED: "Failed",
    Status.ROLLED_BACK: "Rolled Back",
    Status.SUPERSEDED: "Superseded",
    Status.DRY_RUN: "Dry Run",
    Status.ERROR: "Error",
}


class RuleSource(Protocol):
    def watching(self, change: Change) -> Sequence[CompiledRule]: ...


class Notifier(Protocol):
    """Tells the world: `what` is `Started`, `Succeeded`, `Rolled Back`, `Stuck`..."""

    def deployment_changed(self, deployment: Deployment, what: str) -> None: ...


class SilentNotifier:
    def deployment_changed(self, deployment: Deployment, what: str) -> None:
        return None


@dataclass(frozen=True)
class Settings:
    # An operation running longer than this is flagged stuck (App Runner maintenance can take minutes).
    stuck_after: timedelta = timedelta(minutes=60)
    # A deployment may sit in `starting` this long (its handler may still be calling App Runner) before
    # the reconciler looks for an operation it started without recording, or starts it again.
    start_grace: timedelta = timedelta(minutes=2)
    # Changes that deployed nothing expire from the ledger after this long.
    undeployed_change_ttl: timedelta = timedelta(days=90)


@dataclass(frozen=True)
class SlotChange:
    """One planned change of a service's slot: the new slot, the status transitions that go with it (one
    transaction), and what to do once it is committed."""

    slot: Slot
    transitions: list[Transition] = field(default_factory=list)
    created: Deployment | None = None
    notify: list[tuple[str, str]] = field(default_factory=list)  # (deployment id, what happened)
    start: str | None = None  # the deployment that now holds the slot and must be started


@dataclass
class DecisionOutcome:
    decision: Decision
    deployment_id: str | None = None
    note: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {**self.decision.model_dump(), "deployment": self.deployment_id, "note": self.note}


@dataclass
class ChangeReport:
    change_id: str
    outcomes: list[DecisionOutcome] = field(default_factory=list)

    @property
    def deployments(self) -> list[str]:
        return [o.deployment_id for o in self.outcomes if o.deployment_id]


@dataclass
class ReconcileReport:
    services: int = 0
    failures: int = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Controller:
    def __init__(
        self,
        ledger: Ledger,
        target: DeployTarget,
        rules: RuleSource,
        notifier: Notifier | None = None,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ledger = ledger
        self.target = target
        self.rules = rules
        self.notifier = notifier or SilentNotifier()
        self.settings = settings or Settings()
        self.clock = clock
        self.sleep = sleep

    # --- a change arrives ---------------------------------------------------------------------------

    def handle_change(self, change: Change, change_id: str, event_id: str | None = None) -> ChangeReport:
        """Decide for every rule that watches the change, deploy what must be, record it all."""
        rules = {rule.id: rule for rule in self.rules.watching(change)}
        report = ChangeReport(change_id)
        for decision in decide(change, rules.values()):
            report.outcomes.append(self._apply(decision, rules[decision.rule], change, change_id))
        now = self.clock()
        expires = None
        if not report.deployments:
            expires = int((now + self.settings.undeployed_change_ttl).timestamp())
        self.ledger.record_change(
            change_id,
            {
                "change": change.model_dump(),
                "decisions": [outcome.as_record() for outcome in report.outcomes],
                "event_id": event_id,
                "received_at": now,
            },
            expires,
        )
        logger.info(
            "change decided",
            extra={"change": change.describe(), "change_id": change_id, "deployments": report.deployments},
        )
        return report

    def _apply(
        self, decision: Decision, rule: CompiledRule, change: Change, change_id: str
    ) -> DecisionOutcome:
        if not decision.deploys:
            return DecisionOutcome(decision, note=decision.reason)
        version = None
        if rule.is_semver and not decision.dry_run:
            version = change.tag
            refusal = self._raise_semver_mark(rule.id, version or "")
            if refusal:
                return DecisionOutcome(decision, note=refusal)
        deployment = Deployment.from_decision(decision, change, change_id, self.clock(), version)
        if decision.dry_run:
            self.ledger.record(deployment)
            self.notifier.deployment_changed(deployment, _EVENT_NAMES[Status.DRY_RUN])
            return DecisionOutcome(decision, deployment.id, "dry run: recorded, App Runner not called")
        return self._admit(decision, deployment)

    def _raise_semver_mark(self, rule_id: str, tag: str) -> str | None:
        """Never deploy a version older than or equal to the one this rule last deployed."""
        version = parse_version(tag)
        assert version is not None  # the semver matcher matched it
        for _ in range(_MAX_SLOT_ATTEMPTS):
            previous = self.ledger.semver_mark(rule_id)
            previous_version = parse_version(previous) if previous else None
            if previous_version is not None and version.compare(previous_version) <= 0:
                return f"not deployed: tag {tag} is not newer than {previous}, deployed last by {rule_id}"
            if self.ledger.set_semver_mark(rule_id, tag, previous):
                return None
        raise PushdeployError(f"could not record the semver mark of rule {rule_id}: too much contention")

    def _admit(self, decision: Decision, deployment: Deployment) -> DecisionOutcome:
        held: list[str] = []

        def plan(slot: Slot) -> SlotChange | None:
            already = slot.holding(deployment.artifact)
            if already:
                held.append(already)
                return None
            admission = admit(slot, deployment.id, deployment.artifact)
            now = self.clock()
            if admission.start_now:
                created = deployment.model_copy(update={"status": Status.STARTING, "claimed_at": now})
                return SlotChange(admission.slot, created=created, start=deployment.id)
            transitions, notify = [], [(deployment.id, "Queued")]
            if admission.superseded:
                detail = f"replaced by the newer deployment {deployment.id} while waiting"
                transitions.append(
                    self._transition(
                        admission.superseded,
                        Status.QUEUED,
                        Status.SUPERSEDED,
                        settled_at=now,
                        superseded_by=deployment.id,
                        detail=detail,
                    )
                )
                notify.insert(0, (admission.superseded, "Superseded"))
            return SlotChange(admission.slot, transitions, created=deployment, notify=notify)

        try:
            change = self._change_slot(deployment.service, plan)
        except DuplicateDeployment:
            return DecisionOutcome(decision, deployment.id, "already recorded (event delivered again)")
        if change is None:
            return DecisionOutcome(decision, note=f"not deployed: {held[-1]}")
        if change.start == deployment.id:
            return DecisionOutcome(decision, deployment.id)
        return DecisionOutcome(decision, deployment.id, "queued: the service is busy")

    # --- starting and settling ---------------------------------------------------------------------

    def _start(self, deployment: Deployment) -> None:
        """Call App Runner for a deployment that holds its service's slot (status starting)."""
        try:
            operation_id = self.target.deploy(deployment.service, deployment.action, deployment.image)
        except TargetBusy as busy:
            # A retried call whose first attempt did start (a timeout) also answers busy: adopt that
            # operation rather than queue a second deployment of the same thing.
            operation = self._unrecorded_operation(deployment) if busy.maybe_started else None
            if operation is None:
                self._requeue(deployment, str(busy))
            else:
                self._adopt(deployment, operation)
            return
        except TargetRejected as rejected:
            self._settle(deployment, Status.ERROR, detail=f"App Runner refused the deployment: {rejected}")
            return
        except TargetUnavailable as unavailable:
            # Left in `starting`: the reconciler tries again (or adopts an operation that did start).
            self.ledger.update(
                self._transition(
                    deployment.id,
                    Status.STARTING,
                    Status.STARTING,
                    attempts=deployment.attempts + 1,
                    detail=f"App Runner unavailable, will retry: {unavailable}",
                )
            )
            logger.warning(
                "App Runner unavailable", extra={"deployment": deployment.id, "error": str(unavailable)}
            )
            return
        self._record_start(deployment, operation_id, self.clock(), "App Runner accepted the deployment")

    def _record_start(
        self,
        deployment: Deployment,
        operation_id: str,
        started_at: datetime,
        detail: str,
        adopted: bool = False,
    ) -> None:
        fields = {
            "operation_id": operation_id,
            "started_at": started_at,
            "operation_status": "IN_PROGRESS",
            "detail": detail,
            "attempts": deployment.attempts + 1,
            "adopted": adopted,
        }
        moved = self.ledger.update(
            self._transition(deployment.id, Status.STARTING, Status.IN_PROGRESS, **fields)
        )
        if moved:
            started = deployment.model_copy(update={**fields, "status": Status.IN_PROGRESS})
            self.notifier.deployment_changed(started, "Started")

    def _requeue(self, deployment: Deployment, why: str) -> None:
        def plan(slot: Slot) -> SlotChange | None:
            if slot.active != deployment.id:
                return None
            new_slot, superseded = requeue(slot, deployment.id)
            if superseded == deployment.id:
                detail = f"the service was busy ({why}) and a newer deployment waits"
                transition = self._transition(
                    deployment.id,
                    Status.STARTING,
                    Status.SUPERSEDED,
                    settled_at=self.clock(),
                    superseded_by=slot.pending,
                    detail=detail,
                )
                return SlotChange(new_slot, [transition], notify=[(deployment.id, "Superseded")])
            detail = f"waiting: the service is busy with another operation ({why})"
            transition = self._transition(
                deployment.id, Status.STARTING, Status.QUEUED, claimed_at=None, detail=detail
            )
            return SlotChange(new_slot, [transition], notify=[(deployment.id, "Queued")])

        self._change_slot(deployment.service, plan)

    def _settle(self, deployment: Deployment, status: Status, **fields: Any) -> None:
        """The active deployment ended: record the outcome, free the slot, start the pending one."""

        def plan(slot: Slot) -> SlotChange | None:
            current = self.ledger.deployment(deployment.id)
            if current is None or current.status != deployment.status or slot.active != deployment.id:
                return None  # someone else settled it meanwhile
            new_slot, next_id = release(slot, deployment.id, succeeded=status is Status.SUCCEEDED)
            now = self.clock()
            transitions = [
                self._transition(deployment.id, deployment.status, status, settled_at=now, **fields)
            ]
            if next_id:
                transitions.append(self._transition(next_id, Status.QUEUED, Status.STARTING, claimed_at=now))
            return SlotChange(
                new_slot, transitions, notify=[(deployment.id, _EVENT_NAMES[status])], start=next_id
            )

        self._change_slot(deployment.service, plan)

    def _start_by_id(self, deployment_id: str) -> None:
        deployment = self.ledger.deployment(deployment_id)
        if deployment is not None and deployment.status is Status.STARTING:
            self._start(deployment)

    # --- following operations ----------------------------------------------------------------------

    def handle_operation(self, operation: OperationEvent) -> None:
        """An App Runner status event: events carry no operation id, so confirm with ListOperations."""
        if operation.outcome == "started":
            return
        self.reconcile_service(operation.service, confirm_starts=False)

    def reconcile(self) -> ReconcileReport:
        """Settle what ended, recover lost starts, start what waits. One query when nothing is in flight."""
        services = sorted({deployment.service for deployment in self.ledger.in_flight()})
        report = ReconcileReport(services=len(services))
        for service in services:
            try:
                self.reconcile_service(service)
            except Exception:  # one broken service must not stop the others
                report.failures += 1
                logger.exception("reconciling a service failed", extra={"service": service})
        return report

    def reconcile_service(self, service: str, confirm_starts: bool = True) -> None:
        slot = self.ledger.slot(service)
        if slot.active is not None:
            active = self.ledger.deployment(slot.active)
            if active is None:
                raise PushdeployError(f"slot of {service} names {slot.active}, which the ledger lacks")
            if active.status is Status.IN_PROGRESS:
                self._follow(active)
            elif active.status is Status.STARTING and confirm_starts:
                self._recover_start(active)
            return
        if slot.pending is not None:
            self._promote(service)

    def _follow(self, deployment: Deployment) -> None:
        operations = self.target.list_operations(deployment.service)
        operation = next((op for op in operations if op.id == deployment.operation_id), None)
        if operation is not None:
            outcome = settled_status(operation.status)
            if outcome is not None:
                self._settle(
                    deployment,
                    outcome,
                    operation_status=operation.status,
                    detail=_outcome_detail(operation.id, operation.status),
                )
                return
        self._flag_if_stuck(deployment)

    def _flag_if_stuck(self, deployment: Deployment) -> None:
        now = self.clock()
        since = deployment.started_at or deployment.created_at
        if deployment.stuck_at is None and now - since > self.settings.stuck_after:
            minutes = int((now - since).total_seconds() // 60)
            detail = f"operation {deployment.operation_id} has not settled after {minutes} minutes"
            if self.ledger.update(
                self._transition(
                    deployment.id, deployment.status, deployment.status, stuck_at=now, detail=detail
                )
            ):
                self.notifier.deployment_changed(
                    deployment.model_copy(update={"stuck_at": now, "detail": detail}), "Stuck"
                )

    def _recover_start(self, deployment: Deployment) -> None:
        """A deployment holds its slot without an operation id: its handler crashed between calling
        App Runner and recording the answer, or App Runner was unavailable. Adopt the operation that
        started, so nothing is deployed twice; if none started, start it now."""
        claimed = deployment.claimed_at or deployment.created_at
        if self.clock() - claimed < self.settings.start_grace:
            return
        operation = self._unrecorded_operation(deployment)
        if operation is None:
            self._start(deployment)
        else:
            self._adopt(deployment, operation)

    def _unrecorded_operation(self, deployment: Deployment) -> Operation | None:
        """The first operation of the deployment's kind that started after it took the slot: only
        pushdeploy starts operations on a slot it holds, so that one is the deployment's own."""
        claimed = deployment.claimed_at or deployment.created_at
        wanted_type = "START_DEPLOYMENT" if deployment.action == "start_deployment" else "UPDATE_SERVICE"
        candidates = [
            op
            for op in self.target.list_operations(deployment.service)
            if op.type == wanted_type and op.started_at is not None and op.started_at >= claimed - _CLOCK_SKEW
        ]
        return min(candidates, key=lambda op: op.started_at or claimed, default=None)

    def _adopt(self, deployment: Deployment, operation: Operation) -> None:
        started_at = operation.started_at or self.clock()
        detail = f"adopted operation {operation.id}, whose start was not recorded"
        self._record_start(deployment, operation.id, started_at, detail, adopted=True)
        adopted = self.ledger.deployment(deployment.id)
        outcome = settled_status(operation.status)
        if adopted is not None and adopted.status is Status.IN_PROGRESS and outcome is not None:
            self._settle(
                adopted,
                outcome,
                operation_status=operation.status,
                detail=_outcome_detail(operation.id, operation.status),
            )

    def _promote(self, service: str) -> None:
        def plan(slot: Slot) -> SlotChange | None:
            new_slot, next_id = promote(slot)
            if next_id is None:
                return None
            transition = self._transition(next_id, Status.QUEUED, Status.STARTING, claimed_at=self.clock())
            return SlotChange(new_slot, [transition], start=next_id)

        self._change_slot(service, plan)

    # --- helpers ------------------------------------------------------------------------------------

    def _change_slot(self, service: str, plan: Callable[[Slot], SlotChange | None]) -> SlotChange | None:
        """Read the service's slot, plan a change, commit it conditioned on the slot's version; on a
        conflict (another Lambda moved the slot) read again and plan again. Once committed, tell the
        world and start the deployment that now holds the slot. None when `plan` finds nothing to do.
        """
        for _ in range(_MAX_SLOT_ATTEMPTS):
            slot = self.ledger.slot(service)
            change = plan(slot)
            if change is None:
                return None
            try:
                self.ledger.commit(service, slot, change.slot, change.transitions, change.created)
            except SlotConflict:
                self._back_off()
                continue
            for deployment_id, what in change.notify:
                self._notify_by_id(deployment_id, what)
            if change.start:
                self._start_by_id(change.start)
            return change
        raise PushdeployError(f"service {service} is too contended: gave up after {_MAX_SLOT_ATTEMPTS} tries")

    @staticmethod
    def _transition(deployment_id: str, from_status: Status, to_status: Status, **fields: Any) -> Transition:
        if from_status is not to_status:
            check_transition(from_status, to_status)
        return Transition(deployment_id, from_status, to_status, fields)

    def _notify_by_id(self, deployment_id: str, what: str) -> None:
        deployment = self.ledger.deployment(deployment_id)
        if deployment is not None:
            self.notifier.deployment_changed(deployment, what)

    def _back_off(self) -> None:
        self.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not cryptography


def _outcome_detail(operation_id: str, status: str) -> str:
    if status == "ROLLBACK_SUCCEEDED":
        return (
            f"operation {operation_id} ended ROLLBACK_SUCCEEDED: the new version failed and App Runner "
            "restored the previous one; it is not live"
        )
    return f"operation {operation_id} ended {status}"
