"""The deployment state machine and the per-service slot: invariants that keep one operation at a time
per service and lose nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.domain.deployments import (
    IN_FLIGHT,
    TERMINAL,
    InvalidTransition,
    Slot,
    Status,
    admit,
    check_transition,
    promote,
    release,
    requeue,
    settled_status,
)


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


# A random life of one service: arrivals, settlements (success or not), busy refusals, promotions.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.integers(0, 5)),
        st.tuples(st.just("settle"), st.booleans()),
        st.tuples(st.just("busy"), st.none()),
        st.tuples(st.just("promote"), st.none()),
    ),
    max_size=60,
)


@given(steps)
def test_slot_invariants_hold_through_any_sequence(sequence: list[tuple[str, object]]) -> None:
    slot = Slot()
    arrived: list[str] = []
    superseded: set[str] = set()
    started: list[str] = []
    for number, (step, argument) in enumerate(sequence):
        before = slot
        if step == "arrive":
            deployment = f"d{number}"
            arrived.append(deployment)
            admission = admit(slot, deployment, f"artifact-{argument}")
            slot = admission.slot
            if admission.superseded:
                superseded.add(admission.superseded)
            if admission.start_now:
                started.append(deployment)
        elif step == "settle" and slot.active:
            slot, next_id = release(slot, slot.active, succeeded=bool(argument))
            if next_id:
                started.append(next_id)
        elif step == "busy" and slot.active:
            active = slot.active
            slot, gone = requeue(slot, active)
            if gone:
                superseded.add(gone)
        elif step == "promote":
            slot, next_id = promote(slot)
            if next_id:
                started.append(next_id)
        # At most one active and one pending, never the same deployment in both.
        assert slot.active is None or slot.active != slot.pending
        # Every change of the slot is visible to optimistic concurrency.
        assert slot.version >= before.version
        assert (slot != before) == (slot.version > before.version)
        # The pending deployment is always the newest arrival still waiting.
        if slot.pending is not None:
            assert slot.pending not in superseded
        # Artifacts travel with their deployments.
        assert (slot.active is None) == (slot.active_artifact is None)
        assert (slot.pending is None) == (slot.pending_artifact is None)
    # Nothing is lost: every arrival is active, pending, superseded, or was started.
    for deployment in arrived:
        assert deployment in superseded or deployment in started or deployment in (slot.active, slot.pending)


@given(st.integers(1, 20))
def test_a_burst_during_a_deployment_leaves_only_the_newest_waiting(burst: int) -> None:
    admission = admit(Slot(), "first", "a0")
    slot = admission.slot
    superseded = []
    for number in range(burst):
        admission = admit(slot, f"d{number}", f"a{number + 1}")
        slot = admission.slot
        if admission.superseded:
            superseded.append(admission.superseded)
    assert slot.active == "first"
    assert slot.pending == f"d{burst - 1}"
    assert superseded == [f"d{n}" for n in range(burst - 1)]


def test_the_same_artifact_is_not_deployed_again_while_queued_in_flight_or_live() -> None:
    slot = admit(Slot(), "d1", "sha256:a").slot
    assert slot.holding("sha256:a") == "already being deployed as d1"
    slot = admit(slot, "d2", "sha256:b").slot
    assert slot.holding("sha256:b") == "already queued as d2"
    slot, _ = release(slot, "d1", succeeded=True)
    assert slot.holding("sha256:a") == "already live on the service"
    slot, _ = release(slot, "d2", succeeded=False)  # b rolled back: a is still what runs
    assert slot.holding("sha256:a") == "already live on the service"
    assert slot.holding("sha256:b") is None  # a rolled-back image may be pushed and tried again


def test_only_the_active_deployment_can_release_the_slot() -> None:
    slot = admit(Slot(), "d1", "a").slot
    with pytest.raises(InvalidTransition):
        release(slot, "d2", succeeded=True)


def test_in_flight_and_terminal_partition_the_statuses() -> None:
    assert set(Status) == IN_FLIGHT | TERMINAL
    assert not IN_FLIGHT & TERMINAL
