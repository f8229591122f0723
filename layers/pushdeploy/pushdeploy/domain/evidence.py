"""Whose operation is it? Deciding, from App Runner's own record, whether an operation is a deployment's.

App Runner's operations carry no caller and no client token: ListOperations gives an id, a type, a status
and times. A deployment records every call attempt *before* making it, so an operation of its type that
started inside one of its attempt windows can be its own: the call reached App Runner, then the Lambda
died or the answer was lost. Only then is it adopted, and an UpdateService that succeeded must also have
left the deployment's image configured. Every other operation is a change made outside pushdeploy.
Pure: the caller lists the operations and, when asked, describes the service.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pushdeploy.domain.deployments import Deployment

DEPLOY_TYPES = frozenset({"START_DEPLOYMENT", "UPDATE_SERVICE"})
RUNNING_STATUSES = frozenset({"PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS"})


@dataclass(frozen=True, slots=True)
class Operation:
    """One App Runner operation as ListOperations reports it; times are UTC."""

    id: str
    type: str
    status: str
    target_arn: str
    started_at: datetime | None
    ended_at: datetime | None
    updated_at: datetime | None

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATUSES


@dataclass(frozen=True)
class NotStarted:
    """No operation started in any attempt window: nothing the deployment's calls did is running."""


@dataclass(frozen=True)
class Unconfirmed:
    """An UpdateService started in an attempt window is still running: its image shows only when it ends."""

    operation: Operation


@dataclass(frozen=True)
class Own:
    operation: Operation
    evidence: str  # in words, for the ledger


@dataclass(frozen=True)
class NotOwn:
    """An operation started in an attempt window but left another configuration: someone else's."""

    operation: Operation
    evidence: str


Verdict = NotStarted | Unconfirmed | Own | NotOwn


def wanted_type(deployment: Deployment) -> str:
    return "START_DEPLOYMENT" if deployment.action == "start_deployment" else "UPDATE_SERVICE"


def in_windows(
    deployment: Deployment, operation: Operation, longest_call: timedelta, skew: timedelta
) -> bool:
    """Whether the operation started while one of the deployment's calls may have been under way."""
    if operation.started_at is None:
        return False
    for attempt in deployment.attempt_log:
        if not attempt.may_have_started():
            continue
        opened, closed = attempt.window(longest_call, skew)
        if opened <= operation.started_at <= closed:
            return True
    return False


def own_operation(
    deployment: Deployment,
    operations: Sequence[Operation],
    configured: Callable[[], str],
    longest_call: timedelta,
    skew: timedelta,
    outside: frozenset[str] = frozenset(),
) -> Verdict:
    """The deployment's own operation among `operations` (newest first), judged by the evidence above.

    `configured` describes the service (called only for an UpdateService that succeeded). `outside` are
    the operations already found to be someone else's (running when one of its calls was answered
    "busy", say): timing alone cannot make them its own, since clocks agree only to within `skew`.
    """
    kind = wanted_type(deployment)
    candidates = [
        op
        for op in operations
        if op.type == kind and op.id not in outside and in_windows(deployment, op, longest_call, skew)
    ]
    if not candidates:
        return NotStarted()
    if kind == "START_DEPLOYMENT":
        # StartDeployment leaves no configuration to check: the earliest, closest to the call, is taken.
        earliest = min(candidates, key=lambda op: op.started_at or datetime.min)
        return Own(earliest, _TIMING.format(earliest.id))
    # The newest first: an earlier window may hold someone else's operation that a later call of this
    # deployment's then followed (its own operation, which must not be started a third time).
    candidates.sort(key=lambda op: op.started_at or datetime.min, reverse=True)
    running = [op for op in candidates if op.running]
    if running:
        # App Runner runs one operation at a time, so a running one is the newest, even where start
        # times, listed to the second, tie. Its image shows only when it ends.
        return Unconfirmed(running[0])
    succeeded = [op for op in candidates if op.status == "SUCCEEDED"]
    ended_otherwise = [op for op in candidates if op.status != "SUCCEEDED"]
    if succeeded:
        # Proof beats timing: a later failed operation in a window (someone else's, say) must not hide
        # the deployment's own that succeeded.
        judged = _judge_succeeded(deployment, succeeded, operations, configured())
        if isinstance(judged, Own) or not ended_otherwise:
            return judged
    return _on_timing_alone(deployment, ended_otherwise)


_TIMING = "operation {} started inside the window of one of its App Runner calls"


def _judge_succeeded(
    deployment: Deployment,
    succeeded: Sequence[Operation],
    operations: Sequence[Operation],
    configured: str,
) -> Own | NotOwn:
    """Of UpdateServices that succeeded (newest first), the deployment's own is the one after which no
    other succeeded while App Runner is configured with the deployment's image; else the earliest, the
    one that took the service from this deployment, is someone else's."""
    for operation in succeeded:
        # Only a later UpdateService can have changed the image since (StartDeployment redeploys it).
        later_update = any(
            op.type == "UPDATE_SERVICE" and op.status == "SUCCEEDED" and _after(op, operation)
            for op in operations
        )
        if not later_update and configured == deployment.image:
            return Own(
                operation, f"{_TIMING.format(operation.id)} and App Runner is configured with its image"
            )
    return NotOwn(succeeded[-1], f"it left App Runner configured with {configured}, not {deployment.image}")


def _on_timing_alone(deployment: Deployment, ended_otherwise: Sequence[Operation]) -> Own:
    """An UpdateService that failed or rolled back leaves the old image configured: there is nothing more
    to check. App Runner starts an operation within moments of the call that asks for it, while a window
    whose end went unrecorded stays open for the longest call: the operation that started closest to the
    start of one of its calls is taken (someone else's, later in that window, is not)."""
    operation = min(ended_otherwise, key=lambda op: _from_nearest_call(deployment, op))
    timing = _TIMING.format(operation.id)
    return Own(operation, f"{timing}; it ended {operation.status}, so the image cannot be checked")


def _from_nearest_call(deployment: Deployment, operation: Operation) -> timedelta:
    started = operation.started_at or datetime.max.replace(tzinfo=UTC)
    calls = [attempt.at for attempt in deployment.attempt_log if attempt.may_have_started()]
    return min((abs(started - at) for at in calls), default=timedelta.max)


def _after(op: Operation, other: Operation) -> bool:
    return op.started_at is not None and other.started_at is not None and op.started_at > other.started_at
