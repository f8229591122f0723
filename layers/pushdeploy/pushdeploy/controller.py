"""The controller: changes in, deployments out, each followed until it settles.

It composes the pure core (decisions, the order of pushes, the slot algebra, the evidence about
operations) with three ports: the ledger (DynamoDB), the deploy target (App Runner) and a notifier
(events and metrics). Admission is here; changing a slot is `pushdeploy.slots`; calling App Runner and
following operations is `pushdeploy.runner`.

An admission is one transaction: the service's slot (which carries the order of what is live, in flight
and pending), the deployment and the decision that made it commit together or not at all. A retried
event finds its own deployment and reports it; the change's record is written once, when every rule has
decided, and never rewritten. When one rule deploys the change (the usual push), its record is part of that
admission's transaction too: the change is recorded exactly when its deployment is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from aws_lambda_powertools import Logger

from pushdeploy.adapters.apprunner import DeployTarget, TargetGone
from pushdeploy.adapters.ledger import ChangeReads, ChangeRecorded, DuplicateDeployment, Ledger, Put
from pushdeploy.adapters.rules_store import RulesSnapshot
from pushdeploy.container import utc_now
from pushdeploy.domain.changes import Change, OperationEvent
from pushdeploy.domain.decisions import Decision, decide
from pushdeploy.domain.deployments import Attempt, Deployment, Status, Trigger
from pushdeploy.domain.evidence import DEPLOY_TYPES
from pushdeploy.domain.order import OrderKind
from pushdeploy.domain.rules import CompiledRule
from pushdeploy.domain.slot import Admitted, CheckLive, Entry, Held, Refused, Slot, admit, holds
from pushdeploy.errors import PushdeployError
from pushdeploy.gatekeeper import GateKeeper, ScanSource
from pushdeploy.runner import Runner, Settings
from pushdeploy.slots import EVENT_NAMES, Notifier, SilentNotifier, SlotChange, SlotKeeper, transition

__all__ = ["ChangeReport", "Controller", "Notifier", "RuleSource", "Settings", "SilentNotifier", "utc_now"]

logger = Logger(service="pushdeploy", child=True)


@dataclass(frozen=True)
class KnownSlot:
    """A service's slot and an artifact's failure mark there, read together (one snapshot)."""

    slot: Slot
    failure: dict[str, Any] | None


class RuleSource(Protocol):
    def watching(self, change: Change) -> Sequence[CompiledRule]: ...
    def snapshot(self, change: Change) -> RulesSnapshot: ...
    def confirmed(self, snapshot: RulesSnapshot, version_item: dict[str, Any] | None) -> bool: ...
    def confirmed_now(self, snapshot: RulesSnapshot) -> bool: ...


# Rules applied again between a push's rules read and its ledger read: read and decide again, this often.
_RULES_READS = 3


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
class RecordDraft:
    """A change's record before its one deploying decision is admitted: every other decision's outcome is
    known, and the admission puts the record, with that decision's outcome, in its own transaction
    (`putter`)."""

    change_id: str
    attributes: dict[str, Any]  # everything but the decisions
    outcomes: list[DecisionOutcome | None]  # in decision order; None: the deploying decision
    written: bool = False  # an admission committed it

    def putter(self, decision: Decision, deployment_id: str) -> Callable[[SlotChange], Put]:
        """The record as a planned admission of `decision`'s deployment would make it."""

        def put(planned: SlotChange) -> Put:
            admitted = _admitted(decision, deployment_id, planned)
            decisions = [(outcome or admitted).as_record() for outcome in self.outcomes]
            return Ledger.change_put(self.change_id, {**self.attributes, "decisions": decisions}, None)

        return put


class _Decided(NamedTuple):
    """A change decided by its source's rules, with the ledger's read of what it may create."""

    rules: dict[str, CompiledRule]
    decisions: list[Decision]
    planned: dict[str, Deployment]  # rule id -> the deployment its decision asks for
    reads: ChangeReads | None
    rules_current: bool  # the ledger's read confirmed these rules are still the stored ones


@dataclass
class ReconcileReport:
    services: int = 0
    failures: int = 0


