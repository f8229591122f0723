"""The deployment state machine (pushdeploy.domain.deployments) and the per-service slot
(pushdeploy.domain.slot): invariants that keep one operation at a time per service, never deploy an older
push over a newer one, and lose nothing."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pushdeploy.domain.change_ids import change_id_for
from pushdeploy.domain.changes import Change
from pushdeploy.domain.decisions import Decision
from pushdeploy.domain.deployments import (
    IN_FLIGHT,
    TERMINAL,
    WAITING,
    Attempt,
    Deployment,
    InvalidTransition,
    Status,
    check_transition,
    deployment_id_for,
    iso,
    settled_status,
)
from pushdeploy.domain.order import OrderKind, Position, compare
from pushdeploy.domain.slot import (
    Admission,
    Admitted,
    CheckLive,
    Entry,
    Refused,
    Slot,
    admit,
    forget_live,
    promote,
    release,
    requeue,
)

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SERVICE = "arn:aws:apprunner:us-east-1:111122223333:service/web-prod/0123456789abcdef0123456789abcdef"
REGISTRY = "111122223333.dkr.ecr.us-east-1.amazonaws.com"

# ----- status transitions -----


@pytest.mark.parametrize(
    ("operation_status", "expected"),
    [
        ("SUCCEEDED", Status.SUCCEEDED),
        ("FAILED", Status.FAILED),
        ("ROLLBACK_FAILED", Status.FAILED),
        ("ROLLBACK_SUCCEEDED", Status.ROLLED_BACK),  # the new version is not live: a failure
        ("IN_PROGRESS", None),
        ("PENDING", None),
        ("ROLLBACK_IN_PROGRESS", None),
    ],
)
def test_operation_outcomes(operation_status: str, expected: Status | None) -> None:
    assert settled_status(operation_status) is expected


def test_unknown_operation_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown App Runner operation status"):
        settled_status("EXPLODED")


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_a_settled_deployment_never_moves_again(terminal: Status) -> None:
    for status in Status:
        with pytest.raises(InvalidTransition):
            check_transition(terminal, status)


def test_a_queued_deployment_cannot_skip_to_an_outcome() -> None:
    with pytest.raises(InvalidTransition):
        check_transition(Status.QUEUED, Status.SUCCEEDED)
    check_transition(Status.QUEUED, Status.STARTING)
    check_transition(Status.IN_PROGRESS, Status.ROLLED_BACK)


def test_a_starting_deployment_may_wait_again_or_settle_at_once() -> None:
    check_transition(Status.STARTING, Status.QUEUED)  # App Runner busy with someone else's operation
    check_transition(Status.STARTING, Status.IN_PROGRESS)
    check_transition(Status.STARTING, Status.ERROR)  # refused, or the service is gone
    check_transition(Status.STARTING, Status.SUCCEEDED)  # an adopted operation that had already ended


def test_an_in_progress_deployment_only_settles() -> None:
    for status in (Status.QUEUED, Status.STARTING, Status.SUPERSEDED, Status.IN_PROGRESS):
        with pytest.raises(InvalidTransition):
            check_transition(Status.IN_PROGRESS, status)


def test_in_flight_waiting_and_terminal_partition_the_statuses() -> None:
    assert set(Status) == IN_FLIGHT | WAITING | TERMINAL
    assert not IN_FLIGHT & TERMINAL
    assert not WAITING & (IN_FLIGHT | TERMINAL)
    assert {Status.HELD} == WAITING  # held deployments hold no slot and have not settled


# ----- ids -----


def test_ids_are_deterministic() -> None:
    assert change_id_for("event-1", 0) == change_id_for("event-1", 0)
    assert deployment_id_for("change-1", "web-prod") == deployment_id_for("change-1", "web-prod")


@given(st.text(), st.integers(0, 50), st.text(), st.integers(0, 50))
def test_change_ids_differ_by_event_or_position(
    event: str, position: int, other: str, other_position: int
) -> None:
    same = (event, position) == (other, other_position)
    assert (change_id_for(event, position) == change_id_for(other, other_position)) == same


def test_deployment_ids_differ_by_change_and_rule() -> None:
    ids = {deployment_id_for(change, rule) for change in ("c1", "c2") for rule in ("web-prod", "web-canary")}
    assert len(ids) == 4


def test_iso() -> None:
    assert iso(datetime(2026, 11, 26, 8, 0, 1, 999_000, tzinfo=UTC)) == "2026-11-26T08:00:01Z"
    assert iso(None) is None


# ----- deployments -----


def image_change(tag: str = "v1.6.0", digest: str = "sha256:" + "ab" * 32) -> Change:
    return Change(
        kind="image",
        source="ecr",
        account="111122223333",
        region="us-east-1",
        repository="web",
        tag=tag,
        digest=digest,
        pushed_at=T0,
    )


def image_decision(dry_run: bool = False) -> Decision:
    return Decision(
        rule="web-prod",
        service=SERVICE,
        action="update_service",
        image=f"{REGISTRY}/web@sha256:{'ab' * 32}",
        dry_run=dry_run,
        reason="tag v1.6.0 matches >=1.0.0",
    )


@pytest.mark.parametrize(("order", "version"), [("semver", "v1.6.0"), ("time", None)])
def test_a_deployment_from_a_decision_carries_its_position(order: OrderKind, version: str | None) -> None:
    change = image_change()
    deployment = Deployment.from_decision(image_decision(), change, "change-1", T0, order)
    assert deployment.id == deployment_id_for("change-1", "web-prod")
    assert deployment.status is Status.QUEUED
    assert deployment.version == version
    assert deployment.position == Position(
        rule="web-prod", kind=order, artifact=change.digest or "", version=version, pushed_at=T0
    )


def test_a_dry_run_deployment_is_settled_at_once() -> None:
    deployment = Deployment.from_decision(image_decision(dry_run=True), image_change(), "c", T0, "time")
    assert deployment.status is Status.DRY_RUN
    assert deployment.settled_at == T0


def test_a_code_deployment_is_positioned_on_its_commit_chain() -> None:
    change = Change(
        kind="commit",
        source="github",
        repository="acme/api",
        branch="main",
        commit="c2" * 20,
        pushed_at=T0,
        previous_commit="c1" * 20,
    )
    decision = Decision(rule="api", service=SERVICE, action="start_deployment", reason="branch main")
    deployment = Deployment.from_decision(decision, change, "change-2", T0, "chain")
    assert deployment.artifact == "c2" * 20
    assert deployment.position == Position("api", "chain", "c2" * 20, pushed_at=T0, previous="c1" * 20)
    assert Entry.of(deployment) == Entry(deployment.id, deployment.position)


def test_public_view_shows_what_was_configured_and_the_attempts() -> None:
    deployment = Deployment.from_decision(image_decision(), image_change(), "c", T0, "semver")
    attempted = deployment.model_copy(
        update={
            "configured": "img",
            "attempts": 2,
            "attempt_log": (Attempt(at=T0, outcome="refused"), Attempt(at=T0 + timedelta(minutes=1))),
        }
    )
    view = attempted.public_view()
    assert (view["configured"], view["attempts"], view["version"]) == ("img", 2, "v1.6.0")
    assert attempted.last_attempt_at == T0 + timedelta(minutes=1)
    assert deployment.last_attempt_at is None


# ----- the slot, by example -----


def version_entry(number: int, version: str, digest: str | None = None, rule: str = "web-prod") -> Entry:
    artifact = digest or f"sha256:{number:064x}"
    return Entry(f"d{number}", Position(rule, "semver", artifact, version=version, pushed_at=T0))


def timed_entry(number: int, artifact: str, minute: int, rule: str = "web-prod") -> Entry:
    return Entry(f"d{number}", Position(rule, "time", artifact, pushed_at=T0 + timedelta(minutes=minute)))


def admitted(admission: Admission) -> Admitted:
    assert isinstance(admission, Admitted), admission
    return admission


def refused(admission: Admission) -> str:
    assert isinstance(admission, Refused), admission
    return admission.reason


def succeeded(entry: Entry) -> Entry:
    """The live entry of a deployment that succeeded, as the ledger records it."""
    return replace(entry, configured=f"{REGISTRY}/web@{entry.artifact}", operation_id="op", since=T0)


def test_an_idle_service_starts_the_newcomer_at_once() -> None:
    first = version_entry(1, "1.0.0")
    admission = admitted(admit(Slot(), first))
    assert admission == Admitted(Slot(active=first, version=1), start_now=True)


@given(st.integers(1, 20))
def test_a_burst_during_a_deployment_leaves_only_the_newest_waiting(burst: int) -> None:
    slot = admitted(admit(Slot(), timed_entry(0, "sha256:first", 0))).slot
    superseded = []
    for number in range(1, burst + 1):
        admission = admitted(admit(slot, timed_entry(number, f"sha256:{number}", number)))
        slot = admission.slot
        assert not admission.start_now
        if admission.superseded:
            superseded.append(admission.superseded)
    assert slot.active_id == "d0"
    assert slot.pending_id == f"d{burst}"
    assert superseded == [f"d{n}" for n in range(1, burst)]
    assert slot.version == burst + 1


def test_the_same_artifact_is_not_deployed_again_while_in_flight_or_queued() -> None:
    first, second = version_entry(1, "1.0.0", "sha256:a"), version_entry(2, "1.1.0", "sha256:b")
    slot = admitted(admit(Slot(), first)).slot
    # one digest under a newer tag is still the same image
    assert (
        refused(admit(slot, version_entry(3, "1.0.1", "sha256:a")))
        == "not deployed: already being deployed as d1"
    )
    slot = admitted(admit(slot, second)).slot
    assert refused(admit(slot, version_entry(4, "1.2.0", "sha256:b"))) == "not deployed: already queued as d2"


def test_an_older_or_equal_push_is_refused_by_what_is_in_flight_or_queued() -> None:
    slot = admitted(admit(Slot(), version_entry(1, "v1.6.0"))).slot
    assert refused(admit(slot, version_entry(2, "v1.5.9"))) == (
        "not deployed: v1.5.9 is older than or equal to v1.6.0, in flight as d1"
    )
    slot = admitted(admit(slot, version_entry(3, "v1.7.0"))).slot
    assert refused(admit(slot, version_entry(4, "1.6.5"))) == (
        "not deployed: 1.6.5 is older than or equal to v1.7.0, queued as d3"
    )
    assert refused(admit(slot, version_entry(5, "1.7.0"))).startswith(
        "not deployed: 1.7.0 is older than or equal"
    )


def test_a_commit_pushed_over_is_refused_with_the_chain_in_words() -> None:
    c2 = Entry("d2", Position("api", "chain", "c2" * 20, pushed_at=T0, previous="c1" * 20))
    c1 = Entry("d1", Position("api", "chain", "c1" * 20, pushed_at=T0 + timedelta(minutes=1)))
    slot = admitted(admit(Slot(), c2)).slot
    assert refused(admit(slot, c1)) == (
        f"not deployed: commit {'c1' * 6} is older than {'c2' * 6}, which was pushed on top of it, "
        "in flight as d2"
    )


def test_another_rule_is_not_ordered_against_this_one() -> None:
    slot = admitted(admit(Slot(), version_entry(1, "2.0.0", rule="web-prod"))).slot
    admission = admitted(admit(slot, version_entry(2, "1.0.0", rule="web-canary")))
    assert admission.slot.pending_id == "d2"


def test_what_is_live_is_checked_with_app_runner_before_refusing() -> None:
    live = succeeded(version_entry(1, "1.6.0", "sha256:a"))
    slot = Slot(live=live, version=7)
    older = version_entry(2, "1.5.0")
    assert admit(slot, older) == CheckLive(live)
    # App Runner still runs it: refused
    assert refused(admit(slot, older, live_confirmed=True)) == (
        "not deployed: 1.5.0 is older than or equal to 1.6.0, live since 2026-11-26T08:00:00Z (deployment d1)"
    )
    same = version_entry(3, "1.6.1", "sha256:a")
    assert admit(slot, same) == CheckLive(live)
    assert refused(admit(slot, same, live_confirmed=True)) == (
        "not deployed: already live on the service since 2026-11-26T08:00:00Z (deployment d1)"
    )
    # App Runner runs something else (changed outside pushdeploy): the live entry is forgotten
    admission = admitted(admit(slot, older, live_confirmed=False))
    assert admission == Admitted(Slot(active=older, version=8), start_now=True)


def test_a_newer_push_does_not_ask_app_runner() -> None:
    live = succeeded(version_entry(1, "1.6.0"))
    admission = admitted(admit(Slot(live=live), version_entry(2, "1.7.0")))
    assert admission.slot.live == live
    assert admission.start_now


def test_release_makes_the_succeeded_deployment_live_and_starts_the_pending_one() -> None:
    first, second = version_entry(1, "1.0.0"), version_entry(2, "1.1.0")
    slot = admitted(admit(admitted(admit(Slot(), first)).slot, second)).slot
    freed, next_id = release(slot, "d1", succeeded(first))
    assert next_id == "d2"
    assert freed == Slot(active=second, live=succeeded(first), version=slot.version + 1)
    # second fails: first still runs
    freed, next_id = release(freed, "d2", None)
    assert next_id is None
    assert freed == Slot(live=succeeded(first), version=slot.version + 2)


def test_only_the_active_deployment_can_release_or_requeue_the_slot() -> None:
    slot = admitted(admit(Slot(), version_entry(1, "1.0.0"))).slot
    with pytest.raises(InvalidTransition):
        release(slot, "d2", None)
    with pytest.raises(InvalidTransition):
        requeue(slot, "d2")


def test_requeue_waits_again_or_gives_way_to_a_newer_pending() -> None:
    first, second = version_entry(1, "1.0.0"), version_entry(2, "1.1.0")
    slot = admitted(admit(Slot(), first)).slot
    waiting, superseded = requeue(slot, "d1")
    assert (waiting, superseded) == (Slot(pending=first, version=2), None)
    assert promote(waiting) == (Slot(active=first, version=3), "d1")
    slot = admitted(admit(slot, second)).slot
    waiting, superseded = requeue(slot, "d1")
    assert (waiting, superseded) == (Slot(pending=second, version=3), "d1")


def test_promote_and_forget_live_change_nothing_when_there_is_nothing_to_do() -> None:
    busy = Slot(active=version_entry(1, "1.0.0"), pending=version_entry(2, "1.1.0"), version=4)
    assert promote(busy) == (busy, None)
    assert promote(Slot(version=3)) == (Slot(version=3), None)
    assert forget_live(busy) is busy
    live = Slot(live=succeeded(version_entry(1, "1.0.0")), version=5)
    assert forget_live(live) == Slot(version=6)


def test_entry_record_round_trip() -> None:
    live = succeeded(Entry("d1", Position("api", "chain", "c2", pushed_at=T0, previous="c1")))
    assert Entry.from_record(live.as_record()) == live
    plain = version_entry(2, "v1.0.0")
    assert Entry.from_record(plain.as_record()) == plain
    assert Entry.from_record(None) is None
    assert Entry.from_record({}) is None


def test_a_late_event_of_a_force_pushed_over_commit_does_not_replace_the_head() -> None:
    # main: A (t0) -> B pushed on A (t1) -> A force-pushed back on B (t2). The t2 event arrives first.
    head = Entry("d3", Position("api", "chain", "A", pushed_at=T0 + timedelta(minutes=2), previous="B"))
    late = Entry("d2", Position("api", "chain", "B", pushed_at=T0 + timedelta(minutes=1), previous="A"))
    slot = admitted(admit(Slot(), head)).slot
    assert isinstance(admit(slot, late), Refused)


# ----- the slot, through any life -----

SEMVER_TAGS = ["1.0.0", "v1.0.0", "1.1.0-rc.1", "1.1.0-rc.2", "1.1.0", "v1.2.0", "2.0.0"]
DIGESTS = [f"sha256:{n}" * 2 for n in "abcde"]
COMMITS = ["c0", "c1", "c2", "c3", "c4"]
ORDER_KINDS: list[OrderKind] = ["semver", "time", "chain"]
push_times = st.one_of(
    st.integers(0, 4).map(lambda minute: T0 + timedelta(minutes=minute)),
    st.just(None),  # an old record without a time
)


def positions_of(rule_name: str, kind: OrderKind) -> st.SearchStrategy[Position]:
    if kind == "semver":
        return st.builds(
            Position,
            rule=st.just(rule_name),
            kind=st.just(kind),
            artifact=st.sampled_from(DIGESTS),
            version=st.sampled_from(SEMVER_TAGS),
            pushed_at=push_times,
        )
    if kind == "time":
        return st.builds(
            Position,
            rule=st.just(rule_name),
            kind=st.just(kind),
            artifact=st.sampled_from(DIGESTS),
            pushed_at=push_times,
        )
    return st.builds(
        Position,
        rule=st.just(rule_name),
        kind=st.just(kind),
        artifact=st.sampled_from(COMMITS),
        pushed_at=push_times,
        previous=st.one_of(st.none(), st.sampled_from(COMMITS)),
    )


def blocks(newcomer: Entry, other: Entry | None) -> bool:
    """Whether `other` makes the newcomer pointless: the same artifact, or newer or equal in its order."""
    return other is not None and (
        newcomer.artifact == other.artifact or compare(newcomer.position, other.position) <= 0
    )


def content(slot: Slot) -> Slot:
    return replace(slot, version=0)


class SlotLife(RuleBasedStateMachine):
    """A random life of one service's slot: arrivals of one or two rules (each ordered by semver, time or
    the commit chain), App Runner's answers about what is live, settlements, busy refusals, promotions."""

    def __init__(self) -> None:
        super().__init__()
        self.slot = Slot()
        self.order_of: dict[str, OrderKind] = {}
        self.numbers = itertools.count()
        self.admitted: list[str] = []
        self.superseded: set[str] = set()
        self.settled: set[str] = set()
        self.changes = 0

    @initialize(
        kinds=st.tuples(st.sampled_from(ORDER_KINDS), st.sampled_from(ORDER_KINDS)), two=st.booleans()
    )
    def choose_rules(self, kinds: tuple[OrderKind, OrderKind], two: bool) -> None:
        self.order_of = {"web": kinds[0], **({"api": kinds[1]} if two else {})}

    def moved(self, before: Slot, after: Slot) -> None:
        """The version increments on every change, and only then."""
        if content(after) == content(before):
            assert after.version == before.version
        else:
            assert after.version == before.version + 1
            self.changes += 1
        self.slot = after

    @rule(data=st.data(), answer=st.sampled_from([None, True, False]))
    def arrive(self, data: st.DataObject, answer: bool | None) -> None:
        name = data.draw(st.sampled_from(sorted(self.order_of)), label="rule")
        newcomer = Entry(
            f"d{next(self.numbers)}", data.draw(positions_of(name, self.order_of[name]), label="position")
        )
        admission = self.check_admission(self.slot, newcomer, answer)
        if isinstance(admission, CheckLive):
            # Ask App Runner, then admit again with its answer (or give up: nothing changed).
            then = data.draw(st.sampled_from([None, True, False]), label="App Runner runs it")
            if then is not None:
                self.check_admission(self.slot, newcomer, then)

    def check_admission(self, before: Slot, newcomer: Entry, answer: bool | None) -> Admission:
        admission = admit(before, newcomer, answer)
        in_flight = next((e for e in (before.active, before.pending) if blocks(newcomer, e)), None)
        live_blocks = blocks(newcomer, before.live)
        if before.live is not None and newcomer.artifact == before.live.artifact:
            # The live artifact pushed again while another one is in flight or queued: a newer push.
            replaced = any(
                e is not None and e.artifact != before.live.artifact for e in (before.active, before.pending)
            )
            live_blocks = live_blocks and not replaced
        if in_flight is not None:
            assert isinstance(admission, Refused), admission
            assert admission.reason.startswith("not deployed: ")
            assert in_flight.id in admission.reason
        elif live_blocks and answer is None:
            assert admission == CheckLive(before.live)  # type: ignore[arg-type]
        elif live_blocks and answer:
            assert isinstance(admission, Refused), admission
            assert before.live is not None
            assert f"(deployment {before.live.id})" in admission.reason
        else:
            assert isinstance(admission, Admitted), admission
            self.check_admitted(before, newcomer, answer, admission)
            return admission
        # A refused newcomer (or one waiting for App Runner's answer) leaves the slot as it was.
        assert self.slot is before
        return admission

    def check_admitted(self, before: Slot, newcomer: Entry, answer: bool | None, admission: Admitted) -> None:
        after = admission.slot
        # Never older or equal than the same rule's active, pending, or live entry (unless App Runner
        # said it no longer runs that one).
        live = before.live if answer is not False else None
        if live is not None and newcomer.artifact == live.artifact:
            live = None  # the live artifact pushed again while another replaces it: a newer push
        for other in (before.active, before.pending, live):
            if other is not None and other.position.rule == newcomer.position.rule:
                assert newcomer.artifact != other.artifact
                assert compare(newcomer.position, other.position) > 0
        assert after.live == (None if answer is False else before.live)
        if before.active is None and before.pending is None:
            assert (after.active, after.pending, admission.start_now) == (newcomer, None, True)
            assert admission.superseded is None
        else:
            assert (after.active, after.pending, admission.start_now) == (before.active, newcomer, False)
            # The pending deployment it replaced is reported superseded.
            assert admission.superseded == before.pending_id
            if admission.superseded:
                self.superseded.add(admission.superseded)
        self.admitted.append(newcomer.id)
        self.moved(before, after)

    @precondition(lambda self: self.slot.active is not None)
    @rule(success=st.booleans())
    def settle(self, success: bool) -> None:
        before = self.slot
        assert before.active is not None
        live = succeeded(before.active) if success else None
        after, next_id = release(before, before.active.id, live)
        self.settled.add(before.active.id)
        assert next_id == before.pending_id
        assert (after.active, after.pending) == (before.pending, None)
        # What succeeded is now live; after a failure what ran before still runs.
        assert after.live == (live if success else before.live)
        self.moved(before, after)

    @rule(data=st.data())
    def settle_a_deployment_that_is_not_active(self, data: st.DataObject) -> None:
        not_active = [d for d in [*self.admitted, "nobody"] if d != self.slot.active_id]
        deployment_id = data.draw(st.sampled_from(not_active))
        with pytest.raises(InvalidTransition):
            release(self.slot, deployment_id, None)
        with pytest.raises(InvalidTransition):
            requeue(self.slot, deployment_id)

    @precondition(lambda self: self.slot.active is not None)
    @rule()
    def busy(self) -> None:
        before = self.slot
        assert before.active is not None
        after, superseded = requeue(before, before.active.id)
        assert after.active is None
        if before.pending is not None:
            assert (after.pending, superseded) == (before.pending, before.active.id)
            self.superseded.add(before.active.id)
        else:
            assert (after.pending, superseded) == (before.active, None)
        assert after.live == before.live
        self.moved(before, after)

    @rule()
    def promote_waiting(self) -> None:
        before = self.slot
        after, next_id = promote(before)
        if before.active is None and before.pending is not None:
            assert (after.active, after.pending, next_id) == (before.pending, None, before.pending_id)
        else:
            assert (after, next_id) == (before, None)
        self.moved(before, after)

    @rule()
    def live_changed_outside(self) -> None:
        before = self.slot
        after = forget_live(before)
        assert after.live is None
        self.moved(before, after)

    @invariant()
    def one_active_one_pending(self) -> None:
        active, pending = self.slot.active, self.slot.pending
        if active is not None and pending is not None:
            assert active.id != pending.id
            # The pending deployment was admitted against the active one: it is newer in its rule.
            if active.position.rule == pending.position.rule:
                assert active.artifact != pending.artifact
                assert compare(pending.position, active.position) > 0

    @invariant()
    def nothing_is_lost(self) -> None:
        assert self.slot.version == self.changes
        holding = {self.slot.active_id, self.slot.pending_id} - {None}
        assert not holding & self.superseded
        assert not holding & self.settled
        for deployment_id in self.admitted:
            assert deployment_id in holding | self.superseded | self.settled


