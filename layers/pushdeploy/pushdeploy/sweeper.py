"""The sweep, on its schedule: pushes whose events were lost, found at their source and deployed.

For every ECR repository a rule watches, one DescribeImages call (per 1,000 images); for every CodeCommit
branch, one GetBranch call (plus one ListBranches per repository whose rule takes a branch pattern). An
image or head the ledger has no change for becomes a change like any other, recorded with
`trigger: sweep`, through the controller's own `handle_change`: the same order and dedup rules, so a
sweep that runs twice, or races the late real event, deploys once. Nothing new: no call to App Runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from aws_lambda_powertools import Logger

from pushdeploy.adapters.ledger import Ledger
from pushdeploy.adapters.sources import SourceReader, SourceUnreadable
from pushdeploy.controller import Controller
from pushdeploy.domain.change_ids import swept_change_id
from pushdeploy.domain.changes import Change
from pushdeploy.domain.rules import CompiledRule
from pushdeploy.domain.sweep import (
    FOUND_BY_SWEEP,
    Head,
    ListedImage,
    Mark,
    WatchedSource,
    commit_candidate,
    head_due,
    image_candidates,
    is_baseline,
    next_head,
    retag_candidate,
    swept_until,
    watched_sources,
)

logger = Logger(service="pushdeploy", child=True)


class AppliedRules(Protocol):
    def applied(self) -> Sequence[tuple[CompiledRule, datetime]]: ...


@dataclass
class SweepReport:
    sources: int = 0
    skipped: list[str] = field(default_factory=list)  # "<source>: <why>"
    failed: list[str] = field(default_factory=list)  # sources whose sweep failed: looked at again next time
    found: list[str] = field(default_factory=list)  # change ids of the pushes found
    deployments: list[str] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        controller: Controller,
        reader: SourceReader,
        rules: AppliedRules,
        grace: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.controller = controller
        self.ledger: Ledger = controller.ledger
        self.reader = reader
        self.rules = rules
        self.grace = grace
        self.clock = clock

    def sweep(self) -> SweepReport:
        """Look at every watched source once; record how far each was looked at."""
        now = self.clock()
        until = swept_until(now, self.grace)
        records, version = self.ledger.sweep_marks()
        report = SweepReport()
        marks: dict[str, object] = {}
        for source in watched_sources(self.rules.applied()):
            report.sources += 1
            kept = Mark.from_record(records[source.name]) if source.name in records else None
            mark: Mark | None = kept
            try:
                mark = self._sweep(source, kept, now, until, report)
            except SourceUnreadable as error:
                report.skipped.append(f"{source.describe()}: {error}")
                logger.warning(
                    "a watched source was not swept", extra={"source": source.describe(), "why": str(error)}
                )
            except Exception:  # one source's failure must not stop the others; its mark stays for next time
                report.failed.append(source.describe())
                logger.exception("sweeping a source failed", extra={"source": source.describe()})
            if mark is not None:
                marks[source.name] = mark.as_record()
        if not self.ledger.record_sweep_marks(marks, version, now):
            logger.info("another sweep recorded its marks meanwhile; they stand")
        return report

    def _sweep(
        self, source: WatchedSource, kept: Mark | None, now: datetime, until: datetime, report: SweepReport
    ) -> Mark:
        if source.source == "ecr":
            return self._sweep_images(source, kept, now, until, report)
        return self._sweep_branches(source, kept, now, until, report)

    def _sweep_images(
        self, source: WatchedSource, kept: Mark | None, now: datetime, until: datetime, report: SweepReport
    ) -> Mark:
        images = self.reader.images(source.account, source.region, source.repository)
        found = image_candidates(source, images, kept, until, seen_at=now)
        for change in found:
            self._unless_known(change, report)
        looked_at = {(change.tag, change.digest) for change in found}
        tags = self._follow_tags(source, images, kept, now, until, looked_at, report)
        return Mark(max(until, kept.until) if kept else until, tags=tags)

    def _follow_tags(
        self,
        source: WatchedSource,
        images: Sequence[ListedImage],
        kept: Mark | None,
        now: datetime,
        until: datetime,
        looked_at: set[tuple[str | None, str | None]],
        report: SweepReport,
    ) -> dict[str, Head]:
        """Each tag a `tag` rule names: where it points now. A move the ledger has no change for (its
        event was lost) is decided like a push once it is older than the grace period."""
        pointed = {tag: image.digest for image in images for tag in image.tags}
        heads: dict[str, Head] = {}
        for tag in source.exact_tags:
            if tag not in pointed:
                continue
            previous = kept.tags.get(tag) if kept else None
            head = next_head(previous, pointed[tag], now, is_baseline(source, tag, kept))
            if head_due(head, until):
                if (tag, head.commit) not in looked_at:
                    self._unless_known(retag_candidate(source, tag, head), report)
                head = replace(head, looked_up=True)
            heads[tag] = head
        return heads

    def _sweep_branches(
        self, source: WatchedSource, kept: Mark | None, now: datetime, until: datetime, report: SweepReport
    ) -> Mark:
        branches = source.exact_branches
        if branches is None:
            listed = self.reader.branches(source.account, source.region, source.repository)
            branches = tuple(sorted(b for b in listed if source.branch_watched_since(b) is not None))
        heads: dict[str, Head] = {}
        for branch in branches:
            commit = self.reader.head(source.account, source.region, source.repository, branch)
            if commit is None:
                continue  # no such branch (yet): its first push is new when it comes
            previous = kept.heads.get(branch) if kept else None
            head = next_head(previous, commit, now, is_baseline(source, branch, kept))
            if head_due(head, until):
                self._unless_known(commit_candidate(source, branch, head), report)
                head = replace(head, looked_up=True)
            heads[branch] = head
        return Mark(max(until, kept.until) if kept else until, heads)

    def _unless_known(self, change: Change, report: SweepReport) -> None:
        """Decide the push unless the ledger has a change for it already (its event did arrive). A sweep
        that died between deploying a push it found and recording it is finished here, even when the
        late event has been recorded since: the deployment must not be left without its change."""
        change_id = swept_change_id(change)
        recorded = self.ledger.push_records(change)
        if change_id in recorded:
            return
        if recorded and not self.ledger.deployed_by_change(change.artifact, change_id):
            return
        logger.warning(FOUND_BY_SWEEP, extra={"change": change.describe(), "change_id": change_id})
        decided = self.controller.handle_change(change, change_id, trigger="sweep", note=FOUND_BY_SWEEP)
        report.found.append(change_id)
        report.deployments.extend(decided.deployments)
