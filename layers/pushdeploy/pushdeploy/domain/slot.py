"""A service's slot, pure: at most one active deployment, one pending, and what is live.

The slot is the one thing every admission, start and settlement of a service changes, and it changes only
by a conditional write on its version, so concurrent Lambdas see each other. It carries each entry's place
in its rule's order (`pushdeploy.domain.order`), so that an admission decides "newer?" from one consistent
read: against what is live (last succeeded), in flight and pending for the same rule.

Every function here returns a new slot with the version incremented; none does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pushdeploy.domain.deployments import Deployment, InvalidTransition, iso
from pushdeploy.domain.order import Position, compare


@dataclass(frozen=True)
class Entry:
    """A deployment as its service's slot knows it."""

    id: str
    position: Position
    # Live entries only: the configuration it deployed, the operation, and since when it runs.
    configured: str | None = None
    operation_id: str | None = None
    since: datetime | None = None

    @property
    def artifact(self) -> str:
        return self.position.artifact

    @classmethod
    def of(cls, deployment: Deployment) -> Entry:
        return cls(deployment.id, deployment.position)

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position.as_record(),
            "configured": self.configured,
            "operation_id": self.operation_id,
            "since": self.since.isoformat() if self.since else None,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Entry | None:
        if not record:
            return None
        since = record.get("since")
        return cls(
            id=str(record["id"]),
            position=Position.from_record(record["position"]),
            configured=record.get("configured"),
            operation_id=record.get("operation_id"),
            since=datetime.fromisoformat(since) if since else None,
        )


@dataclass(frozen=True)
class Pause:
    """An operator paused the service's deployments from pushes."""

    reason: str
    by: str | None
    at: datetime

    def as_record(self) -> dict[str, Any]:
        return {"reason": self.reason, "by": self.by, "at": self.at.isoformat()}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Pause | None:
        if not record:
            return None
        return cls(str(record["reason"]), record.get("by"), datetime.fromisoformat(record["at"]))


@dataclass(frozen=True)
class Slot:
    active: Entry | None = None  # starting or in progress
    pending: Entry | None = None  # queued: the newest waiting deployment
    live: Entry | None = None  # the last deployment that succeeded, while App Runner still runs it
    version: int = 0  # optimistic concurrency: every change of the slot increments it
    paused: Pause | None = None

    @property
    def active_id(self) -> str | None:
        return self.active.id if self.active else None

    @property
    def pending_id(self) -> str | None:
        return self.pending.id if self.pending else None

    def bumped(self, **changes: Any) -> Slot:
        return replace(self, **changes, version=self.version + 1)


# --- admission ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    reason: str  # "not deployed: ..."
    # The same artifact pushed again under a newer position (a re-tag, a re-push): the entry that holds
    # it takes that position, so that a late push older than the re-push is still refused.
    renewed: Slot | None = None


@dataclass(frozen=True)
class CheckLive:
    """The newcomer would be refused because of what the ledger believes is live: ask App Runner first."""

    live: Entry


@dataclass(frozen=True)
class Admitted:
    slot: Slot
    start_now: bool
    superseded: str | None = None  # the pending deployment the newcomer replaced


@dataclass(frozen=True)
class Held:
    """The newcomer passed every check but waits outside the slot (`held_by` says for what)."""

    slot: Slot  # unchanged but for its version: the hold is decided on this very slot
    held_by: tuple[str, ...]


Admission = Refused | CheckLive | Admitted | Held


def admit(
    slot: Slot,
    newcomer: Entry,
    live_confirmed: bool | None = None,
    *,
    held_by: tuple[str, ...] = (),
    check_live: bool = True,
) -> Admission:
    """Admit a deployment, or say why not.

    `live_confirmed` is App Runner's answer about `slot.live`: None when not asked yet, True when it
    still runs it, False when it runs something else (a change made outside pushdeploy), in which case the
    live entry is forgotten and does not count. `held_by` names what a deployment that passes every check
    still waits for (see `holds`); `check_live` False lets an operator deploy again what is live.
    """
    refusal = _in_flight_refusal(slot, newcomer)
    if refusal:
        return Refused(refusal, _renewed(slot, newcomer, ("active", "pending")))
    live = slot.live
    # While another artifact is in flight or queued, the live one is about to be replaced: pushing it
    # again is a newer push like any other, not "already live".
    replaced = (
        any(e is not None and e.artifact != live.artifact for e in (slot.active, slot.pending))
        if live
        else False
    )
    if (
        check_live
        and live is not None
        and _blocked_by(newcomer, live)
        and not (replaced and newcomer.artifact == live.artifact)
    ):
        if live_confirmed is None:
            return CheckLive(live)
        if live_confirmed:
            return Refused(_live_refusal(newcomer, live), _renewed(slot, newcomer, ("live",)))
    base = slot if live_confirmed is not False else replace(slot, live=None)
    if held_by:
        return Held(base.bumped(), held_by)
    if base.active is None and base.pending is None:
        return Admitted(base.bumped(active=newcomer), start_now=True)
    return Admitted(base.bumped(pending=newcomer), start_now=False, superseded=base.pending_id)


