"""Tag and branch matchers, as DESIGN 4.1 defines them."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pushdeploy.domain.matching import (
    ExactMatcher,
    GlobMatcher,
    RegexMatcher,
    SemverMatcher,
    glob_problem,
    glob_to_re2,
    parse_range,
    parse_version,
    regex_problem,
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


@pytest.mark.parametrize(  # `~1.2.0`, `^1.2.0` and `||` were refused here before npm's forms (DESIGN 4.1)
    "text", ["", ">=1.2", "~1.2.x.5", "^1.2.x.5", ">=1.2.0,,<2", "latest", ">=1.2.0 || "]
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


# --- linear time: RE2 for regexes and globs --------------------------------------------------------

CATASTROPHIC = r"^v(\d+\.?)+$"  # exponential on a backtracking engine when the tag almost matches


@pytest.mark.parametrize(
    ("tag", "matched"),
    [
        ("v" + "1" * 39, True),  # 40 characters
        ("v" + "1" * 38 + "!", False),  # 40 characters, the last one spoils it: hours for Python's `re`
        ("v" + "1." * 20 + "x", False),
        ("v" + "1" * 9_999, True),  # 10,000 characters
        ("v" + "1" * 9_998 + "!", False),
        ("v" + "12." * 3_333, True),
    ],
)
def test_a_catastrophic_regex_decides_long_tags_at_once(tag: str, matched: bool) -> None:
    # Nothing is timed here (benchmarks/decide.py measures): a backtracking engine would hang this test.
    assert RegexMatcher("tag", CATASTROPHIC).match(tag)[0] is matched
    assert GlobMatcher("tag", "v*1*1*1*1*1*1*1*1*1*1*1*?*1").match(tag)[0] is tag.endswith("1")


@pytest.mark.parametrize(
    ("pattern", "sentence"),
    [
        (r"^v\d+(?=-rc)", "lookaround and backreferences are not supported"),
        (r"^(?!dev-).*$", "lookaround and backreferences are not supported"),
        (r"(?<=v)\d+", "lookaround and backreferences are not supported"),
        (r"(?<!x)v\d+", "lookaround and backreferences are not supported"),
        (r"(\d)\1", "lookaround and backreferences are not supported"),
        (r"(?P<n>\d)(?P=n)", "lookaround and backreferences are not supported"),
        (r"v\d++", "possessive quantifiers (++, *+, ?+, {n}+) are not supported"),
        (r"v\d{2}+", "possessive quantifiers (++, *+, ?+, {n}+) are not supported"),
        (r"(?>v\d+)", "atomic groups (?>...) are not supported"),
        (r"(?x) v \d+", "inline flags other than i, m, s and U are not supported"),
        (r"v\d+\Z", r"\Z is not supported (the regex matches the whole tag anyway)"),
        (r"(v{1000}){1000}", "repetitions over 1000 (nested counts multiplied) are not supported"),
    ],
)
def test_regexes_re2_cannot_run_are_named_as_unsupported(pattern: str, sentence: str) -> None:
    assert regex_problem(pattern) == f"{sentence}: pushdeploy matches tags in linear time (RE2 syntax)"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (r"v(\d+", r"invalid regex: missing ): v(\d+"),
        ("(", "invalid regex: missing ): ("),
        ("[z-a]", "invalid regex: invalid character class range: z-a"),
        ("v**", "invalid regex: bad repetition operator: **"),
    ],
)
def test_broken_regexes_are_invalid(pattern: str, problem: str) -> None:
    assert regex_problem(pattern) == problem


@pytest.mark.parametrize(
    "pattern",
    [CATASTROPHIC, r"^v\d+\.\d+\.\d+-rc\.\d+$", r"(?i)^release-\w+$", r"(?P<major>\d+)\.x", "(a|b)*"],
)
def test_ordinary_regexes_are_accepted(pattern: str) -> None:
    assert regex_problem(pattern) is None


def test_a_regex_is_re2_syntax() -> None:
    assert RegexMatcher("tag", r"\p{Greek}+-\d").match("αβ-1")[0]  # RE2 has Unicode classes; `re` does not
    assert not RegexMatcher("tag", r"v\d").match("v\n1")[0]


def test_a_name_that_is_not_unicode_text_matches_nothing() -> None:
    matched, reason = GlobMatcher("tag", "*").match("v1\ud800")  # a lone surrogate, as JSON can carry
    assert (matched, reason) == (False, "tag is not valid Unicode text: no glob matches it")


@pytest.mark.parametrize(
    ("pattern", "expression"),
    [
        ("release/*", r"(?s:release\/.*)"),
        ("v?.[0-9]", r"(?s:v.\.[0-9])"),
        ("v1.**", r"(?s:v1\..*)"),
        ("[!a-c]x", r"(?s:[^a-c]x)"),
        ("[]-]", r"(?s:[\]\-])"),
        ("[[:digit:]]", r"(?s:[\[\:digit\:]\])"),  # fnmatch: the set `[:digit:` then `]`; never a POSIX class
        ("a[b", r"(?s:a\[b)"),
        ("[z-a]", r"(?s:[^\x00-\x{10ffff}])"),  # a reversed range is dropped: an empty set
        ("[!z-a]", r"(?s:.)"),
        ("é\t(x)|$^{1}", r"(?s:\x{e9}\x{9}\(x\)\|\$\^\{1\})"),
    ],
)
def test_globs_translate_to_re2_without_python_only_syntax(pattern: str, expression: str) -> None:
    assert glob_to_re2(pattern) == expression
    assert glob_problem(pattern) is None


# Names and patterns from a small alphabet, so that they meet often, with every character a glob or
# a regex treats specially.
NAME_ALPHABET = "ab-/.!^]\\[x\n"
name_chars = st.sampled_from(NAME_ALPHABET)
glob_sets = st.builds(
    lambda negated, members: "[" + ("!" if negated else "") + "".join(members) + "]",
    st.booleans(),
    st.lists(
        name_chars | st.tuples(name_chars, name_chars).map("-".join) | st.just("-"), min_size=0, max_size=4
    ),
)
glob_pieces = name_chars | st.sampled_from(["*", "?", "[", "]", "!", "-"]) | glob_sets
glob_patterns = st.lists(glob_pieces, max_size=8).map("".join)
names = st.text(alphabet=NAME_ALPHABET, max_size=12)


@st.composite
def glob_and_name(draw: st.DrawFn) -> tuple[str, str]:
    """A pattern and a name: either any name, or one spelt from the pattern's own pieces (more matches)."""
    pieces = draw(st.lists(glob_pieces, max_size=8))
    if draw(st.booleans()):
        return "".join(pieces), draw(names)
    name = ""
    for piece in pieces:
        if piece == "*":
            name += draw(names)
        elif piece == "?":
            name += draw(name_chars)
        elif piece.startswith("[") and len(piece) > 1:
            name += draw(name_chars | st.sampled_from(piece[1:-1] or "a"))
        else:
            name += piece
    return "".join(pieces), name


