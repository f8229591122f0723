"""Gates (DESIGN 4.7): what a deployment that a push would start waits for before it may start.

A rule's `gates` hold its deployments as `held` until each gate opens: the image's scan is within limits,
the clock is inside a window and outside every freeze, a person approved, and the artifact has succeeded
and baked on the previous stage. A gate may also say no (a scan over its limits, an approval refused or
timed out, a promotion that failed its bake): the deployment is then `rejected`, with the reason.

Pure: the rules file's `gates` schema, and `evaluate(gates, facts, now)`. The controller gathers the facts
(a scan's counts, an approval, what the previous stage's ledger says) and acts on the verdict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

GateName = Literal["scan", "window", "freeze", "approval", "promotion"]
GATE_ORDER: tuple[GateName, ...] = ("scan", "window", "freeze", "approval", "promotion")
SEVERITIES = ("critical", "high", "medium", "low", "informational", "undefined")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def parse_duration(text: str) -> timedelta:
    """`30m`, `24h`, `1h30m`, `2d`, `90s`: days, hours, minutes and seconds, in that order."""
    found = _DURATION.match(text)
    if not text or found is None:
        raise ValueError(f"{text!r} is not a duration such as 30m, 24h, 1h30m or 2d")
    days, hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_clock(text: str) -> str:
    if not _CLOCK.match(text):
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 24:00); quote it in YAML")
    return text


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Berlin or UTC") from None
    return name


def _check_days(text: str) -> str:
    parse_days(text)
    return text


def _instant(value: Any) -> Any:
    """A freeze's bound: an ISO 8601 time with its offset (YAML may hand over a datetime already)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time such as 2026-12-20T00:00:00Z") from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone: end it with Z or an offset such as +01:00")
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
Clock = Annotated[str, AfterValidator(_check_clock)]
Zone = Annotated[str, AfterValidator(_check_zone)]
Days = Annotated[str, AfterValidator(_check_days)]
Instant = Annotated[datetime, BeforeValidator(_instant)]


