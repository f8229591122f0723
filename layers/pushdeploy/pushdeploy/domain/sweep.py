"""The sweep: finding, at the source, the pushes whose events were lost.

ECR and CodeCommit deliver their events best effort. On a schedule the sweeper asks each source a rule
watches what it holds now (ECR DescribeImages, CodeCommit GetBranch) and turns every push the ledger has
no change for into a change like any other, decided and deployed under the same order and dedup rules.

What is pure here: which sources the rules watch, which images or branch heads are candidates since the
source's mark, and where the mark moves. A push younger than the grace period is left to its event, which
is most likely still on its way; the next sweep looks again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pushdeploy.domain.changes import Change, SourceKey, format_source_key
from pushdeploy.domain.rules import CompiledRule

SWEPT_SOURCES = frozenset({"ecr", "codecommit"})  # GitHub and Bitbucket redeliver from their own UIs
FOUND_BY_SWEEP = "found by the sweep: its event was lost"
# Clocks of ECR, CodeCommit and Lambda agree only roughly: each sweep looks this far behind its mark.
OVERLAP = timedelta(minutes=2)


@dataclass(frozen=True)
class WatchingRule:
    rule: CompiledRule
    applied_at: datetime  # when it was last applied


@dataclass(frozen=True)
class WatchedSource:
    """One ECR repository or CodeCommit repository that at least one rule watches."""

    key: SourceKey  # (source, account, region, repository)
    rules: tuple[WatchingRule, ...]

    @property
    def source(self) -> str:
        return self.key[0]

    @property
    def account(self) -> str:
        return self.key[1]

    @property
    def region(self) -> str:
        return self.key[2]

    @property
    def repository(self) -> str:
        return self.key[3]

    @property
    def name(self) -> str:
        return format_source_key(self.key)

    @property
    def since(self) -> datetime:
        """When its earliest rule was applied: nothing pushed before is looked for."""
        return min(watching.applied_at for watching in self.rules)

    def describe(self) -> str:
        return f"{self.source} {self.account}/{self.region}/{self.repository}"

    def branch_watched_since(self, branch: str) -> datetime | None:
        """When the earliest rule that takes this branch was applied; None when no rule takes it."""
        times = [w.applied_at for w in self.rules if w.rule.matcher.match(branch)[0]]
        return min(times, default=None)

    @property
    def exact_tags(self) -> tuple[str, ...]:
        """The tags `tag` rules name (their moves are followed even onto an image pushed long ago)."""
        tags = {w.rule.rule.image.tag for w in self.rules if w.rule.rule.image and w.rule.rule.image.tag}
        return tuple(sorted(tags))

    @property
    def exact_branches(self) -> tuple[str, ...] | None:
        """The branches to ask for by name, or None when a rule takes a branch pattern (list them)."""
        branches = set()
        for watching in self.rules:
            code = watching.rule.rule.code
            if code is None or code.branch is None:
                return None
            branches.add(code.branch)
        return tuple(sorted(branches))


def watched_sources(rules: Iterable[tuple[CompiledRule, datetime]]) -> list[WatchedSource]:
    """The ECR and CodeCommit repositories the rules watch, each with its rules."""
    grouped: dict[SourceKey, list[WatchingRule]] = {}
    for rule, applied_at in rules:
        if rule.key[0] in SWEPT_SOURCES:
            grouped.setdefault(rule.key, []).append(WatchingRule(rule, applied_at))
    return [WatchedSource(key, tuple(members)) for key, members in sorted(grouped.items())]


@dataclass(frozen=True)
class ListedImage:
    """One image as DescribeImages lists it."""

    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime


@dataclass(frozen=True)
class Head:
    """A branch head as the sweep saw it. CodeCommit gives no push time, so a new head counts from when
    it was first seen, and is looked up in the ledger once it is older than the grace period."""

    commit: str
    seen_at: datetime
    previous: str | None = None  # the head it replaced: the commit chain orders it after that one
    looked_up: bool = False  # the ledger was asked about it (or it is a baseline): never again

    def as_record(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "seen_at": self.seen_at.isoformat(),
            "previous": self.previous,
            "looked_up": self.looked_up,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Head:
        previous = record.get("previous")
        return cls(
            str(record["commit"]),
            datetime.fromisoformat(str(record["seen_at"])),
            None if previous is None else str(previous),
            bool(record.get("looked_up")),
        )


@dataclass
class Mark:
    """How far a source has been swept: images pushed up to `until`; each watched branch's head; the
    digest each tag that a `tag` rule names points to (a `Head` too: ECR keeps an image's first push
    time when a tag is moved onto it, so a re-tag is only seen as the tag's head moving)."""

    until: datetime
    heads: dict[str, Head] = field(default_factory=dict)
    tags: dict[str, Head] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "until": self.until.isoformat(),
            "heads": {b: h.as_record() for b, h in self.heads.items()},
            "tags": {t: h.as_record() for t, h in self.tags.items()},
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Mark:
        heads = {str(branch): Head.from_record(head) for branch, head in (record.get("heads") or {}).items()}
        tags = {str(tag): Head.from_record(head) for tag, head in (record.get("tags") or {}).items()}
        return cls(datetime.fromisoformat(str(record["until"])), heads, tags)


def swept_until(now: datetime, grace: timedelta) -> datetime:
    """How far this sweep looks: pushes younger than `grace` are left to their events, still in transit."""
    return now - grace


def image_candidates(
    source: WatchedSource,
    images: Sequence[ListedImage],
    mark: Mark | None,
    until: datetime,
    seen_at: datetime | None = None,
) -> list[Change]:
    """One change per tag of every image pushed since the mark (less the overlap) and up to `until`,
    oldest first. A source never swept is looked at from its earliest rule on: nothing watched it before.
    Untagged images are left out: no rule can match them.

    A change is dated by the image's push time, except under a tag a `tag` rule names: ECR keeps an
    image's first push time when a tag is moved onto it, so a re-tag would look older than the pushes it
    followed. Where such a tag points is its newest push by definition, so it is dated when the sweep saw
    it there (`seen_at`, the sweep's time)."""
    since = source.since if mark is None else mark.until - OVERLAP
    found = [image for image in images if since <= image.pushed_at <= until and image.tags]
    found.sort(key=lambda image: (image.pushed_at, image.digest))
    followed = set(source.exact_tags) if seen_at is not None else set()
    return [
        _image_change(
            source, tag, image.digest, seen_at if tag in followed and seen_at is not None else image.pushed_at
        )
        for image in found
        for tag in sorted(image.tags)
    ]


def _image_change(source: WatchedSource, tag: str, digest: str, pushed_at: datetime) -> Change:
    return Change(
        kind="image",
        source="ecr",
        account=source.account,
        region=source.region,
        repository=source.repository,
        tag=tag,
        digest=digest,
        pushed_at=pushed_at,
    )


def next_head(kept: Head | None, commit: str, now: datetime, baseline: bool) -> Head:
    """The branch's head after this look. A `baseline` look (the source was never swept, or the branch's
    rules are newer than the last sweep) only remembers the head: it may have been pushed long before any
    rule watched it. A branch the last sweep did not see (created since) is new like any moved head."""
    if kept is None and baseline:
        return Head(commit, now, looked_up=True)
    if kept is not None and kept.commit == commit:
        return kept
    return Head(commit, now, previous=kept.commit if kept is not None else None)


def is_baseline(source: WatchedSource, branch: str, mark: Mark | None) -> bool:
    """Whether a branch (or a tag) the sweep has no head for is looked at for the first time since it is
    watched."""
    watched_since = source.branch_watched_since(branch)
    return mark is None or watched_since is None or watched_since > mark.until


def head_due(head: Head, until: datetime) -> bool:
    """Whether to look the head up in the ledger now: new, and seen before the grace period began."""
    return not head.looked_up and head.seen_at <= until


def retag_candidate(source: WatchedSource, tag: str, head: Head) -> Change:
    """A tag that moved onto an image (a re-tag, a roll-back of `latest` by hand): pushed when first seen."""
    return _image_change(source, tag, head.commit, head.seen_at)


def commit_candidate(source: WatchedSource, branch: str, head: Head) -> Change:
    return Change(
        kind="commit",
        source="codecommit",
        account=source.account,
        region=source.region,
        repository=source.repository,
        branch=branch,
        commit=head.commit,
        pushed_at=head.seen_at,
        previous_commit=head.previous,
    )


def same_push(change: Change, recorded: Mapping[str, Any]) -> bool:
    """Whether a recorded change (a change record's `change` field) is this push of this artifact."""
    return bool(
        recorded.get("source") == change.source
        and recorded.get("account") == change.account
        and recorded.get("region") == change.region
        and recorded.get("repository") == change.repository
        and recorded.get("tag") == change.tag
        and recorded.get("branch") == change.branch
        and (recorded.get("digest") or recorded.get("commit")) == change.artifact
    )