@settings(max_examples=1_500)
@given(glob_and_name())
@example(("[a-c-e]", "-"))
@example(("[a--z]", "b"))
@example(("[!]a]", "]"))
@example(("[]-a]", "^"))
@example(("[\\-a]", "]"))
@example(("*\n?", "x\n\n"))
@example(("[!b-a]", "\n"))
@example(("[a--!]", "a"))  # fnmatch reads the `!` after dropping the reversed range `a--`
@example(("[a--!-z]", "-"))
def test_globs_answer_as_fnmatch_does(case: tuple[str, str]) -> None:
    pattern, name = case
    expected = fnmatch.fnmatchcase(name, pattern)
    assert GlobMatcher("branch", pattern).match(name)[0] is expected, glob_to_re2(pattern)


unicode_text = st.characters(codec="utf-8")  # any character but a lone surrogate


@settings(max_examples=300)
@given(st.text(alphabet=unicode_text, max_size=10), st.text(alphabet=unicode_text, max_size=10))
def test_globs_of_any_characters_answer_as_fnmatch_does(pattern: str, name: str) -> None:
    assert GlobMatcher("tag", pattern).match(name)[0] is fnmatch.fnmatchcase(name, pattern)


def test_an_empty_lower_bound_is_refused_since_re2_reads_it_literally() -> None:
    assert regex_problem(r"^v\d{,3}$") == "a repetition {,n} is read literally by RE2: write {0,n}"
    assert regex_problem(r"^v\d{0,3}$") is None
    assert regex_problem(r"^v\{,3}$") is None  # an escaped brace is a literal, as meant


