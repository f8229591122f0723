"""The simulation engine: runs schedules through the real handlers, episode by episode, checks the
invariants, counts faults, and shrinks a failing schedule to a short one.

Lambda as modelled here:
- A push function (image_pushed, commit_pushed) or the operation function invoked by EventBridge that
  crashes or fails is retried by Lambda up to 2 times, by a later `retry` step (or at quiescence). The
  last attempt never gets an injected crash (a crash there would only move the event to the dead-letter
  queue, which is not what is under test); a handler that fails on its own three times does dead-letter
  it, and the push then shows up as never processed.
- A crash is a `SimulatedCrash` (a BaseException): the invocation stops where it is, as after a real
  timeout, leaving what it wrote. Lambda's retry runs the event again from the start: the push functions
  keep no idempotency records, so it finds the change's record (then answers from it) or the crashed
  run's deployments and decisions in the ledger.
- An overlapping invocation of the same event (a redelivery while the first still runs) runs to its end
  inside the other's AWS call, as nothing serializes two deliveries in production: both decide the same
  change, and the ledger's conditional writes (the deployment, the admission, the change's record) must
  keep it to one deployment and one record.
- A crashed reconciler run just ends; the next tick runs. So does a crashed sweep (the sweeper, on its
  own schedule): the next one looks again from the marks the crashed one did not move.
- Every image push lands in ECR. Its event may be delivered, held back and delivered late, or lost at
  the source (`lost_push`): then only a sweep can find it. Quiescence sweeps, advances time past the
  sweep's grace period and sweeps again: a moved tag or branch head is looked up once a sweep has seen
  it and the grace period has passed since.
- Concurrency is an overlap: inside one invocation's AWS call (a hook point), another whole invocation
  runs first (a second reconciler run, an App Runner status event, the same push or scan event again,
  another push held back, a sweep, or `rules apply`), as another Lambda container would: with its own
  controller, on the same AWS. A `redeliver` step delivers a push's or a scan's event again, later.
- A container keeps the rules it read until their version moves. `rules_applied` (a step, or an overlap:
  then between a push's read of its rules and its ledger read) moves every source's version, as `rules
  apply` does after it rewrote their rules; the rules stay the same, so every check keeps its meaning,
  while every container's cached rules, and the one a push just read, must be read again.

Gates (DESIGN 4.7): an episode's plan draws the gates of some of its rules (`gating`), always leaving
one rule ungated; `gate_steps` runs the steps that open and close them (scans, operators' approvals and
rejections, time across window and freeze edges), and quiescence ends every hold that can end.

Each step is checked once it has run; at the end of the schedule comes quiescence (no more faults,
everything held back delivered, time advanced, swept past the last push and the reconciler run until
nothing is in flight) and the final checks. A violation is counted once per episode (invariant and
detail).
"""

from __future__ import annotations

import contextlib
import io
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pushdeploy.domain import change_ids as pushdeploy_change_ids
from pushdeploy.domain.changes import Change
from tests.integration.harness import ACCOUNT, REGION
from tests.simulation.gate_invariants import GateChecker
from tests.simulation.gate_steps import GateSteps
from tests.simulation.gating import NO_GATES, Gating, plan_gating
from tests.simulation.hooks import Hooks, SimulatedCrash
from tests.simulation.invariants import IN_FLIGHT, Checker, Push, Snapshot, Violation
from tests.simulation.schedule import (
    GATE_STEPS,
    IMAGE_ROLES,
    ROLES,
    Fault,
    Step,
    commit_of,
    digest_of,
    generate,
)
from tests.simulation.world import (
    CODE_REPOSITORY,
    IMAGE_REPOSITORY,
    LEDGER_TABLE,
    START_GRACE_SECONDS,
    SWEEP_GRACE_SECONDS,
    World,
    handler_clients,
    separate_container,
)

FAULT_KINDS = (
    "crash_before_dynamodb",
    "crash_after_dynamodb",
    "crash_before_apprunner",
    "crash_after_apprunner",
    "overlap",
    "throttle",
    "error5xx",
    "fail",
    "lost_event",
    "lost_push",
    "duplicate",
    "late",
    "manual_op",
    "deleted_service",
    "vanished_service",
)
_SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event"}
_PUSH_FUNCTIONS = frozenset({"image_pushed", "commit_pushed"})  # a push's or a scan's event


