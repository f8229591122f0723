"""What must hold, checked against the ledger (through its public reads) and against what App Runner
really did (the simulator's operations, each attributed to pushdeploy or to someone else by the hooks).

"Someone else's change" below means an operation someone else ran (StartDeployment or UpdateService by
hand) that succeeded. After one, what pushdeploy had deployed is no longer what runs, so pushdeploy may
rightly deploy again what it deployed before, or a push older than that (the ledger's "live" then counts
for nothing): the checks do not hold that against it.

Checked after every step:
- recorded: every push an invocation answered for has its change record, with exactly one decision per
  watching rule; a decision names only a deployment the ledger holds, and names the deployment made for
  its change and rule when there is one (a retry must report its own deployment, not refuse as a
  duplicate of it); the push's answers always name the same change ids;
- record-unchanged: a change record never changes once it exists: it is read as soon as an attempt
  crashed or answered, and again after every later answer (retries and redeliveries);
- record-ttl: a change that created a deployment has no `expires_at`; one that created none has it;
- one-operation: at most one App Runner operation in progress per service, and at most one pushdeploy
  deployment starting or in progress per service;
- own-operation: an operation id is claimed by at most one deployment, is an operation of that
  deployment's service, and is one pushdeploy started: someone else's operation is never adopted,
  unless it started inside one of the deployment's recorded attempt windows and is not an UpdateService
  that succeeded (App Runner names no caller: the issue's rule adopts such an operation);
- deployed-once: pushdeploy never starts an operation again for an artifact whose operation on that
  service failed or rolled back; and it starts a second operation for an artifact on a service only if,
  in between, an operation of another artifact or someone else's change succeeded there;
- order: the succeeded deployments of a rule on a service, in the order their operations started, are
  each strictly newer than the one before by the rule's order (semver: the version; tag and glob: the
  push's event time, then the digest; code: the commit chain), unless someone else's change came between
  the two.

Checked as soon as a sweep has recorded a push (a change record under the sweep's change id for it,
`swept_change_id`: one per repository, tag or branch, and digest or commit):
- recorded (as above, for the sweep's record), and it says `trigger: sweep` with the sweep's note;
- sweep-known: the sweep records no push whose event's change record was answered before that sweep
  began (the ledger knew it: only a sweep that raced the event may record it a second time, or one that
  finishes what an earlier sweep began to deploy and died before recording).

Checked at quiescence (on every service that was not deleted, except `processed` and `settles`):
- processed: every push delivered at least once was answered by some invocation;
- settles: no deployment is queued, starting or in progress, and the service's slot holds no active or
  pending deployment (deleted and vanished services included: theirs must settle too, as `error`);
- unclaimed-operation: every operation pushdeploy started is claimed by a deployment, unless someone
  else's UpdateService succeeded after it (the configured image is then no proof it was pushdeploy's);
- outside-record: what the ledger lists as changes made outside pushdeploy is no deployment's operation,
  and not an operation pushdeploy started (with the same exception);
- live-matches: the image of the newest succeeded deployment (newest by its operation's start) is the
  image DescribeService shows, unless someone else's UpdateService succeeded after it;
- swept: every push whose event was lost, that moved its tag onto its image, and whose tag ECR still
  puts on that image, was decided: a sweep recorded it after it was pushed, or the event of a later push
  of the same tag and digest was answered. Not a re-tag onto an image ECR already held (ECR keeps an
  image's first push time), unless a `tag` rule names the tag, the sweep had first looked at the
  repository before it, and the tag was never on that image before: the sweep follows those tags' moves,
  from its first look on, and a move back is the earlier push to it (README, a documented gap). A lost
  push whose tag has moved on to another image is no longer in ECR to be found (a newer push of that tag
  took its place); one that put a tag on the image it was already on changed nothing in ECR;
- recorded: every deployment a sweep made has its change's record (a sweep that stopped between the
  two leaves it to the next sweep to record, as a Lambda retry does for a push's event);
- raced-once: a push recorded twice (its late event and a sweep that raced it) deployed on a rule from
  one of the two records only, unless the first deployment never started an App Runner operation (it was
  superseded while queued, say) or someone else's change succeeded on the service after it started;
- newest: the newest succeeded deployment deploys the newest eligible artifact: newest by the rule's
  order among the pushes for the rule that were decided (answered, or recorded by a sweep: a push whose
  event was lost counts from when the sweep found it; on a rule the sweep does not follow by tag, a lost
  re-tag onto an image already in ECR is ordered by the image's first push, as the sweep can only date
  it, README) and whose artifact did not fail or roll back
  there (for semver: any artifact pushed under the newest eligible version). After a change someone
  else made, only pushes first delivered after it count, and a deployment at least as new as the newest
  of them passes too (a push already on its way may rightly win); nothing is expected when that change
  came after the newest succeeded deployment. Excused when the ledger recorded a deployment on the
  service as failed or rolled back at or after that newest push was first delivered (the failure may be
  why it was refused or superseded). On a gated rule, a push counts only if its deployment passed its
  gates (gate_invariants.py: a pushed artifact that a gate rejected, or that is still held, is not
  expected live).

On gated rules, gate_invariants.py checks gate-closed-start and rejected-never-deploys after every step,
and held-ends at quiescence.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pushdeploy.domain.sweep import FOUND_BY_SWEEP
from tests.simulation.world import (
    RULES,
    START_GRACE_SECONDS,
    OperationView,
    RuleSpec,
    ServiceView,
    parse_version,
)

if TYPE_CHECKING:
    from tests.simulation.gate_invariants import GateChecker

IN_FLIGHT = frozenset({"queued", "starting", "in_progress"})
ACTIVE = frozenset({"starting", "in_progress"})
FAILED_OPERATIONS = frozenset({"FAILED", "ROLLBACK_SUCCEEDED", "ROLLBACK_FAILED"})
FAILED_DEPLOYMENTS = frozenset({"failed", "rolled_back"})
DEPLOY_TYPES = frozenset({"START_DEPLOYMENT", "UPDATE_SERVICE"})
_SKEW = timedelta(seconds=5)  # more than the clock disagreement pushdeploy allows for


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


@dataclass
class Push:
    """One push event, as the simulation sent it."""

    event_id: str
    kind: str  # image | commit
    tag: str | None
    artifact: str  # digest or commit id
    number: int  # the digest's or commit's number in the schedule (for messages)
    pushed_at: datetime  # the event's `time`
    first_delivered_at: datetime | None = None  # when it was first delivered (the controller's time)
    change_ids: list[str] | None = None  # from the first answer of an invocation
    # What the change ids will be, when pushdeploy's own derivation is importable: to read the record
    # after a crashed attempt, before any invocation answered.
    expected_change_ids: list[str] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # change id -> first record read
    lost: bool = False  # its event was lost at the source: only a sweep can find it
    swept_id: str | None = None  # the change id a sweep gives it (one per tag, or branch, and artifact)
    swept_at: datetime | None = None  # when a sweep's record of it was first seen

    @property
    def decided(self) -> bool:
        """pushdeploy decided it: an invocation answered for its event, or a sweep recorded it."""
        return self.change_ids is not None or self.swept_at is not None

    @property
    def known_at(self) -> datetime | None:
        """When pushdeploy first heard of it: its first delivery, or the sweep that found it."""
        return min((t for t in (self.first_delivered_at, self.swept_at) if t is not None), default=None)


@dataclass
class Snapshot:
    """Everything the checks read, taken once per step."""

    deployments: dict[str, list[Any]]  # role -> the service's deployments, oldest first
    services: dict[str, ServiceView]
    started_by: dict[str, str]  # operation id -> pushdeploy | outside
    images: dict[str, str]  # UpdateService operation id -> image asked for


def status_of(deployment: Any) -> str:
    return str(deployment.status)


def artifact_of(deployment: Any) -> str | None:
    return getattr(deployment, "digest", None) or getattr(deployment, "commit", None)


def short(identifier: str | None) -> str:
    return (identifier or "-")[:8]


class Checker:
    """The invariants over one episode. `pushes` maps event ids to what was pushed (filled in as the
    episode runs), `deleted` names the roles whose service someone deleted, `labels` names an artifact
    in messages as the schedule does ("#12"), `moment` gives the controller's time of a simulator
    instant."""

    def __init__(
        self,
        roles: tuple[str, ...],
        pushes: dict[str, Push],
        deleted: set[str],
        labels: Callable[[str], str],
        moment: Callable[[float], datetime],
    ) -> None:
        self.roles = roles
        self.moment = moment
        self.pushes = pushes
        self.deleted = deleted
        self.labels = labels  # artifact -> "#12" (for messages)
        self.by_change: dict[str, Push] = {}
        # A sweep's change id -> every push of its tag and artifact (a tag moved back onto an image has two)
        self.by_swept: dict[str, list[Push]] = {}
        self.swept: dict[str, dict[str, Any]] = {}  # a sweep's change id -> its record, as first read
        self.first_look: datetime | None = None  # when a sweep first recorded its marks
        self.gates: GateChecker | None = None  # the gated rules' checks, in an episode with gates
        # A change's deploying decisions, as `changes show` reads them when its record is missing.
        self.read_decisions: Callable[[str], dict[str, Any] | None] = lambda change_id: None

    # --- after every step --------------------------------------------------------------------------

    def step_checks(self, snapshot: Snapshot) -> list[Violation]:
        found: list[Violation] = []
        for role, deployments in snapshot.deployments.items():
            view = snapshot.services[role]
            found += self._one_operation(role, deployments, view)
            found += self._own_operations(role, deployments, view, snapshot.started_by)
            found += self._deployed_once(role, deployments, view, snapshot)
            found += self._order(role, deployments, view, snapshot.started_by)
        if self.gates is not None:
            found += self.gates.step_checks(snapshot)
        return found

    def record_checks(
        self,
        push: Push,
        read: Callable[[str], dict[str, Any] | None],
        created: dict[tuple[str, str], str],
        change_ids: Sequence[str] | None = None,
    ) -> list[Violation]:
        """The change records of one answered push (or `change_ids`, a sweep's record of it): present,
        complete, unchanged, TTL as it should be. `created` maps (change id, rule id) to the deployment
        the ledger holds for them."""
        found: list[Violation] = []
        watching = sorted(
            spec.rule_id for spec in RULES.values() if spec.watches(push.kind) and self._has(spec)
        )
        ids = set(created.values())
        for change_id in push.change_ids or [] if change_ids is None else change_ids:
            record = read(change_id)
            where = f"change {short(change_id)} of event {push.event_id[-6:]}"
            if record is None:
                found.append(Violation("recorded", f"{where} has no record"))
                continue
            decisions = record.get("decisions") or []
            rules = sorted(str(decision.get("rule")) for decision in decisions)
            if rules != watching:
                found.append(Violation("recorded", f"{where} has decisions for {rules}, expected {watching}"))
            for decision in decisions:
                named = decision.get("deployment")
                if named and named not in ids:
                    found.append(
                        Violation("recorded", f"{where} names deployment {short(named)}, not in the ledger")
                    )
                own = created.get((change_id, str(decision.get("rule"))))
                if own is not None and named != own:
                    found.append(
                        Violation(
                            "recorded",
                            f"{where}: the decision of {decision.get('rule')} does not name the deployment "
                            f"{short(own)} made for it (note: {decision.get('note')!r})",
                        )
                    )
            deployed = any(decision.get("deployment") for decision in decisions)
            if deployed and record.get("expires_at") is not None:
                found.append(Violation("record-ttl", f"{where} created a deployment but expires"))
            if not deployed and record.get("expires_at") is None:
                found.append(Violation("record-ttl", f"{where} deployed nothing but has no expires_at"))
            found += self.unchanged(push, change_id, record)
        return found

    def swept_record(
        self, pushes: Sequence[Push], change_id: str, record: dict[str, Any], answered_before: Set[str]
    ) -> list[Violation]:
        """A sweep's record of `pushes` (those of its tag and artifact), seen for the first time after a
        sweep that began when the pushes of `answered_before` (sweep change ids) had been answered."""
        self.swept.setdefault(change_id, record)
        push = pushes[0]
        where = f"the sweep's change {short(change_id)} of {self._push_label(push)}"
        found = []
        if (record.get("trigger"), record.get("note")) != ("sweep", FOUND_BY_SWEEP):
            found.append(
                Violation(
                    "recorded",
                    f"{where} says trigger {record.get('trigger')!r}, note {record.get('note')!r}",
                )
            )
        if change_id in answered_before:
            events = ", ".join(p.event_id[-6:] for p in pushes if p.change_ids is not None)
            found.append(
                Violation(
                    "sweep-known",
                    f"{where} was recorded though the event {events} was answered before that sweep began",
                )
            )
        return found

    def unchanged(self, push: Push, change_id: str, record: dict[str, Any]) -> list[Violation]:
        """The record is the one first read (taken as soon as it exists, even after a crash)."""
        first = push.records.setdefault(change_id, record)
        if record == first:
            return []
        where = f"change {short(change_id)} of event {push.event_id[-6:]}"
        return [Violation("record-unchanged", f"{where} was rewritten: {_difference(first, record)}")]

    def _has(self, spec: RuleSpec) -> bool:
        return spec.role in self.roles

    def _one_operation(self, role: str, deployments: Sequence[Any], view: ServiceView) -> list[Violation]:
        found = []
        running = [op for op in view.operations if op.ended_at is None]
        if len(running) > 1:
            found.append(
                Violation("one-operation", f"{role}: App Runner runs {len(running)} operations at once")
            )
        active = [d for d in deployments if status_of(d) in ACTIVE]
        if len(active) > 1:
            ids = ", ".join(f"{short(d.id)} ({status_of(d)})" for d in active)
            found.append(Violation("one-operation", f"{role}: several deployments active at once: {ids}"))
        return found

    def _own_operations(
        self, role: str, deployments: Sequence[Any], view: ServiceView, started_by: dict[str, str]
    ) -> list[Violation]:
        found = []
        on_service = {op.id: op for op in view.operations}
        claimed: dict[str, str] = {}
        for deployment in deployments:
            operation_id = getattr(deployment, "operation_id", None)
            if not operation_id:
                continue
            if operation_id in claimed:
                found.append(
                    Violation(
                        "own-operation",
                        f"{role}: operation {short(operation_id)} claimed by deployments "
                        f"{short(claimed[operation_id])} and {short(deployment.id)}",
                    )
                )
            claimed[operation_id] = deployment.id
            operation = on_service.get(operation_id)
            if operation is None:
                found.append(
                    Violation(
                        "own-operation",
                        f"{role}: deployment {short(deployment.id)} claims an unknown operation",
                    )
                )
            elif started_by.get(operation_id) != "pushdeploy" and not self._indistinguishable(
                deployment, operation
            ):
                found.append(
                    Violation(
                        "own-operation",
                        f"{role}: deployment {short(deployment.id)} ({self._label(deployment)}) claims "
                        f"operation #{operation.index} ({operation.type}), which someone else started",
                    )
                )
        return found

    def _indistinguishable(self, deployment: Any, operation: OperationView) -> bool:
        """Whether someone else's operation started inside one of the deployment's recorded attempt
        windows (from before its call to the end of the call, or to the start grace for a call whose end
        was never recorded), and is not an UpdateService that succeeded (whose configured image would tell
        it apart). App Runner names no caller: such an operation may be adopted."""
        if operation.type == "UPDATE_SERVICE" and operation.status == "SUCCEEDED":
            return False
        started = self.moment(operation.started_at)
        for attempt in getattr(deployment, "attempt_log", None) or []:
            opened = getattr(attempt, "at", None)
            if opened is None:
                continue
            closed = getattr(attempt, "until", None) or opened + timedelta(seconds=START_GRACE_SECONDS)
            if opened - _SKEW <= started <= closed + _SKEW:
                return True
        return False

    def _deploy_operations(
        self, deployments: Sequence[Any], view: ServiceView, snapshot: Snapshot
    ) -> list[tuple[OperationView, str, str | None]]:
        """(operation, who started it, its artifact if known) for every deploy operation on the service."""
        claimed = {d.operation_id: d for d in deployments if getattr(d, "operation_id", None)}
        found = []
        for op in view.operations:
            if op.type not in DEPLOY_TYPES:
                continue
            who = snapshot.started_by.get(op.id, "outside")
            artifact = None
            if op.id in claimed:
                artifact = artifact_of(claimed[op.id])
            elif who == "pushdeploy" and op.id in snapshot.images:
                image = snapshot.images[op.id]
                artifact = image.split("@", 1)[1] if "@" in image else None
            found.append((op, who, artifact))
        return found

    def _deployed_once(
        self, role: str, deployments: Sequence[Any], view: ServiceView, snapshot: Snapshot
    ) -> list[Violation]:
        found = []
        operations = self._deploy_operations(deployments, view, snapshot)
        ours = [(op, artifact) for op, who, artifact in operations if who == "pushdeploy" and artifact]
        for position, (op, artifact) in enumerate(ours):
            earlier = [(prev, a) for prev, a in ours[:position] if a == artifact]
            if not earlier:
                continue
            prev = earlier[-1][0]
            label = self.labels(artifact)
            if any(e.status in FAILED_OPERATIONS for e, _ in earlier):
                found.append(
                    Violation(
                        "deployed-once",
                        f"{role}: {label} failed there before, yet pushdeploy deployed it again "
                        f"(operation #{op.index})",
                    )
                )
                continue
            changed = any(
                prev.index < other.index < op.index
                and other.status == "SUCCEEDED"
                and (who == "outside" or other_artifact != artifact)
                for other, who, other_artifact in operations
            )
            if not changed:
                found.append(
                    Violation(
                        "deployed-once",
                        f"{role}: {label} deployed twice (operations #{prev.index} and #{op.index}) "
                        "with nothing else live in between",
                    )
                )
        return found

    def _order_key(self, spec: RuleSpec, deployment: Any) -> tuple[Any, ...] | None:
        """Where a deployment stands in its rule's order (None when its push is not known yet)."""
        if spec.kind == "semver":
            return parse_version(getattr(deployment, "tag", None) or "")
        change_id = getattr(deployment, "change_id", "")
        push = self.by_change.get(change_id)
        created = getattr(deployment, "created_at", None)
        pushes_then = [p for p in self.by_swept.get(change_id, []) if created and p.pushed_at <= created]
        if pushes_then:
            # A sweep's deployment of a tag moved back onto an image stands for the newest move it saw.
            push = max(pushes_then, key=lambda p: p.pushed_at)
        return None if push is None else self._push_key(spec, push)

    @staticmethod
    def _push_key(spec: RuleSpec, push: Push) -> tuple[Any, ...] | None:
        if spec.kind == "semver":
            return parse_version(push.tag or "")
        if spec.kind == "code":
            return (push.number,)  # the commit chain: each commit's previous is the one before
        return (push.pushed_at, push.artifact)

    def succeeded_in_order(
        self, deployments: Sequence[Any], view: ServiceView
    ) -> list[tuple[OperationView, Any]]:
        """pushdeploy's succeeded deployments on the service, in the order their operations started."""
        by_id = {op.id: op for op in view.operations}
        succeeded = [
            (by_id[d.operation_id], d)
            for d in deployments
            if status_of(d) == "succeeded" and getattr(d, "operation_id", None) in by_id
        ]
        return sorted(succeeded, key=lambda pair: pair[0].index)

    def _order(
        self, role: str, deployments: Sequence[Any], view: ServiceView, started_by: dict[str, str]
    ) -> list[Violation]:
        found = []
        spec = RULES[role]
        ordered = [(op, d) for op, d in self.succeeded_in_order(deployments, view) if d.rule == spec.rule_id]
        for (op_a, a), (op_b, b) in itertools.pairwise(ordered):
            key_a, key_b = self._order_key(spec, a), self._order_key(spec, b)
            if key_a is None or key_b is None or key_b > key_a:
                continue
            if _outside_success_between(view, started_by, op_a.index, op_b.index):
                continue  # someone else's change came between: `a` was no longer what ran
            found.append(
                Violation(
                    "order",
                    f"{role}: {self._label(b)} (operation #{op_b.index}) succeeded after {self._label(a)} "
                    f"(operation #{op_a.index}), which is {'as new' if key_b == key_a else 'newer'}",
                )
            )
        return found

    def _label(self, deployment: Any) -> str:
        tag = getattr(deployment, "tag", None)
        artifact = artifact_of(deployment)
        label = self.labels(artifact) if artifact else "?"
        return f"{tag} {label}" if tag else label

    # --- at quiescence -----------------------------------------------------------------------------

    def final_checks(
        self,
        snapshot: Snapshot,
        slots: dict[str, tuple[Any, Any]],
        outside: dict[str, list[dict[str, Any]]],
        in_ecr: Set[tuple[str, str]] = frozenset(),
        read: Callable[[str], dict[str, Any] | None] = lambda change_id: None,
    ) -> list[Violation]:
        """`in_ecr`: (tag, digest) of every tagged image ECR holds; `read`: a change record by its id."""
        found = self._swept_lost(in_ecr)
        found += [
            Violation(
                "processed", f"push event {push.event_id[-6:]} ({self._push_label(push)}) was never processed"
            )
            for push in self.pushes.values()
            if push.first_delivered_at is not None and push.change_ids is None
        ]
        for role, deployments in snapshot.deployments.items():
            view = snapshot.services[role]
            unsettled = [d for d in deployments if status_of(d) in IN_FLIGHT]
            for deployment in unsettled:
                found.append(
                    Violation(
                        "settles",
                        f"{role}: deployment {short(deployment.id)} ({self._label(deployment)}) still "
                        f"{status_of(deployment)} at quiescence",
                    )
                )
            active, pending = slots[role]
            if active is not None or pending is not None:
                found.append(Violation("settles", f"{role}: the slot is still held at quiescence"))
            found += self._raced_once(role, deployments, view, snapshot.started_by, read)
            found += self._swept_deployments_recorded(role, deployments, read)
            if role in self.deleted:
                continue
            found += self._unclaimed(role, deployments, view, snapshot)
            found += self._outside_records(role, outside.get(role, []), deployments, view, snapshot)
            found += self._live_and_newest(role, deployments, view, snapshot.started_by)
        if self.gates is not None:
            found += self.gates.final_checks(snapshot, in_ecr, self.deleted)
        return found

    def _push_label(self, push: Push) -> str:
        return f"{push.tag} {self.labels(push.artifact)}" if push.tag else self.labels(push.artifact)

    def _swept_lost(self, in_ecr: Set[tuple[str, str]]) -> list[Violation]:
        """swept: each lost push a rule takes that moved its tag onto its image, still there, was decided:
        a sweep recorded it after it was pushed, or a later push of the same tag and digest was answered."""
        images = [push for push in self.pushes.values() if push.kind == "image"]  # in the order pushed
        first_pushed: dict[str, datetime] = {}
        tag_was_on: dict[str | None, str] = {}  # tag -> the digest it was on before the push at hand
        tag_has_been_on: dict[str | None, set[str]] = {}  # tag -> every digest it was on before
        found = []
        for index, push in enumerate(images):
            first_pushed.setdefault(push.artifact, push.pushed_at)
            moved = tag_was_on.get(push.tag) != push.artifact  # else ECR did not change
            tag_was_on[push.tag] = push.artifact
            moved_back = push.artifact in tag_has_been_on.setdefault(push.tag, set())
            tag_has_been_on[push.tag].add(push.artifact)
            if not push.lost or not moved or (push.tag or "", push.artifact) not in in_ecr:
                continue
            if first_pushed[push.artifact] < push.pushed_at and (not self._tag_followed(push) or moved_back):
                # A re-tag onto an image already in ECR: ECR keeps the image's first push time, so the
                # sweep cannot tell it from the image's first push (README, "Never miss a push"); it
                # follows only the tags `tag` rules name, and from its first look on (integration tests),
                # and a move back onto an image the tag was on before is that earlier push to it (a
                # documented gap).
                continue
            if not any(spec.matches(push.tag) for spec in RULES.values() if self._has(spec)):
                continue
            answered_later = any(
                later.tag == push.tag and later.artifact == push.artifact and later.change_ids is not None
                for later in images[index + 1 :]
            )
            if push.swept_at is not None or answered_later:
                continue
            pushed, image_at = push.pushed_at, first_pushed[push.artifact]
            found.append(
                Violation(
                    "swept",
                    f"{self._push_label(push)} (event {push.event_id[-6:]} lost, pushed {pushed:%H:%M:%S}, "
                    f"its image first pushed {image_at:%H:%M:%S}) is in ECR, yet no sweep decided it",
                )
            )
        return found

    def _tag_followed(self, push: Push) -> bool:
        """Whether the sweep follows the push's tag (a `tag` rule names it) and had looked before it."""
        named = any(
            spec.kind == "tag" and spec.matches(push.tag) for spec in RULES.values() if self._has(spec)
        )
        return named and self.first_look is not None and push.pushed_at > self.first_look

    def _raced_once(
        self,
        role: str,
        deployments: Sequence[Any],
        view: ServiceView,
        started_by: dict[str, str],
        read: Callable[[str], dict[str, Any] | None],
    ) -> list[Violation]:
        """raced-once, on one service: the two records of a push (its event's, a sweep's) made one
        deployment between them, unless the first never started or someone else's change came after it."""
        rule = RULES[role].rule_id
        by_id = {d.id: d for d in deployments}
        found = []
        for push in self.pushes.values():
            swept = self.swept.get(push.swept_id or "")
            if swept is None or push.swept_at is None or not push.change_ids:
                continue  # a sweep's record from before the push is an earlier push's
            for change_id in push.change_ids:
                # A set: on a gated rule both records may name the one deployment held for the push.
                named = {
                    _deployment_for(rule, r) for r in (swept, push.records.get(change_id) or read(change_id))
                }
                pair = sorted((by_id[i] for i in named if i in by_id), key=lambda d: d.created_at)
                if len(pair) == 2 and not self._may_deploy_again(pair[0], view, started_by):
                    found.append(
                        Violation(
                            "raced-once",
                            f"{role}: {self._push_label(push)} was deployed from both its event's record "
                            f"and the sweep's ({short(pair[0].id)} {status_of(pair[0])}, then "
                            f"{short(pair[1].id)} {status_of(pair[1])})",
                        )
                    )
        return found

    def _swept_deployments_recorded(
        self, role: str, deployments: Sequence[Any], read: Callable[[str], dict[str, Any] | None]
    ) -> list[Violation]:
        found = []
        for deployment in deployments:
            change_id = getattr(deployment, "change_id", None)
            if (
                getattr(deployment, "trigger", None) != "sweep"
                or not change_id
                or read(change_id) is not None
                or self.read_decisions(change_id) is not None
            ):
                # A sweep that died after deploying and was overtaken by another (which moved the marks
                # past the push) leaves its decisions, written with the deployment, as the record.
                continue
            push = self.by_change.get(change_id)
            what = f"{self._label(deployment)}, {status_of(deployment)}"
            found.append(
                Violation(
                    "recorded",
                    f"{role}: deployment {short(deployment.id)} ({what}) that a sweep made for "
                    f"{self._push_label(push) if push else '?'} has no change record {short(change_id)}",
                )
            )
        return found

    @staticmethod
    def _may_deploy_again(first: Any, view: ServiceView, started_by: dict[str, str]) -> bool:
        """Whether a second deployment of the artifact may follow `first`: it never started an operation,
        or someone else's change succeeded on the service after its operation."""
        by_id = {op.id: op for op in view.operations}
        operation = by_id.get(getattr(first, "operation_id", None) or "")
        if operation is None:
            return True
        return any(op.index > operation.index for op in _outside_successes(view, started_by))

    def _unclaimed(
        self, role: str, deployments: Sequence[Any], view: ServiceView, snapshot: Snapshot
    ) -> list[Violation]:
        claimed = {d.operation_id for d in deployments if getattr(d, "operation_id", None)}
        found = []
        for op in view.operations:
            if (
                op.type not in DEPLOY_TYPES
                or snapshot.started_by.get(op.id) != "pushdeploy"
                or op.id in claimed
            ):
                continue
            later_outside = _outside_update_after(view, snapshot.started_by, op.index)
            if not later_outside:
                found.append(
                    Violation(
                        "unclaimed-operation",
                        f"{role}: pushdeploy started operation #{op.index} ({op.type}, {op.status}) "
                        "and no deployment claims it",
                    )
                )
        return found

    def _outside_records(
        self,
        role: str,
        records: Sequence[dict[str, Any]],
        deployments: Sequence[Any],
        view: ServiceView,
        snapshot: Snapshot,
    ) -> list[Violation]:
        """What the ledger calls changes made outside pushdeploy: never an operation a deployment claims,
        and never one pushdeploy started, unless someone else's operation came after it (then pushdeploy
        could not prove it its own)."""
        claimed = {d.operation_id for d in deployments if getattr(d, "operation_id", None)}
        by_id = {op.id: op for op in view.operations}
        found = []
        for record in records:
            operation_id = str(record.get("operation_id"))
            op = by_id.get(operation_id)
            label = f"#{op.index}" if op is not None else short(operation_id)
            if operation_id in claimed:
                found.append(
                    Violation(
                        "outside-record", f"{role}: operation {label} is both a deployment's and outside"
                    )
                )
            if op is None or snapshot.started_by.get(operation_id) != "pushdeploy":
                continue
            later_outside = _outside_update_after(view, snapshot.started_by, op.index)
            if not later_outside:
                found.append(
                    Violation(
                        "outside-record",
                        f"{role}: pushdeploy's own operation {label} is recorded as made outside pushdeploy",
                    )
                )
        return found

    def _live_and_newest(
        self,
        role: str,
        deployments: Sequence[Any],
        view: ServiceView,
        started_by: dict[str, str],
    ) -> list[Violation]:
        spec = RULES[role]
        found = []
        ordered = [(op, d) for op, d in self.succeeded_in_order(deployments, view) if d.rule == spec.rule_id]
        live_op, live = ordered[-1] if ordered else (None, None)
        after = live_op.index if live_op is not None else -1
        outside = _outside_successes(view, started_by)
        later = [op for op in outside if op.index > after]
        # live-matches
        if (
            live is not None
            and view.image is not None
            and not any(op.type == "UPDATE_SERVICE" for op in later)
        ):
            image = getattr(live, "image", None)
            if image != view.image:
                found.append(
                    Violation(
                        "live-matches",
                        f"{role}: the ledger's live deployment {short(live.id)} ({self._label(live)}) has "
                        f"image {_tail(image)}, App Runner runs {_tail(view.image)}",
                    )
                )
        # newest
        if later:
            return found
        # After someone else's change, what pushdeploy had deployed no longer counts: only pushes that
        # arrived after it compete.
        since = self.moment(outside[-1].started_at) if outside else None
        expected, newest = self._newest_eligible(spec, deployments, since)
        if not expected or newest is None:
            return found
        actual = artifact_of(live) if live is not None else None
        if actual in expected:
            return found
        if since is not None and live is not None:
            # After someone else's change a push that was on its way before it may rightly win too.
            live_key, newest_key = self._order_key(spec, live), self._push_key(spec, newest)
            if live_key is not None and newest_key is not None and live_key >= newest_key:
                return found
        # A deployment that pushdeploy learnt had failed only once the newest push had arrived may be why
        # that push was refused (older than it, in flight) or superseded.
        delivered = newest.known_at or newest.pushed_at
        explained = any(
            status_of(d) in FAILED_DEPLOYMENTS
            and (getattr(d, "settled_at", None) is None or d.settled_at >= delivered)
            for d in deployments
        )
        if not explained:
            running = self._label(live) if live is not None else "nothing pushdeploy deployed"
            found.append(
                Violation(
                    "newest",
                    f"{role}: runs {running}; the newest eligible push is {self._push_label(newest)}",
                )
            )
        return found

    def _newest_eligible(
        self, spec: RuleSpec, deployments: Sequence[Any], since: datetime | None
    ) -> tuple[set[str], Push | None]:
        """The artifacts that count as newest for the rule (among pushes first delivered at or after
        `since`, if given), and the push that made them newest."""
        failed = {
            artifact_of(d)
            for d in deployments
            if status_of(d) in FAILED_DEPLOYMENTS and d.rule == spec.rule_id
        }
        eligible = [
            push
            for push in self.pushes.values()
            if spec.watches(push.kind)
            and spec.matches(push.tag)
            and push.decided
            and push.artifact not in failed
            and (since is None or (push.known_at is not None and push.known_at >= since))
            and self._past_gates(spec, push, deployments)
        ]
        if not eligible:
            return set(), None
        if spec.kind == "semver":
            top = max(parse_version(push.tag or "") or (0, 0, 0) for push in eligible)
            newest = [push for push in eligible if parse_version(push.tag or "") == top]
            first = min(newest, key=lambda p: p.known_at or p.pushed_at)
            return {push.artifact for push in newest}, first
        if spec.kind == "code":
            push = max(eligible, key=lambda p: p.number)
            return {push.artifact}, push
        dated = self._sweep_dates(spec)
        push = max(eligible, key=lambda p: (dated.get(p.event_id, p.pushed_at), p.artifact))
        return {push.artifact}, push

    def _sweep_dates(self, spec: RuleSpec) -> dict[str, datetime]:
        """For a time-ordered rule the sweep does not follow by tag (a glob's): a lost re-tag onto an image
        already in ECR can only be dated by the image's first push (ECR keeps it; README, "Never miss a
        push"), which orders it where the sweep can know it. Keyed by event id."""
        if spec.kind == "tag":
            return {}
        first_pushed: dict[str, datetime] = {}
        dated: dict[str, datetime] = {}
        for push in self.pushes.values():  # in the order pushed
            if push.kind != "image":
                continue
            first = first_pushed.setdefault(push.artifact, push.pushed_at)
            if push.lost and first < push.pushed_at:
                dated[push.event_id] = first
        return dated

    def _past_gates(self, spec: RuleSpec, push: Push, deployments: Sequence[Any]) -> bool:
        """On a gated rule, whether the push's deployment passed its gates (its event's records and the
        sweep's); always on an ungated one."""
        if self.gates is None:
            return True
        records = list(push.records.values())
        swept = self.swept.get(push.swept_id or "") if push.swept_at is not None else None
        if swept is not None:
            records.append(swept)
        return self.gates.passes(spec.role, records, deployments)


def _outside_successes(view: ServiceView, started_by: dict[str, str]) -> list[OperationView]:
    """Deployments someone else made on the service that succeeded (changes made outside pushdeploy)."""
    return [
        op
        for op in view.operations
        if op.type in DEPLOY_TYPES
        and op.status == "SUCCEEDED"
        and started_by.get(op.id, "outside") == "outside"
    ]


def _outside_update_after(view: ServiceView, started_by: dict[str, str], index: int) -> bool:
    """Whether someone else's UpdateService succeeded after operation `index`: the configured image is
    then no proof that operation was pushdeploy's, so pushdeploy may rightly not adopt it."""
    return any(
        op.index > index and op.type == "UPDATE_SERVICE" for op in _outside_successes(view, started_by)
    )


def _outside_success_between(view: ServiceView, started_by: dict[str, str], low: int, high: int) -> bool:
    return any(low < op.index < high for op in _outside_successes(view, started_by))


def _deployment_for(rule: str, record: dict[str, Any] | None) -> str | None:
    """The deployment a change record's decision for `rule` created (or names), if any."""
    for decision in (record or {}).get("decisions") or []:
        if decision.get("rule") == rule and decision.get("deployment"):
            return str(decision["deployment"])
    return None


def _tail(image: str | None) -> str:
    if image is None:
        return "none"
    tail = image.rsplit("/", 1)[-1]
    if "@sha256:" in tail:
        name, digest = tail.split("@sha256:", 1)
        return f"{name}@#{int(digest, 16)}"
    return tail


def _difference(first: dict[str, Any], now: dict[str, Any]) -> str:
    keys: Iterable[str] = sorted(set(first) | set(now))
    changed = [key for key in keys if first.get(key) != now.get(key)]
    parts = []
    for key in changed[:3]:
        before, after = first.get(key), now.get(key)
        if key == "decisions" and isinstance(before, list) and isinstance(after, list):
            notes = [d.get("note") for d in after if isinstance(d, dict) and d not in before]
            parts.append(f"decisions now say {notes}")
        else:
            parts.append(f"{key} {before!r} -> {after!r}")
    return "; ".join(parts)