# --- semver ranges the way npm and Cargo users write them (DESIGN 4.1) -----------------------------
# The tables below are node-semver's own documented examples: its README ("Advanced Range Syntax",
# "Prerelease Tags") and test/fixtures/range-include.js / range-exclude.js (strict mode, default options).


def desugared(text: str) -> str:
    return " ".join(str(comparator) for comparator in parse_range(text))


@pytest.mark.parametrize(
    ("text", "comparators"),
    [
        # hyphen ranges
        ("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4"),
        ("1.2 - 2.3.4", ">=1.2.0 <=2.3.4"),
        ("1.2.3 - 2.3", ">=1.2.3 <2.4.0-0"),
        ("1.2.3 - 2", ">=1.2.3 <3.0.0-0"),
        ("1.2 - 1.4", ">=1.2.0 <1.5.0-0"),
        # x-ranges; a partial version is one
        ("*", ""),
        ("1.x", ">=1.0.0 <2.0.0-0"),
        ("1.X", ">=1.0.0 <2.0.0-0"),
        ("1.2.x", ">=1.2.0 <1.3.0-0"),
        ("1.2.*", ">=1.2.0 <1.3.0-0"),
        ("1", ">=1.0.0 <2.0.0-0"),
        ("1.2", ">=1.2.0 <1.3.0-0"),
        # tilde
        ("~1.2.3", ">=1.2.3 <1.3.0-0"),
        ("~1.2", ">=1.2.0 <1.3.0-0"),
        ("~1", ">=1.0.0 <2.0.0-0"),
        ("~0.2.3", ">=0.2.3 <0.3.0-0"),
        ("~0.2", ">=0.2.0 <0.3.0-0"),
        ("~0", ">=0.0.0 <1.0.0-0"),
        ("~1.2.3-beta.2", ">=1.2.3-beta.2 <1.3.0-0"),
        ("~>1.2.3", ">=1.2.3 <1.3.0-0"),
        # caret
        ("^1.2.3", ">=1.2.3 <2.0.0-0"),
        ("^0.2.3", ">=0.2.3 <0.3.0-0"),
        ("^0.0.3", ">=0.0.3 <0.0.4-0"),
        ("^1.2.3-beta.2", ">=1.2.3-beta.2 <2.0.0-0"),
        ("^0.0.3-beta", ">=0.0.3-beta <0.0.4-0"),
        ("^1.2.x", ">=1.2.0 <2.0.0-0"),
        ("^0.0.x", ">=0.0.0 <0.1.0-0"),
        ("^0.0", ">=0.0.0 <0.1.0-0"),
        ("^1.x", ">=1.0.0 <2.0.0-0"),
        ("^0.x", ">=0.0.0 <1.0.0-0"),
        ("^1.2", ">=1.2.0 <2.0.0-0"),
        ("^1", ">=1.0.0 <2.0.0-0"),
        # a leading `v`, spaces after an operator, build metadata (ignored), commas
        ("^v1.2.0", ">=1.2.0 <2.0.0-0"),
        ("~v1.2", ">=1.2.0 <1.3.0-0"),
        ("v1.x", ">=1.0.0 <2.0.0-0"),
        ("=v1.2.3", "=1.2.3"),
        ("^ 1.2.0", ">=1.2.0 <2.0.0-0"),
        ("~> 1", ">=1.0.0 <2.0.0-0"),
        ("^1.2.3+build", ">=1.2.3 <2.0.0-0"),
        ("^1.2.0, <1.5.0", ">=1.2.0 <2.0.0-0 <1.5.0"),
    ],
)
def test_each_form_desugars_as_node_semver_documents(text: str, comparators: str) -> None:
    assert desugared(text) == comparators