class _Discard(io.TextIOBase):
    """Where the functions' standard output goes: their metrics (EMF lines), one per invocation."""

    def write(self, text: str) -> int:
        return len(text)


_DISCARD = _Discard()
_MAX_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first attempt and 2 retries
_QUIESCENCE_ROUNDS = 40


@dataclass(frozen=True)
class Delivery:
    """One EventBridge delivery of an event to a function, and how many attempts Lambda made so far."""

    function: str
    event: dict[str, Any]
    attempt: int = 0
    push: str | None = None  # the event id, for a push


@dataclass
class EpisodeResult:
    steps: int
    violations: list[tuple[int, Violation]]  # (step index, or -1 at quiescence; the violation)
    counts: Counter[str]
    handler_errors: Counter[str]
    trace: list[str] = field(default_factory=list)  # App Runner calls, in order (determinism checks)


class Episode:
    """One schedule on one fresh cloud."""

    def __init__(
        self,
        schedule: list[Step],
        roles: tuple[str, ...],
        uuid_seed: str,
        stop_on: str | None = None,
        gating: Gating = NO_GATES,
    ) -> None:
        self.schedule = schedule
        self.roles = roles
        self.uuid_seed = uuid_seed
        self.gating = gating
        self.stop_on = stop_on  # shrinking: stop at the first violation of this invariant
        self.counts: Counter[str] = Counter()
        self.handler_errors: Counter[str] = Counter()
        self.pushes: dict[str, Push] = {}
        self.deleted: set[str] = set()
        self.held: list[Delivery] = []  # push and scan events held back, delivered late
        self.retries: list[Delivery] = []  # failed attempts Lambda will retry
        self.held_events: list[dict[str, Any]] = []  # App Runner status events delivered late
        self.sent: dict[str, Delivery] = {}  # push and scan events delivered at least once (redelivery)
        self.running: list[Delivery] = []  # the deliveries being invoked, outermost first
        self.to_check: list[Push] = []  # answered pushes whose records to check
        self.to_peek: list[Push] = []  # failed attempts whose records (if written) to remember
        self.by_swept: dict[str, list[Push]] = {}  # a sweep's change id -> the pushes of its tag and artifact
        self.answered_swept: set[str] = set()  # the sweep change ids of pushes whose events were answered
        self.swept_to_check: list[str] = []  # sweep records seen since the last check
        self.swept_through: datetime | None = None  # how far the last sweep that answered looked
        self.looked_after_push: datetime | None = None  # the first sweep that answered after the last push
        self.sweep_unfinished = False  # the last sweep to end did not answer: the next one finishes it
        self.violations: list[tuple[int, Violation]] = []
        self.seen: set[Violation] = set()
        self.quiescing = False
        self._index = -1  # the step being checked (-1 at quiescence)
        self._deployments: dict[str, list[Any]] = {}
        self._deployment_roles: dict[str, str] = {}  # deployment id -> role, from the last reads

    # --- running -----------------------------------------------------------------------------------

    def run(self) -> EpisodeResult:
        executed = 0
        with World(self.uuid_seed, self.roles, self.gating) as world:
            self.world = world
            self.cloud = world.cloud
            self.hooks = Hooks(LEDGER_TABLE, self.counts)
            self.hooks.clock = world.now
            clients = handler_clients(world.cloud)
            self.hooks.attach_dynamodb(clients.dynamodb)
            self.hooks.attach_apprunner(clients.apprunner)
            self.hooks.on_overlap = self._overlap
            self.checker = Checker(self.roles, self.pushes, self.deleted, _label, world.moment)
            self.checker.by_swept = self.by_swept  # the same lists, as pushes arrive
            self.checker.read_decisions = lambda change_id: world.cloud.ledger.change(
                change_id, from_decisions=True
            )
            self.checker.gates = self._gate_checker() if self.gating.any else None
            self.gate_steps = GateSteps(self)
            for index, step in enumerate(self.schedule):
                self._execute(step)
                executed += 1
                self._check(index)
                if self._stopped():
                    break
            if not self._stopped():
                self._quiesce()
            trace = [name for name, _ in self.cloud.sim.calls]
        return EpisodeResult(executed, self.violations, self.counts, self.handler_errors, trace)

    def _gate_checker(self) -> GateChecker:
        checker, world = self.checker, self.world
        return GateChecker(
            self.gating,
            world.gate_log,
            world.services,
            self.hooks.deploy_calls,
            lambda role, snapshot: checker._deploy_operations(
                snapshot.deployments.get(role, []), snapshot.services[role], snapshot
            ),
            world.moment,
            checker._label,
        )

    def _stopped(self) -> bool:
        return self.stop_on is not None and any(v.invariant == self.stop_on for _, v in self.violations)

    def _execute(self, step: Step) -> None:
        kind, world, sim = step.kind, self.world, self.cloud.sim
        if kind == "push":
            assert step.tag is not None
            assert step.digest is not None
            assert step.event is not None
            world.advance(1)  # every push happens at its own second
            world.put_image(step.tag, step.digest)  # in ECR, whatever becomes of its event
            self.looked_after_push = None  # no sweep has seen this push yet
            event = world.image_event(step.tag, step.digest, step.event)
            push = self._push(event, "image", step.tag, digest_of(step.digest), step.digest)
            self._send(push, event, step)
        elif kind == "code_push":
            assert step.commit is not None
            assert step.event is not None
            world.advance(1)
            world.commit_pushed(step.commit)
            self.looked_after_push = None  # no sweep has seen this push yet
            event = world.commit_event(step.commit, step.previous, step.event)
            push = self._push(event, "commit", None, commit_of(step.commit), step.commit)
            self._send(push, event, step)
        elif kind == "redeliver":
            if self.sent:
                original = list(self.sent.values())[step.pick % len(self.sent)]
                self.counts["duplicate"] += 1
                self._deliver(replace(original, attempt=0), step.fault)
        elif kind == "release":
            if self.held:
                self._deliver(self.held.pop(step.pick % len(self.held)), step.fault)
        elif kind == "retry":
            if self.retries:
                self._deliver(self.retries.pop(step.pick % len(self.retries)), step.fault)
        elif kind == "reconcile":
            self._invoke("reconciler", _SCHEDULED, step.fault)
        elif kind == "sweep":
            self._sweep(step.fault)
        elif kind == "app_events":
            self._app_events(step.fates, step.fault)
        elif kind == "late_events":
            if self.held_events:
                event = self.held_events.pop(step.pick % len(self.held_events))
                self._deliver(Delivery("operation_changed", event), step.fault)
        elif kind == "advance":
            world.advance(step.seconds)
        elif kind == "throttle":
            sim.throttle_next(step.count, step.operation)
            self.counts["throttle"] += step.count
        elif kind == "error5xx":
            sim.error_next(step.count, step.operation)
            self.counts["error5xx"] += step.count
        elif kind in ("fail_next", "lose_events"):
            assert step.role is not None
            if step.role in world.vanished:
                pass
            elif kind == "fail_next":
                sim.fail_next(world.services[step.role], step.count)
                self.counts["fail"] += step.count
            else:
                sim.lose_events(world.services[step.role], step.count)
                self.counts["lost_event"] += step.count
        elif kind in ("manual_update", "manual_start", "delete"):
            assert step.role is not None
            self._operator(kind, step.role, step.hotfix)
        elif kind == "vanish":
            assert step.role is not None
            if step.role in self.deleted and world.vanish(step.role):
                self.counts["vanished_service"] += 1
        elif kind == "rules_applied":
            self._rules_applied()
        elif kind in GATE_STEPS:
            self.gate_steps.execute(step)
        else:
            raise ValueError(f"unknown step kind {kind!r}")

    def _push(self, event: dict[str, Any], kind: str, tag: str | None, artifact: str, number: int) -> Push:
        """A push happened: what the checks know of it."""
        event_id = str(event["id"])
        push = Push(event_id, kind, tag, artifact, number, self.world.now())
        push.expected_change_ids = _expected_change_ids(event_id)
        push.swept_id = _swept_change_id(kind, tag, artifact)
        if push.swept_id is not None:
            self.by_swept.setdefault(push.swept_id, []).append(push)
            self.checker.by_change.setdefault(push.swept_id, push)
        self.pushes[event_id] = push
        return push

    def _send(self, push: Push, event: dict[str, Any], step: Step) -> None:
        """The push's event: delivered, held back (delivered late), or lost at the source."""
        function = "image_pushed" if push.kind == "image" else "commit_pushed"
        delivery = Delivery(function, event, push=push.event_id)
        if step.lose:
            push.lost = True
            self.counts["lost_push"] += 1
        elif step.hold:
            self.counts["late"] += 1
            self.held.append(delivery)
        else:
            self._deliver(delivery, step.fault)

    def _app_events(self, fates: tuple[str, ...], fault: Fault | None) -> None:
        batch = list(self.cloud.apprunner_events)
        self.cloud.apprunner_events.clear()
        for position, event in enumerate(batch):
            fate = fates[position] if position < len(fates) else "deliver"
            if fate == "lose":
                self.counts["lost_event"] += 1
                continue
            if fate == "late":
                self.counts["late"] += 1
                self.held_events.append(event)
                continue
            self._deliver(Delivery("operation_changed", event), fault)
            fault = None  # only the first invocation of the step carries it
            if fate == "dup":
                self.counts["duplicate"] += 1
                self._deliver(Delivery("operation_changed", event), None)

    def _operator(self, kind: str, role: str, hotfix: int) -> None:
        """Someone else, by hand, through the same App Runner API (which may throttle them too)."""
        apprunner, arn = self.cloud.apprunner, self.world.services[role]
        try:
            if kind == "manual_update":
                self.world.operator_update(role, f"hotfix-{hotfix}")
            elif kind == "manual_start":
                apprunner.start_deployment(ServiceArn=arn)
            else:
                apprunner.delete_service(ServiceArn=arn)
                self.deleted.add(role)
                self.counts["deleted_service"] += 1
                return
        except (ClientError, BotoCoreError):
            self.counts["manual_refused"] += 1  # busy, throttled, deleted: they try another time
            return
        self.counts["manual_op"] += 1

    # --- invocations -------------------------------------------------------------------------------

    def _deliver(self, delivery: Delivery, fault: Fault | None) -> None:
        push = self.pushes.get(delivery.push) if delivery.push else None
        if push is not None:
            if push.first_delivered_at is None:
                push.first_delivered_at = self.world.now()
            self.sent.setdefault(push.event_id, replace(delivery, attempt=0))
        elif delivery.function in _PUSH_FUNCTIONS:  # a scan's event: delivered again like a push's
            self.sent.setdefault(f"scan {delivery.event.get('id')}", replace(delivery, attempt=0))
        last_attempt = delivery.attempt >= _MAX_ATTEMPTS - 1
        self.running.append(delivery)
        try:
            answer = self._invoke(delivery.function, delivery.event, None if last_attempt else fault)
        finally:
            self.running.pop()
        if answer is not None:
            if push is not None:
                self._answered(push, answer)
            return
        if push is not None:
            self.to_peek.append(push)  # a crash after its record was written: read it before the retry
        if last_attempt:
            self.counts["dead_letter"] += 1
        else:
            self.counts["lambda_retry"] += 1
            self.retries.append(replace(delivery, attempt=delivery.attempt + 1))

    def _invoke(self, function: str, event: dict[str, Any], fault: Fault | None) -> dict[str, Any] | None:
        """One invocation; its answer, or None when it crashed or failed."""
        if self.quiescing:
            fault = None
        self.hooks.begin(fault)
        try:
            with contextlib.redirect_stdout(_DISCARD):  # the functions' metrics (EMF lines)
                return self.cloud.invoke(function, event)
        except SimulatedCrash:
            return None
        except Exception as error:
            self.counts["handler_error"] += 1
            self.handler_errors[f"{function}: {type(error).__name__}: {str(error)[:160]}"] += 1
            return None
        finally:
            self.hooks.end()

    def _answered(self, push: Push, answer: dict[str, Any]) -> None:
        changes = [str(change) for change in answer.get("changes", [])]
        if answer.get("status") != "decided":
            self._found(
                Violation("recorded", f"push event {push.event_id[-6:]} answered {answer.get('status')}")
            )
        if push.change_ids is None:
            push.change_ids = changes
            if push.swept_id is not None:
                self.answered_swept.add(push.swept_id)
            for change_id in changes:
                self.checker.by_change[change_id] = push
            if push.expected_change_ids != changes:
                push.expected_change_ids = []  # derived otherwise: read records after answers only
        elif push.change_ids != changes:
            self._found(Violation("recorded", f"push event {push.event_id[-6:]} answered other change ids"))
        self.to_check.append(push)

    def _overlap(self, kind: str) -> None:
        """Inside another invocation's AWS call: one more whole invocation, in another container."""
        with separate_container():
            outer = self.running[-1] if self.running else None
            if kind == "same_event" and outer is not None and outer.function in _PUSH_FUNCTIONS:
                self.counts["duplicate"] += 1
                self._deliver(replace(outer, attempt=0), None)
            elif kind == "other_push" and self.held:
                self._deliver(self.held.pop(0), None)
            elif kind == "operation_event" and self.cloud.apprunner_events:
                self._deliver(Delivery("operation_changed", self.cloud.apprunner_events.pop(0)), None)
            elif kind == "sweep":
                self._sweep(None)
            elif kind == "decide":
                self.gate_steps.decide_first()
            elif kind == "rules_applied":
                self._rules_applied()
            else:
                self._invoke("reconciler", _SCHEDULED, None)

    def _rules_applied(self) -> None:
        self.world.rules_applied()
        self.counts["rules_applied"] += 1

    def _sweep(self, fault: Fault | None) -> None:
        """One run of the sweeper. The change records it put are read once it ends (however it ends):
        a sweep's record of a push is checked against what had been answered when the sweep began."""
        # A push an earlier sweep began to deploy (and died before recording) is this sweep's to finish,
        # whether or not its event has been answered since.
        answered_before = frozenset(self.answered_swept - self.hooks.decision_puts)
        start = len(self.hooks.change_puts)
        self.counts["sweeps"] += 1
        answered = self._invoke("sweeper", _SCHEDULED, fault) is not None
        self.sweep_unfinished = not answered
        if answered:
            now = self.world.now()
            looked = now - timedelta(seconds=SWEEP_GRACE_SECONDS)
            self.swept_through = max(looked, self.swept_through or looked)
            self.looked_after_push = self.looked_after_push or now
            self.checker.first_look = self.checker.first_look or now
        for change_id in self.hooks.change_puts[start:]:
            if change_id not in self.by_swept or change_id in self.checker.swept:
                continue
            record = self.cloud.ledger.change(change_id)
            if record is not None:
                self._swept_record(change_id, record, answered_before)

    def _swept_record(self, change_id: str, record: dict[str, Any], answered_before: frozenset[str]) -> None:
        pushes = self.by_swept[change_id]
        self.counts["found_by_sweep"] += 1
        for push in pushes:
            if push.swept_at is None:
                push.swept_at = self.world.now()
        for violation in self.checker.swept_record(pushes, change_id, record, answered_before):
            self._found(violation)
        self.swept_to_check.append(change_id)

    def _swept_past_pushes(self) -> bool:
        """Whether the sweep has done with the last push, as far as a lost push or a sweep that died
        needs it: a sweep saw the push (a new image, or a tag or branch head that moved, which counts from
        when a sweep first sees it) and a later one looked past the grace period since. Every other push's
        event is delivered."""
        lost = any(push.lost and push.swept_at is None for push in self.pushes.values())
        if not lost and not self.sweep_unfinished:
            return True
        seen, through = self.looked_after_push, self.swept_through
        return seen is not None and through is not None and through >= seen

    # --- checking ----------------------------------------------------------------------------------

    def _found(self, violation: Violation, index: int | None = None) -> None:
        if violation not in self.seen:
            self.seen.add(violation)
            self.violations.append((self._index if index is None else index, violation))

    def _snapshot(self) -> Snapshot:
        for role in sorted(self._written_roles()):
            self._deployments[role] = self.cloud.deployments(self.world.services[role])
            self._deployment_roles.update((d.id, role) for d in self._deployments[role])
        views = {role: self.world.service_view(role) for role in self.world.services}
        return Snapshot(self._deployments, views, self.hooks.started_by, self.hooks.images)

    def _written_roles(self) -> set[str]:
        """The services whose deployments changed since they were last read: from the keys the ledger
        writes named (see the ledger's item layout); every service when a write says nothing usable."""
        writes, self.hooks.ledger_writes = self.hooks.ledger_writes, []
        every = set(self.world.services)
        if len(self._deployments) < len(every):
            return every
        by_arn = {arn: role for role, arn in self.world.services.items()}
        roles: set[str] = set()
        for partition, service in writes:
            kind, _, rest = (partition or "").partition("#")
            if kind in ("CHANGE", "RULE", "SWEEP"):
                continue  # change records, rule marks and the sweep's marks: no deployment changes
            role = None
            if service is not None:
                role = by_arn.get(service)
                if kind == "DEPLOYMENT" and role is not None:
                    self._deployment_roles[rest] = role  # a new deployment: its updates may follow
            elif kind == "SERVICE":
                role = by_arn.get(rest)
            elif kind == "DEPLOYMENT":
                role = self._deployment_roles.get(rest)
            if role is None:
                return every
            roles.add(role)
        return roles

    def _check(self, index: int) -> Snapshot:
        self._index = index
        snapshot = self._snapshot()
        for violation in self.checker.step_checks(snapshot):
            self._found(violation)
        ledger = self.cloud.ledger
        for push in self.to_peek:
            for change_id in push.expected_change_ids:
                record = ledger.change(change_id)
                if record is not None:
                    for violation in self.checker.unchanged(push, change_id, record):
                        self._found(violation)
        self.to_peek.clear()
        if self.to_check or self.swept_to_check:
            created = {
                (str(getattr(d, "change_id", "")), str(d.rule)): str(d.id)
                for deployments in snapshot.deployments.values()
                for d in deployments
            }
            for push in self.to_check:
                for violation in self.checker.record_checks(push, ledger.change, created):
                    self._found(violation)
            for change_id in self.swept_to_check:
                push = self.by_swept[change_id][0]
                for violation in self.checker.record_checks(push, ledger.change, created, [change_id]):
                    self._found(violation)
            self.to_check.clear()
            self.swept_to_check.clear()
        return snapshot

    def _quiesce(self) -> None:
        """No more faults: deliver everything held back or waiting for a retry, then advance time, sweep
        and reconcile until nothing is in flight and the sweep has done with the last push."""
        self.quiescing = True
        for _ in range(_QUIESCENCE_ROUNDS):
            self.gate_steps.end_holds()
            while self.held or self.retries or self.held_events:
                if self.held:
                    self._deliver(self.held.pop(0), None)
                elif self.retries:
                    self._deliver(self.retries.pop(0), None)
                else:
                    self._deliver(Delivery("operation_changed", self.held_events.pop(0)), None)
            while self.cloud.apprunner_events:
                self._app_events((), None)
            if not self._swept_past_pushes():
                self._sweep(None)
            self._invoke("reconciler", _SCHEDULED, None)
            snapshot = self._check(-1)
            busy = any(
                str(d.status) in IN_FLIGHT
                for deployments in snapshot.deployments.values()
                for d in deployments
            )
            pending = self.held or self.retries or self.held_events or self.cloud.apprunner_events
            holds = self.gating.any and self.gate_steps.holds_pending()
            if not busy and not pending and not holds and self._swept_past_pushes():
                break
            self.world.advance(self.gate_steps.quiet_advance(START_GRACE_SECONDS + 10))
        for push in self.pushes.values():
            if push.change_ids is not None:
                self.to_check.append(push)
        self.swept_to_check.extend(self.checker.swept)  # unchanged since first read
        snapshot = self._check(-1)
        ledger = self.cloud.ledger
        slots = {}
        for role, arn in self.world.services.items():
            slot = ledger.slot(arn)
            slots[role] = (getattr(slot, "active", None), getattr(slot, "pending", None))
        outside: dict[str, list[dict[str, Any]]] = {}
        listing = getattr(ledger, "outside_operations", None)
        if callable(listing):
            outside = {role: list(listing(arn)) for role, arn in self.world.services.items()}
        in_ecr = self.world.ecr_images()
        self.counts["raced_by_sweep"] += sum(
            1 for p in self.pushes.values() if p.change_ids is not None and p.swept_at is not None
        )
        for violation in self.checker.final_checks(snapshot, slots, outside, in_ecr, ledger.change):
            self._found(violation, -1)


