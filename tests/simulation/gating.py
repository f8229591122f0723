"""The gates of one episode's rules (DESIGN 4.7), drawn with the episode, and what the world did that the
gates depend on (approvals, scans), kept apart from the ledger so the checks can judge pushdeploy by them.

Time gates are defined relative to the episode's origin (its first whole minute after the services were
created), so a schedule's steps move across their edges: windows are daily (HH:MM in one IANA zone), the
last one running to the end of the local day, so a quiescent episode always reaches an open window;
freezes are absolute instants (ISO 8601 with an offset) that end a few minutes later. The checks read the
spans here in UTC, never through pushdeploy's own window and freeze code.

Scan and `after` gates are only on the rules that pin a digest (semver, glob): pushdeploy refuses them on
`tag` and code rules. `after` promotes between those two, and the schedule then pushes some of the
upstream rule's digests under the downstream rule's tags.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SCAN_LIMITS: Mapping[str, int] = {"critical": 0, "high": 1}
SCAN_WAIT_SECONDS = 10 * 60
APPROVAL_TIMEOUT_SECONDS = 20 * 60
BAKE_SECONDS = 3 * 60
# Zones whose local day does not end within hours of the episodes' start (08:00 UTC): the last window runs
# to 24:00 local, which must lie beyond anything an episode and its quiescence reach.
ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York", "Australia/Adelaide")
DIGEST_ROLES = ("semver", "glob")  # the rules that pin a digest: scan and after are allowed on them
_CHOICES: dict[str, tuple[str, ...]] = {
    "semver": ("approval", "scan", "window", "freeze", "after"),
    "glob": ("scan", "approval", "window", "freeze", "after"),
    "latest": ("window", "freeze", "approval"),
    "code": ("window", "freeze", "approval"),
}


@dataclass(frozen=True)
class Span:
    """[start, end) in seconds after the episode's origin; `end` None: to the end of the local day."""

    start: int
    end: int | None

    def contains(self, offset: float) -> bool:
        return self.start <= offset and (self.end is None or offset < self.end)


@dataclass(frozen=True)
class RuleGates:
    windows: tuple[Span, ...] = ()  # none: no window gate
    zone: str = "UTC"
    freezes: tuple[Span, ...] = ()
    approval: bool = False
    scan: str | None = None  # the scan gate's on_timeout (hold, deploy, reject); None: no scan gate
    after: str | None = None  # the role promoted from

    def describe(self) -> str:
        parts = []
        if self.windows:
            spans = ",".join(_span_text(span) for span in self.windows)
            parts.append(f"windows {spans} ({self.zone})")
        if self.freezes:
            parts.append("freeze " + ",".join(_span_text(span) for span in self.freezes))
        if self.approval:
            parts.append("approval")
        if self.scan is not None:
            parts.append(f"scan (on_timeout {self.scan})")
        if self.after is not None:
            parts.append(f"after {self.after}")
        return " + ".join(parts)


@dataclass(frozen=True)
class Gating:
    """Each gated role's gates; a role not named is ungated."""

    rules: tuple[tuple[str, RuleGates], ...] = ()

    def of(self, role: str) -> RuleGates | None:
        return next((gates for named, gates in self.rules if named == role), None)

    @property
    def any(self) -> bool:
        return bool(self.rules)

    def has(self, kind: str) -> bool:
        """Whether some rule has a gate of `kind`: approval, scan, time (a window or a freeze)."""
        gates = [g for _, g in self.rules]
        if kind == "approval":
            return any(g.approval for g in gates)
        if kind == "scan":
            return any(g.scan is not None for g in gates)
        return any(g.windows or g.freezes for g in gates)

    @property
    def promotion(self) -> tuple[str, str] | None:
        """(upstream role, downstream role) of the episode's `after` gate, if it has one."""
        return next(((g.after, role) for role, g in self.rules if g.after is not None), None)

    def edges(self) -> list[int]:
        """Every window and freeze edge, in seconds after the origin, in order."""
        found: set[int] = set()
        for _, gates in self.rules:
            for span in (*gates.windows, *gates.freezes):
                found.add(span.start)
                if span.end is not None:
                    found.add(span.end)
        return sorted(found)

    def describe(self) -> str:
        return "; ".join(f"{role}: {gates.describe()}" for role, gates in self.rules) or "no gates"