@pytest.mark.parametrize(
    ("text", "tag", "matched"),
    [
        # README: comparators, sets and `||`
        (">=1.2.7", "1.2.7", True),
        (">=1.2.7", "1.3.9", True),
        (">=1.2.7", "1.2.6", False),
        (">=1.2.7 <1.3.0", "1.2.99", True),
        (">=1.2.7 <1.3.0", "1.3.0", False),
        ("1.2.7 || >=1.2.9 <2.0.0", "1.2.7", True),
        ("1.2.7 || >=1.2.9 <2.0.0", "1.4.6", True),
        ("1.2.7 || >=1.2.9 <2.0.0", "1.2.8", False),
        ("1.2.7 || >=1.2.9 <2.0.0", "2.0.0", False),
        ("1.2 <1.2.9 || >2.0.0", "1.2.8", True),
        ("1.2 <1.2.9 || >2.0.0", "1.2.10", False),  # the README's hole
        ("1.2 <1.2.9 || >2.0.0", "2.0.1", True),
        # README: pre-release tags
        (">1.2.3-alpha.3", "1.2.3-alpha.7", True),
        (">1.2.3-alpha.3", "3.4.5-alpha.9", False),
        (">1.2.3-alpha.3", "3.4.5", True),
        ("~1.2.3-beta.2", "1.2.3-beta.4", True),
        ("~1.2.3-beta.2", "1.2.4-beta.2", False),
        ("^1.2.3-beta.2", "1.2.3-beta.4", True),
        ("^1.2.3-beta.2", "1.2.4-beta.2", False),
        ("^0.0.3-beta", "0.0.3-pr.2", True),
        # range-include.js
        ("1.0.0 - 2.0.0", "1.2.3", True),
        ("^1.2.3+build", "1.3.0", True),
        ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3-pre.2", True),
        ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha", True),
        ("0.1.20 || 1.2.4", "1.2.4", True),
        (">=0.2.3 || <0.0.1", "0.0.0", True),
        (">=0.2.3 || <0.0.1", "0.2.4", True),
        ("2.x.x", "2.1.3", True),
        ("1.2.x || 2.x", "2.1.3", True),
        ("x", "1.2.3", True),
        ("2.*.*", "2.1.3", True),
        ("1.2.* || 2.*", "1.2.3", True),
        ("2", "2.1.2", True),
        ("2.3", "2.3.1", True),
        ("~0.0.1", "0.0.2", True),
        ("~x", "0.0.9", True),
        ("~2", "2.0.9", True),
        ("~2.4", "2.4.5", True),
        ("~>3.2.1", "3.2.2", True),
        ("~> 1", "1.2.3", True),
        ("~ 1.0", "1.0.2", True),
        ("~v0.5.4-pre", "0.5.5", True),
        ("~v0.5.4-pre", "0.5.4", True),
        ("=0.7.x", "0.7.2", True),
        ("~1.2.1 >=1.2.3", "1.2.3", True),
        ("~1.2.1 1.2.3", "1.2.3", True),
        ("^1.2.3", "1.8.1", True),
        ("^0.1.2", "0.1.2", True),
        ("^0.1", "0.1.2", True),
        ("^0.0.1", "0.0.1", True),
        ("^1.2", "1.4.2", True),
        ("^1.2 ^1", "1.4.2", True),
        ("^1.2.3-alpha", "1.2.3-pre", True),
        ("^1.2.0-alpha", "1.2.0-pre", True),
        ("^0.0.1-alpha", "0.0.1-beta", True),
        ("^0.0.1-alpha", "0.0.1", True),
        ("^0.1.1-alpha", "0.1.1-beta", True),
        ("^x", "1.2.3", True),
        ("x - 1.0.0", "0.9.7", True),
        ("x - 1.x", "0.9.7", True),
        ("1.0.0 - x", "1.9.7", True),
        ("1.x - x", "1.9.7", True),
        # range-exclude.js
        ("1.0.0 - 2.0.0", "2.2.3", False),
        ("1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2", False),
        ("1.2.3+asdf - 2.4.3+asdf", "2.4.3-alpha", False),
        ("^1.2.3+build", "2.0.0", False),
        ("^1.2.3+build", "1.2.0", False),
        ("^1.2.3", "1.2.3-pre", False),
        ("^1.2", "1.2.0-pre", False),
        ("<=1.2.3", "1.2.3-beta", False),
        ("^1.2.3", "1.2.3-beta", False),
        ("=0.7.x", "0.7.0-asdf", False),
        ("0.1.20 || 1.2.4", "1.2.3", False),
        (">=0.2.3 || <0.0.1", "0.0.3", False),
        ("2.x.x", "3.1.3", False),
        ("1.2.x", "1.3.3", False),
        ("1.2.x || 2.x", "1.1.3", False),
        ("1.2.* || 2.*", "3.1.3", False),
        ("2", "1.1.2", False),
        ("2.3", "2.4.1", False),
        ("~0.0.1", "0.1.0-alpha", False),
        ("~0.0.1", "0.1.0", False),
        ("~2.4", "2.5.0", False),
        ("~2.4", "2.3.9", False),
        ("~>3.2.1", "3.3.2", False),
        ("~>3.2.1", "3.2.0", False),
        ("~1", "0.2.3", False),
        ("~>1", "2.2.3", False),
        ("~1.0", "1.1.0", False),
        ("~v0.5.4-beta", "0.5.4-alpha", False),
        ("=0.7.x", "0.8.2", False),
        ("<1.2.3", "1.2.3-beta", False),
        ("=1.2.3", "1.2.3-beta", False),
        ("^0.0.1", "0.0.2-alpha", False),
        ("^0.0.1", "0.0.2", False),
        ("^1.2.3", "2.0.0-alpha", False),
        ("^1.2.3", "1.2.2", False),
        ("^1.2", "1.1.9", False),
        ("^1.0.0", "2.0.0-rc1", False),
        ("1 - 2", "2.0.0-pre", False),
        ("1 - 2", "1.0.0-pre", False),
        ("1.0 - 2", "1.0.0-pre", False),
        ("1.1.x", "1.0.0-a", False),
        ("1.1.x", "1.1.0-a", False),
        ("1.1.x", "1.2.0-a", False),
        ("1.x", "1.0.0-a", False),
        ("1.x", "1.1.0-a", False),
        ("1.x", "1.2.0-a", False),
        (">=1.0.0 <1.1.0", "1.1.0", False),
        (">=1.0.0 <1.1.0", "1.1.0-pre", False),
        (">=1.0.0 <1.1.0-pre", "1.1.0-pre", False),
        # the 0.x carets, the forms of the brief, and tags with a `v`
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("^0.0", "0.0.9", True),
        ("^0.0", "0.1.0", False),
        ("^0.x", "0.9.0", True),
        ("^0.x", "1.0.0", False),
        ("^1.2.0", "v1.4.0", True),
        ("^1.2.0", "v2.0.0", False),
        ("^v1.2.0", "v1.2.0", True),
        ("~1.2.3", "v1.2.9", True),
        ("~1.2.3", "v1.3.0", False),
        ("1.2 - 1.4", "1.4.99", True),
        ("1.2 - 1.4", "1.5.0", False),
        ("1.2.0 - 1.4.0", "1.4.0", True),
        ("1.2.0 - 1.4.0", "1.4.1", False),
        ("*", "0.0.0", True),
        ("*", "1.0.0-rc.1", False),  # `*` admits every release, no pre-release
    ],
)
def test_node_semver_documented_examples(text: str, tag: str, matched: bool) -> None:
    assert SemverMatcher(text).match(tag)[0] is matched