def _expected_change_ids(event_id: str) -> list[str]:
    """The change id pushdeploy derives for an EventBridge push (one change, position 0), if it still
    derives it with `change_id_for`; else none, and records are read after answers only."""
    derive = getattr(pushdeploy_change_ids, "change_id_for", None)
    return [str(derive(event_id, 0))] if callable(derive) else []


def _swept_change_id(kind: str, tag: str | None, artifact: str) -> str | None:
    """The change id a sweep gives the push (`swept_change_id`, from its source, tag or branch, and
    artifact), if pushdeploy derives one."""
    derive = getattr(pushdeploy_change_ids, "swept_change_id", None)
    if not callable(derive):
        return None
    where: dict[str, Any] = {"account": ACCOUNT, "region": REGION}
    if kind == "image":
        change = Change(
            kind="image", source="ecr", repository=IMAGE_REPOSITORY, tag=tag, digest=artifact, **where
        )
    else:
        change = Change(
            kind="commit",
            source="codecommit",
            repository=CODE_REPOSITORY,
            branch="main",
            commit=artifact,
            **where,
        )
    return str(derive(change))


def _label(artifact: str) -> str:
    """The schedule's number of a digest or commit: "#12"."""
    hexadecimal = artifact.removeprefix("sha256:")
    try:
        return f"#{int(hexadecimal, 16)}"
    except ValueError:
        return artifact


