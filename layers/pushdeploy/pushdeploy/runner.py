"""Calling App Runner for the deployment that holds a service's slot, and following the operation.

Every call is safe to repeat and to race:
- an attempt is recorded (conditionally on the attempt count) *before* App Runner is called, so two
  invocations never both call for one deployment, and a call whose answer was lost leaves a time window;
- a "busy" answer, or a deployment found without an operation id, is checked against those windows
  (`pushdeploy.domain.evidence`) before anything is started again: an operation is adopted only on
  evidence, and any other is recorded as a change made outside pushdeploy;
- a start whose ledger write lost a race re-reads, and adopts when the operation is not recorded yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from pushdeploy.adapters.apprunner import (
    DeployTarget,
    Started,
    TargetBusy,
    TargetGone,
    TargetRejected,
    TargetUnavailable,
)
from pushdeploy.adapters.ledger import Ledger
from pushdeploy.domain.change_ids import UNDEPLOYED_CHANGE_TTL
from pushdeploy.domain.deployments import Attempt, AttemptOutcome, Deployment, Status, settled_status
from pushdeploy.domain.evidence import (
    NotOwn,
    NotStarted,
    Operation,
    Own,
    Unconfirmed,
    own_operation,
    wanted_type,
)
from pushdeploy.domain.slot import Slot
from pushdeploy.slots import Notifier, SlotKeeper, transition

logger = Logger(service="pushdeploy", child=True)

# App Runner's and Lambda's clocks are NTP-synchronised; allow this much disagreement when matching an
# operation's start time to a call's window.
CLOCK_SKEW = timedelta(seconds=2)


@dataclass(frozen=True)
class Settings:
    # An operation running longer than this is flagged stuck (App Runner maintenance can take minutes).
    stuck_after: timedelta = timedelta(minutes=60)
    # A deployment may sit in `starting` this long after its last call to App Runner (its handler may
    # still be calling) before the reconciler looks for the operation it started, or calls again. Longer
    # than any function's timeout, so the call it waits for has certainly ended.
    start_grace: timedelta = timedelta(minutes=2)
    # The longest one call to App Runner can take, retries included (bounded by the function timeout):
    # the window of a call whose end was never recorded.
    longest_call: timedelta = timedelta(seconds=90)
    # Changes that deployed nothing expire from the ledger after this long.
    undeployed_change_ttl: timedelta = UNDEPLOYED_CHANGE_TTL


class Runner:
    def __init__(
        self,
        ledger: Ledger,
        target: DeployTarget,
        slots: SlotKeeper,
        notifier: Notifier,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.ledger = ledger
        self.target = target
        self.slots = slots
        self.notifier = notifier
        self.settings = settings
        self.clock = clock

    # --- starting ----------------------------------------------------------------------------------

    def start_by_id(self, deployment_id: str, claimed: Deployment | None = None) -> None:
        """Start the deployment that now holds its slot. `claimed`: the deployment as its admission just
        created it, its first attempt claimed in that transaction, so App Runner is called at once."""
        if claimed is not None:
            self._call_claimed(claimed)
            return
        deployment = self.ledger.deployment(deployment_id)
        if deployment is not None and deployment.status is Status.STARTING:
            self.start(deployment)

    def start(self, deployment: Deployment) -> None:
        """Call App Runner for a deployment that holds its slot, once: the attempt is claimed first."""
        attempt = Attempt(at=self.clock())
        if not self.ledger.claim_attempt(deployment, attempt):
            return  # another invocation called (or is calling) App Runner for it
        claimed = deployment.model_copy(
            update={"attempts": deployment.attempts + 1, "attempt_log": (*deployment.attempt_log, attempt)}
        )
        self._call_claimed(claimed)

    def _call_claimed(self, claimed: Deployment) -> None:
        """Call App Runner for a deployment whose attempt this invocation claimed; record what came of it."""
        try:
            started = self._call(claimed)
        except TargetBusy as busy:
            self._close_attempt(claimed, "unknown" if busy.maybe_started else "refused", str(busy))
            self._after_busy(claimed.id, str(busy))
            return
        except TargetRejected as rejected:
            self._close_attempt(claimed, "refused", str(rejected))
            self._settle_refused(claimed, rejected)
            return
        except TargetUnavailable as unavailable:
            outcome: AttemptOutcome = "unknown" if unavailable.maybe_started else "refused"
            self._close_attempt(claimed, outcome, f"App Runner unavailable, will retry: {unavailable}")
            logger.warning(
                "App Runner unavailable", extra={"deployment": claimed.id, "error": str(unavailable)}
            )
            return
        closed = self._closed_log(claimed, "started")
        fields = {"attempt_log": closed, "configured": started.configured}
        if claimed.action == "start_deployment" and claimed.kind_is_image:
            fields["image"] = started.configured
        if not self._record_start(claimed, started.operation_id, self.clock(), "App Runner accepted", fields):
            self._lost_start_race(claimed, started.operation_id)

    def _call(self, deployment: Deployment) -> Started:
        if deployment.trigger == "take-over":
            return self.target.take_over(deployment.service)
        return self.target.deploy(deployment.service, deployment.action, deployment.image)

    def _after_busy(self, deployment_id: str, why: str) -> None:
        """The service runs an operation. If one of this deployment's own calls may have started it, that
        is the evidence to weigh; otherwise it is someone else's, and the deployment waits for it."""
        deployment = self.ledger.deployment(deployment_id)
        if deployment is None or deployment.status is not Status.STARTING:
            return
        verdict = self._verdict_unless_gone(deployment)
        if verdict is None:
            return
        if isinstance(verdict, Own):
            self._adopt(deployment, verdict.operation, verdict.evidence)
            return
        if isinstance(verdict, Unconfirmed):
            return  # its image shows when it ends; the reconciler looks again then
        if isinstance(verdict, NotOwn):
            self.record_outside(deployment.service, verdict.operation, verdict.evidence)
        running = self._running_operation(deployment.service)
        if running is not None:
            self.record_outside(deployment.service, running, "it was running when pushdeploy called")
        self.slots.requeue(deployment, why)

    def _closed_log(self, deployment: Deployment, outcome: AttemptOutcome) -> list[dict[str, Any]]:
        *earlier, last = deployment.attempt_log
        closed = last.model_copy(update={"until": self.clock(), "outcome": outcome})
        return [attempt.model_dump() for attempt in (*earlier, closed)]

    def _close_attempt(self, deployment: Deployment, outcome: AttemptOutcome, detail: str) -> None:
        fields = {"attempt_log": self._closed_log(deployment, outcome), "detail": detail}
        self.ledger.update(transition(deployment.id, Status.STARTING, Status.STARTING, **fields))

    def _record_start(
        self,
        deployment: Deployment,
        operation_id: str,
        started_at: datetime,
        detail: str,
        extra: dict[str, Any],
        adopted: bool = False,
    ) -> bool:
        fields = {
            "operation_id": operation_id,
            "started_at": started_at,
            "operation_status": "IN_PROGRESS",
            "detail": detail,
            "adopted": adopted,
            **extra,
        }
        moved = transition(deployment.id, Status.STARTING, Status.IN_PROGRESS, **fields)
        # As the transition leaves it (nothing else writes a starting deployment while its call runs: the
        # start grace outlasts any call), for the slot to keep while it is in progress.
        started = Deployment.model_validate(
            {**deployment.model_dump(), "status": Status.IN_PROGRESS, **fields}
        )
        recorded = self.ledger.record_start(moved, started)
        if recorded is None:
            return False
        self.notifier.deployment_changed(recorded, "Started")
        return True

    def _lost_start_race(self, deployment: Deployment, operation_id: str) -> None:
        """App Runner accepted our call but the deployment moved on meanwhile (another invocation adopted
        the operation, or settled it): re-read, and keep the record true."""
        current = self.ledger.deployment(deployment.id)
        if current is not None and current.operation_id == operation_id:
            return
        logger.error(
            "App Runner started an operation for a deployment that had moved on",
            extra={"deployment": deployment.id, "operation": operation_id},
        )
        status = current.status if current else "missing"
        self._record_outside_id(
            deployment.service,
            operation_id,
            f"started by pushdeploy for deployment {deployment.id}, which was {status} by then",
        )

    def _settle_refused(self, deployment: Deployment, rejected: TargetRejected) -> None:
        if isinstance(rejected, TargetGone):
            detail = f"the service cannot be deployed to any more: {rejected}"
        else:
            detail = f"App Runner refused the deployment: {rejected}"
        self.slots.settle(deployment, Status.ERROR, detail=detail)

    # --- an unrecorded start ----------------------------------------------------------------------

    def recover_start(self, deployment: Deployment) -> None:
        """A deployment holds its slot without an operation id: its handler died around the call, or App
        Runner was unavailable. Adopt the operation it started, on evidence, so nothing is deployed twice;
        if none started, call again."""
        moments = (deployment.last_attempt_at, deployment.claimed_at, deployment.created_at)
        since = max(moment for moment in moments if moment is not None)
        if self.clock() - since < self.settings.start_grace:
            return
        verdict = self._verdict_unless_gone(deployment)
        if verdict is None:
            return
        if isinstance(verdict, Own):
            self._adopt(deployment, verdict.operation, verdict.evidence)
        elif isinstance(verdict, Unconfirmed):
            self.flag_if_stuck(deployment)
        else:
            if isinstance(verdict, NotOwn):
                self.record_outside(deployment.service, verdict.operation, verdict.evidence)
            # Nothing of its own started: before calling again, a window of its rule may have ended or a
            # freeze begun since it took the slot. Then it waits as held, and the slot is free.
            closed = self.slots.closed_gates(deployment.id)
            if closed:
                self.slots.hold_again(deployment, closed)
                return
            self.start(deployment)

    def _verdict_unless_gone(self, deployment: Deployment) -> NotStarted | Unconfirmed | Own | NotOwn | None:
        """The evidence about the deployment's operation; None once a vanished service settled it."""
        try:
            return self._verdict(deployment)
        except TargetGone as gone:
            self.slots.settle(deployment, Status.ERROR, detail=f"the service no longer exists: {gone}")
            return None

    def _verdict(self, deployment: Deployment) -> NotStarted | Unconfirmed | Own | NotOwn:
        if not any(attempt.may_have_started() for attempt in deployment.attempt_log):
            return NotStarted()
        first_call = deployment.attempt_log[0].at - CLOCK_SKEW
        operations = self.target.list_operations(deployment.service, since=first_call)
        deploys = [op.id for op in operations if op.type == wanted_type(deployment)]
        return own_operation(
            deployment,
            operations,
            lambda: self.target.describe(deployment.service).configured,
            self.settings.longest_call,
            CLOCK_SKEW,
            outside=self.ledger.recorded_outside(deployment.service, deploys),
        )

    def _adopt(self, deployment: Deployment, operation: Operation, evidence: str) -> None:
        extra: dict[str, Any] = {"configured": deployment.image}
        if deployment.action == "start_deployment":
            # What the service is configured with now is what the operation deployed (nothing else
            # could have changed it while the deployment held the slot).
            try:
                extra["configured"] = self.target.describe(deployment.service).configured
            except TargetGone:
                extra["configured"] = None  # following the operation settles it as an error
            if deployment.kind_is_image:
                extra["image"] = extra["configured"]
        started_at = operation.started_at or self.clock()
        detail = f"adopted operation {operation.id}, whose start was not recorded: {evidence}"
        self._record_start(deployment, operation.id, started_at, detail, extra, adopted=True)
        adopted = self.ledger.deployment(deployment.id)
        if (
            adopted is not None
            and adopted.status is Status.IN_PROGRESS
            and adopted.operation_id == operation.id
        ):
            self._settle_if_ended(adopted, operation)

    def _running_operation(self, service: str) -> Operation | None:
        return next((op for op in self.target.list_operations(service) if op.running), None)

    def record_outside(self, service: str, operation: Operation, why: str) -> None:
        record = {
            "operation_id": operation.id,
            "type": operation.type,
            "status": operation.status,
            "started_at": operation.started_at,
            "recorded_at": self.clock(),
            "note": f"an operation pushdeploy did not start: {why}",
        }
        if self.ledger.record_outside(service, record):
            logger.warning("operation made outside pushdeploy", extra={"service": service, **record})

    def _record_outside_id(self, service: str, operation_id: str, why: str) -> None:
        operation = next((op for op in self.target.list_operations(service) if op.id == operation_id), None)
        if operation is None:
            operation = Operation(operation_id, "UNKNOWN", "UNKNOWN", service, None, None, None)
        self.record_outside(service, operation, why)

    # --- following ---------------------------------------------------------------------------------

    def follow(self, deployment: Deployment, read: Slot | None = None) -> None:
        """Settle an in-progress deployment whose operation ended; flag it when it runs too long. `read`:
        its service's slot as the caller just read it (settling plans from it first)."""
        try:
            operations = self.target.list_operations(deployment.service, since=deployment.started_at)
        except TargetGone as gone:
            self.slots.settle(deployment, Status.ERROR, detail=f"the service no longer exists: {gone}")
            return
        operation = next((op for op in operations if op.id == deployment.operation_id), None)
        if operation is not None:
            self._settle_if_ended(deployment, operation, read)
            if settled_status(operation.status) is not None:
                return
        else:
            try:
                status = self.target.describe(deployment.service).status
            except TargetGone as gone:
                self.slots.settle(deployment, Status.ERROR, detail=f"the service no longer exists: {gone}")
                return
            if status in ("DELETED", "CREATE_FAILED", "DELETE_FAILED"):
                detail = f"the service is {status}; operation {deployment.operation_id} is gone with it"
                self.slots.settle(deployment, Status.ERROR, detail=detail)
                return
        self.flag_if_stuck(deployment)

    def _settle_if_ended(
        self, deployment: Deployment, operation: Operation, read: Slot | None = None
    ) -> None:
        outcome = settled_status(operation.status)
        if outcome is not None:
            detail = _outcome_detail(operation.id, operation.status)
            self.slots.settle(deployment, outcome, read, operation_status=operation.status, detail=detail)

    def flag_if_stuck(self, deployment: Deployment) -> None:
        now = self.clock()
        since = deployment.started_at or deployment.last_attempt_at or deployment.created_at
        if deployment.stuck_at is not None or now - since <= self.settings.stuck_after:
            return
        minutes = int((now - since).total_seconds() // 60)
        what = f"operation {deployment.operation_id}" if deployment.operation_id else "the deployment's start"
        detail = f"{what} has not settled after {minutes} minutes"
        if deployment.status is Status.IN_PROGRESS:
            self.ledger.forget_active(deployment.service, deployment.id)  # its copy would lack the flag
        moved = transition(deployment.id, deployment.status, deployment.status, stuck_at=now, detail=detail)
        if self.ledger.update(moved):
            self.notifier.deployment_changed(
                deployment.model_copy(update={"stuck_at": now, "detail": detail}), "Stuck"
            )


def _outcome_detail(operation_id: str, status: str) -> str:
    if status == "ROLLBACK_SUCCEEDED":
        return (
            f"operation {operation_id} ended ROLLBACK_SUCCEEDED: the new version failed and App Runner "
            "restored the previous one; it is not live"
        )
    return f"operation {operation_id} ended {status}"
