"""Gates at work (DESIGN 4.7): holding a push's deployment until its rule's gates open, and opening them.

A deployment whose gates are closed is recorded `held` outside the service's slot, with `held_by` naming
each closed gate and `detail` saying why in words, so other rules' deployments go on. Gates open on events
(a scan finished: `on_scan`; an operator approved: `decide`) and on the reconciler's tick (`review`: a
window opened, a freeze ended, a bake passed, a timeout ran out). When every gate is open the deployment
is admitted like any push, under the same order and dedup rules; a gate that says no makes it `rejected`.
The newest held deployment of a rule supersedes its older ones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger

from pushdeploy.adapters.ledger import DuplicateDeployment
from pushdeploy.domain.changes import Change, ScanResult
from pushdeploy.domain.deployments import Deployment, Status
from pushdeploy.domain.gates import (
    AfterGate,
    Approval,
    GateFacts,
    Gates,
    Promotion,
    ScanFacts,
    Verdict,
    evaluate,
)
from pushdeploy.domain.order import compare
from pushdeploy.domain.rules import CompiledRule
from pushdeploy.errors import PushdeployError
from pushdeploy.slots import transition

if TYPE_CHECKING:
    from pushdeploy.controller import Controller

logger = Logger(service="pushdeploy", child=True)

GATED_TRIGGERS = frozenset({"push", "sweep"})  # an operator's deploy, rollback or take-over is not gated
_PROMOTION_LOOKBACK = 50
_FAILED_THERE = frozenset(
    {Status.FAILED, Status.ROLLED_BACK, Status.REJECTED, Status.ERROR}
)  # the previous stage's recent deployments read to see what followed the artifact


class ScanSource(Protocol):
    def findings(self, account: str, region: str, repository: str, digest: str) -> ScanFacts | None: ...


class GateError(PushdeployError):
    """An approval that cannot be given: no such deployment, or it does not await one. Exit status 1."""

    exit_status = 1


class GateKeeper:
    def __init__(self, controller: Controller, scans: ScanSource | None = None) -> None:
        self.controller = controller
        self.ledger = controller.ledger
        self.scans = scans

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.controller.clock

    # --- a push's deployment ------------------------------------------------------------------------

    @staticmethod
    def gated(rule: CompiledRule, deployment: Deployment) -> bool:
        """Whether its rule's gates apply: a push's (or the sweep's) deployment, of a rule with gates."""
        gates = rule.rule.gates
        return gates is not None and bool(gates.names) and deployment.trigger in GATED_TRIGGERS

    def verdict_for(
        self, rule: CompiledRule, deployment: Deployment
    ) -> tuple[Verdict, dict[str, Any]] | None:
        """The gates' verdict on a new deployment of a push, and the facts to record with it; None when
        its rule has no gates (or an operator asked for it)."""
        gates = rule.rule.gates
        if gates is None or not self.gated(rule, deployment):
            return None
        facts = self._facts(gates, deployment)
        return evaluate(gates, facts, self.clock()), _records(facts)

    def governs(self, deployment: Deployment) -> bool:
        """Whether the deployment's rule (as it is now) has gates that apply to it."""
        rule = self._rule_of(deployment) if deployment.trigger in GATED_TRIGGERS else None
        return rule is not None and self.gated(rule, deployment)

    def closed_now(self, deployment_id: str) -> tuple[str, ...]:
        """A queued deployment about to start: the gates of its rule that can close with time alone
        (windows, freezes) and are closed now. Its other gates opened for good when it was admitted."""
        deployment = self.ledger.deployment(deployment_id)
        rule = (
            self._rule_of(deployment)
            if deployment is not None and deployment.trigger in GATED_TRIGGERS
            else None
        )
        gates = rule.rule.gates if rule is not None else None
        if deployment is None or gates is None or (gates.windows is None and gates.freeze is None):
            return ()
        timed = Gates(windows=gates.windows, freeze=gates.freeze)
        return evaluate(timed, GateFacts(deployment.created_at), self.clock()).closed

    def prior(self, deployment: Deployment) -> tuple[Deployment | None, str | None]:
        """What a new gated deployment meets outside the slot: the same artifact of its rule already held
        or rejected on the service (the sweep and the late event found one push; a redelivery), reported
        instead of made twice; or a newer held one of its rule, which it may never overtake."""
        for other in self.ledger.for_artifact(deployment.artifact, limit=None):
            if (
                other.id != deployment.id
                and (other.service, other.rule) == (deployment.service, deployment.rule)
                and other.status in (Status.HELD, Status.REJECTED)
            ):
                return other, f"not deployed again: already {other.status} as {other.id}"
        assert deployment.rule is not None
        for held in self.ledger.held_for_rule(deployment.service, deployment.rule):
            if compare(deployment.position, held.position) <= 0:
                older = f"{deployment.position.describe()} is not newer than {held.position.describe()}"
                return None, f"not deployed: {older}, held as {held.id}"
        return None, None

    def after_retry(self, held: Deployment) -> None:
        """A retried push whose held deployment exists: tell the world again (at least once) and let it
        replace its rule's older held ones, in case the first run died before doing either."""
        self.controller.slots.notify(held.id, "Held")
        if "approval" in held.held_by:
            self.controller.slots.notify(held.id, "Awaiting Approval")
        self.supersede_older_held(held)

    def supersede_older_held(self, newest: Deployment) -> None:
        """The newest deployment of a rule (held or admitted) replaces the rule's older held ones; a held
        one older than another held one of its rule is replaced by it."""
        if newest.rule is None:
            return
        held = self.ledger.held_for_rule(newest.service, newest.rule)
        candidates = [newest, *(h for h in held if h.id != newest.id)]
        winner = max(candidates, key=_Newer)
        for deployment in held:
            if deployment.id != winner.id and compare(winner.position, deployment.position) > 0:
                self._supersede(deployment, winner.id)

    # --- opening gates --------------------------------------------------------------------------------

    def on_scan(self, scan: ScanResult) -> list[str]:
        """A scan finished: every held deployment of that digest waiting for its scan is looked at again,
        with ECR's own findings (the event only says when to look). The ids looked at."""
        waiting = [
            d
            for d in self.ledger.for_artifact(scan.digest, limit=None)
            if d.status is Status.HELD and "scan" in d.held_by and d.repository == scan.repository
        ]
        for deployment in waiting:
            found = self._scan_of(deployment) or _from_event(scan, self.clock())
            self.ledger.record_gate_fact(deployment.id, "scan", found.as_record(), over_failed=True)
            self._review_again(deployment.id)
        return [deployment.id for deployment in waiting]

    def decide(
        self, deployment_id: str, *, approved: bool, actor: str | None, reason: str | None
    ) -> Deployment:
        """An operator approves or rejects a held deployment that awaits approval; it is then looked at
        again (it starts at once when every other gate is open). The deployment as it ended."""
        deployment = self.ledger.deployment(deployment_id)
        if deployment is None:
            raise GateError(f"no deployment {deployment_id}")
        if not approved and deployment.status is Status.HELD and "approval" not in deployment.held_by:
            # An operator may end any held deployment (one that waits for a promotion that will not
            # come, say); only one that awaits approval can be approved.
            who = f" by {actor}" if actor else ""
            self._reject(deployment, f"rejected{who}" + (f": {reason}" if reason else ""))
            return self.ledger.deployment(deployment_id) or deployment
        if deployment.status is not Status.HELD or "approval" not in deployment.held_by:
            raise GateError(f"deployment {deployment_id} does not await approval (it is {deployment.status})")
        approval = Approval(approved, actor, reason, self.clock())
        if not self.ledger.record_gate_fact(deployment_id, "approval", approval.as_record()):
            raise GateError(f"deployment {deployment_id} was decided meanwhile")
        self._review_again(deployment_id)
        return self.ledger.deployment(deployment_id) or deployment

    def _review_again(self, deployment_id: str) -> None:
        deployment = self.ledger.deployment(deployment_id)
        if deployment is not None and deployment.status is Status.HELD:
            self.review(deployment)

    def review(self, deployment: Deployment) -> None:
        """Look at a held deployment again: reject it, keep it held (saying what still holds it), or admit
        it."""
        rule = self._rule_of(deployment)
        if rule is None:
            self._supersede(deployment, None, "its rule is no longer in the rules file")
            return
        gates = rule.rule.gates or Gates()
        facts = self._facts(gates, deployment)
        stored_scan = deployment.gate_facts.get("scan") or {}
        if facts.scan is not None and facts.scan.status != stored_scan.get("status"):
            # Found in ECR now (or a scan that failed was done again): recorded, once.
            self.ledger.record_gate_fact(deployment.id, "scan", facts.scan.as_record(), over_failed=True)
        verdict = evaluate(gates, facts, self.clock())
        if verdict.rejected is not None:
            self._reject(deployment, verdict.rejected)
            return
        paused = ("pause",) if self.ledger.slot(deployment.service).paused is not None else ()
        held_by = (*paused, *verdict.closed)
        detail = _held_detail(verdict, paused)
        if held_by:
            if (held_by, detail) != (deployment.held_by, deployment.detail):
                self._keep_held(deployment, held_by, detail)
            return
        self._release(deployment, detail)

    def review_all(self, held: list[Deployment]) -> int:
        """The reconciler's tick: every deployment held for a gate. Failures are counted, not raised: one
        broken deployment must not stop the others."""
        failures = 0
        for deployment in held:
            try:
                self.review(deployment)
            except Exception:
                failures += 1
                logger.exception("reviewing a held deployment failed", extra={"deployment": deployment.id})
        return failures

    # --- facts ----------------------------------------------------------------------------------------

    def _facts(self, gates: Gates, deployment: Deployment) -> GateFacts:
        stored = deployment.gate_facts
        scan = ScanFacts.from_record(stored["scan"]) if stored.get("scan") else None
        if gates.scan is not None and (scan is None or scan.status != "COMPLETE"):
            scan = self._scan_of(deployment) or scan  # a failed scan may have been done again since
        approval = Approval.from_record(stored["approval"]) if stored.get("approval") else None
        promotion = self._promotion(gates.after, deployment) if gates.after is not None else None
        return GateFacts(deployment.created_at, scan, approval, promotion)

    def _scan_of(self, deployment: Deployment) -> ScanFacts | None:
        if self.scans is None or not deployment.digest or not deployment.account or not deployment.region:
            return None
        return self.scans.findings(
            deployment.account, deployment.region, deployment.repository, deployment.digest
        )

    def _promotion(self, after: AfterGate, deployment: Deployment) -> Promotion:
        """When the artifact succeeded on the previous stage's service, and what followed it there."""
        upstream = [
            d for d in self.ledger.for_artifact(deployment.artifact, limit=None) if d.rule == after.rule
        ]
        there = [d for d in upstream if d.status is Status.SUCCEEDED and d.settled_at is not None]
        if not there:
            # An artifact that failed there is never deployed there again automatically: it never will be.
            ended = next((d for d in upstream if d.status in _FAILED_THERE), None)
            failed = f"deployment {ended.id} ended {str(ended.status).replace('_', ' ')}" if ended else None
            return Promotion(after.rule, failed=failed)
        first = min(there, key=lambda d: d.settled_at or d.created_at)
        assert first.settled_at is not None
        followers = [
            d
            for d in self.ledger.for_service(first.service, limit=_PROMOTION_LOOKBACK)
            if d.settled_at is not None
            and d.settled_at > first.settled_at
            and d.status in (Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK)
            and d.artifact != deployment.artifact
        ]
        if not followers:
            return Promotion(after.rule, first.settled_at)
        ended = min(followers, key=lambda d: d.settled_at or d.created_at)
        how = (
            f"it was replaced by deployment {ended.id}"
            if ended.status is Status.SUCCEEDED
            else f"deployment {ended.id} {str(ended.status).replace('_', ' ')}"
        )
        return Promotion(after.rule, first.settled_at, ended.settled_at, how)

    def _rule_of(self, deployment: Deployment) -> CompiledRule | None:
        change = _change_of(deployment)
        if change is None:
            return None
        return next((r for r in self.controller.rules.watching(change) if r.id == deployment.rule), None)

    # --- moves ----------------------------------------------------------------------------------------

    def _keep_held(self, deployment: Deployment, held_by: tuple[str, ...], detail: str) -> None:
        self.ledger.update(
            transition(deployment.id, Status.HELD, Status.HELD, held_by=list(held_by), detail=detail)
        )

    def _release(self, deployment: Deployment, detail: str) -> None:
        """Every gate is open: admit it, as a push would be (it may still be refused: older than what is
        live by now, say; it is then superseded with that reason)."""
        opened = f"every gate open: {detail}"
        if not self.ledger.update(transition(deployment.id, Status.HELD, Status.HELD, detail=opened)):
            return  # moved on meanwhile (superseded, released by another run)
        released = deployment.model_copy(update={"detail": opened})
        try:
            change, refusal = self.controller.admit(released)
        except DuplicateDeployment:
            return  # the service was paused meanwhile: it stays held
        if change is None:
            self._supersede(deployment, None, refusal or "not deployed")
            return
        self.supersede_older_held(released)

    def _reject(self, deployment: Deployment, reason: str) -> None:
        moved = transition(
            deployment.id,
            Status.HELD,
            Status.REJECTED,
            settled_at=self.clock(),
            held_by=[],
            detail=f"rejected: {reason}",
        )
        if self.ledger.update(moved):
            self.controller.slots.notify(deployment.id, "Rejected")

    def _supersede(self, deployment: Deployment, by: str | None, why: str | None = None) -> None:
        detail = why or f"replaced by the newer deployment {by} of its rule while held"
        moved = transition(
            deployment.id,
            Status.HELD,
            Status.SUPERSEDED,
            settled_at=self.clock(),
            superseded_by=by,
            held_by=[],
            detail=detail,
        )
        if self.ledger.update(moved):
            self.controller.slots.notify(deployment.id, "Superseded")


class _Newer:
    """Orders deployments of one rule by the rule's order (the key of `max`)."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def __lt__(self, other: _Newer) -> bool:
        return compare(other.deployment.position, self.deployment.position) > 0


def _held_detail(verdict: Verdict, paused: tuple[str, ...]) -> str:
    notes = list(verdict.notes)
    if paused:
        notes.insert(0, "pause: the service is paused; `pushdeploy resume` deploys the newest held")
    return "; ".join(notes)


def _records(facts: GateFacts) -> dict[str, Any]:
    records: dict[str, Any] = {}
    if facts.scan is not None:
        records["scan"] = facts.scan.as_record()
    if facts.approval is not None:
        records["approval"] = facts.approval.as_record()
    return records


def _from_event(scan: ScanResult, now: datetime) -> ScanFacts:
    counts = {str(k).upper(): int(v) for k, v in scan.severity_counts.items()}
    return ScanFacts("COMPLETE" if scan.status.upper() in ("COMPLETE", "ACTIVE") else "FAILED", counts, now)


def _change_of(deployment: Deployment) -> Change | None:
    """The change a push's deployment came from, enough to find its rule (by source and repository)."""
    try:
        if deployment.digest:
            return Change(
                kind="image",
                source="ecr",
                account=deployment.account,
                region=deployment.region,
                repository=deployment.repository,
                tag=deployment.tag,
                digest=deployment.digest,
            )
        return Change(
            kind="commit",
            source=deployment.source,
            account=deployment.account,
            region=deployment.region,
            repository=deployment.repository,
            branch=deployment.branch,
            commit=deployment.commit,
        )
    except ValueError:
        return None