# --- many episodes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodePlan:
    number: int
    seed: int
    roles: tuple[str, ...]
    steps: int

    @property
    def uuid_seed(self) -> str:
        return f"uuid-{self.seed}"

    @property
    def gating(self) -> Gating:
        """The episode's gates, drawn from its own seed (so the plan's draws are those it had before)."""
        return plan_gating(random.Random(f"gates-{self.seed}"), self.roles)

    def schedule(self) -> list[Step]:
        return generate(self.seed, self.steps, self.roles, self.gating)

    def episode(self, schedule: list[Step] | None = None, stop_on: str | None = None) -> Episode:
        steps = self.schedule() if schedule is None else schedule
        return Episode(steps, self.roles, self.uuid_seed, stop_on, self.gating)


def plan_episodes(seed: int, steps: int, episode_steps: int) -> list[EpisodePlan]:
    """The run's episodes, all drawn from `random.Random(seed)`."""
    rng = random.Random(seed)
    plans: list[EpisodePlan] = []
    total = 0
    while total < steps:
        count = min(episode_steps, steps - total)
        roles = ROLES if rng.random() < 0.5 else IMAGE_ROLES  # a code service in every other episode
        plans.append(EpisodePlan(len(plans), rng.randrange(2**62), roles, count))
        total += count
    return plans


