"""Changing a service's slot: one optimistic-concurrency loop for every admission, start and settlement.

A change of the slot is planned from a consistent read and committed as one DynamoDB transaction
conditioned on the slot's version, together with the status transitions and new items that go with it.
On a conflict (another Lambda moved the slot) the plan is made again from a fresh read.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from pushdeploy.adapters.ledger import Ledger, Put, SlotConflict, Transition
from pushdeploy.domain.deployments import Deployment, Status, check_transition
from pushdeploy.domain.slot import Entry, Slot, drop_outdated, promote, release, requeue
from pushdeploy.errors import PushdeployError

_MAX_SLOT_ATTEMPTS = 25
EVENT_NAMES = {
    Status.QUEUED: "Queued",
    Status.IN_PROGRESS: "Started",
    Status.SUCCEEDED: "Succeeded",
    Status.FAILED: "Failed",
    Status.ROLLED_BACK: "Rolled Back",
    Status.SUPERSEDED: "Superseded",
    Status.DRY_RUN: "Dry Run",
    Status.ERROR: "Error",
    Status.HELD: "Held",
    Status.REJECTED: "Rejected",
}


class Notifier(Protocol):
    """Tells the world: `what` is `Started`, `Succeeded`, `Rolled Back`, `Stuck`..."""

    def deployment_changed(self, deployment: Deployment, what: str) -> None: ...


class SilentNotifier:
    def deployment_changed(self, deployment: Deployment, what: str) -> None:
        return None


@dataclass(frozen=True)
class SlotChange:
    """One planned change of a service's slot: the new slot, the status transitions and new items that go
    with it (one transaction), and what to do once it is committed."""

    slot: Slot
    transitions: list[Transition] = field(default_factory=list)
    created: Deployment | None = None
    puts: list[Put] = field(default_factory=list)
    # (the deployment, what happened): the deployment as committed, or its id when only a read knows it
    notify: list[tuple[Deployment | str, str]] = field(default_factory=list)
    start: str | None = None  # the deployment that now holds the slot and must be started

    def started_as_created(self) -> Deployment | None:
        """The deployment to start when this change created it: admitted with its first attempt claimed in
        the same transaction, it needs no read and no claim before App Runner is called."""
        created = self.created
        if created is None or created.id != self.start or created.status is not Status.STARTING:
            return None
        last = created.attempt_log[-1] if created.attempt_log else None
        return created if last is not None and last.outcome is None else None


def transition(deployment_id: str, from_status: Status, to_status: Status, **fields: Any) -> Transition:
    if from_status is not to_status:
        check_transition(from_status, to_status)
    return Transition(deployment_id, from_status, to_status, fields)


class SlotKeeper:
    def __init__(
        self,
        ledger: Ledger,
        notifier: Notifier,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ledger = ledger
        self.notifier = notifier
        self.clock = clock
        self.sleep = sleep
        # Starts a deployment that now holds its slot (set by the controller: starting calls App Runner);
        # given the deployment as its admission created it (first attempt claimed), without a read.
        self.start: Callable[[str, Deployment | None], None] = lambda deployment_id, created: None
        # The gates of a queued deployment's rule that are closed now it may start (set by the controller).
        self.closed_gates: Callable[[str], tuple[str, ...]] = lambda deployment_id: ()

    def change(
        self, service: str, plan: Callable[[Slot], SlotChange | None], read: Slot | None = None
    ) -> SlotChange | None:
        """Read the service's slot, plan a change, commit it conditioned on the slot's version; on a
        conflict read again and plan again. Once committed, tell the world and start the deployment that
        now holds the slot. None when `plan` finds nothing to do.

        `read` is the slot as the caller just read it: the first plan is made from it without reading
        again (if it is stale, the commit's condition fails and the loop reads afresh).
        """
        for _ in range(_MAX_SLOT_ATTEMPTS):
            slot, read = (read, None) if read is not None else (self.ledger.slot(service), None)
            change = plan(slot)
            if change is None:
                return None
            try:
                self.ledger.commit(
                    service, slot, change.slot, change.transitions, change.created, change.puts
                )
            except SlotConflict:
                self.sleep(random.uniform(0.005, 0.05))  # noqa: S311 - jitter, not cryptography
                continue
            for deployment, what in change.notify:
                self.notify(deployment, what)
            if change.start:
                self.start(change.start, change.started_as_created())
            return change
        raise PushdeployError(f"service {service} is too contended: gave up after {_MAX_SLOT_ATTEMPTS} tries")

    def settle(self, deployment: Deployment, status: Status, read: Slot | None = None, **fields: Any) -> bool:
        """The active deployment ended: record the outcome (and a failure mark for its artifact), free the
        slot, start the pending one. False when someone else settled it first. `read`: the slot as the
        caller just read it (see `change`)."""

        def plan(slot: Slot) -> SlotChange | None:
            if slot.active_id != deployment.id:
                return None
            now = self.clock()
            live = None
            if status is Status.SUCCEEDED:
                configured = fields.get("configured") or deployment.configured or deployment.image
                operation_id = fields.get("operation_id") or deployment.operation_id
                # The slot's position: a re-push of the artifact may have moved it along the order.
                position = slot.active.position if slot.active else deployment.position
                live = Entry(deployment.id, position, configured, operation_id, since=now)
            new_slot, next_id = release(slot, deployment.id, live)
            transitions = [transition(deployment.id, deployment.status, status, settled_at=now, **fields)]
            new_slot, outdated = drop_outdated(new_slot)
            if outdated is not None:
                transitions.append(self._outdated(outdated.id, new_slot, now))
                next_id = None
            if next_id:
                new_slot, moved, next_id = self._start_next(new_slot, next_id, now)
                transitions.append(moved)
            puts = []
            if status in (Status.FAILED, Status.ROLLED_BACK) and deployment.artifact:
                puts.append(Ledger.failure_put(deployment.service, deployment, status, now))
            settled = deployment.model_copy(update={"status": status, "settled_at": now, **fields})
            notify: list[tuple[Deployment | str, str]] = [(settled, EVENT_NAMES[status])]
            return SlotChange(new_slot, transitions, puts=puts, notify=notify, start=next_id)

        return self.change(deployment.service, plan, read) is not None

    def requeue(self, deployment: Deployment, why: str) -> None:
        """App Runner is busy with an operation pushdeploy did not start: wait for it to end."""

        def plan(slot: Slot) -> SlotChange | None:
            if slot.active_id != deployment.id:
                return None
            new_slot, superseded = requeue(slot, deployment.id)
            if superseded == deployment.id:
                moved = transition(
                    deployment.id,
                    Status.STARTING,
                    Status.SUPERSEDED,
                    settled_at=self.clock(),
                    superseded_by=slot.pending_id,
                    detail=f"the service was busy ({why}) and a newer deployment waits",
                )
                return SlotChange(new_slot, [moved], notify=[(deployment.id, "Superseded")])
            detail = f"waiting: the service is busy with another operation ({why})"
            moved = transition(deployment.id, Status.STARTING, Status.QUEUED, claimed_at=None, detail=detail)
            return SlotChange(new_slot, [moved], notify=[(deployment.id, "Queued")])

        self.change(deployment.service, plan)

    def promote(self, service: str) -> None:
        def plan(slot: Slot) -> SlotChange | None:
            new_slot, next_id = promote(slot)
            if next_id is None:
                return None
            new_slot, outdated = drop_outdated(new_slot)
            if outdated is not None:
                return SlotChange(new_slot, [self._outdated(outdated.id, new_slot, self.clock())])
            new_slot, moved, started = self._start_next(new_slot, next_id, self.clock())
            return SlotChange(new_slot, [moved], start=started)

        self.change(service, plan)

    def hold_again(self, deployment: Deployment, closed: tuple[str, ...]) -> None:
        """The active deployment started nothing of its own, and a gate of its rule closed since it took
        the slot: it waits as held again, outside the slot, and the service's pending one may start."""

        def plan(slot: Slot) -> SlotChange | None:
            if slot.active_id != deployment.id:
                return None
            now = self.clock()
            new_slot, next_id = release(slot, deployment.id, None)
            detail = f"held again: {', '.join(closed)} closed before it could start; it starts when they open"
            transitions = [
                transition(
                    deployment.id,
                    Status.STARTING,
                    Status.HELD,
                    held_by=list(closed),
                    claimed_at=None,
                    detail=detail,
                )
            ]
            if next_id:
                new_slot, moved, next_id = self._start_next(new_slot, next_id, now)
                transitions.append(moved)
            return SlotChange(new_slot, transitions, notify=[(deployment.id, "Held")], start=next_id)

        self.change(deployment.service, plan)

    def _start_next(self, slot: Slot, next_id: str, now: datetime) -> tuple[Slot, Transition, str | None]:
        """The queued deployment that `slot` made active starts, unless a gate of its rule closed while
        it waited: then it is held again, outside the slot, and the slot is free."""
        closed = self.closed_gates(next_id)
        if not closed:
            return slot, transition(next_id, Status.QUEUED, Status.STARTING, claimed_at=now), next_id
        detail = f"held again: {', '.join(closed)} closed while it was queued; it starts when they open"
        held = transition(next_id, Status.QUEUED, Status.HELD, held_by=list(closed), detail=detail)
        return replace(slot, active=None), held, None

    @staticmethod
    def _outdated(deployment_id: str, slot: Slot, now: datetime) -> Transition:
        live = slot.live.id if slot.live else "?"
        detail = f"not started: what is live (deployment {live}) is as new or newer for its rule"
        return transition(
            deployment_id, Status.QUEUED, Status.SUPERSEDED, settled_at=now, superseded_by=live, detail=detail
        )

    def notify(self, deployment: Deployment | str, what: str) -> None:
        """Publish what happened to a deployment: as committed, or as read again when only its id is known."""
        known = self.ledger.deployment(deployment) if isinstance(deployment, str) else deployment
        if known is not None:
            self.notifier.deployment_changed(known, what)
