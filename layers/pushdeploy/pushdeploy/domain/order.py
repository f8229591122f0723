"""Which of two pushes is newer, by the rule's own order: never by arrival, since events come out of order.

- semver rules: the version (`v1.6.0` is newer than `v1.5.9`, whatever arrived first);
- other image rules: push time (the event's time), ties broken by digest so that every arrival order
  ends on the same image;
- code rules: the commit chain first (a push that moved the branch *from* C1 is newer than C1), then
  push time, ties broken by commit id.

Pure: positions are plain values that the ledger stores beside each deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pushdeploy.domain.matching import parse_version

OrderKind = Literal["semver", "time", "chain"]


@dataclass(frozen=True)
class Position:
    """Where one push of one artifact stands in its rule's order."""

    rule: str
    kind: OrderKind
    artifact: str
    version: str | None = None  # semver rules: the tag
    pushed_at: datetime | None = None
    previous: str | None = None  # code rules: the commit the branch pointed to before this push

    def describe(self) -> str:
        if self.kind == "semver" and self.version:
            return self.version
        short = self.artifact.removeprefix("sha256:")[:12]
        when = f" pushed {self.pushed_at.strftime('%Y-%m-%dT%H:%M:%SZ')}" if self.pushed_at else ""
        return f"{short}{when}"

    def as_record(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "artifact": self.artifact,
            "version": self.version,
            "pushed_at": self.pushed_at.isoformat() if self.pushed_at else None,
            "previous": self.previous,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Position:
        pushed_at = record.get("pushed_at")
        return cls(
            rule=str(record["rule"]),
            kind=record["kind"],
            artifact=str(record["artifact"]),
            version=record.get("version"),
            pushed_at=datetime.fromisoformat(pushed_at) if pushed_at else None,
            previous=record.get("previous"),
        )


def compare(new: Position, old: Position) -> int:
    """1 when `new` is newer than `old`, -1 when older, 0 when it is the same artifact or version.

    Positions of different rules or kinds are not comparable: the newcomer counts as newer.
    """
    if new.rule != old.rule or new.kind != old.kind:
        return 1
    if new.kind == "semver":
        return _compare_versions(new, old)
    if new.artifact == old.artifact:
        return 0
    if new.kind == "chain":
        on_top = new.previous is not None and new.previous == old.artifact
        under = old.previous is not None and old.previous == new.artifact
        if on_top != under:  # both: a force-push back to an older commit; time tells which came last
            return 1 if on_top else -1
    return _compare_times(new, old)


def _compare_versions(new: Position, old: Position) -> int:
    new_version = parse_version(new.version or "")
    old_version = parse_version(old.version or "")
    if new_version is None or old_version is None:
        return 1
    return new_version.compare(old_version)


def _compare_times(new: Position, old: Position) -> int:
    if new.pushed_at is None or old.pushed_at is None:
        return 1  # no time to go by (an old record): arrival order is all there is
    if new.pushed_at != old.pushed_at:
        return 1 if new.pushed_at > old.pushed_at else -1
    return 1 if new.artifact > old.artifact else -1
