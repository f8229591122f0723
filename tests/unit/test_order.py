"""Which of two pushes is newer, by the rule's own order (pushdeploy.domain.order): never by arrival."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from random import Random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pushdeploy.domain.order import OrderKind, Position, compare

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def semver(version: str, artifact: str = DIGEST_A, rule: str = "web-prod") -> Position:
    return Position(rule=rule, kind="semver", artifact=artifact, version=version, pushed_at=T0)


def timed(artifact: str, minute: int, rule: str = "web-prod") -> Position:
    return Position(rule=rule, kind="time", artifact=artifact, pushed_at=T0 + timedelta(minutes=minute))


def commit(artifact: str, minute: int | None, previous: str | None = None, rule: str = "api") -> Position:
    pushed_at = None if minute is None else T0 + timedelta(minutes=minute)
    return Position(rule=rule, kind="chain", artifact=artifact, pushed_at=pushed_at, previous=previous)


def assert_newer(new: Position, old: Position) -> None:
    """`new` is newer than `old`, and `old` older than `new`: whichever arrived first."""
    assert compare(new, old) == 1
    assert compare(old, new) == -1


# ----- semver -----


@pytest.mark.parametrize(
    ("newer", "older"),
    [
        ("v1.6.0", "v1.5.9"),
        ("1.10.0", "1.9.0"),  # numerically, not as text
        ("2.0.0", "1.99.99"),
        ("1.2.0", "1.2.0-rc.1"),  # a release is newer than its pre-releases
        ("1.2.0-rc.2", "1.2.0-rc.1"),
        ("1.2.0-rc.10", "1.2.0-rc.2"),  # numeric identifiers compare as numbers
        ("1.2.0-beta", "1.2.0-alpha.1"),
        ("1.2.0-alpha.1", "1.2.0-alpha"),
        ("1.2.0-rc.1", "1.1.9"),
        ("v1.2.1", "1.2.0"),  # with and without the v prefix
    ],
)
def test_semver_newer_whatever_arrived_first(newer: str, older: str) -> None:
    assert_newer(semver(newer, DIGEST_B), semver(older, DIGEST_A))


@pytest.mark.parametrize(
    ("one", "other"), [("1.4.0", "1.4.0"), ("v1.4.0", "1.4.0"), ("1.4.0+build.7", "1.4.0")]
)
def test_semver_equal_versions_compare_equal_even_for_another_image(one: str, other: str) -> None:
    assert compare(semver(one, DIGEST_B), semver(other, DIGEST_A)) == 0
    assert compare(semver(other, DIGEST_A), semver(one, DIGEST_B)) == 0


def test_semver_goes_by_the_version_not_the_push_time() -> None:
    late_old = Position("web-prod", "semver", DIGEST_A, version="1.0.0", pushed_at=T0 + timedelta(days=1))
    early_new = Position("web-prod", "semver", DIGEST_B, version="1.1.0", pushed_at=T0)
    assert_newer(early_new, late_old)


def test_a_semver_position_without_a_full_version_counts_as_newer() -> None:
    assert compare(semver("latest", DIGEST_B), semver("1.0.0")) == 1
    assert compare(semver("1.0.0"), semver("1.4", DIGEST_B)) == 1


versions = st.tuples(
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.one_of(st.none(), st.sampled_from(["alpha", "alpha.1", "beta", "rc.1", "rc.2", "rc.10"])),
)


def version_text(version: tuple[int, int, int, str | None], prefix: bool) -> str:
    major, minor, patch, pre = version
    return ("v" if prefix else "") + f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")


@given(versions, versions, st.booleans(), st.booleans())
def test_semver_is_antisymmetric_and_ignores_the_v_prefix(
    one: tuple[int, int, int, str | None],
    other: tuple[int, int, int, str | None],
    one_prefixed: bool,
    other_prefixed: bool,
) -> None:
    a = semver(version_text(one, one_prefixed), DIGEST_A)
    b = semver(version_text(other, other_prefixed), DIGEST_B)
    assert compare(a, b) == -compare(b, a)
    assert (compare(a, b) == 0) == (one == other)
    if one[:3] != other[:3]:
        assert compare(a, b) == (1 if one[:3] > other[:3] else -1)


# ----- time -----


def test_time_the_later_push_is_newer() -> None:
    assert_newer(timed(DIGEST_A, 5), timed(DIGEST_B, 4))
    assert_newer(timed(DIGEST_B, 5), timed(DIGEST_A, 4))


def test_time_the_same_artifact_is_equal_whenever_pushed() -> None:
    assert compare(timed(DIGEST_A, 9), timed(DIGEST_A, 1)) == 0
    assert compare(timed(DIGEST_A, 1), timed(DIGEST_A, 9)) == 0


def test_time_ties_are_broken_by_artifact_so_both_arrival_orders_agree() -> None:
    assert_newer(timed(DIGEST_B, 3), timed(DIGEST_A, 3))


def test_time_compares_instants_not_wall_clocks() -> None:
    paris = timezone(timedelta(hours=1))
    same_instant_in_paris = Position("web-prod", "time", DIGEST_A, pushed_at=T0.astimezone(paris))
    assert compare(same_instant_in_paris, timed(DIGEST_B, 0)) == -1  # same instant: B > A by digest
    assert compare(timed(DIGEST_B, 0), same_instant_in_paris) == 1


def test_without_push_times_the_newcomer_counts_as_newer() -> None:
    no_time = Position("web-prod", "time", DIGEST_A)
    assert compare(no_time, timed(DIGEST_B, 0)) == 1
    assert compare(timed(DIGEST_B, 0), no_time) == 1


digests = st.text("0123456789abcdef", min_size=1, max_size=4).map(lambda text: f"sha256:{text}")
minutes = st.integers(0, 5)  # few distinct times: ties are common


@given(digests, minutes, digests, minutes)
def test_time_is_antisymmetric_for_distinct_artifacts(
    artifact_a: str, minute_a: int, artifact_b: str, minute_b: int
) -> None:
    assume(artifact_a != artifact_b)
    a, b = timed(artifact_a, minute_a), timed(artifact_b, minute_b)
    assert compare(a, b) in (1, -1)
    assert compare(a, b) == -compare(b, a)


@given(st.lists(st.tuples(digests, minutes), min_size=1, max_size=8, unique_by=lambda p: p[0]), st.randoms())
def test_time_every_arrival_order_ends_on_the_same_artifact(
    pushes: list[tuple[str, int]], random: Random
) -> None:
    positions = [timed(artifact, minute) for artifact, minute in pushes]

    def newest(arrivals: list[Position]) -> Position:
        kept = arrivals[0]
        for arriving in arrivals[1:]:
            if compare(arriving, kept) > 0:
                kept = arriving
        return kept

    shuffled = list(positions)
    random.shuffle(shuffled)
    assert newest(shuffled) == newest(positions)


# ----- chain -----


def test_chain_the_previous_commit_beats_time() -> None:
    # c2 was pushed on top of c1, though its event carries an earlier time (clock skew, a slow hook).
    c1 = commit("c1", minute=10, previous="c0")
    c2 = commit("c2", minute=5, previous="c1")
    assert_newer(c2, c1)


def test_chain_without_a_link_falls_back_to_time_then_commit_id() -> None:
    assert_newer(commit("c1", minute=6, previous="x"), commit("c2", minute=5, previous="y"))
    assert_newer(commit("c2", minute=5), commit("c1", minute=5))


def test_chain_the_same_commit_is_equal() -> None:
    assert compare(commit("c1", 1, previous="c0"), commit("c1", 9, previous="c7")) == 0


def test_chain_without_times_or_links_the_newcomer_counts_as_newer() -> None:
    assert compare(commit("c1", None), commit("c2", None)) == 1
    assert compare(commit("c2", None), commit("c1", None)) == 1
    assert_newer(commit("c2", None, previous="c1"), commit("c1", None))


commits = st.sampled_from(["c0", "c1", "c2", "c3", "c4"])


@given(commits, st.one_of(st.none(), commits), minutes, commits, st.one_of(st.none(), commits), minutes)
def test_chain_is_antisymmetric(
    artifact_a: str,
    previous_a: str | None,
    minute_a: int,
    artifact_b: str,
    previous_b: str | None,
    minute_b: int,
) -> None:
    assume(artifact_a != artifact_b)
    a = commit(artifact_a, minute_a, previous_a)
    b = commit(artifact_b, minute_b, previous_b)
    assert compare(a, b) == -compare(b, a)
    if previous_a == artifact_b and previous_b != artifact_a:
        assert compare(a, b) == 1


def test_chain_a_force_push_back_is_decided_by_time() -> None:
    # main was at A, B was pushed on A (t1), then A was force-pushed back on top of B (t2).
    b = commit("B", minute=1, previous="A")
    a_again = commit("A", minute=2, previous="B")
    # If A-again arrives first (its event was faster), B must not replace it: B is older.
    assert compare(b, a_again) == -1
    assert compare(a_again, b) == 1


# ----- not comparable -----


@pytest.mark.parametrize(
    ("new", "old"),
    [
        (timed(DIGEST_A, 0, rule="web-prod"), timed(DIGEST_B, 9, rule="web-staging")),
        (semver("1.0.0", rule="web-prod"), semver("2.0.0", DIGEST_B, rule="web-canary")),
        (semver("1.0.0"), timed(DIGEST_B, 9)),  # one rule changed its order kind
        (commit("c1", 0, rule="web-prod"), timed(DIGEST_B, 9)),
        (timed(DIGEST_A, 0, rule="web-prod"), timed(DIGEST_A, 9, rule="web-staging")),  # same artifact
    ],
)
def test_different_rules_or_kinds_are_not_comparable_and_the_newcomer_counts_as_newer(
    new: Position, old: Position
) -> None:
    assert compare(new, old) == 1
    assert compare(old, new) == 1


# ----- records -----

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))])
kinds: st.SearchStrategy[OrderKind] = st.sampled_from(["semver", "time", "chain"])
moments = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=ZONES,
    ),
)
positions = st.builds(
    Position,
    rule=st.text(min_size=1, max_size=20),
    kind=kinds,
    artifact=st.text(min_size=1, max_size=80),
    version=st.one_of(st.none(), st.text(max_size=20)),
    pushed_at=moments,
    previous=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
)


@given(positions)
def test_position_record_round_trip(position: Position) -> None:
    record = position.as_record()
    assert Position.from_record(record) == position
    stored = json.loads(json.dumps(record))  # as the ledger keeps it: plain JSON values
    restored = Position.from_record(stored)
    assert restored == position
    assert restored.pushed_at == position.pushed_at
    if position.pushed_at is not None:
        assert restored.pushed_at is not None
        assert restored.pushed_at.utcoffset() == position.pushed_at.utcoffset()


def test_position_record_shape() -> None:
    position = commit("0123456789abcdef0123", minute=0, previous="fedcba9876543210")
    assert position.as_record() == {
        "rule": "api",
        "kind": "chain",
        "artifact": "0123456789abcdef0123",
        "version": None,
        "pushed_at": "2026-11-26T08:00:00+00:00",
        "previous": "fedcba9876543210",
    }


def test_a_record_without_optional_fields_reads() -> None:
    assert Position.from_record({"rule": "web-prod", "kind": "time", "artifact": DIGEST_A}) == Position(
        "web-prod", "time", DIGEST_A
    )


def test_describe() -> None:
    assert semver("v1.6.0").describe() == "v1.6.0"
    assert timed(DIGEST_A, 0).describe() == "aaaaaaaaaaaa pushed 2026-11-26T08:00:00Z"
    assert Position("api", "chain", "0123456789abcdef").describe() == "0123456789ab"