def test_a_prerelease_must_be_named_in_the_same_alternative() -> None:
    matcher = SemverMatcher(">=1.0.0 || 1.5.0-rc.1")
    assert matcher.match("1.5.0-rc.1")[0]  # named by the second alternative
    assert not matcher.match("1.5.0-rc.2")[0]  # in the first's bounds, but the first names no pre-release
    split = SemverMatcher(">=1.5.0-rc.0 || <2.0.0")
    assert split.match("1.5.0-rc.1")[0]
    assert not SemverMatcher(">=1.5.0-rc.0 <1.5.0-rc.1 || >=1.0.0 <2.0.0").match("1.5.0-rc.2")[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("^1.2.x.5", "'^1.2.x.5' is not a version or range"),
        ("~1.2.3.4", "'~1.2.3.4' is not a version or range"),
        ("^01.2.3", "'^01.2.3' is not a version or range"),
        ("1.2.3-01", "'1.2.3-01' is not a version or range"),
        ("latest", "'latest' is not a version or range"),
        ("=>1.2.0", "'=>1.2.0' is not a version or range"),
        ("1.x.2", "'1.x.2' is not a version or range: a number follows a wildcard"),
        ("1.2.x-rc.1", "'1.2.x-rc.1' is not a version or range: a pre-release needs a full version"),
        (
            "99999999999999999.0.0",
            "'99999999999999999.0.0' is not a version or range: 99999999999999999 is above 9007199254740991",
        ),
        (
            ">=1.2",
            "'1.2' is not a full semantic version (major.minor.patch): >= needs all three numbers "
            "(or write a caret, tilde or x-range)",
        ),
        (
            "^1.2.0 <2",
            "'2' is not a full semantic version (major.minor.patch): < needs all three numbers "
            "(or write a caret, tilde or x-range)",
        ),
        ("^", "'^' is not followed by a version in '^'"),
        (">= <2.0.0", "'>=' is not followed by a version in '>= <2.0.0'"),
        ("", "empty semver range"),
        ("1.x ||", "empty alternative in semver range '1.x ||': write a range on each side of ||"),
        ("|| ^2", "empty alternative in semver range '|| ^2': write a range on each side of ||"),
        (">=1.2.0,,<2.0.0", "cannot read semver range at ',<2.0.0'"),
        (
            "1.2.0 - 1.4.0 <1.3.0",
            "'1.2.0 - 1.4.0 <1.3.0' is not a hyphen range: write LOW - HIGH, alone between ||",
        ),
        ("1.2.0 -", "'1.2.0 -' is not a hyphen range: write LOW - HIGH, alone between ||"),
        (
            "^1.2.0 - 2",
            "'^1.2.0' in hyphen range '^1.2.0 - 2': the ends of LOW - HIGH are bare versions",
        ),
        (
            "1.2.0 -1.4.0",
            "'-1.4.0' is not a version or range: a hyphen range needs a space each side of -",
        ),
    ],
)
def test_invalid_ranges_say_what_is_wrong_in_one_line(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r".") as refused:
        SemverMatcher(text)
    assert str(refused.value) == problem


