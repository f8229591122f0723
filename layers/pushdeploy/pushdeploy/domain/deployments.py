"""The deployment state machine, pure: no I/O, no clock of its own.

A deployment is queued, starting (it holds its service's slot; App Runner is being called), in progress
(App Runner accepted it: the operation id is recorded) and then settles. The service's slot (one active,
one pending) is in `pushdeploy.domain.slot`; the ledger adapter persists both with conditional writes;
this module says which transitions are legal.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pushdeploy.domain.change_ids import ID_NAMESPACE
from pushdeploy.domain.changes import Change
from pushdeploy.domain.decisions import Decision
from pushdeploy.domain.order import OrderKind, Position


class Status(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    DRY_RUN = "dry_run"
    ERROR = "error"
    HELD = "held"  # waits outside the slot: its service is paused, or a gate has not opened
    REJECTED = "rejected"  # a gate said no


IN_FLIGHT: frozenset[Status] = frozenset({Status.QUEUED, Status.STARTING, Status.IN_PROGRESS})
WAITING: frozenset[Status] = frozenset({Status.HELD})
TERMINAL: frozenset[Status] = frozenset(Status) - IN_FLIGHT - WAITING

_ALLOWED: dict[Status, frozenset[Status]] = {
    # queued -> starting when its service frees up; superseded by a newer arrival; held again when one of
    # its rule's gates closed while it waited (a freeze began, its window ended).
    Status.QUEUED: frozenset({Status.STARTING, Status.SUPERSEDED, Status.ERROR, Status.HELD}),
    # starting -> queued when App Runner is busy with an operation pushdeploy did not start.
    # starting -> held when, called again after nothing of its own started, a window of its rule ended or
    # a freeze began meanwhile.
    Status.STARTING: frozenset(
        {Status.IN_PROGRESS, Status.QUEUED, Status.SUPERSEDED, Status.ERROR, Status.HELD, *TERMINAL}
    ),
    Status.IN_PROGRESS: frozenset({Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK, Status.ERROR}),
    # held -> admitted when its service resumes (or its gates open); superseded by a newer one.
    Status.HELD: frozenset({Status.QUEUED, Status.STARTING, Status.SUPERSEDED, Status.REJECTED}),
}


class InvalidTransition(ValueError):
    pass


def check_transition(current: Status, new: Status) -> None:
    if new not in _ALLOWED.get(current, frozenset()):
        raise InvalidTransition(f"a {current} deployment cannot become {new}")


# App Runner operation status -> settled deployment status; None while the operation still runs.
_OPERATION_OUTCOMES: dict[str, Status | None] = {
    "PENDING": None,
    "IN_PROGRESS": None,
    "ROLLBACK_IN_PROGRESS": None,
    "SUCCEEDED": Status.SUCCEEDED,
    "FAILED": Status.FAILED,
    "ROLLBACK_FAILED": Status.FAILED,
    # The deployment failed and App Runner restored the previous version: the new one is NOT live.
    "ROLLBACK_SUCCEEDED": Status.ROLLED_BACK,
}


def settled_status(operation_status: str) -> Status | None:
    """The deployment status an App Runner operation status settles to, or None while it runs."""
    if operation_status not in _OPERATION_OUTCOMES:
        raise ValueError(f"unknown App Runner operation status {operation_status!r}")
    return _OPERATION_OUTCOMES[operation_status]


def deployment_id_for(change_id: str, rule_id: str) -> str:
    """Deterministic: a retried handler recreates the same id, and the conditional write refuses it."""
    return str(uuid.uuid5(ID_NAMESPACE, f"deployment|{change_id}|{rule_id}"))


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, second precision, as the ledger contract shows."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


AttemptOutcome = Literal["started", "refused", "unknown"]
Trigger = Literal["push", "manual", "rollback", "take-over", "sweep"]
HoldReason = Literal["pause", "scan", "window", "freeze", "approval", "promotion"]
GATE_HOLDS: frozenset[str] = frozenset({"scan", "window", "freeze", "approval", "promotion"})


def gated(held_by: tuple[str, ...] | list[str]) -> bool:
    """Whether a hold waits for a gate (then the reconciler looks at it on every tick), not only a pause."""
    return any(reason in GATE_HOLDS for reason in held_by)


class Attempt(BaseModel):
    """One call to App Runner for a deployment, recorded *before* the call is made.

    `until` and `outcome` are filled in when the call returns: `started` (an operation id came back),
    `refused` (App Runner certainly did nothing: busy, throttled, invalid) or `unknown` (a timeout or a
    5xx: it may have acted). An attempt never closed is a call whose Lambda died.
    """

    model_config = ConfigDict(frozen=True)

    at: datetime
    until: datetime | None = None
    outcome: AttemptOutcome | None = None

    def may_have_started(self) -> bool:
        return self.outcome in (None, "unknown")

    def window(self, longest_call: timedelta, skew: timedelta) -> tuple[datetime, datetime]:
        """When an operation this attempt started can have started."""
        end = self.until if self.until is not None else self.at + longest_call
        return self.at - skew, end + skew


class Deployment(BaseModel):
    """One deployment of one change to one service, as the ledger keeps it."""

    model_config = ConfigDict(frozen=True)

    id: str
    service: str
    rule: str | None = None  # None for a deployment no rule made (an operator's)
    action: Literal["start_deployment", "update_service"]
    status: Status
    image: str | None = None
    tag: str | None = None
    digest: str | None = None
    branch: str | None = None
    commit: str | None = None
    source: str
    repository: str
    account: str | None = None
    region: str | None = None
    operation_id: str | None = None
    operation_status: str | None = None
    reason: str
    change_id: str | None = None  # the push it deploys; None for an operator's deployment
    actor: str | None = None  # the IAM identity of the operator who asked; None for a push
    trigger: Trigger = "push"
    held_by: tuple[HoldReason, ...] = ()  # what a held deployment waits for
    # What its rule's gates were told (`scan`, `approval` records, see pushdeploy.domain.gates).
    gate_facts: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None  # the semantic version, for semver rules
    order: OrderKind = "time"  # how the rule orders its pushes (see pushdeploy.domain.order)
    pushed_at: datetime | None = None
    previous_commit: str | None = None  # the commit the branch pointed to before this push
    # What App Runner was configured with when it was called: the image identifier (for UpdateService,
    # the pinned image) or a code service's `<repository url>#<branch>`.
    configured: str | None = None
    created_at: datetime
    claimed_at: datetime | None = None  # when it took the service's slot (status starting)
    started_at: datetime | None = None  # when App Runner accepted the operation
    settled_at: datetime | None = None
    stuck_at: datetime | None = None
    superseded_by: str | None = None
    detail: str | None = None  # what happened last, in words (operation outcome, App Runner's refusal...)
    # True when the operation was found by the reconciler rather than recorded when it was started (the
    # handler died between calling App Runner and writing the answer): proof that nothing ran twice.
    adopted: bool = False
    attempts: int = 0  # calls made to App Runner for it
    attempt_log: tuple[Attempt, ...] = ()

    @property
    def position(self) -> Position:
        return Position(
            rule=self.rule or f"operator:{self.id}",  # an operator's deployment is ordered against nothing
            kind=self.order,
            artifact=self.artifact,
            version=self.version,
            pushed_at=self.pushed_at,
            previous=self.previous_commit,
        )

    @property
    def kind_is_image(self) -> bool:
        return self.source == "ecr"

    @property
    def last_attempt_at(self) -> datetime | None:
        return self.attempt_log[-1].at if self.attempt_log else None

    @property
    def artifact(self) -> str:
        return self.digest or self.commit or ""

    @classmethod
    def from_decision(
        cls,
        decision: Decision,
        change: Change,
        change_id: str,
        now: datetime,
        order: OrderKind,
        trigger: Trigger = "push",
    ) -> Deployment:
        return cls(
            id=deployment_id_for(change_id, decision.rule),
            service=decision.service,
            rule=decision.rule,
            action=decision.action,  # only deploying decisions get here; pydantic refuses "none"
            status=Status.DRY_RUN if decision.dry_run else Status.QUEUED,
            image=decision.image,
            tag=change.tag,
            digest=change.digest,
            branch=change.branch,
            commit=change.commit,
            source=change.source,
            repository=change.repository,
            account=change.account,
            region=change.region,
            reason=decision.reason,
            change_id=change_id,
            version=change.tag if order == "semver" else None,
            order=order,
            # A push time ahead of now (a committer's clock, a forged date) would block every later push.
            pushed_at=min(change.pushed_at, now) if change.pushed_at else None,
            previous_commit=change.previous_commit,
            created_at=now,
            settled_at=now if decision.dry_run else None,
            trigger=trigger,
        )

    def public_view(self) -> dict[str, Any]:
        """The ledger contract's JSON object (DESIGN 4.4), then the extra fields."""
        return {
            "id": self.id,
            "service": self.service,
            "rule": self.rule,
            "action": self.action,
            "status": str(self.status),
            "image": self.image,
            "tag": self.tag,
            "digest": self.digest,
            "branch": self.branch,
            "commit": self.commit,
            "source": self.source,
            "operation_id": self.operation_id,
            "reason": self.reason,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "settled_at": iso(self.settled_at),
            "repository": self.repository,
            "account": self.account,
            "region": self.region,
            "operation_status": self.operation_status,
            "version": self.version,
            "superseded_by": self.superseded_by,
            "stuck_at": iso(self.stuck_at),
            "detail": self.detail,
            "adopted": self.adopted,
            "change_id": self.change_id,
            "actor": self.actor,
            "trigger": self.trigger,
            "held_by": list(self.held_by),
            "gates": self.gate_facts,
            "configured": self.configured,
            "attempts": self.attempts,
        }
