"""The deployment state machine and the per-service slot, pure: no I/O, no clock of its own.

A service has at most one *active* deployment (starting or in progress) and at most one *pending*
(queued) deployment. A newer arrival replaces the pending one, which is superseded. When the active
deployment settles, the pending one becomes active. The ledger adapter persists these transitions with
conditional writes; this module says which transitions are legal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pushdeploy.domain.changes import Change
from pushdeploy.domain.decisions import Decision


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


IN_FLIGHT: frozenset[Status] = frozenset({Status.QUEUED, Status.STARTING, Status.IN_PROGRESS})
TERMINAL: frozenset[Status] = frozenset(Status) - IN_FLIGHT

_ALLOWED: dict[Status, frozenset[Status]] = {
    # queued -> starting when its service frees up; superseded by a newer arrival.
    Status.QUEUED: frozenset({Status.STARTING, Status.SUPERSEDED, Status.ERROR}),
    # starting -> queued when App Runner is busy with an operation pushdeploy did not start.
    Status.STARTING: frozenset(
        {Status.IN_PROGRESS, Status.QUEUED, Status.SUPERSEDED, Status.ERROR, *TERMINAL}
    ),
    Status.IN_PROGRESS: frozenset({Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK, Status.ERROR}),
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


_IDS = uuid.UUID("5d1c1f0e-3a43-4b8e-9a57-8f3f1e0c2b6a")


def change_id_for(event_id: str, position: int) -> str:
    """Deterministic: a redelivered event maps to the same change, so it is recorded once."""
    return str(uuid.uuid5(_IDS, f"change|{event_id}|{position}"))


def deployment_id_for(change_id: str, rule_id: str) -> str:
    """Deterministic: a retried handler recreates the same id, and the conditional write refuses it."""
    return str(uuid.uuid5(_IDS, f"deployment|{change_id}|{rule_id}"))


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, second precision, as the ledger contract shows."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Deployment(BaseModel):
    """One deployment of one change to one service, as the ledger keeps it."""

    model_config = ConfigDict(frozen=True)

    id: str
    service: str
    rule: str
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
    change_id: str
    version: str | None = None  # the semantic version, for semver rules
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

    @property
    def artifact(self) -> str:
        return self.digest or self.commit or ""

    @classmethod
    def from_decision(
        cls, decision: Decision, change: Change, change_id: str, now: datetime, version: str | None
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
            version=version,
            created_at=now,
            settled_at=now if decision.dry_run else None,
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
        }


@dataclass(frozen=True)
class Slot:
    """A service's slot: the active deployment (starting or in progress) and the single pending one."""

    active: str | None = None
    pending: str | None = None
    version: int = 0  # optimistic concurrency: every change of the slot increments it
    # What the active and pending deployments deploy, and what was last deployed successfully: the same
    # image or commit arriving again (a duplicate event, one digest under several tags) is not redeployed.
    active_artifact: str | None = None
    pending_artifact: str | None = None
    live_artifact: str | None = None

    def holding(self, artifact: str) -> str | None:
        """Why `artifact` needs no new deployment on this service, or None if it does."""
        if artifact == self.active_artifact:
            return f"already being deployed as {self.active}"
        if artifact == self.pending_artifact:
            return f"already queued as {self.pending}"
        if artifact == self.live_artifact:
            return "already live on the service"
        return None


@dataclass(frozen=True)
class Admission:
    """What admitting a new deployment does: start it now, or queue it (superseding the old pending)."""

    slot: Slot
    start_now: bool
    superseded: str | None = None


def admit(slot: Slot, deployment_id: str, artifact: str) -> Admission:
    if slot.active is None and slot.pending is None:
        started = replace(slot, active=deployment_id, active_artifact=artifact, version=slot.version + 1)
        return Admission(started, start_now=True)
    # Latest wins: the newcomer takes the pending slot and the one it replaces is superseded.
    queued = replace(slot, pending=deployment_id, pending_artifact=artifact, version=slot.version + 1)
    return Admission(queued, start_now=False, superseded=slot.pending)


def _require_active(slot: Slot, deployment_id: str) -> None:
    if slot.active != deployment_id:
        raise InvalidTransition(f"{deployment_id} is not the active deployment of this service")


def release(slot: Slot, deployment_id: str, succeeded: bool) -> tuple[Slot, str | None]:
    """The active deployment settled: free the slot and promote the pending one.

    Returns the new slot and the id of the deployment to start next, if any.
    """
    _require_active(slot, deployment_id)
    live = slot.active_artifact if succeeded else slot.live_artifact
    freed = Slot(
        active=slot.pending,
        active_artifact=slot.pending_artifact,
        live_artifact=live,
        version=slot.version + 1,
    )
    return freed, slot.pending


def promote(slot: Slot) -> tuple[Slot, str | None]:
    """No deployment is active but one waits: make it active."""
    if slot.active is not None or slot.pending is None:
        return slot, None
    promoted = Slot(
        active=slot.pending,
        active_artifact=slot.pending_artifact,
        live_artifact=slot.live_artifact,
        version=slot.version + 1,
    )
    return promoted, slot.pending


def requeue(slot: Slot, deployment_id: str) -> tuple[Slot, str | None]:
    """App Runner refused the active deployment because the service is busy with an operation that
    pushdeploy did not start: it waits again. If a newer one already waits, the older is superseded.

    Returns the new slot and the id of the deployment superseded, if any.
    """
    _require_active(slot, deployment_id)
    if slot.pending is not None:
        waiting = replace(slot, active=None, active_artifact=None, version=slot.version + 1)
        return waiting, deployment_id
    waiting = Slot(
        pending=deployment_id,
        pending_artifact=slot.active_artifact,
        live_artifact=slot.live_artifact,
        version=slot.version + 1,
    )
    return waiting, None