NO_GATES = Gating()


def plan_gating(rng: random.Random, roles: tuple[str, ...]) -> Gating:
    """Some of the roles' rules get one to three gates; at least one rule stays ungated, so the old
    invariants keep their power; now and then an episode has no gates at all."""
    if rng.random() < 0.15:
        return NO_GATES
    gated = [role for role in roles if rng.random() < 0.55] or [rng.choice(roles)]
    if len(gated) == len(roles):
        gated.remove(rng.choice(gated))
    rules: list[tuple[str, RuleGates]] = []
    for role in gated:
        kinds = set(rng.sample(_CHOICES[role], rng.choice((1, 1, 2, 2, 3))))
        upstream = _upstream(role, roles, rules)
        if "after" in kinds and upstream is None:
            kinds.discard("after")
            kinds.add(rng.choice([k for k in _CHOICES[role] if k != "after"]))
        rules.append((role, _rule_gates(rng, kinds, upstream if "after" in kinds else None)))
    return Gating(tuple(rules))


def _upstream(role: str, roles: tuple[str, ...], planned: list[tuple[str, RuleGates]]) -> str | None:
    """The rule a digest rule may be promoted from: the other digest rule, when the episode has it and no
    promotion yet (one per episode, so no cycle)."""
    if role not in DIGEST_ROLES or any(gates.after is not None for _, gates in planned):
        return None
    other = next(r for r in DIGEST_ROLES if r != role)
    return other if other in roles else None


def _rule_gates(rng: random.Random, kinds: set[str], after: str | None) -> RuleGates:
    windows = _windows(rng) if "window" in kinds else ()
    zone = rng.choice(ZONES)
    freezes = _freezes(rng) if "freeze" in kinds else ()
    scan = rng.choice(("hold", "hold", "reject", "deploy")) if "scan" in kinds else None
    return RuleGates(windows, zone, freezes, "approval" in kinds, scan, after)


def _windows(rng: random.Random) -> tuple[Span, ...]:
    """Zero to two windows of a few minutes, then one that stays open to the end of the local day."""
    spans = []
    at = rng.choice((0, 0, 2, 4, 6)) * 60
    for _ in range(rng.randint(0, 2)):
        length = rng.randint(3, 10) * 60
        spans.append(Span(at, at + length))
        at += length + rng.randint(3, 10) * 60
    spans.append(Span(at, None))
    return tuple(spans)


def _freezes(rng: random.Random) -> tuple[Span, ...]:
    """One or two freezes of a few minutes, to the second, starting a few minutes into the episode."""
    spans = []
    at = rng.randint(1, 12) * 60 + rng.randint(0, 59)
    for _ in range(rng.randint(1, 2)):
        length = rng.randint(2, 8) * 60 + rng.randint(0, 59)
        spans.append(Span(at, at + length))
        at += length + rng.randint(2, 10) * 60
    return tuple(spans)


def _span_text(span: Span) -> str:
    end = "end of day" if span.end is None else f"{span.end}s"
    return f"[{span.start}s,{end})"


# --- the rules file ----------------------------------------------------------------------------------


def origin_of(moment: datetime) -> datetime:
    """The episode's origin: the first whole minute at or after `moment` (windows are HH:MM)."""
    return datetime.fromtimestamp(math.ceil(moment.timestamp() / 60) * 60, UTC)


