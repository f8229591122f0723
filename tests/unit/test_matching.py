"""Tag and branch matchers, as DESIGN 4.1 defines them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.domain.matching import (
    ExactMatcher,
    GlobMatcher,
    RegexMatcher,
    SemverMatcher,
    parse_range,
    parse_version,
)

tags = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789._-/", min_size=1, max_size=30)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("1.4.2", True),
        ("v1.4.2", True),
        ("1.4", False),  # not a full version
        ("vv1.4.2", False),
        ("V1.4.2", False),  # only a lowercase v is allowed
        ("latest", False),
        ("1.4.2-rc.1", True),
        ("1.4.2+build.5", True),
        ("01.4.2", False),  # leading zeros are not semver
    ],
)
def test_only_full_semantic_versions_parse(tag: str, expected: bool) -> None:
    assert (parse_version(tag) is not None) is expected


@pytest.mark.parametrize(
    ("tag", "matched"),
    [
        ("1.2.0", True),  # lower bound is inclusive
        ("v1.4.0", True),
        ("1.99.99", True),
        ("2.0.0", False),  # upper bound is exclusive
        ("1.1.9", False),
        ("1.4", False),
        ("latest", False),
        ("1.5.0-rc.1", False),  # pre-release not named by the range
        ("2.0.0-rc.1", False),
    ],
)
def test_semver_range_bounds(tag: str, matched: bool) -> None:
    assert SemverMatcher(">=1.2.0,<2.0.0").match(tag)[0] is matched


def test_prerelease_matches_only_when_the_range_names_one_of_the_same_release() -> None:
    matcher = SemverMatcher(">=1.5.0-rc.0 <2.0.0")
    assert matcher.match("1.5.0-rc.1")[0]
    assert not matcher.match("1.6.0-rc.1")[0]  # other major.minor.patch: excluded, as in npm
    assert matcher.match("1.6.0")[0]


@pytest.mark.parametrize(
    "text", [">=1.2.0,<2.0.0", ">=1.2.0 <2.0.0", ">= 1.2.0 , < 2.0.0", ">=v1.2.0,<v2.0.0"]
)
def test_comparators_separated_by_commas_or_spaces(text: str) -> None:
    assert [c.operator for c in parse_range(text)] == [">=", "<"]


def test_bare_version_means_equal() -> None:
    matcher = SemverMatcher("1.4.2")
    assert matcher.match("v1.4.2")[0]
    assert not matcher.match("1.4.3")[0]


@pytest.mark.parametrize(
    "text", ["", ">=1.2", "~1.2.0", "^1.2.0", ">=1.2.0,,<2", "latest", ">=1.2.0 || <1.0.0"]
)
def test_invalid_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        SemverMatcher(text)


def test_regex_must_match_the_whole_tag() -> None:
    matcher = RegexMatcher("tag", r"v\d+")
    assert matcher.match("v12")[0]
    assert not matcher.match("v12-beta")[0]
    assert not matcher.match("xv12")[0]


def test_glob_star_crosses_slashes_and_is_case_sensitive() -> None:
    matcher = GlobMatcher("branch", "release/*")
    assert matcher.match("release/2026/q4")[0]
    assert not matcher.match("Release/1")[0]
    assert GlobMatcher("tag", "v?.[0-9]").match("v1.5")[0]
    assert not GlobMatcher("tag", "v?.[0-9]").match("v10.5")[0]


def test_reasons_name_the_tag_and_the_pattern() -> None:
    assert (
        SemverMatcher(">=1.2.0,<2.0.0").match("v1.4.0")[1] == "tag v1.4.0 is in semver range >=1.2.0,<2.0.0"
    )
    assert "not a semantic version" in SemverMatcher(">=1.0.0").match("1.4")[1]


@given(tags)
def test_a_tag_matched_exactly_is_matched_by_the_glob_equal_to_it(tag: str) -> None:
    # Glob metacharacters are excluded from the alphabet, so the tag is also a literal pattern.
    assert ExactMatcher("tag", tag).match(tag)[0]
    assert GlobMatcher("tag", tag).match(tag)[0]


@given(tags, tags)
def test_exact_match_is_equality(tag: str, other: str) -> None:
    assert ExactMatcher("tag", tag).match(other)[0] is (tag == other)


versions = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)).map(
    lambda v: ".".join(map(str, v))
)


@given(versions, versions, versions)
def test_semver_range_agrees_with_tuple_order(low: str, high: str, candidate: str) -> None:
    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    expected = key(low) <= key(candidate) < key(high)
    assert SemverMatcher(f">={low},<{high}").match(candidate)[0] is expected