def test_reasons_quote_the_range_as_written() -> None:
    assert SemverMatcher("^1.2.0").match("v1.4.0") == (True, "tag v1.4.0 is in semver range ^1.2.0")
    assert SemverMatcher("~1.2 || 2.x").match("1.3.0") == (
        False,
        "tag 1.3.0 is outside semver range ~1.2 || 2.x",
    )
    assert SemverMatcher("^1.2.0").match("1.5.0-rc.1") == (
        False,
        "tag 1.5.0-rc.1 is a pre-release and range ^1.2.0 names no pre-release of it",
    )


def test_tags_are_still_full_versions_only() -> None:
    for tag in ("^1.2.0", "1.2", "1.x", "~1.2.3", "1.2.0 - 1.4.0", "*"):
        assert parse_version(tag) is None
        assert SemverMatcher("*").match(tag) == (False, f"tag {tag} is not a semantic version")


def test_parse_range_reads_one_alternative_and_the_matcher_all() -> None:
    with pytest.raises(ValueError, match=r"has alternatives"):
        parse_range("^1 || ^2")
    assert [" ".join(map(str, set_)) for set_ in SemverMatcher("^1 || 2.3.4 - 2.5").alternatives] == [
        ">=1.0.0 <2.0.0-0",
        ">=2.3.4 <2.6.0-0",
    ]