def parse_days(text: str) -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `mon,wed-fri`, `fri-mon` (wrapping): weekdays, Monday = 0."""
    chosen: set[int] = set()
    for part in (piece.strip() for piece in text.lower().split(",")):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{text!r} is not days such as mon-fri, sat,sun or mon,wed-fri")
        start, end = DAYS.index(first), DAYS.index(last or first)
        chosen.update((start + step) % 7 for step in range((end - start) % 7 + 1))
    return frozenset(chosen)


class _Strict(BaseModel):
    # Dumped with the rules file's own keys (`from`, `to`), so a stored rule reads back as written.
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, populate_by_name=True, serialize_by_alias=True
    )


class ScanLimits(_Strict):
    """The most findings of each severity a deployable image may have; an absent severity is not limited."""

    critical: Annotated[int, Field(ge=0)] | None = None
    high: Annotated[int, Field(ge=0)] | None = None
    medium: Annotated[int, Field(ge=0)] | None = None
    low: Annotated[int, Field(ge=0)] | None = None
    informational: Annotated[int, Field(ge=0)] | None = None
    undefined: Annotated[int, Field(ge=0)] | None = None

    def exceeded(self, counts: Mapping[str, int]) -> list[str]:
        """Each severity over its limit, in words: `2 critical (max 0)`."""
        over = []
        for severity in SEVERITIES:
            limit = getattr(self, severity)
            found = counts.get(severity.upper(), 0)
            if limit is not None and found > limit:
                over.append(f"{found} {severity} (max {limit})")
        return over


class ScanGate(_Strict):
    max: ScanLimits
    wait: Duration = "30m"
    on_timeout: Literal["hold", "deploy", "reject"] = "hold"


class Window(_Strict):
    days: Days = "mon-sun"
    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")
    tz: Zone = "UTC"

    def describe(self) -> str:
        return f"{self.days} {self.start}-{self.end} {self.tz}"

    def contains(self, moment: datetime) -> bool:
        """Wall-clock time in its zone (so across a DST change too); `to` before `from` spans midnight,
        and then belongs to the day it starts on."""
        local = moment.astimezone(ZoneInfo(self.tz))
        days, start, end, now = parse_days(self.days), _clock(self.start), _clock(self.end), local.time()
        if start < end:
            return local.weekday() in days and start <= now < end
        started_today = local.weekday() in days and now >= start
        started_yesterday = (local - timedelta(days=1)).weekday() in days and now < end
        return started_today or started_yesterday


def _clock(text: str) -> time:
    if text == "24:00":
        return time.max
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class Freeze(_Strict):
    start: Instant = Field(alias="from")
    end: Instant = Field(alias="to")
    reason: str

    @model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if self.end <= self.start:
            raise ValueError("a freeze ends (`to`) after it starts (`from`)")
        return self

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


class ApprovalGate(_Strict):
    required: bool = True
    timeout: Duration = "24h"


class AfterGate(_Strict):
    rule: str
    bake: Duration = "0s"


def _not_empty(items: tuple[Any, ...]) -> tuple[Any, ...]:
    if not items:
        raise ValueError("list at least one, or leave the key out")
    return items


# A YAML list: lax on the container only (list to tuple); each item is still validated strictly.
Windows = Annotated[tuple[Window, ...], Field(strict=False), AfterValidator(_not_empty)]
Freezes = Annotated[tuple[Freeze, ...], Field(strict=False), AfterValidator(_not_empty)]


class Gates(_Strict):
    scan: ScanGate | None = None
    windows: Windows | None = None
    freeze: Freezes | None = None
    approval: ApprovalGate | None = None
    after: AfterGate | None = None

    @property
    def names(self) -> tuple[GateName, ...]:
        """The gates this rule has, in their order."""
        present = {
            "scan": self.scan is not None,
            "window": self.windows is not None,
            "freeze": self.freeze is not None,
            "approval": self.approval is not None and self.approval.required,
            "promotion": self.after is not None,
        }
        return tuple(name for name in GATE_ORDER if present[name])


def describe(gates: Gates) -> list[tuple[GateName, str]]:
    """Each gate a deployment of the rule waits for, in words (for `explain`)."""
    described: list[tuple[GateName, str]] = []
    if gates.scan is not None:
        limits = ", ".join(
            f"{severity} <= {getattr(gates.scan.max, severity)}"
            for severity in SEVERITIES
            if getattr(gates.scan.max, severity) is not None
        )
        waits = f"waits up to {gates.scan.wait}, then {gates.scan.on_timeout}"
        described.append(("scan", f"the image's scan: {limits or 'any findings'} ({waits})"))
    if gates.windows is not None:
        described.append(("window", "inside " + " or ".join(w.describe() for w in gates.windows)))
    if gates.freeze is not None:
        spans = "; ".join(f"{f.reason} {_utc(f.start)} to {_utc(f.end)}" for f in gates.freeze)
        described.append(("freeze", f"not during {spans}"))
    if gates.approval is not None and gates.approval.required:
        described.append(("approval", f"`pushdeploy approve` within {gates.approval.timeout}"))
    if gates.after is not None:
        described.append(
            ("promotion", f"succeeded on rule {gates.after.rule}'s service, baked {gates.after.bake}")
        )
    return described


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- facts and verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanFacts:
    """A finished scan of the image: its status and finding counts by severity (upper case, as ECR)."""

    status: str  # COMPLETE, or FAILED, ...
    counts: Mapping[str, int]
    at: datetime

    def as_record(self) -> dict[str, Any]:
        return {"status": self.status, "counts": dict(self.counts), "at": self.at.isoformat()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ScanFacts:
        counts = {str(k): int(v) for k, v in (record.get("counts") or {}).items()}
        return cls(str(record["status"]), counts, datetime.fromisoformat(str(record["at"])))


@dataclass(frozen=True)
class Approval:
    approved: bool
    by: str | None
    reason: str | None
    at: datetime

    def as_record(self) -> dict[str, Any]:
        return {"approved": self.approved, "by": self.by, "reason": self.reason, "at": self.at.isoformat()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Approval:
        return cls(
            bool(record["approved"]),
            record.get("by"),
            record.get("reason"),
            datetime.fromisoformat(str(record["at"])),
        )


@dataclass(frozen=True)
class Promotion:
    """What the previous stage's ledger says of the artifact: when it succeeded there, and when it
    stopped being live there (replaced, or a later deployment failed), if it did."""

    stage: str  # the rule it is promoted from
    succeeded_at: datetime | None = None
    ended_at: datetime | None = None
    ended_how: str | None = None  # in words: "replaced by deployment X", "deployment X failed"
    # It never succeeded there and never will (it failed or was rejected there): in words.
    failed: str | None = None


@dataclass(frozen=True)
class GateFacts:
    held_at: datetime  # when the deployment started to wait: timeouts count from here
    scan: ScanFacts | None = None
    approval: Approval | None = None
    promotion: Promotion | None = None


@dataclass(frozen=True)
class Verdict:
    closed: tuple[GateName, ...] = ()  # still closed, in their order
    rejected: str | None = None  # a gate said no: why
    notes: tuple[str, ...] = field(default=())  # each gate's state, in words

    @property
    def open(self) -> bool:
        return not self.closed and self.rejected is None


def evaluate(gates: Gates, facts: GateFacts, now: datetime) -> Verdict:
    """Every gate's state at `now`. A rejection wins over gates still closed: the deployment is over."""
    closed: list[GateName] = []
    notes: list[str] = []
    rejected: str | None = None
    for name in gates.names:
        state, note = _GATES[name](gates, facts, now)
        notes.append(f"{name}: {note}")
        if state == "rejected" and rejected is None:
            rejected = f"{name}: {note}"
        elif state == "closed":
            closed.append(name)
    return Verdict(tuple(closed), rejected, tuple(notes))


