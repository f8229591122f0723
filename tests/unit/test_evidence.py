"""Whose operation is it (pushdeploy.domain.evidence): an operation is a deployment's own only when it has
the deployment's type and started inside one of its attempt windows, and an UpdateService that succeeded
left the deployment's image configured."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.domain.deployments import Attempt, AttemptOutcome, Deployment, Status
from pushdeploy.domain.evidence import (
    NotOwn,
    NotStarted,
    Operation,
    Own,
    Unconfirmed,
    in_windows,
    own_operation,
    wanted_type,
)

SERVICE = "arn:aws:apprunner:us-east-1:111122223333:service/web-prod/0123456789abcdef0123456789abcdef"
REGISTRY = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
IMAGE = f"{REGISTRY}/web@sha256:{'ab' * 32}"
OTHER_IMAGE = f"{REGISTRY}/web@sha256:{'cd' * 32}"
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LONGEST_CALL = timedelta(seconds=60)
SKEW = timedelta(seconds=5)
SECOND = timedelta(seconds=1)

Action = Literal["start_deployment", "update_service"]


def deployment(action: Action = "update_service", attempts: Sequence[Attempt] = ()) -> Deployment:
    return Deployment(
        id="d-1",
        service=SERVICE,
        rule="web-prod",
        action=action,
        status=Status.STARTING,
        image=IMAGE if action == "update_service" else None,
        digest="sha256:" + "ab" * 32,
        source="ecr",
        repository="web",
        reason="tag v1.2.0 matches",
        change_id="c-1",
        created_at=T0 - timedelta(minutes=1),
        claimed_at=T0,
        attempts=len(attempts),
        attempt_log=tuple(attempts),
    )


def attempt(
    at: datetime = T0, until: datetime | None = None, outcome: AttemptOutcome | None = None
) -> Attempt:
    return Attempt(at=at, until=until, outcome=outcome)


def operation(
    started_at: datetime | None,
    type_: str = "UPDATE_SERVICE",
    status: str = "SUCCEEDED",
    operation_id: str = "op-1",
) -> Operation:
    running = status in ("PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS")
    ended_at = None if running or started_at is None else started_at + timedelta(minutes=3)
    return Operation(operation_id, type_, status, SERVICE, started_at, ended_at, ended_at or started_at)


class Configured:
    """The `configured` callback: what DescribeService would say, and how often it was asked."""

    def __init__(self, image: str = IMAGE) -> None:
        self.image = image
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.image


def judge(
    deployed: Deployment, operations: Sequence[Operation], configured: Configured | None = None
) -> NotStarted | Unconfirmed | Own | NotOwn:
    return own_operation(deployed, operations, configured or Configured(), LONGEST_CALL, SKEW)


# ----- nothing may have started -----


def test_no_attempt_is_not_started() -> None:
    assert judge(deployment(), [operation(T0)]) == NotStarted()


def test_only_refused_attempts_is_not_started() -> None:
    refused = [attempt(T0, T0 + SECOND, "refused"), attempt(T0 + 10 * SECOND, T0 + 11 * SECOND, "refused")]
    assert judge(deployment(attempts=refused), [operation(T0), operation(T0 + 10 * SECOND)]) == NotStarted()


def test_no_operation_is_not_started() -> None:
    assert judge(deployment(attempts=[attempt()]), []) == NotStarted()


@pytest.mark.parametrize(
    ("action", "other_type"), [("start_deployment", "UPDATE_SERVICE"), ("update_service", "START_DEPLOYMENT")]
)
def test_an_operation_of_another_type_is_not_the_deployments(action: Action, other_type: str) -> None:
    deployed = deployment(action, [attempt()])
    others = [
        operation(T0, other_type),
        operation(T0, "PAUSE_SERVICE", operation_id="op-2"),
        operation(T0, "RESUME_SERVICE", operation_id="op-3"),
    ]
    assert judge(deployed, others) == NotStarted()


# ----- windows -----


def test_an_operation_before_the_attempt_is_not_started() -> None:
    deployed = deployment("start_deployment", [attempt(T0, T0 + SECOND, "unknown")])
    assert judge(deployed, [operation(T0 - SKEW - SECOND, "START_DEPLOYMENT")]) == NotStarted()


def test_the_window_opens_skew_before_the_attempt() -> None:
    deployed = deployment("start_deployment", [attempt(T0, T0 + SECOND, "unknown")])
    assert isinstance(judge(deployed, [operation(T0 - SKEW, "START_DEPLOYMENT")]), Own)


def test_a_closed_attempt_window_ends_skew_after_until() -> None:
    until = T0 + 3 * SECOND
    deployed = deployment("start_deployment", [attempt(T0, until, "unknown")])
    assert isinstance(judge(deployed, [operation(until + SKEW, "START_DEPLOYMENT")]), Own)
    assert judge(deployed, [operation(until + SKEW + SECOND, "START_DEPLOYMENT")]) == NotStarted()
    # until, not the longest call, closes it
    assert judge(deployed, [operation(T0 + LONGEST_CALL, "START_DEPLOYMENT")]) == NotStarted()


def test_an_unclosed_attempt_window_lasts_the_longest_call() -> None:
    deployed = deployment("start_deployment", [attempt(T0)])  # the Lambda died during the call
    end = T0 + LONGEST_CALL + SKEW
    assert isinstance(judge(deployed, [operation(T0 + LONGEST_CALL, "START_DEPLOYMENT")]), Own)
    assert isinstance(judge(deployed, [operation(end, "START_DEPLOYMENT")]), Own)
    assert judge(deployed, [operation(end + SECOND, "START_DEPLOYMENT")]) == NotStarted()


def test_an_operation_only_inside_a_refused_attempt_is_not_started() -> None:
    attempts = [
        attempt(T0, T0 + SECOND, "refused"),  # App Runner said busy: someone else's operation started here
        attempt(T0 + timedelta(minutes=5)),
    ]
    deployed = deployment("start_deployment", attempts)
    assert judge(deployed, [operation(T0, "START_DEPLOYMENT")]) == NotStarted()


def test_any_attempt_that_may_have_started_opens_a_window() -> None:
    later = T0 + timedelta(minutes=5)
    attempts = [attempt(T0, T0 + SECOND, "unknown"), attempt(later, later + SECOND, "refused")]
    deployed = deployment("start_deployment", attempts)
    verdict = judge(
        deployed,
        [operation(later, "START_DEPLOYMENT", operation_id="theirs"), operation(T0, "START_DEPLOYMENT")],
    )
    assert isinstance(verdict, Own)
    assert verdict.operation.id == "op-1"


def test_an_operation_without_a_start_time_is_in_no_window() -> None:
    deployed = deployment("start_deployment", [attempt()])
    assert not in_windows(deployed, operation(None, "START_DEPLOYMENT"), LONGEST_CALL, SKEW)
    assert judge(deployed, [operation(None, "START_DEPLOYMENT")]) == NotStarted()


def test_for_a_start_deployment_the_earliest_operation_in_a_window_is_taken() -> None:
    deployed = deployment("start_deployment", [attempt(T0, T0 + 10 * SECOND, "unknown")])
    operations = [  # newest first, as ListOperations lists them
        operation(T0 + 8 * SECOND, "START_DEPLOYMENT", operation_id="second"),
        operation(T0 + 2 * SECOND, "START_DEPLOYMENT", operation_id="first"),
    ]
    verdict = judge(deployed, operations)
    assert isinstance(verdict, Own)
    assert verdict.operation.id == "first"  # no configuration to check: the one closest to the call


def test_someone_elses_update_in_an_early_window_does_not_hide_our_later_one() -> None:
    """Our first call died before it reached App Runner; an operator's hotfix started in its window; a
    later call of ours started our own UpdateService, and died before recording it. Ours is adopted,
    not started a third time."""
    later = T0 + 150 * SECOND
    attempts = [attempt(T0, None, None), attempt(later, None, None)]
    deployed = deployment("update_service", attempts)
    operations = [
        operation(later + SECOND, "UPDATE_SERVICE", status="SUCCEEDED", operation_id="ours"),
        operation(T0 + SECOND, "UPDATE_SERVICE", status="SUCCEEDED", operation_id="hotfix"),
    ]
    verdict = judge(deployed, operations, Configured(IMAGE))
    assert isinstance(verdict, Own)
    assert verdict.operation.id == "ours"


# ----- StartDeployment -----


@pytest.mark.parametrize("status", ["IN_PROGRESS", "SUCCEEDED", "FAILED", "ROLLBACK_SUCCEEDED"])
def test_a_start_deployment_in_a_window_is_own_whatever_its_status(status: str) -> None:
    configured = Configured(OTHER_IMAGE)
    ours = operation(T0 + SECOND, "START_DEPLOYMENT", status)
    verdict = judge(deployment("start_deployment", [attempt()]), [ours], configured)
    assert isinstance(verdict, Own)
    assert verdict.operation == ours
    assert "op-1" in verdict.evidence
    assert configured.calls == 0  # a redeploy changes no configuration: nothing to describe


# ----- UpdateService -----


@pytest.mark.parametrize("status", ["PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS"])
def test_an_update_service_still_running_is_unconfirmed(status: str) -> None:
    configured = Configured()
    ours = operation(T0 + SECOND, status=status)
    assert judge(deployment(attempts=[attempt()]), [ours], configured) == Unconfirmed(ours)
    assert configured.calls == 0


@pytest.mark.parametrize("listed_first", ["running", "ended"])
def test_a_running_update_service_waits_even_when_an_ended_one_started_in_the_same_second(
    listed_first: str,
) -> None:
    """ListOperations gives start times to the second; App Runner runs one operation at a time, so the
    running one is the newest and is never adopted as ended, nor hidden by the one before it."""
    running = operation(T0, status="IN_PROGRESS", operation_id="op-running")
    ended = operation(T0, status="SUCCEEDED", operation_id="op-ended")
    listed = [running, ended] if listed_first == "running" else [ended, running]
    verdict = judge(deployment(attempts=[attempt()]), listed, Configured(OTHER_IMAGE))
    assert verdict == Unconfirmed(running)


def test_an_update_service_that_succeeded_with_the_image_configured_is_own() -> None:
    configured = Configured(IMAGE)
    ours = operation(T0 + SECOND)
    verdict = judge(deployment(attempts=[attempt()]), [ours], configured)
    assert isinstance(verdict, Own)
    assert verdict.operation == ours
    assert "configured with its image" in verdict.evidence
    assert configured.calls == 1


def test_an_update_service_that_succeeded_with_another_image_is_not_own() -> None:
    ours = operation(T0 + SECOND)
    verdict = judge(deployment(attempts=[attempt()]), [ours], Configured(OTHER_IMAGE))
    assert isinstance(verdict, NotOwn)
    assert verdict.operation == ours
    assert OTHER_IMAGE in verdict.evidence
    assert IMAGE in verdict.evidence


def test_a_later_successful_update_makes_the_configured_image_no_proof() -> None:
    # Someone else's UpdateService, after the window, to the same image: the image proves nothing.
    theirs = operation(T0 + timedelta(minutes=10), operation_id="theirs")
    candidate = operation(T0 + SECOND)
    verdict = judge(deployment(attempts=[attempt(T0, T0 + 2 * SECOND, "unknown")]), [theirs, candidate])
    assert isinstance(verdict, NotOwn)
    assert verdict.operation == candidate


def test_a_later_failed_update_does_not_count_against_it() -> None:
    theirs = operation(T0 + timedelta(minutes=10), status="ROLLBACK_SUCCEEDED", operation_id="theirs")
    candidate = operation(T0 + SECOND)
    verdict = judge(deployment(attempts=[attempt(T0, T0 + 2 * SECOND, "unknown")]), [theirs, candidate])
    assert isinstance(verdict, Own)


@pytest.mark.parametrize("status", ["ROLLBACK_SUCCEEDED", "ROLLBACK_FAILED", "FAILED"])
def test_an_update_service_that_failed_is_own_without_describing(status: str) -> None:
    configured = Configured(OTHER_IMAGE)  # the old image is back: no proof either way
    ours = operation(T0 + SECOND, status=status)
    verdict = judge(deployment(attempts=[attempt()]), [ours], configured)
    assert isinstance(verdict, Own)
    assert status in verdict.evidence
    assert configured.calls == 0


# ----- the pieces -----


def test_wanted_type() -> None:
    assert wanted_type(deployment("start_deployment")) == "START_DEPLOYMENT"
    assert wanted_type(deployment("update_service")) == "UPDATE_SERVICE"


@pytest.mark.parametrize(
    ("outcome", "may_have_started"), [(None, True), ("unknown", True), ("started", False), ("refused", False)]
)
def test_which_attempts_may_have_started(outcome: AttemptOutcome | None, may_have_started: bool) -> None:
    assert attempt(outcome=outcome).may_have_started() is may_have_started


def test_attempt_windows() -> None:
    assert attempt(T0).window(LONGEST_CALL, SKEW) == (T0 - SKEW, T0 + LONGEST_CALL + SKEW)
    closed = attempt(T0, T0 + 2 * SECOND, "unknown")
    assert closed.window(LONGEST_CALL, SKEW) == (T0 - SKEW, T0 + 2 * SECOND + SKEW)


@pytest.mark.parametrize(
    ("status", "running"),
    [
        ("PENDING", True),
        ("IN_PROGRESS", True),
        ("ROLLBACK_IN_PROGRESS", True),
        ("SUCCEEDED", False),
        ("FAILED", False),
        ("ROLLBACK_SUCCEEDED", False),
        ("ROLLBACK_FAILED", False),
    ],
)
def test_operation_running(status: str, running: bool) -> None:
    assert operation(T0, status=status).running is running


# ----- any evidence -----

offsets = st.integers(-120, 120).map(lambda seconds: T0 + timedelta(seconds=seconds))


def timed_attempt(at: datetime, lasted: timedelta | None, outcome: AttemptOutcome | None) -> Attempt:
    return attempt(at, None if lasted is None else at + lasted, outcome)


attempts = st.builds(
    timed_attempt,
    at=offsets,
    lasted=st.one_of(st.none(), st.integers(0, 30).map(lambda seconds: timedelta(seconds=seconds))),
    outcome=st.sampled_from([None, "started", "refused", "unknown"]),
)
operations = st.builds(
    operation,
    started_at=st.one_of(st.none(), offsets),
    type_=st.sampled_from(["START_DEPLOYMENT", "UPDATE_SERVICE", "PAUSE_SERVICE"]),
    status=st.sampled_from(["IN_PROGRESS", "SUCCEEDED", "FAILED", "ROLLBACK_SUCCEEDED"]),
    operation_id=st.uuids().map(str),
)


@given(
    st.sampled_from(["start_deployment", "update_service"]),
    st.lists(attempts, max_size=4),
    st.lists(operations, max_size=6),
    st.sampled_from([IMAGE, OTHER_IMAGE]),
)
def test_a_verdict_names_an_operation_of_its_type_inside_a_window_or_none(
    action: Action, log: list[Attempt], listed: list[Operation], now_configured: str
) -> None:
    deployed = deployment(action, log)
    verdict = judge(deployed, listed, Configured(now_configured))
    kind = wanted_type(deployed)
    inside = [op for op in listed if op.type == kind and in_windows(deployed, op, LONGEST_CALL, SKEW)]
    if isinstance(verdict, NotStarted):
        assert inside == []
        return
    chosen = verdict.operation
    assert chosen in inside
    if kind == "START_DEPLOYMENT":
        assert isinstance(verdict, Own)
        assert chosen.started_at == min(op.started_at for op in inside if op.started_at)
    else:
        assert_update_service_verdict(verdict, deployed, inside, listed, now_configured)
    for op in inside:  # in_windows agrees with the attempts' own windows, which may have started
        assert op.started_at is not None
        windows = [a.window(LONGEST_CALL, SKEW) for a in log if a.may_have_started()]
        assert any(opened <= op.started_at <= closed for opened, closed in windows)


def succeeded_later(operation: Operation, listed: list[Operation]) -> bool:
    """Whether another UpdateService succeeded after it: only that can change the configured image."""
    return any(
        op.type == "UPDATE_SERVICE"
        and op.status == "SUCCEEDED"
        and op.started_at is not None
        and operation.started_at is not None
        and op.started_at > operation.started_at
        for op in listed
    )


def assert_update_service_verdict(
    verdict: Unconfirmed | Own | NotOwn,
    deployed: Deployment,
    inside: list[Operation],
    listed: list[Operation],
    now_configured: str,
) -> None:
    """The rules for an UpdateService, in their order: a running one waits; one that succeeded is proven
    by the image it left configured; else the one that started closest to a call is taken on timing."""
    chosen = verdict.operation
    running = [op for op in inside if op.running]
    succeeded = [op for op in inside if op.status == "SUCCEEDED"]
    ended_otherwise = [op for op in inside if not op.running and op.status != "SUCCEEDED"]
    if running:
        assert isinstance(verdict, Unconfirmed)
        assert chosen.started_at == max(op.started_at for op in running if op.started_at)
        return
    assert not chosen.running
    proven = [op for op in succeeded if now_configured == IMAGE and not succeeded_later(op, listed)]
    if proven:  # proof beats timing
        assert isinstance(verdict, Own)
        assert chosen in proven
    elif isinstance(verdict, NotOwn):
        assert succeeded
        assert not ended_otherwise
        assert chosen.started_at == min(op.started_at for op in succeeded if op.started_at)
    else:
        assert chosen in ended_otherwise
        calls = [a.at for a in deployed.attempt_log if a.may_have_started()]
        distance = {
            op.id: min(abs(op.started_at - at) for at in calls) for op in ended_otherwise if op.started_at
        }
        assert distance[chosen.id] == min(distance.values())


@pytest.mark.parametrize("action", ["start_deployment", "update_service"])
def test_an_operation_already_found_to_be_someone_elses_is_never_its_own(action: Action) -> None:
    """Started within the clocks' skew of an open attempt, but recorded as outside (it was running when
    an earlier call was answered "busy"): timing alone cannot make it the deployment's."""
    deployed = deployment(action, [attempt(T0)])
    theirs = operation(T0 - SECOND, wanted_type(deployed), "SUCCEEDED", operation_id="op-theirs")
    assert isinstance(judge(deployed, [theirs]), Own)  # without the record, the timing fits
    verdict = own_operation(
        deployed, [theirs], Configured(), LONGEST_CALL, SKEW, outside=frozenset({"op-theirs"})
    )
    assert verdict == NotStarted()