numbers = st.integers(0, 4)
prereleases = st.sampled_from(["", "-0", "-1", "-alpha", "-rc.1", "-rc.2"])
releases = st.builds("{}.{}.{}".format, numbers, numbers, numbers)
any_versions = st.builds(str.__add__, releases, prereleases)  # many land on a range's own bounds


@given(st.integers(1, 4), numbers, numbers, prereleases, any_versions)
def test_caret_is_up_to_the_next_major(major: int, minor: int, patch: int, pre: str, tag: str) -> None:
    low = f"{major}.{minor}.{patch}{pre}"
    expected = SemverMatcher(f">={low} <{major + 1}.0.0").match(tag)[0]
    assert SemverMatcher(f"^{low}").match(tag)[0] is expected


@given(numbers, numbers, numbers, prereleases, any_versions)
def test_tilde_is_up_to_the_next_minor(major: int, minor: int, patch: int, pre: str, tag: str) -> None:
    low = f"{major}.{minor}.{patch}{pre}"
    expected = SemverMatcher(f">={low} <{major}.{minor + 1}.0").match(tag)[0]
    assert SemverMatcher(f"~{low}").match(tag)[0] is expected


@given(numbers, numbers, any_versions)
def test_a_partial_version_is_its_x_range(major: int, minor: int, tag: str) -> None:
    expected = SemverMatcher(f">={major}.{minor}.0 <{major}.{minor + 1}.0").match(tag)[0]
    for text in (f"{major}.{minor}", f"{major}.{minor}.x", f"{major}.{minor}.*", f"~{major}.{minor}"):
        assert SemverMatcher(text).match(tag)[0] is expected


@given(releases, releases, any_versions)
def test_a_hyphen_range_of_full_versions_is_inclusive(low: str, high: str, tag: str) -> None:
    expected = SemverMatcher(f">={low},<={high}").match(tag)[0]
    assert SemverMatcher(f"{low} - {high}").match(tag)[0] is expected


ranges = st.one_of(
    st.builds("^{}".format, any_versions),
    st.builds("~{}".format, any_versions),
    st.builds("{}.x".format, numbers),
    st.builds("{}.{}".format, numbers, numbers),
    st.builds("{} - {}".format, any_versions, any_versions),
    st.builds(">={} <{}".format, any_versions, any_versions),
    st.builds("<={}".format, any_versions),
    any_versions,
    st.just("*"),
)


@given(ranges, ranges, any_versions)
def test_alternatives_are_the_union(first: str, second: str, tag: str) -> None:
    expected = SemverMatcher(first).match(tag)[0] or SemverMatcher(second).match(tag)[0]
    assert SemverMatcher(f"{first} || {second}").match(tag)[0] is expected
    assert SemverMatcher(f"{first}||{second}").match(tag)[0] is expected