SlotLife.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_slot_life = SlotLife.TestCase


def test_a_re_push_of_the_running_artifact_takes_its_newer_position_so_a_late_older_push_stays_out() -> None:
    """release-7 (#28) runs; release-9 re-pushes #28 at t3; release-6 (#30), pushed at t2, arrives late:
    it is older than the re-push, so it must not replace what runs."""
    running = Entry("d7", Position("glob", "time", "sha256:28", pushed_at=T0 + timedelta(minutes=1)))
    slot = admitted(admit(Slot(), running)).slot
    re_push = Entry("d9", Position("glob", "time", "sha256:28", pushed_at=T0 + timedelta(minutes=3)))
    refused = admit(slot, re_push)
    assert isinstance(refused, Refused)
    assert refused.reason.startswith("not deployed: already being deployed as d7")
    assert refused.renewed is not None
    assert refused.renewed.active is not None
    assert refused.renewed.active.id == "d7"  # still the running deployment, at the re-push's position
    late = Entry("d6", Position("glob", "time", "sha256:30", pushed_at=T0 + timedelta(minutes=2)))
    assert isinstance(admit(refused.renewed, late), Refused)
    assert isinstance(admit(slot, late), Admitted)  # without the renewal the late push would have won


def test_a_waiting_push_older_than_the_re_pushed_live_artifact_is_not_started() -> None:
    """release-7 (#28, t1) runs, release-7 rebuilt (#36, t2) waits, release-9 re-pushes #28 (t3): when #28
    succeeds at t3's position, #36 is older than what is live and must not replace it."""
    from pushdeploy.domain.slot import drop_outdated

    running = Entry("d1", Position("glob", "time", "sha256:28", pushed_at=T0 + timedelta(minutes=3)))
    waiting = Entry("d2", Position("glob", "time", "sha256:36", pushed_at=T0 + timedelta(minutes=2)))
    slot = Slot(active=running, pending=waiting, version=3)
    freed, next_id = release(slot, "d1", running)
    assert next_id == "d2"
    kept, dropped = drop_outdated(freed)
    assert dropped == waiting
    assert kept.active is None
    assert kept.live == running
    newer = Entry("d3", Position("glob", "time", "sha256:37", pushed_at=T0 + timedelta(minutes=4)))
    assert drop_outdated(Slot(active=newer, live=running, version=1))[1] is None