def test_proof_beats_timing_a_later_rolled_back_update_does_not_hide_its_own() -> None:
    """Its call started an UpdateService that succeeded; 45 s later, still inside the window of that
    call (its answer was lost), someone's UpdateService rolled back, leaving its image configured: the
    operation that is proven its own is adopted, not the later one on timing alone (a seed-424242 soak)."""
    deployed = deployment("update_service", [attempt(T0)])
    own = operation(T0 + SECOND, "UPDATE_SERVICE", "SUCCEEDED", operation_id="op-own")
    theirs = operation(T0 + 45 * SECOND, "UPDATE_SERVICE", "ROLLBACK_SUCCEEDED", operation_id="op-theirs")
    verdict = judge(deployed, [theirs, own], Configured(IMAGE))
    assert isinstance(verdict, Own)
    assert verdict.operation.id == "op-own"


def test_without_proof_a_failed_update_in_the_window_is_taken_on_timing() -> None:
    deployed = deployment("update_service", [attempt(T0)])
    refuted = operation(T0 + SECOND, "UPDATE_SERVICE", "SUCCEEDED", operation_id="op-other-image")
    failed = operation(T0 + 20 * SECOND, "UPDATE_SERVICE", "ROLLBACK_SUCCEEDED", operation_id="op-failed")
    verdict = judge(deployed, [failed, refuted], Configured(OTHER_IMAGE))
    assert isinstance(verdict, Own)
    assert verdict.operation.id == "op-failed"


def test_without_proof_the_operation_closest_to_its_call_is_taken() -> None:
    """Its call (answer lost) started an UpdateService that rolled back; 30 s later, inside the same
    window, someone's UpdateService rolled back too: neither can be checked against the image, and the
    one that started as the call was made is its own (a seed-424242 soak)."""
    deployed = deployment("update_service", [attempt(T0)])
    own = operation(T0, "UPDATE_SERVICE", "ROLLBACK_SUCCEEDED", operation_id="op-own")
    theirs = operation(T0 + 30 * SECOND, "UPDATE_SERVICE", "ROLLBACK_SUCCEEDED", operation_id="op-theirs")
    verdict = judge(deployed, [theirs, own], Configured(OTHER_IMAGE))
    assert isinstance(verdict, Own)
    assert verdict.operation.id == "op-own"