@dataclass
class Failure:
    plan: EpisodePlan
    step: int
    violation: Violation
    shrunk: list[Step] | None = None
    shrunk_violation: Violation | None = None  # the violation the shrunk schedule shows
    at_quiescence: bool = False  # whether it shows only at quiescence
    replays: int = 0
    exhausted: bool = False  # the shrinking budget ran out: a shorter schedule may exist


@dataclass
class Report:
    seed: int
    steps: int = 0
    episodes: int = 0
    seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    handler_errors: Counter[str] = field(default_factory=Counter)
    violations: list[tuple[EpisodePlan, int, Violation]] = field(default_factory=list)
    failure: Failure | None = None

    @property
    def faults(self) -> int:
        return sum(self.counts[kind] for kind in FAULT_KINDS)

    def summary(self) -> str:
        violations = len(self.violations)
        return f"simulation: steps={self.steps} seed={self.seed} faults={self.faults} violations={violations}"

    def lines(self, shown: int = 25) -> list[str]:
        rate = self.steps / self.seconds if self.seconds else 0.0
        lines = [f"episodes={self.episodes} seconds={self.seconds:.1f} rate={rate:.1f} steps/s"]
        lines.append("faults: " + " ".join(f"{kind}={self.counts[kind]}" for kind in FAULT_KINDS))
        others = sorted(kind for kind in self.counts if kind not in FAULT_KINDS)
        if others:
            lines.append("also: " + " ".join(f"{kind}={self.counts[kind]}" for kind in others))
        for error, count in self.handler_errors.most_common(5):
            lines.append(f"handler error x{count}: {error}")
        by_invariant = Counter(violation.invariant for _, _, violation in self.violations)
        if by_invariant:
            lines.append(
                "violations by invariant: " + " ".join(f"{k}={n}" for k, n in sorted(by_invariant.items()))
            )
        for plan, step, violation in self.violations[:shown]:
            where = "at quiescence" if step < 0 else f"after step {step + 1}"
            lines.append(f"  episode {plan.number} {where}: {violation}")
        if len(self.violations) > shown:
            lines.append(f"  ... and {len(self.violations) - shown} more")
        if self.failure is not None:
            lines.extend(_failure_lines(self.failure))
        lines.append(self.summary())
        return lines


