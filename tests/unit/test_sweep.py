"""The sweep's pure rules: which sources are watched, which images and heads are candidates, and how
far each source has been looked at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.domain.change_ids import swept_change_id
from pushdeploy.domain.changes import Change
from pushdeploy.domain.rules import Rule, compile_rule
from pushdeploy.domain.sweep import (
    OVERLAP,
    Head,
    ListedImage,
    Mark,
    WatchedSource,
    commit_candidate,
    head_due,
    image_candidates,
    is_baseline,
    next_head,
    same_push,
    watched_sources,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SERVICE = "arn:aws:apprunner:us-east-1:111122223333:service/web-prod/0123456789abcdef0123456789abcdef"


def rule(rule_id: str, **source: object) -> Rule:
    kind = "code" if "provider" in source else "image"
    return Rule.model_validate({"id": rule_id, "service": SERVICE, kind: source})


def watched(*rules: tuple[Rule, datetime]) -> list[WatchedSource]:
    return watched_sources((compile_rule(r), at) for r, at in rules)


def ecr_source(since: datetime = T0) -> WatchedSource:
    (source,) = watched((rule("web", repository="web", tag_glob="*"), since))
    return source


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- what is watched -------------------------------------------------------------------------------


def test_only_ecr_and_codecommit_are_swept_one_source_per_repository() -> None:
    sources = watched(
        (rule("a", repository="web", tag="latest"), at(0)),
        (rule("b", repository="web", semver="^1.0.0"), at(10)),
        (rule("c", repository="other", tag="latest", account="222233334444"), at(0)),
        (rule("d", provider="codecommit", repository="app", branch="main"), at(0)),
        (rule("e", provider="github", repository="acme/web", branch="main"), at(0)),
    )
    names = [s.describe() for s in sources]
    assert names == [
        "codecommit 111122223333/us-east-1/app",
        "ecr 111122223333/us-east-1/web",
        "ecr 222233334444/us-east-1/other",
    ]
    web = sources[1]
    assert web.since == at(0)  # from its earliest rule


def test_exact_branches_are_asked_for_by_name_and_a_pattern_means_listing() -> None:
    (exact,) = watched(
        (rule("a", provider="codecommit", repository="app", branch="main"), at(0)),
        (rule("b", provider="codecommit", repository="app", branch="dev"), at(0)),
    )
    assert exact.exact_branches == ("dev", "main")
    (pattern,) = watched(
        (rule("a", provider="codecommit", repository="app", branch="main"), at(0)),
        (rule("b", provider="codecommit", repository="app", branch_glob="release/*"), at(5)),
    )
    assert pattern.exact_branches is None
    assert pattern.branch_watched_since("release/2") == at(5)
    assert pattern.branch_watched_since("feature/x") is None


# --- images ----------------------------------------------------------------------------------------


def test_a_never_swept_source_is_looked_at_from_its_earliest_rule_on() -> None:
    images = [
        ListedImage("sha256:" + "1" * 64, ("v1",), at(-1)),  # before the rule: its event found no rule
        ListedImage("sha256:" + "2" * 64, ("v2", "latest"), at(30)),
    ]
    found = image_candidates(ecr_source(), images, None, at(60))
    assert [(c.tag, c.digest) for c in found] == [("latest", images[1].digest), ("v2", images[1].digest)]
    assert all(c.pushed_at == at(30) and c.account == "111122223333" for c in found)


def test_a_tag_a_tag_rule_names_is_dated_when_the_sweep_saw_it_not_by_the_images_first_push() -> None:
    """`latest` moved by hand onto an image first pushed as v1.4.2, after a newer `latest` push: ECR still
    dates that image by its first push, which would make the move look older than the push it followed.
    Where a followed tag points is its newest push, so it is dated when the sweep saw it; other tags (a
    glob's) keep the image's push time."""
    (source,) = watched(
        (rule("web-latest", repository="web", tag="latest"), T0),
        (rule("web-all", repository="web", tag_glob="v*"), T0),
    )
    image = ListedImage("sha256:" + "2" * 64, ("v1.4.2", "latest"), at(30))
    found = image_candidates(source, [image], None, at(300), seen_at=at(420))
    assert {(c.tag, c.pushed_at) for c in found} == {("latest", at(420)), ("v1.4.2", at(30))}


def test_images_younger_than_until_wait_for_the_next_sweep_and_untagged_ones_are_left_out() -> None:
    images = [
        ListedImage("sha256:" + "1" * 64, ("v1",), at(100)),
        ListedImage("sha256:" + "2" * 64, (), at(50)),
    ]
    assert image_candidates(ecr_source(), images, None, at(99)) == []


pushed_times = st.integers(-600, 600).map(at)
listed_images = st.builds(
    ListedImage,
    digest=st.integers(1, 10**6).map(lambda n: f"sha256:{n:064x}"),
    tags=st.lists(st.sampled_from(["latest", "v1", "v2"]), unique=True, max_size=2).map(tuple),
    pushed_at=pushed_times,
)


@given(
    st.lists(listed_images, max_size=8, unique_by=lambda image: image.digest),
    pushed_times,
    st.integers(0, 600),
)
def test_consecutive_sweeps_look_at_every_tagged_image_up_to_their_until(
    images: list[ListedImage], mark_until: datetime, step: int
) -> None:
    """Nothing between two sweeps falls through the gap: every tagged image pushed after the previous
    mark (less the overlap) and up to this sweep's `until` is a candidate, each tag once, oldest first."""
    until = mark_until + timedelta(seconds=step)
    found = image_candidates(ecr_source(at(-10_000)), images, Mark(mark_until), until)
    expected = {
        (tag, image.digest)
        for image in images
        if mark_until - OVERLAP <= image.pushed_at <= until
        for tag in image.tags
    }
    assert {(c.tag, c.digest) for c in found} == expected
    assert len(found) == len({(c.tag, c.digest, c.pushed_at) for c in found})
    assert [c.pushed_at for c in found] == sorted(c.pushed_at for c in found)


# --- branch heads ----------------------------------------------------------------------------------


def test_the_first_look_at_a_branch_is_a_baseline_never_looked_up() -> None:
    head = next_head(None, "c1", at(0), baseline=True)
    assert head.looked_up
    assert not head_due(head, at(1000))


def test_a_moved_head_is_due_once_seen_before_until_with_the_old_head_as_previous() -> None:
    kept = Head("c1", at(0), looked_up=True)
    moved = next_head(kept, "c2", at(300), baseline=False)
    assert (moved.commit, moved.previous, moved.looked_up) == ("c2", "c1", False)
    assert not head_due(moved, at(299))  # seen after this sweep's until: its event may be on its way
    assert head_due(moved, at(300))
    assert next_head(moved, "c2", at(600), baseline=False) == moved  # unchanged head: kept as seen


def test_a_branch_created_since_the_last_sweep_is_new_not_a_baseline() -> None:
    (source,) = watched((rule("a", provider="codecommit", repository="app", branch_glob="release/*"), at(0)))
    swept = Mark(at(300))
    assert not is_baseline(source, "release/2", swept)
    assert is_baseline(source, "release/2", None)  # never swept: what it holds predates the sweep
    head = next_head(None, "c9", at(600), baseline=False)
    assert (head.previous, head.looked_up) == (None, False)


def test_a_branch_whose_rule_is_newer_than_the_last_sweep_is_a_baseline() -> None:
    (source,) = watched((rule("a", provider="codecommit", repository="app", branch="main"), at(400)))
    assert is_baseline(source, "main", Mark(at(300)))


def test_a_commit_candidate_is_ordered_after_the_head_it_replaced() -> None:
    (source,) = watched((rule("a", provider="codecommit", repository="app", branch="main"), at(0)))
    change = commit_candidate(source, "main", Head("c2", at(60), previous="c1"))
    assert (change.commit, change.previous_commit, change.pushed_at) == ("c2", "c1", at(60))


def test_marks_survive_the_ledger_round_trip() -> None:
    mark = Mark(at(5), {"main": Head("c2", at(1), "c1", False), "dev": Head("c3", at(2), None, True)})
    assert Mark.from_record(mark.as_record()) == mark


# --- the same push ---------------------------------------------------------------------------------


def image_change(tag: str = "latest", account: str = "111122223333") -> Change:
    return Change(
        kind="image",
        source="ecr",
        account=account,
        region="us-east-1",
        repository="web",
        tag=tag,
        digest="sha256:" + "a" * 64,
    )


def test_a_recorded_change_is_the_same_push_only_for_the_same_repository_tag_and_digest() -> None:
    change = image_change()
    assert same_push(change, change.model_dump())
    assert not same_push(change, image_change(tag="v1").model_dump())
    assert not same_push(change, image_change(account="222233334444").model_dump())


def test_two_sweeps_that_find_one_push_name_one_change() -> None:
    assert swept_change_id(image_change()) == swept_change_id(image_change())
    assert swept_change_id(image_change()) != swept_change_id(image_change(tag="v1"))


def test_exact_tags_are_followed_and_marks_keep_them() -> None:
    (source,) = watched(
        (rule("a", repository="web", tag="latest"), at(0)),
        (rule("b", repository="web", tag_glob="release-*"), at(0)),
    )
    assert source.exact_tags == ("latest",)
    mark = Mark(at(5), tags={"latest": Head("sha256:" + "a" * 64, at(1), None, True)})
    assert Mark.from_record(mark.as_record()) == mark