GateState = Literal["open", "closed", "rejected"]


def _scan(gates: Gates, facts: GateFacts, now: datetime) -> tuple[GateState, str]:
    gate = gates.scan
    assert gate is not None
    scan = facts.scan
    if scan is not None and scan.status == "COMPLETE":
        over = gate.max.exceeded(scan.counts)
        if over:
            return "rejected", f"the scan found {', '.join(over)}"
        return "open", f"the scan is within limits ({_counts(scan.counts)})"
    waited = now - facts.held_at
    wait = parse_duration(gate.wait)
    if scan is None and waited < wait:
        return "closed", f"waits for the image's scan (up to {gate.wait})"
    why = f"the scan ended {scan.status}" if scan is not None else f"no scan came within {gate.wait}"
    if gate.on_timeout == "deploy":
        return "open", f"{why}; on_timeout: deploy"
    if gate.on_timeout == "reject":
        return "rejected", why
    return "closed", f"{why}; held (on_timeout: hold) until a scan comes"


def _counts(counts: Mapping[str, int]) -> str:
    found = [f"{counts[s.upper()]} {s}" for s in SEVERITIES if counts.get(s.upper())]
    return ", ".join(found) or "no findings"


def _window(gates: Gates, facts: GateFacts, now: datetime) -> tuple[GateState, str]:
    windows = gates.windows or ()
    inside = next((w for w in windows if w.contains(now)), None)
    if inside is not None:
        return "open", f"inside {inside.describe()}"
    return "closed", f"outside {', '.join(w.describe() for w in windows)}; deploys when one opens"


def _freeze(gates: Gates, facts: GateFacts, now: datetime) -> tuple[GateState, str]:
    freezes = [f for f in gates.freeze or () if f.contains(now)]
    if not freezes:
        return "open", "no freeze now"
    until = max(f.end for f in freezes).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "closed", f"frozen ({'; '.join(f.reason for f in freezes)}) until {until}"


def _approval(gates: Gates, facts: GateFacts, now: datetime) -> tuple[GateState, str]:
    gate = gates.approval
    assert gate is not None
    given = facts.approval
    if given is not None:
        who = f" by {given.by}" if given.by else ""
        why = f": {given.reason}" if given.reason else ""
        return ("open", f"approved{who}{why}") if given.approved else ("rejected", f"rejected{who}{why}")
    if now - facts.held_at >= parse_duration(gate.timeout):
        return "rejected", f"no approval within {gate.timeout}"
    return "closed", f"awaits approval (`pushdeploy approve`, within {gate.timeout})"


def _promotion(gates: Gates, facts: GateFacts, now: datetime) -> tuple[GateState, str]:
    gate = gates.after
    assert gate is not None
    promotion = facts.promotion or Promotion(gate.rule)
    if promotion.succeeded_at is None and promotion.failed is not None:
        return "rejected", f"on rule {gate.rule}'s service, {promotion.failed}"
    if promotion.succeeded_at is None:
        return "closed", f"waits for it to succeed on rule {gate.rule}'s service"
    baked = promotion.succeeded_at + parse_duration(gate.bake)
    if promotion.ended_at is not None and promotion.ended_at < baked:
        return (
            "rejected",
            f"on rule {gate.rule}'s service, {promotion.ended_how} before its bake of {gate.bake} ended",
        )
    if now < baked:
        return (
            "closed",
            f"bakes on rule {gate.rule}'s service until {baked.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
        )
    return "open", f"succeeded on rule {gate.rule}'s service and baked {gate.bake}"


_GATES = {
    "scan": _scan,
    "window": _window,
    "freeze": _freeze,
    "approval": _approval,
    "promotion": _promotion,
}


# --- the rules file -------------------------------------------------------------------------------------


def promotion_problems(after: Mapping[str, str | None]) -> list[str]:
    """Problems of `after` across a rules file (rule id -> the rule it is promoted from, or None): a
    rule it names must exist, and promotions must not form a cycle."""
    problems = []
    for rule_id, source in after.items():
        if source is not None and source not in after:
            problems.append(f"rule {rule_id}: gates.after.rule: no rule {source!r} in this file")
    for rule_id in after:
        seen = [rule_id]
        current = after.get(rule_id)
        while current is not None and current in after:
            if current in seen:
                if current == rule_id:
                    cycle = " -> ".join([*seen, current])
                    problems.append(f"rule {rule_id}: gates.after.rule: promotions form a cycle ({cycle})")
                break
            seen.append(current)
            current = after.get(current)
    return problems