def _failure_lines(failure: Failure) -> list[str]:
    plan = failure.plan
    shrunk = failure.shrunk is not None
    schedule = failure.shrunk if failure.shrunk is not None else plan.schedule()[: failure.step + 1]
    what = "shortest failing schedule found" if shrunk else "failing schedule (not shrunk)"
    if failure.exhausted:
        what += " (shrinking ran out of time)"
    violation = failure.shrunk_violation if shrunk and failure.shrunk_violation else failure.violation
    lines = [
        f"{what}: {len(schedule)} steps (from {plan.steps}; {failure.replays} replays), "
        f"episode {plan.number} (seed {plan.seed}, services {','.join(plan.roles)})",
        f"  gates: {plan.gating.describe()}",
        f"  it shows: {violation}",
    ]
    lines.extend(f"  {number:3d}. {step.describe()}" for number, step in enumerate(schedule, 1))
    if failure.at_quiescence:
        lines.append(
            "  then quiescence (deliver everything, advance time, sweep, reconcile until nothing is in "
            "flight)"
        )
    return lines


def run_simulation(
    seed: int,
    steps: int,
    episode_steps: int = 200,
    shrink_seconds: float = 120.0,
    progress: Callable[[str], None] | None = None,
) -> Report:
    report = Report(seed)
    started = time.perf_counter()
    for plan in plan_episodes(seed, steps, episode_steps):
        result = plan.episode().run()
        report.steps += result.steps
        report.episodes += 1
        report.counts.update(result.counts)
        report.handler_errors.update(result.handler_errors)
        report.violations.extend((plan, step, violation) for step, violation in result.violations)
        if result.violations and report.failure is None:
            step, violation = result.violations[0]
            report.failure = Failure(
                plan, plan.steps - 1 if step < 0 else step, violation, at_quiescence=step < 0
            )
        if progress is not None:
            elapsed = time.perf_counter() - started
            progress(
                f"episode {plan.number}: {report.steps} steps, {elapsed:.0f}s, "
                f"{len(result.violations)} violations ({report.steps / elapsed:.1f} steps/s)"
            )
    report.seconds = time.perf_counter() - started
    if report.failure is not None and shrink_seconds > 0:
        shrink(report.failure, time.perf_counter() + shrink_seconds)
    return report