def order_of(rule: CompiledRule, change: Change) -> OrderKind:
    if rule.is_semver:
        return "semver"
    return "chain" if change.kind == "commit" else "time"


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
        scans: ScanSource | None = None,
    ) -> None:
        self.ledger = ledger
        self.target = target
        self.rules = rules
        self.notifier = notifier or SilentNotifier()
        self.settings = settings or Settings()
        self.clock = clock
        self.slots = SlotKeeper(ledger, self.notifier, clock, sleep)
        self.runner = Runner(ledger, target, self.slots, self.notifier, self.settings, clock)
        self.slots.start = self.runner.start_by_id
        self.gates = GateKeeper(self, scans)
        self.slots.closed_gates = self.gates.closed_now

    # --- a change arrives ---------------------------------------------------------------------------

    def handle_change(
        self,
        change: Change,
        change_id: str,
        event_id: str | None = None,
        trigger: Trigger = "push",
        note: str | None = None,
    ) -> ChangeReport:
        """Decide for every rule that watches the change, deploy what must be, record it all once.

        A change already recorded (the same event, or the same signed push, delivered again) is not
        decided again: its record says what became of it. `trigger` says what brought the change (its
        event, or the sweep) and `note` says so in words on its record."""
        rules, decisions, planned, reads, _ = self._decide(change, change_id, trigger)
        recorded = reads.recorded if reads is not None else self.ledger.decided_change(change_id)
        if recorded is not None:
            logger.info("change already decided", extra={"change_id": change_id})
            return _report_of(change_id, recorded)
        received_at = self.clock()
        attributes = {
            "change": change.model_dump(),
            "pushed_at": change.pushed_at,
            "previous_commit": change.previous_commit,
            "event_id": event_id,
            "received_at": received_at,
            "trigger": trigger,
            "note": note,
        }
        draft = None
        if len(planned) == 1:
            outcomes = [None if d.rule in planned else DecisionOutcome(d, note=d.reason) for d in decisions]
            draft = RecordDraft(change_id, attributes, outcomes)
        report = ChangeReport(change_id)
        try:
            for decision in decisions:
                deployment = planned.get(decision.rule)
                if deployment is None:
                    report.outcomes.append(DecisionOutcome(decision, note=decision.reason))
                else:
                    outcome = self._apply(decision, rules[decision.rule], deployment, reads, draft)
                    report.outcomes.append(outcome)
        except ChangeRecorded:
            # Another delivery of this change decided it while this one did: its record stands.
            logger.info("change decided by another delivery", extra={"change_id": change_id})
            return _report_of(change_id, self.ledger.decided_change(change_id) or {})
        written = draft is not None and draft.written
        if not written:
            expires = None
            if not report.deployments:
                expires = int((received_at + self.settings.undeployed_change_ttl).timestamp())
            decided = [outcome.as_record() for outcome in report.outcomes]
            written = self.ledger.record_change(change_id, {**attributes, "decisions": decided}, expires)
        logger.info(
            "change decided" if written else "change already recorded (event delivered again)",
            extra={"change": change.describe(), "change_id": change_id, "deployments": report.deployments},
        )
        return report

    def _decide(self, change: Change, change_id: str, trigger: Trigger) -> _Decided:
        """The rules watching the change, their decisions, the deployments those plan, and what the
        ledger says of them. The ledger's one read also reads the rules' version: rules cached before a
        `rules apply` changed them are read, and decide, again."""
        for _ in range(_RULES_READS - 1):
            decided = self._decide_once(change, change_id, trigger)
            if decided.rules_current:
                return decided
        # Rules applied again and again meanwhile: these were read a moment ago, consistently.
        return self._decide_once(change, change_id, trigger)

    def _decide_once(self, change: Change, change_id: str, trigger: Trigger) -> _Decided:
        snapshot = self.rules.snapshot(change)
        rules = {rule.id: rule for rule in snapshot.rules}
        decisions = decide(change, rules.values())
        now = self.clock()
        planned = {
            d.rule: Deployment.from_decision(
                d, change, change_id, now, order_of(rules[d.rule], change), trigger
            )
            for d in decisions
            if d.deploys
        }
        reads = self.ledger.reads_for_change(change_id, list(planned.values()), also=[snapshot.probe])
        if reads is not None:
            current = self.rules.confirmed(snapshot, reads.also[0])
        else:
            current = self.rules.confirmed_now(snapshot)
        return _Decided(rules, decisions, planned, reads, current)

    def _apply(
        self,
        decision: Decision,
        rule: CompiledRule,
        deployment: Deployment,
        reads: ChangeReads | None,
        draft: RecordDraft | None = None,
    ) -> DecisionOutcome:
        """Create the deployment a decision asks for: admitted into its slot, held by a gate, or refused.
        `reads`: what the ledger said when the change arrived (None: read each thing now). `draft`: the
        change's record, for an ungated admission to commit (the change's only deploying decision)."""
        if reads is not None:
            existing = reads.deployments.get(deployment.id)
        else:
            existing = self.ledger.deployment(deployment.id)
        if existing is not None:
            # A retry of this very change: report its deployment, never refuse it against itself. One held
            # may have died before it told the world and replaced its rule's older held ones: again.
            if existing.status is Status.HELD:
                self.gates.after_retry(existing)
            return DecisionOutcome(decision, deployment.id)
        if decision.dry_run:
            self.ledger.record(deployment)
            self.notifier.deployment_changed(deployment, EVENT_NAMES[Status.DRY_RUN])
            return DecisionOutcome(decision, deployment.id, "dry run: recorded, App Runner not called")
        known = None
        if reads is not None:
            known = KnownSlot(
                reads.slots[deployment.service], reads.failures[deployment.service, deployment.artifact]
            )
        if not self.gates.gated(rule, deployment):
            return self._admit(decision, deployment, known=known, draft=draft)
        # Held and rejected deployments live outside the slot: dedup and order against them here.
        same, refusal = self.gates.prior(deployment)
        if same is not None or refusal is not None:
            return DecisionOutcome(decision, same.id if same else None, refusal)
        gated = self.gates.verdict_for(rule, deployment)
        assert gated is not None
        verdict, facts = gated
        deployment = deployment.model_copy(update={"gate_facts": facts})
        if verdict.rejected is not None:
            return self._reject_at_once(decision, deployment, verdict.rejected)
        # Its record is written after the admission, so that a retry finds it unrecorded and does again
        # what the admission leaves to be done (tell the world, replace older held ones: `after_retry`).
        outcome = self._admit(decision, deployment, verdict.closed, "; ".join(verdict.notes), known)
        if outcome.deployment_id is not None:
            self.gates.supersede_older_held(deployment)
        return outcome

    def _admit(
        self,
        decision: Decision,
        deployment: Deployment,
        gate_holds: tuple[str, ...] = (),
        gate_notes: str = "",
        known: KnownSlot | None = None,
        draft: RecordDraft | None = None,
    ) -> DecisionOutcome:
        record = DecisionOutcome(decision, deployment.id).as_record()
        record_change = None
        if draft is not None:
            record_change = draft.putter(decision, deployment.id)
        try:
            change, refusal = self.admit(
                deployment,
                record,
                gate_holds=gate_holds,
                gate_notes=gate_notes,
                known=known,
                record_change=record_change,
            )
        except DuplicateDeployment:
            return DecisionOutcome(decision, deployment.id)  # a concurrent retry of this change won
        if change is None:
            return DecisionOutcome(decision, note=refusal)
        if draft is not None and change.created is not None:
            draft.written = True  # every admission planned with a draft that creates the deployment puts it
        return _admitted(decision, deployment.id, change)

    def _reject_at_once(self, decision: Decision, deployment: Deployment, reason: str) -> DecisionOutcome:
        """A gate said no before the deployment could even wait (a scan already over its limits)."""
        rejected = deployment.model_copy(
            update={"status": Status.REJECTED, "settled_at": self.clock(), "detail": f"rejected: {reason}"}
        )
        if self.ledger.record(rejected):
            self.notifier.deployment_changed(rejected, EVENT_NAMES[Status.REJECTED])
        return DecisionOutcome(decision, deployment.id, f"rejected: {reason}")

    def admit(
        self,
        deployment: Deployment,
        decision: dict[str, Any] | None = None,
        *,
        force: bool = False,
        gate_holds: tuple[str, ...] = (),
        gate_notes: str = "",
        known: KnownSlot | None = None,
        record_change: Callable[[SlotChange], Put] | None = None,
    ) -> tuple[SlotChange | None, str | None]:
        """Admit a new deployment into its service's slot, in one transaction with the `decision` that
        made it (a push's): start it, queue it, hold it, or refuse it. Returns the committed change, or
        None and the refusal. `force` (an operator's) deploys an artifact that failed there before, or
        that is live, again. `gate_holds` are its rule's gates still closed (`gate_notes` says how).
        `known`: the slot and the artifact's failure mark as just read together; the first plan is made
        from them (a stale slot fails the commit's condition, and the next plan reads both afresh).
        `record_change`: the change's record for an admission that creates the deployment, put in its
        transaction.

        Raises DuplicateDeployment when the deployment is already recorded, ChangeRecorded when the
        change's record is.
        """
        newcomer = Entry.of(deployment)
        confirmed: dict[str, bool] = {}  # live deployment id -> App Runner still runs it
        refusals: list[str] = []

        def plan(slot: Slot) -> SlotChange | None:
            if deployment.id in {entry.id for entry in (slot.active, slot.pending, slot.live) if entry}:
                # A concurrent delivery of this very change committed it since it was read: it is this
                # change's deployment, never a reason to refuse the change against itself.
                raise DuplicateDeployment(deployment.id)
            if force:
                failure = None
            elif known is not None and slot is known.slot:
                failure = known.failure  # read with this very slot
            else:
                failure = self.ledger.failure(deployment.service, deployment.artifact)
            if failure is not None:
                refusals.append(_failure_refusal(deployment, failure))
                return None
            live_id = slot.live.id if slot.live else ""
            held_by = (*holds(slot, deployment.trigger), *gate_holds)
            admission = admit(slot, newcomer, confirmed.get(live_id), held_by=held_by, check_live=not force)
            if isinstance(admission, CheckLive):
                try:
                    confirmed[live_id] = self._still_live(deployment.service, admission.live)
                except TargetGone as gone:
                    # Nothing runs there any more, and nothing can be deployed: a deployment would only
                    # end in error, beside the one that deployed this artifact last.
                    refusals.append(f"not deployed: the service no longer exists ({gone})")
                    return None
                admission = admit(slot, newcomer, confirmed[live_id], held_by=held_by)
            if isinstance(admission, Refused):
                refusals.append(admission.reason)
                return SlotChange(admission.renewed) if admission.renewed else None
            assert not isinstance(admission, CheckLive)
            change = self._admission_change(deployment, admission, slot, decision, gate_notes)
            if record_change is not None and change.created is not None:
                change = replace(change, puts=[*change.puts, record_change(change)])
            return change

        change = self.slots.change(deployment.service, plan, known.slot if known else None)
        if change is not None and change.created is None and not change.transitions:
            return None, refusals[-1]  # refused; the slot only took the re-push's newer position
        return change, (refusals[-1] if refusals else None)

    def _admission_change(
        self,
        deployment: Deployment,
        admission: Admitted | Held,
        before: Slot,
        decision: dict[str, Any] | None,
        gate_notes: str = "",
    ) -> SlotChange:
        now = self.clock()
        puts = []
        if decision is not None and deployment.change_id and deployment.rule:
            puts.append(
                Ledger.decision_put(deployment.change_id, deployment.rule, {**decision, "decided_at": now})
            )
        if isinstance(admission, Held):
            detail = "; ".join(part for part in (_held_detail(before), gate_notes) if part and part != "held")
            held = deployment.model_copy(
                update={"status": Status.HELD, "held_by": admission.held_by, "detail": detail or "held"}
            )
            notify: list[tuple[Deployment | str, str]] = [(held, "Held")]
            if "approval" in admission.held_by:
                notify.append((held, "Awaiting Approval"))
            return SlotChange(admission.slot, created=held, puts=puts, notify=notify)
        released = deployment.status is Status.HELD  # a held deployment admitted at last: it exists
        if admission.start_now:
            if released:
                moved = transition(deployment.id, Status.HELD, Status.STARTING, claimed_at=now, held_by=[])
                return SlotChange(admission.slot, [moved], start=deployment.id)
            # Its first call to App Runner is claimed in this transaction: it starts without another write.
            created = deployment.model_copy(
                update={
                    "status": Status.STARTING,
                    "claimed_at": now,
                    "attempts": deployment.attempts + 1,
                    "attempt_log": (*deployment.attempt_log, Attempt(at=now)),
                }
            )
            return SlotChange(admission.slot, created=created, puts=puts, start=deployment.id)
        # A released held one is moved by a transition: only a read knows it whole.
        queued: Deployment | str = deployment.id if released else deployment
        transitions, notify = [], [(queued, "Queued")]
        if released:
            transitions.append(transition(deployment.id, Status.HELD, Status.QUEUED, held_by=[]))
        if admission.superseded:
            transitions.append(
                transition(
                    admission.superseded,
                    Status.QUEUED,
                    Status.SUPERSEDED,
                    settled_at=now,
                    superseded_by=deployment.id,
                    detail=f"replaced by the newer deployment {deployment.id} while waiting",
                )
            )
            notify.insert(0, (admission.superseded, "Superseded"))
        new_record = None if released else deployment
        return SlotChange(admission.slot, transitions, created=new_record, puts=puts, notify=notify)

    def _still_live(self, service: str, live: Entry) -> bool:
        """As `runs`, recording the operation that replaced the live one; raises TargetGone."""
        return self._runs(service, live, record_outside=True)

    def runs(self, service: str, live: Entry) -> bool:
        """Whether App Runner still runs what the ledger says is live: the same configuration and, unless
        that pins a digest, no deployment since (a tag or branch redeployed may run something else)."""
        try:
            return self._runs(service, live)
        except TargetGone:
            return False

    def _runs(self, service: str, live: Entry, record_outside: bool = False) -> bool:
        """`runs`; with `record_outside`, the operation that replaced it is recorded as made outside
        pushdeploy. Raises TargetGone when the service no longer exists."""
        configured = self.target.describe(service).configured
        newest = next(
            (
                op
                for op in self.target.list_operations(service)
                if op.type in DEPLOY_TYPES and op.status == "SUCCEEDED"
            ),
            None,
        )
        pinned = "@sha256:" in (live.configured or "")
        if configured == live.configured and (pinned or newest is None or newest.id == live.operation_id):
            return True
        replaced_by = newest if newest is not None and newest.id != live.operation_id else None
        if record_outside and replaced_by is not None and not self._may_be_ours(service, replaced_by.id):
            self.runner.record_outside(
                service, replaced_by, f"App Runner runs {configured}, not what deployment {live.id} deployed"
            )
        return False

    def _may_be_ours(self, service: str, operation_id: str) -> bool:
        """Whether the service's active deployment started (or may have started) this operation: then it
        replaced the live one, and is no change made outside pushdeploy."""
        slot = self.ledger.slot(service)
        active = self.ledger.deployment(slot.active.id) if slot.active else None
        if active is None:
            return False
        return active.operation_id == operation_id or (
            active.status is Status.STARTING and any(a.may_have_started() for a in active.attempt_log)
        )

    # --- following operations ----------------------------------------------------------------------

    def handle_operation(self, operation: OperationEvent) -> None:
        """An App Runner status event: events carry no operation id, so confirm with ListOperations."""
        if operation.outcome == "started":
            return
        self.reconcile_service(operation.service)

    def reconcile(self) -> ReconcileReport:
        """Settle what ended, recover lost starts, start what waits, look again at what is held for a
        gate. One query when nothing is in flight or held."""
        followed = self.ledger.followed()
        services = sorted({d.service for d in followed if d.status is not Status.HELD})
        report = ReconcileReport(services=len(services))
        report.failures += self.gates.review_all([d for d in followed if d.status is Status.HELD])
        for service in services:
            try:
                self.reconcile_service(service)
            except Exception:  # one broken service must not stop the others
                report.failures += 1
                logger.exception("reconciling a service failed", extra={"service": service})
        return report

    def reconcile_service(self, service: str) -> None:
        slot, kept = self.ledger.slot_with_active(service)
        if slot.active is not None:
            active = kept or self.ledger.deployment(slot.active.id)
            if active is None:
                raise PushdeployError(f"slot of {service} names {slot.active.id}, which the ledger lacks")
            if active.status is Status.IN_PROGRESS:
                self.runner.follow(active, slot)
            elif active.status is Status.STARTING:
                self.runner.recover_start(active)
            return
        if slot.pending is not None:
            self.slots.promote(service)


