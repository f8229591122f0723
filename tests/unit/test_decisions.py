"""Decisions: action, pinned image and a readable reason for every rule that watches a change."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.domain.changes import Change
from pushdeploy.domain.decisions import MAX_BRANCH_LENGTH, MAX_TAG_LENGTH, decide
from pushdeploy.domain.rules import RuleIndex, build_index, load_rules_file, parse_rules_text
from tests.conftest import DIGEST, EXAMPLE_RULES, WEB_PROD

INDEX: RuleIndex = build_index(load_rules_file(str(EXAMPLE_RULES)))


def push(tag: str | None, region: str = "us-east-1") -> Change:
    return Change(
        kind="image",
        source="ecr",
        account="111122223333",
        region=region,
        repository="web",
        tag=tag,
        digest=DIGEST,
    )


def by_rule(change: Change) -> dict[str, tuple[str, str | None, str]]:
    return {d.rule: (d.action, d.image, d.reason) for d in decide(change, INDEX)}


def test_semver_tag_pins_the_exact_digest() -> None:
    decisions = by_rule(push("v1.4.0"))
    assert decisions["web-prod"] == (
        "update_service",
        f"111122223333.dkr.ecr.us-east-1.amazonaws.com/web@{DIGEST}",
        "tag v1.4.0 is in semver range >=1.2.0,<2.0.0",
    )
    assert decisions["web-staging"][0] == "none"
    assert decisions["web-staging"][2] == "tag v1.4.0 is not latest"


def test_exact_tag_starts_a_deployment_of_the_tracked_tag() -> None:
    action, image, _ = by_rule(push("latest"))["web-staging"]
    assert (action, image) == ("start_deployment", None)


def test_untagged_push_deploys_nothing_and_says_why() -> None:
    decisions = decide(push(None), INDEX)
    assert decisions
    assert all(d.action == "none" and "untagged" in d.reason for d in decisions)


def test_dry_run_rules_decide_and_are_flagged() -> None:
    (preview,) = [d for d in decide(push("v2.0.0-rc.1"), INDEX) if d.rule == "web-preview"]
    assert preview.action == "update_service"
    assert preview.dry_run


def test_replica_region_reaches_only_the_rule_of_that_region() -> None:
    decisions = decide(push("v1.5.0", region="eu-west-1"), INDEX)
    assert [d.rule for d in decisions] == ["web-eu"]
    assert decisions[0].image == f"111122223333.dkr.ecr.eu-west-1.amazonaws.com/web@{DIGEST}"


def test_branch_rules() -> None:
    bitbucket = Change(
        kind="commit",
        source="bitbucket",
        repository="team_name/repo_name",
        branch="name-of-branch",
        commit="b" * 40,
    )
    (decision,) = decide(bitbucket, INDEX)
    assert (decision.action, decision.reason) == (
        "start_deployment",
        "branch name-of-branch matches glob name-of-*",
    )
    other = bitbucket.model_copy(update={"branch": "main"})
    assert decide(other, INDEX)[0].action == "none"


def test_unwatched_source_has_no_decisions() -> None:
    change = Change(
        kind="image",
        source="ecr",
        account="111122223333",
        region="us-east-1",
        repository="other",
        tag="latest",
        digest=DIGEST,
    )
    assert decide(change, INDEX) == []


@given(st.text(min_size=1, max_size=40).filter(lambda t: t.strip() == t))
def test_decisions_are_deterministic(tag: str) -> None:
    assert decide(push(tag), INDEX) == decide(push(tag), INDEX)


# Every kind of tag rule on `web`, one regex that backtracks catastrophically on Python's `re`, and a
# branch glob.
PATTERNS: RuleIndex = build_index(
    parse_rules_text(
        "version: 1\nrules:\n"
        + textwrap.indent(
            textwrap.dedent(f"""\
                - id: regex
                  service: {WEB_PROD}
                  image: {{repository: web, tag_regex: '^v(\\d+\\.?)+$'}}
                - id: glob
                  service: {WEB_PROD}
                  image: {{repository: web, tag_glob: 'v*'}}
                - id: exact
                  service: {WEB_PROD}
                  image: {{repository: web, tag: latest}}
                - id: range
                  service: {WEB_PROD}
                  image: {{repository: web, semver: '>=1.0.0'}}
                - id: branches
                  service: {WEB_PROD}
                  code: {{provider: github, repository: acme/web, branch_glob: 'release/*'}}
                """),
            "  ",
        )
    )
)


def actions(change: Change) -> dict[str, str]:
    return {d.rule: d.action for d in decide(change, PATTERNS)}


def commit(branch: str) -> Change:
    return Change(kind="commit", source="github", repository="acme/web", branch=branch, commit="c" * 40)


def test_a_catastrophic_regex_decides_a_40_character_tag() -> None:
    # A backtracking engine takes hours on the second tag; RE2 answers at once. Nothing is timed here.
    assert actions(push("v" + "1" * 39))["regex"] == "update_service"
    (decision,) = [d for d in decide(push("v" + "1" * 38 + "!"), PATTERNS) if d.rule == "regex"]
    assert decision.action == "none"
    assert decision.reason == f"tag v{'1' * 38}! does not match regex ^v(\\d+\\.?)+$"


def test_a_tag_of_the_registry_limit_is_matched() -> None:
    tag = "v" + "1" * (MAX_TAG_LENGTH - 1)
    assert actions(push(tag)) == {
        "regex": "update_service",
        "glob": "update_service",
        "exact": "none",
        "range": "none",
    }


@pytest.mark.parametrize("length", [MAX_TAG_LENGTH + 1, 300, 10_000])
def test_a_tag_longer_than_the_registry_limit_is_ignored_by_every_rule(length: int) -> None:
    decisions = decide(push("v" + "1" * (length - 1)), PATTERNS)
    assert [d.rule for d in decisions] == ["regex", "glob", "exact", "range"]
    for decision in decisions:
        assert (decision.action, decision.image) == ("none", None)
        assert decision.reason == (
            f"tag is {length} characters long, longer than the registry's limit of 128: ignored"
        )


def test_a_branch_of_the_limit_is_matched_and_a_longer_one_ignored() -> None:
    longest = "release/" + "x" * (MAX_BRANCH_LENGTH - len("release/"))
    assert actions(commit(longest)) == {"branches": "start_deployment"}
    (decision,) = decide(commit(longest + "x"), PATTERNS)
    assert decision.action == "none"
    assert decision.reason == "branch is 256 characters long, longer than the limit of 255: ignored"