def rules_file_gates(gates: RuleGates, origin: datetime, rule_ids: Mapping[str, str]) -> dict[str, Any]:
    """The rule's `gates` as a rules file writes them. `rule_ids` maps roles to rule ids (for `after`)."""
    written: dict[str, Any] = {}
    if gates.scan is not None:
        written["scan"] = {"max": dict(SCAN_LIMITS), "wait": "10m", "on_timeout": gates.scan}
    if gates.windows:
        written["windows"] = [_window(span, origin, gates.zone) for span in gates.windows]
    if gates.freezes:
        written["freeze"] = [
            {
                "from": _instant(origin, span.start, gates.zone),
                "to": _instant(origin, span.end or span.start, gates.zone),
                "reason": f"freeze {number}",
            }
            for number, span in enumerate(gates.freezes, 1)
        ]
    if gates.approval:
        written["approval"] = {"required": True, "timeout": "20m"}
    if gates.after is not None:
        written["after"] = {"rule": rule_ids[gates.after], "bake": "3m"}
    return written


def _window(span: Span, origin: datetime, zone: str) -> dict[str, str]:
    """A daily window in local wall-clock time: every day, the last one on the origin's local weekday
    only (the days are parsed and checked too)."""
    local = (origin + timedelta(seconds=span.start)).astimezone(ZoneInfo(zone))
    end = "24:00"
    if span.end is not None:
        end = (origin + timedelta(seconds=span.end)).astimezone(ZoneInfo(zone)).strftime("%H:%M")
    days = local.strftime("%a").lower() if span.end is None else "mon-sun"
    return {"days": days, "from": local.strftime("%H:%M"), "to": end, "tz": zone}


def _instant(origin: datetime, offset: int, zone: str) -> str:
    moment = origin + timedelta(seconds=offset)
    if zone == "UTC":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.astimezone(ZoneInfo(zone)).isoformat()


# --- what the world did -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanRecord:
    """A scan of a digest as ECR holds it from `at` on (DescribeImageScanFindings)."""

    at: datetime
    status: str  # COMPLETE (basic), ACTIVE (enhanced) or FAILED
    counts: tuple[tuple[str, int], ...]

    @property
    def finished(self) -> bool:
        return self.status in ("COMPLETE", "ACTIVE")

    @property
    def within_limits(self) -> bool:
        return self.finished and all(
            count <= SCAN_LIMITS.get(severity.lower(), count) for severity, count in self.counts
        )


@dataclass
class GateLog:
    """What operators and ECR did that the gates depend on, as the world saw it."""

    origin: datetime
    approvals: dict[str, datetime] = field(default_factory=dict)  # deployment id -> when approved
    scans: dict[str, list[ScanRecord]] = field(default_factory=dict)  # digest -> its scans, in order

    def offset(self, moment: datetime) -> float:
        return (moment - self.origin).total_seconds()

    def closed_in_time(self, gates: RuleGates, moment: datetime) -> list[str]:
        """The time gates of a rule closed at `moment`: outside every window, inside a freeze."""
        offset, closed = self.offset(moment), []
        if gates.windows and not any(span.contains(offset) for span in gates.windows):
            closed.append("window")
        if any(span.contains(offset) for span in gates.freezes):
            closed.append("freeze")
        return closed

    def time_gates_open_from(self, gates: RuleGates, moment: datetime) -> datetime | None:
        """The first moment at or after `moment` when the rule's windows and freezes are all open, None
        when they already are."""
        if not self.closed_in_time(gates, moment):
            return None
        edges = sorted(
            {s.start for s in (*gates.windows, *gates.freezes)}
            | {s.end for s in gates.freezes if s.end is not None}
        )
        for edge in edges:
            candidate = self.origin + timedelta(seconds=edge)
            if candidate > moment and not self.closed_in_time(gates, candidate):
                return candidate
        return None

    def scanned(self, digest: str, until: datetime) -> list[ScanRecord]:
        return [scan for scan in self.scans.get(digest, []) if scan.at <= until]

    def finished_scan(self, digest: str) -> ScanRecord | None:
        """The digest's one finished scan (a digest is scanned to the end once at most)."""
        return next((scan for scan in self.scans.get(digest, []) if scan.finished), None)