def _admitted(decision: Decision, deployment_id: str, change: SlotChange) -> DecisionOutcome:
    """What became of a decision whose deployment this change admitted: started, held or queued."""
    if change.start == deployment_id:
        return DecisionOutcome(decision, deployment_id)
    if change.created is not None and change.created.status is Status.HELD:
        return DecisionOutcome(decision, deployment_id, change.created.detail)
    return DecisionOutcome(decision, deployment_id, "queued: the service is busy")


def _report_of(change_id: str, recorded: dict[str, Any]) -> ChangeReport:
    outcomes = [
        DecisionOutcome(
            Decision.model_validate({key: value for key, value in d.items() if key in Decision.model_fields}),
            d.get("deployment"),
            d.get("note"),
        )
        for d in recorded.get("decisions") or []
    ]
    return ChangeReport(change_id, outcomes)


def _held_detail(slot: Slot) -> str:
    pause = slot.paused
    if pause is None:
        return "held"
    by = f" by {pause.by}" if pause.by else ""
    return f"held: the service is paused{by} ({pause.reason}); `pushdeploy resume` deploys the newest held"


def _failure_refusal(deployment: Deployment, failure: dict[str, Any]) -> str:
    how = str(failure.get("status", "failed")).replace("_", " ")
    return (
        f"not deployed: {deployment.artifact} {how} on this service before (deployment "
        f"{failure.get('deployment')}); it is not deployed there again automatically"
    )