def _renewed(slot: Slot, newcomer: Entry, places: tuple[str, ...]) -> Slot | None:
    for place in places:
        entry: Entry | None = getattr(slot, place)
        if (
            entry is not None
            and newcomer.artifact
            and entry.artifact == newcomer.artifact
            and entry.position.rule == newcomer.position.rule
            and _pushed_later(newcomer.position, entry.position)
        ):
            return slot.bumped(**{place: replace(entry, position=newcomer.position)})
    return None


def _pushed_later(new: Position, old: Position) -> bool:
    """The same artifact, pushed again further along its rule's order (a higher version, a later time)."""
    if new.kind != old.kind:
        return False
    if new.kind == "semver":
        return compare(new, old) > 0
    return new.pushed_at is not None and old.pushed_at is not None and new.pushed_at > old.pushed_at


def holds(slot: Slot, trigger: str) -> tuple[str, ...]:
    """What a deployment of this trigger waits for on this slot: a paused service holds what pushes (and
    sweeps) would start; an operator's own deploy, rollback or take-over goes through."""
    if slot.paused is not None and trigger in ("push", "sweep"):
        return ("pause",)
    return ()


def paused(slot: Slot, pause: Pause) -> Slot:
    return slot.bumped(paused=pause)


def resumed(slot: Slot) -> Slot:
    return slot.bumped(paused=None)


def _blocked_by(newcomer: Entry, other: Entry) -> bool:
    if not newcomer.artifact:
        return False  # a manual StartDeployment of whatever is configured: nothing to compare
    return newcomer.artifact == other.artifact or compare(newcomer.position, other.position) <= 0


def _in_flight_refusal(slot: Slot, newcomer: Entry) -> str | None:
    for entry, where in ((slot.active, "in flight"), (slot.pending, "queued")):
        if entry is None:
            continue
        if newcomer.artifact and entry.artifact == newcomer.artifact:
            what = "being deployed" if entry is slot.active else "queued"
            return f"not deployed: already {what} as {entry.id}"
        if compare(newcomer.position, entry.position) <= 0:
            return f"not deployed: {_older(newcomer, entry)}, {where} as {entry.id}"
    return None


def _live_refusal(newcomer: Entry, live: Entry) -> str:
    since = f" since {iso(live.since)}" if live.since else ""
    if newcomer.artifact == live.artifact:
        return f"not deployed: already live on the service{since} (deployment {live.id})"
    return f"not deployed: {_older(newcomer, live)}, live{since} (deployment {live.id})"


def _older(newcomer: Entry, other: Entry) -> str:
    new, old = newcomer.position, other.position
    if new.kind == "semver":
        return f"{new.version} is older than or equal to {old.version}"
    if new.kind == "chain" and old.previous == new.artifact:
        return f"commit {new.artifact[:12]} is older than {old.artifact[:12]}, which was pushed on top of it"
    return f"{new.describe()} is older than {old.describe()}"


# --- the active deployment's life ---------------------------------------------------------------------


def _require_active(slot: Slot, deployment_id: str) -> None:
    if slot.active_id != deployment_id:
        raise InvalidTransition(f"{deployment_id} is not the active deployment of this service")


def release(slot: Slot, deployment_id: str, live: Entry | None) -> tuple[Slot, str | None]:
    """The active deployment settled: free the slot and promote the pending one. `live` is the settled
    deployment's entry when it succeeded (it is now what runs), else None (what ran before still runs).

    Returns the new slot and the id of the deployment to start next, if any.
    """
    _require_active(slot, deployment_id)
    freed = slot.bumped(active=slot.pending, pending=None, live=live or slot.live)
    return freed, slot.pending_id


def promote(slot: Slot) -> tuple[Slot, str | None]:
    """No deployment is active but one waits: make it active."""
    if slot.active is not None or slot.pending is None:
        return slot, None
    return slot.bumped(active=slot.pending, pending=None), slot.pending_id


def requeue(slot: Slot, deployment_id: str) -> tuple[Slot, str | None]:
    """App Runner is busy with an operation pushdeploy did not start: the active deployment waits again.
    If a newer one already waits, the older is superseded.

    Returns the new slot and the id of the deployment superseded, if any.
    """
    _require_active(slot, deployment_id)
    if slot.pending is not None:
        return slot.bumped(active=None), deployment_id
    return slot.bumped(active=None, pending=slot.active), None


def drop_outdated(slot: Slot) -> tuple[Slot, Entry | None]:
    """The entry about to start is not newer than what is live for its rule (the live artifact was
    pushed again, further along the order, while it waited): it must not replace it. Returns the slot
    without it, and the entry dropped."""
    entry, live = slot.active, slot.live
    if entry is None or live is None or entry.position.rule != live.position.rule:
        return slot, None
    if entry.artifact and entry.artifact == live.artifact:
        # The live artifact, pushed again while another was in flight that did not stick: still live.
        renewed = (
            replace(live, position=entry.position) if _pushed_later(entry.position, live.position) else live
        )
        return replace(slot, active=None, live=renewed), entry
    if compare(entry.position, live.position) <= 0:
        return replace(slot, active=None), entry
    return slot, None


def forget_live(slot: Slot) -> Slot:
    """App Runner runs something else than the live entry (a change made outside pushdeploy)."""
    return slot.bumped(live=None) if slot.live is not None else slot