# --- shrinking -------------------------------------------------------------------------------------


def _fails(failure: Failure, schedule: list[Step]) -> int | None:
    """Where the schedule violates the failure's invariant again: the step index (len() when only at
    quiescence), or None."""
    failure.replays += 1
    plan = failure.plan
    result = plan.episode(schedule, stop_on=failure.violation.invariant).run()
    for step, violation in result.violations:
        if violation.invariant == failure.violation.invariant:
            failure.shrunk_violation = violation
            failure.at_quiescence = step < 0
            return len(schedule) if step < 0 else step
    return None


def shrink(failure: Failure, deadline: float) -> None:
    """Remove halves, quarters, ... down to single steps while the same invariant still fails, then drop
    the faults of the steps that keep them needlessly; stops at the deadline with the shortest so far."""
    current = failure.plan.schedule()[: failure.step + 1]
    where = _fails(failure, current)
    if where is None:
        failure.shrunk = None  # not reproducible: print the schedule as it ran
        return
    current = current[: where + 1]

    def out_of_time() -> bool:
        return time.perf_counter() >= deadline

    chunk = max(1, len(current) // 2)
    while chunk >= 1 and not out_of_time():
        removed, index = False, 0
        while index < len(current) and not out_of_time():
            candidate = current[:index] + current[index + chunk :]
            where = _fails(failure, candidate) if candidate else None
            if where is not None:
                current, removed = candidate[: where + 1], True
            else:
                index += chunk
        if chunk > 1 or not removed:  # single steps: pass again until none can go
            chunk //= 2
    for index in range(len(current)):
        if out_of_time():
            break
        if current[index].fault is None:
            continue
        candidate = [*current[:index], current[index].without_fault(), *current[index + 1 :]]
        if _fails(failure, candidate) is not None:
            current = candidate
    failure.shrunk = current
    failure.exhausted = out_of_time()
