"""The schedule: a list of steps, each carrying every random choice it needs, drawn up front from one
`random.Random(seed)`.

A step names what it acts on by role ("semver", "latest", "glob", "code") or by a number ("pick") that is
taken modulo whatever is pending when the step runs, so any sub-list of a schedule is still a valid
schedule: that is what lets a failing schedule be shrunk by removing steps.

An episode with gates (`gating`) also draws its gate steps: an image's scan ends (`scan`), an operator
approves or rejects a held deployment (`decide`), time moves to the next window or freeze edge
(`gate_time`); an episode without them draws exactly the schedule it drew before gates existed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from tests.simulation.gating import NO_GATES, Gating

# The services of an episode, by role: a semver rule (UpdateService by digest), an exact `latest` tag
# rule (StartDeployment), a `release-*` glob rule (UpdateService by digest) and a CodeCommit branch rule.
ROLES = ("semver", "latest", "glob", "code")
IMAGE_ROLES = ("semver", "latest", "glob")
# What an overlapping invocation, run inside another invocation's AWS call, is: a sweep among them, so that
# a sweep races a held-back push's late delivery (inside it, or with it inside the sweep) and other sweeps;
# and `rules apply`, between a push's read of its rules and its ledger read.
OVERLAPS = ("reconcile", "operation_event", "same_event", "other_push", "sweep", "rules_applied")
# With approval gates, an operator's approval may also come inside another invocation's call.
GATED_OVERLAPS = (*OVERLAPS, "decide")
APP_RUNNER_OPERATIONS = ("StartDeployment", "UpdateService", "ListOperations", "DescribeService")
# The fate of one App Runner status event: delivered, lost, delivered twice, or held back and delivered late.
FATES = ("deliver", "lose", "dup", "late")

# Steps that invoke a handler, and so may carry a crash or an overlap.
INVOKING = frozenset(
    {
        "push",
        "code_push",
        "redeliver",
        "release",
        "retry",
        "reconcile",
        "app_events",
        "late_events",
        "sweep",
        "scan",
        "decide",
    }
)
GATE_STEPS = frozenset({"scan", "decide", "gate_time"})
# A scan's findings within the gates' limits (at most 0 critical, 1 high) and over them.
CLEAN_SCANS: tuple[tuple[tuple[str, int], ...], ...] = ((), (("HIGH", 1), ("MEDIUM", 3)), (("LOW", 7),))
DIRTY_SCANS: tuple[tuple[tuple[str, int], ...], ...] = ((("CRITICAL", 1),), (("HIGH", 2), ("LOW", 1)))


def digest_of(number: int) -> str:
    return f"sha256:{number:064x}"


def commit_of(number: int) -> str:
    return f"{number:040x}"


def event_id_of(number: int) -> str:
    return f"00000000-0000-0000-0000-{number:012d}"


@dataclass(frozen=True)
class Fault:
    """What goes wrong inside one handler invocation. Hook points are numbered from 0 in the order they
    happen: before and after every DynamoDB call on the ledger table and every App Runner call."""

    # The invocation crashes (Lambda timeout, out of memory) at this hook point, counted among the points
    # at `crash_in`'s calls only ("dynamodb" or "apprunner"): before the first DynamoDB call is
    # (0, "dynamodb"), after it (1, "dynamodb").
    crash_at: int | None = None
    crash_in: str = "dynamodb"
    overlap_at: int | None = None  # another whole invocation runs at this point (counted among all points)
    overlap: str | None = None  # one of OVERLAPS

    def describe(self) -> str:
        parts = []
        if self.overlap_at is not None:
            parts.append(f"overlap={self.overlap}@{self.overlap_at}")
        if self.crash_at is not None:
            side = "before" if self.crash_at % 2 == 0 else "after"
            parts.append(f"crash {side} {self.crash_in} call {self.crash_at // 2 + 1}")
        return " ".join(parts)


@dataclass(frozen=True)
class Step:
    kind: str
    tag: str | None = None  # push
    digest: int | None = None  # push
    commit: int | None = None  # code_push
    previous: int | None = None  # code_push: the commit the branch pointed at before
    event: int | None = None  # push, code_push: the EventBridge event id's number
    hold: bool = False  # push, code_push: delivered late (a later `release` step, or quiescence)
    lose: bool = False  # push: the image is in ECR but its event is never delivered (only a sweep finds it)
    pick: int = 0  # redeliver, release, retry, late_events: which pending item, modulo their count
    seconds: int = 0  # advance
    count: int = 0  # throttle, error5xx, fail_next, lose_events
    operation: str | None = None  # throttle, error5xx: one App Runner operation, or every one
    role: str | None = None  # fail_next, lose_events, manual_update, manual_start, delete
    fates: tuple[str, ...] = ()  # app_events: the first events' fates; the rest are delivered
    hotfix: int = 0  # manual_update: the tag `hotfix-N` someone deploys by hand
    status: str | None = None  # scan: COMPLETE (basic), ACTIVE (enhanced, Inspector's event) or FAILED
    counts: tuple[tuple[str, int], ...] = ()  # scan: the findings by severity
    approve: bool = False  # decide: approve (else reject)
    fault: Fault | None = field(default=None)

    def describe(self) -> str:
        text = self._describe()
        if self.fault is not None:
            text += f"  [{self.fault.describe()}]"
        return text

    def _describe(self) -> str:
        kind = self.kind
        if kind == "push":
            fate = " (held back)" if self.hold else " (event lost)" if self.lose else ""
            return f"push web:{self.tag} digest #{self.digest} event {self.event}{fate}"
        if kind == "code_push":
            held = " (held back)" if self.hold else ""
            return f"push commit #{self.commit} (previous #{self.previous}) event {self.event}{held}"
        if kind in ("redeliver", "release", "retry", "late_events"):
            return f"{kind} pick={self.pick}"
        if kind == "app_events":
            return f"deliver App Runner events fates={','.join(self.fates) or 'deliver'}"
        if kind == "advance":
            return f"advance {self.seconds}s"
        if kind in ("throttle", "error5xx"):
            return f"{kind} next {self.count} {self.operation or 'App Runner calls'}"
        if kind in ("fail_next", "lose_events"):
            return f"{kind} {self.role} x{self.count}"
        if kind == "manual_update":
            return f"someone runs UpdateService on {self.role} to web:hotfix-{self.hotfix}"
        if kind == "manual_start":
            return f"someone runs StartDeployment on {self.role}"
        if kind == "delete":
            return f"someone deletes {self.role}"
        if kind == "vanish":
            return f"{self.role}, deleted, is gone (ResourceNotFound)"
        return self._describe_gate_step()

    def _describe_gate_step(self) -> str:
        kind = self.kind
        if kind == "scan":
            fate = " (event held back)" if self.hold else " (event lost)" if self.lose else ""
            found = ",".join(f"{severity}={count}" for severity, count in self.counts) or "nothing"
            return f"scan of a recent digest pick={self.pick} ends {self.status} finding {found}{fate}"
        if kind == "decide":
            return f"operator {'approves' if self.approve else 'rejects'} a held deployment pick={self.pick}"
        if kind == "gate_time":
            return f"time moves to the next window or freeze edge {self.seconds:+d}s"
        return kind

    def without_fault(self) -> Step:
        return replace(self, fault=None)


_WEIGHTS: dict[str, float] = {
    "push": 22,
    "code_push": 6,
    "redeliver": 4,
    "release": 5,
    "retry": 6,
    "reconcile": 13,
    "sweep": 3,  # every ~4 minutes of the world's time (its default schedule is 5; the reconciler's, 1)
    "app_events": 15,
    "late_events": 3,
    "advance": 14,
    "throttle": 2,
    "error5xx": 2,
    "fail_next": 2.5,
    "lose_events": 2,
    "manual_update": 1.2,
    "manual_start": 1.2,
    "delete": 0.25,
    "vanish": 1.5,  # only after a delete: the deleted service is gone (ResourceNotFound from then on)
    "rules_applied": 1.5,  # every container's cached rules are stale from then on
    # Gate steps, drawn only in an episode with the gates they act on (see `_weights`): last, so an
    # episode without gates draws as it did before they existed.
    "scan": 0,
    "decide": 0,
    "gate_time": 0,
}


class ScheduleGenerator:
    """Draws one episode's schedule. Versions, tags and commits mostly move forward, as real pushes do,
    with older ones, re-pushes, re-tags and rebuilds mixed in."""

    def __init__(self, rng: random.Random, roles: tuple[str, ...], gating: Gating = NO_GATES) -> None:
        self.rng = rng
        self.roles = roles
        self.gating = gating
        self.role_digests: dict[str, list[int]] = {}  # the digests pushed under each role's tags
        self.digests = 0
        self.events = 0
        self.versions: list[tuple[int, int, int]] = []
        self.version_digests: dict[tuple[int, int, int], int] = {}
        self.releases = 0
        self.commits = 0
        self.hotfixes = 0
        self.deleted: str | None = None  # the role of the service deleted, once one is
        self.vanished = False

    def schedule(self, steps: int) -> list[Step]:
        table = self._weights()
        kinds = [kind for kind in table if kind != "code_push" or "code" in self.roles]
        weights = [table[kind] for kind in kinds]
        drawn: list[Step] = []
        for index in range(steps):
            kind = self.rng.choices(kinds, weights)[0]
            # A service is deleted rarely, once, and late in an episode; then it may vanish.
            while (kind == "delete" and (self.deleted is not None or index < steps * 0.6)) or (
                kind == "vanish" and (self.deleted is None or self.vanished)
            ):
                kind = self.rng.choices(kinds, weights)[0]
            drawn.append(self._step(kind))
        return drawn

    def _weights(self) -> dict[str, float]:
        """Scans as often as a third of the pushes (so some digests are never scanned), decisions a few
        times less often than reconciler ticks, a move to a gate edge now and then."""
        gating = self.gating
        return {
            **_WEIGHTS,
            "scan": 8 if gating.has("scan") else 0,
            "decide": (6 if gating.has("approval") else 2) if gating.any else 0,
            "gate_time": 3 if gating.has("time") else 0,
        }

    # --- one step ----------------------------------------------------------------------------------

    def _step(self, kind: str) -> Step:
        rng = self.rng
        if kind == "push":
            step = self._image_push()
        elif kind == "code_push":
            step = self._code_push()
        elif kind in ("redeliver", "release", "retry", "late_events"):
            step = Step(kind, pick=rng.randrange(1000))
        elif kind == "app_events":
            fates = tuple(rng.choices(FATES, (80, 7, 7, 6))[0] for _ in range(3))
            step = Step(kind, fates=fates if set(fates) != {"deliver"} else ())
        elif kind == "advance":
            step = Step(kind, seconds=rng.choice((1, 5, 15, 30, 30, 45, 90, 150)))
        elif kind in ("throttle", "error5xx"):
            operation = rng.choice((None, *APP_RUNNER_OPERATIONS))
            step = Step(kind, count=rng.randint(1, 5), operation=operation)
        elif kind in ("fail_next", "lose_events"):
            step = Step(kind, role=rng.choice(self.roles), count=rng.randint(1, 2))
        elif kind == "manual_update":
            self.hotfixes += 1
            step = Step(kind, role=rng.choice([r for r in self.roles if r != "code"]), hotfix=self.hotfixes)
        elif kind == "manual_start":
            step = Step(kind, role=rng.choice(self.roles))
        elif kind == "delete":
            self.deleted = rng.choice(self.roles)
            step = Step(kind, role=self.deleted)
        elif kind == "vanish":
            self.vanished = True
            step = Step(kind, role=self.deleted)
        elif kind in GATE_STEPS:
            step = self._gate_step(kind)
        else:
            step = Step(kind)
        if kind in INVOKING:
            step = replace(step, fault=self._fault())
        return step

    def _fault(self) -> Fault | None:
        rng = self.rng
        crash_at, crash_in = None, "dynamodb"
        if rng.random() < 0.3:
            # An invocation makes a dozen or more ledger calls and a few App Runner calls.
            crash_in = rng.choice(("dynamodb", "apprunner"))
            crash_at = rng.randrange(24 if crash_in == "dynamodb" else 8)
        overlap_at, overlap = None, None
        if rng.random() < 0.15:
            overlaps = GATED_OVERLAPS if self.gating.has("approval") else OVERLAPS
            overlap_at, overlap = rng.randrange(16), rng.choice(overlaps)
        if crash_at is None and overlap_at is None:
            return None
        return Fault(crash_at, crash_in, overlap_at, overlap)

    def _gate_step(self, kind: str) -> Step:
        rng = self.rng
        if kind == "scan":
            return self._scan()
        if kind == "decide":
            return Step(kind, pick=rng.randrange(1000), approve=rng.random() < 0.75)
        # Just before an edge, on it, or a little after it.
        return Step(kind, seconds=rng.choice((-1, 0, 0, 1, 5, 30)))

    def _scan(self) -> Step:
        """A scan ends: mostly within the limits, sometimes over them, sometimes FAILED (no findings);
        a quarter by enhanced scanning (Inspector's event). Its event may be held back or lost (then
        only the reconciler's look at ECR finds it)."""
        rng = self.rng
        roll = rng.random()
        counts: tuple[tuple[str, int], ...] = ()
        if roll < 0.12:
            status = "FAILED"
        else:
            counts = rng.choice(CLEAN_SCANS if roll < 0.8 else DIRTY_SCANS)
            status = "ACTIVE" if rng.random() < 0.25 else "COMPLETE"
        fate = rng.random()
        return Step(
            "scan",
            pick=rng.randrange(1000),
            status=status,
            counts=counts,
            event=self._event(),
            hold=fate < 0.12,
            lose=0.12 <= fate < 0.2,
        )

    def _promoted(self, role: str) -> int | None:
        """A digest of the rule this role's rule is promoted from, half the time: promotion needs the
        same image under both rules' tags."""
        promotion = self.gating.promotion
        if promotion is None or promotion[1] != role or not self.role_digests.get(promotion[0]):
            return None
        if self.rng.random() < 0.5:
            return self.rng.choice(self.role_digests[promotion[0]][-4:])
        return None

    def _pushed(self, role: str, step: Step) -> Step:
        assert step.digest is not None
        self.role_digests.setdefault(role, []).append(step.digest)
        return step

    def _new_digest(self) -> int:
        self.digests += 1
        return self.digests

    def _digest(self) -> int:
        """Mostly a new image; sometimes one pushed before (one digest under several tags)."""
        if self.digests and self.rng.random() < 0.12:
            return self.rng.randint(1, self.digests)
        return self._new_digest()

    def _event(self) -> int:
        self.events += 1
        return self.events

    def _image_push(self) -> Step:
        rng = self.rng
        role = rng.choices(IMAGE_ROLES, (5, 3, 4))[0]
        # The event's fate, from one draw: held back and delivered late (12%), lost at the source (5%).
        fate = rng.random()
        hold, lose = fate < 0.12, 0.12 <= fate < 0.17
        if role == "latest":
            return Step(
                "push", tag="latest", digest=self._digest(), event=self._event(), hold=hold, lose=lose
            )
        if role == "glob":
            if self.releases and rng.random() < 0.15:
                number = rng.randint(1, self.releases)  # an old release tag pushed again: a new push
            else:
                self.releases += 1
                number = self.releases
            tag = f"release-{number}"
            digest = self._promoted("glob") or self._digest()
            return self._pushed(
                "glob", Step("push", tag=tag, digest=digest, event=self._event(), hold=hold, lose=lose)
            )
        version, digest = self._version()
        tag = f"v{version[0]}.{version[1]}.{version[2]}"
        return self._pushed(
            "semver", Step("push", tag=tag, digest=digest, event=self._event(), hold=hold, lose=lose)
        )

    def _version(self) -> tuple[tuple[int, int, int], int]:
        rng = self.rng
        roll = rng.random()
        if self.versions and roll < 0.15:  # an older (or the same) version, pushed late or again
            version = rng.choice(self.versions)
            if rng.random() < 0.5:  # the same digest again (a re-push), else a rebuild under the old tag
                return version, self.version_digests[version]
            digest = self._new_digest()
            self.version_digests[version] = digest
            return version, digest
        newest = max(self.versions, default=(1, 0, 0))
        # Mostly a patch release, sometimes a minor one.
        version = (1, newest[1], newest[2] + 1) if roll < 0.75 else (1, newest[1] + 1, 0)
        if version[1] > 9:  # stay inside the rule's range (>=1.0.0,<2.0.0)
            version = (1, 9, newest[2] + 1)
        digest = self._promoted("semver") or self._digest()
        self.versions.append(version)
        self.version_digests[version] = digest
        return version, digest

    def _code_push(self) -> Step:
        """The next commit on the branch: a chain, each push naming the commit it replaced. Out-of-order
        arrival comes from holding an event back, duplicates from redelivering one."""
        self.commits += 1
        previous = self.commits - 1 if self.commits > 1 else None
        hold = self.rng.random() < 0.15
        return Step("code_push", commit=self.commits, previous=previous, event=self._event(), hold=hold)


def generate(seed: int | str, steps: int, roles: tuple[str, ...], gating: Gating = NO_GATES) -> list[Step]:
    return ScheduleGenerator(random.Random(seed), roles, gating).schedule(steps)
