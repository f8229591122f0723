"""What must hold of gated rules (DESIGN 4.7), judged by the episode's own record of the gates (their
spans, the approvals the ledger took, the scans ECR holds, what App Runner ran on the upstream service),
never by the gatekeeper's verdicts.

Checked after every step, on each deployment of a gated rule:
- gate-closed-start: every App Runner call for it (each attempt in its attempt log, which pushdeploy writes
  before it calls) was made while every gate of its rule was open: inside one of the rule's windows and
  outside its freezes (the episode's clock against the spans, in UTC); approved before then (an approval
  the ledger recorded); a scan of its digest within the limits had ended by then (or, with `on_timeout:
  deploy`, the scan FAILED or the wait was over since the deployment was made); and its digest had
  succeeded on the upstream rule's service (an App Runner operation that ended SUCCEEDED) at least the
  bake before then. And every call pushdeploy made to deploy on a gated rule's service is one of those
  attempts (else its gates could not be checked);
- rejected-never-deploys: no App Runner call is made for a deployment while it is held; a rejected
  deployment, and one superseded while held, never claims an App Runner operation nor calls App Runner
  after it was last seen held.

Checked at quiescence (on services not deleted):
- held-ends: a deployment still held has a gate that can never open: its rule waits for a scan
  (`on_timeout: hold`) and ECR holds no finished scan of its digest, or its digest never succeeded on the
  upstream rule's service. Quiescence approves what awaits approval and moves time past every window,
  freeze, scan wait and bake, so every other hold must have ended.

For `newest` (invariants.py), a push counts on a gated rule only if the deployment its decision names, or
the held one it was refused against, led through its supersessions to one that passed its gates: a
pushed artifact that a gate rejected, or that is still held, is not expected live.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence, Set
from datetime import datetime, timedelta
from typing import Any

from tests.simulation.gating import BAKE_SECONDS, SCAN_WAIT_SECONDS, GateLog, Gating, RuleGates
from tests.simulation.invariants import Snapshot, Violation, artifact_of, short, status_of
from tests.simulation.world import RULES, OperationView

# (operation, who started it, its artifact if known) of every deploy operation on a role's service.
Operations = Callable[[str, Snapshot], list[tuple[OperationView, str, str | None]]]
_REFUSED_FOR_HELD = re.compile(r"held as (\S+)")
_ENDS_UNPASSED = frozenset({"held", "rejected"})


class GateChecker:
    def __init__(
        self,
        gating: Gating,
        log: GateLog,
        services: dict[str, str],
        calls: list[tuple[str, datetime]],
        operations: Operations,
        moment: Callable[[float], datetime],
        labels: Callable[[Any], str],
    ) -> None:
        """`services` maps roles to service ARNs; `calls` lists (service ARN, when) of every deploy call
        pushdeploy made, as the hooks saw them; `operations` reads a role's deploy operations from a
        snapshot; `moment` converts a simulator instant; `labels` names a deployment in messages."""
        self.gating = gating
        self.log = log
        self.roles_of = {arn: role for role, arn in services.items()}
        self.calls = calls
        self.operations = operations
        self.moment = moment
        self.labels = labels
        self.checked: dict[str, int] = {}  # deployment id -> its attempts already checked
        self.held_attempts: dict[str, int] = {}  # deployment id -> its attempts when last seen held
        self.last_status: dict[str, str] = {}  # deployment id -> its status at the last check
        self.ended: set[str] = set()  # rejected or superseded-while-held deployments already checked
        self.calls_checked = 0

    # --- after every step ----------------------------------------------------------------------------

    def step_checks(self, snapshot: Snapshot) -> list[Violation]:
        found: list[Violation] = []
        for role, deployments in snapshot.deployments.items():
            gates = self.gating.of(role)
            if gates is None:
                continue
            for deployment in deployments:
                found += self._closed_start(role, gates, deployment, snapshot)
                found += self._never_deploys(role, deployment)
        found += self._calls_accounted(snapshot)
        return found

    def _closed_start(
        self, role: str, gates: RuleGates, deployment: Any, snapshot: Snapshot
    ) -> list[Violation]:
        attempts = getattr(deployment, "attempt_log", None) or []
        start = self.checked.get(deployment.id, 0)
        if len(attempts) <= start:
            return []
        self.checked[deployment.id] = len(attempts)
        found = []
        for number, attempt in enumerate(attempts[start:], start + 1):
            closed = self.closed_gates(role, gates, deployment, attempt.at, snapshot)
            if closed:
                offset = int(self.log.offset(attempt.at))
                claimed_at = getattr(deployment, "claimed_at", None)
                claimed = claimed_at.strftime("%H:%M:%S") if claimed_at is not None else "?"
                found.append(
                    Violation(
                        "gate-closed-start",
                        f"{role}: deployment {short(deployment.id)} ({self.labels(deployment)}) called App "
                        f"Runner at {attempt.at:%H:%M:%S} (origin+{offset}s, attempt {number}; it took the "
                        f"slot at {claimed}) while its {', '.join(closed)} gate was closed",
                    )
                )
        return found

    def closed_gates(
        self, role: str, gates: RuleGates, deployment: Any, at: datetime, snapshot: Snapshot
    ) -> list[str]:
        """The rule's gates closed for `deployment` at `at`, by the episode's record."""
        closed = self.log.closed_in_time(gates, at)
        approved = self.log.approvals.get(deployment.id)
        if gates.approval and (approved is None or approved > at):
            closed.append("approval")
        if gates.scan is not None and not self._scan_open(gates.scan, deployment, at):
            closed.append("scan")
        if gates.after is not None:
            baked = self._baked_at(gates.after, deployment, snapshot)
            if baked is None or baked > at:
                closed.append("promotion")
        return closed

    def _scan_open(self, on_timeout: str, deployment: Any, at: datetime) -> bool:
        """A scan within the limits had ended; or, with `on_timeout: deploy`, a scan FAILED or the wait
        since the deployment was made is over (a scan over the limits then may come too late)."""
        scans = self.log.scanned(str(getattr(deployment, "digest", "")), at)
        if any(scan.within_limits for scan in scans):
            return True
        if on_timeout != "deploy":
            return False
        waited = at - deployment.created_at >= timedelta(seconds=SCAN_WAIT_SECONDS)
        return waited or any(scan.status == "FAILED" for scan in scans)

    def _baked_at(self, upstream: str, deployment: Any, snapshot: Snapshot) -> datetime | None:
        """When the deployment's digest first finished its bake on the upstream rule's service: an
        operation of that digest there that ended SUCCEEDED, plus the bake. None: it never succeeded."""
        if upstream not in snapshot.services:
            return None
        digest = artifact_of(deployment)
        ends = [
            self.moment(op.ended_at)
            for op, _, artifact in self.operations(upstream, snapshot)
            if artifact == digest and op.status == "SUCCEEDED" and op.ended_at is not None
        ]
        return min(ends) + timedelta(seconds=BAKE_SECONDS) if ends else None

    def _never_deploys(self, role: str, deployment: Any) -> list[Violation]:
        status, attempts = status_of(deployment), len(getattr(deployment, "attempt_log", None) or [])
        before, self.last_status[deployment.id] = self.last_status.get(deployment.id), status
        where = f"{role}: deployment {short(deployment.id)} ({self.labels(deployment)})"
        if status == "held":
            held_with = self.held_attempts.get(deployment.id)
            self.held_attempts[deployment.id] = attempts
            if before == "held" and held_with is not None and attempts > held_with:
                return [Violation("rejected-never-deploys", f"{where} called App Runner while held")]
            return []
        ended = status == "rejected" or (status == "superseded" and before == "held")
        if not ended or deployment.id in self.ended:
            return []
        self.ended.add(deployment.id)
        found = []
        if getattr(deployment, "operation_id", None):
            found.append(
                Violation("rejected-never-deploys", f"{where}, {status}, claims an App Runner operation")
            )
        if attempts > self.held_attempts.get(deployment.id, attempts):
            found.append(
                Violation("rejected-never-deploys", f"{where}, {status}, called App Runner after it was held")
            )
        return found

    def _calls_accounted(self, snapshot: Snapshot) -> list[Violation]:
        """Each deploy call on a gated rule's service is an attempt some deployment of it recorded."""
        found = []
        new, self.calls_checked = self.calls[self.calls_checked :], len(self.calls)
        for service, at in new:
            role = self.roles_of.get(service)
            if role is None or self.gating.of(role) is None or role not in snapshot.deployments:
                continue
            attempts = {
                a.at for d in snapshot.deployments[role] for a in getattr(d, "attempt_log", None) or []
            }
            if at not in attempts:
                found.append(
                    Violation(
                        "gate-closed-start",
                        f"{role}: pushdeploy called App Runner at {at:%H:%M:%S} with no deployment's "
                        "attempt recorded (its gates cannot be checked)",
                    )
                )
        return found

    # --- at quiescence ------------------------------------------------------------------------------

    def final_checks(
        self, snapshot: Snapshot, in_ecr: Set[tuple[str, str]], deleted: Set[str]
    ) -> list[Violation]:
        held_digests = {digest for _, digest in in_ecr}
        found = []
        for role, deployments in snapshot.deployments.items():
            gates = self.gating.of(role)
            if gates is None or role in deleted:
                continue
            for deployment in deployments:
                if status_of(deployment) == "held" and not self._held_for_good(
                    gates, deployment, snapshot, held_digests
                ):
                    held_by = ",".join(getattr(deployment, "held_by", None) or ()) or "nothing"
                    found.append(
                        Violation(
                            "held-ends",
                            f"{role}: deployment {short(deployment.id)} ({self.labels(deployment)}) is still "
                            f"held (by {held_by}) at quiescence, though each of its gates could open",
                        )
                    )
        return found

    def _held_for_good(
        self, gates: RuleGates, deployment: Any, snapshot: Snapshot, held_digests: Set[str]
    ) -> bool:
        digest = str(getattr(deployment, "digest", ""))
        unscanned = self.log.finished_scan(digest) is None or digest not in held_digests
        if gates.scan == "hold" and unscanned:
            return True
        return gates.after is not None and self._baked_at(gates.after, deployment, snapshot) is None

    # --- what `newest` counts -----------------------------------------------------------------------

    def passes(self, role: str, records: Iterable[dict[str, Any]], deployments: Sequence[Any]) -> bool:
        """Whether a push counts for `newest` on a gated rule: a decision of one of its records (its
        event's, a sweep's) names a deployment, or the held one it was refused against, whose chain of
        supersessions ends in a deployment that passed its gates (not held, not rejected, not superseded
        without a successor). A decision that deploys nothing for another reason counts, as it does on
        an ungated rule."""
        if self.gating.of(role) is None:
            return True
        rule = RULES[role].rule_id
        by_id = {d.id: d for d in deployments}
        for record in records:
            for decision in record.get("decisions") or []:
                if decision.get("rule") != rule:
                    continue
                refused = _REFUSED_FOR_HELD.search(str(decision.get("note") or ""))
                named = decision.get("deployment") or (refused.group(1) if refused else None)
                if named is None or self._passed(str(named), by_id):
                    return True
        return False

    @staticmethod
    def _passed(deployment_id: str, by_id: dict[str, Any]) -> bool:
        seen: set[str] = set()
        current = by_id.get(deployment_id)
        while current is not None and current.id not in seen:
            seen.add(current.id)
            status = status_of(current)
            if status in _ENDS_UNPASSED:
                return False
            if status != "superseded":
                return True
            successor = getattr(current, "superseded_by", None)
            if successor is None:
                return False
            current = by_id.get(successor)
        return False
