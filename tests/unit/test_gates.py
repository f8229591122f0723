"""The gates' pure rules (DESIGN 4.7): the rules file's `gates`, and what each gate says at a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.domain.gates import (
    Approval,
    GateFacts,
    Gates,
    Promotion,
    ScanFacts,
    Window,
    evaluate,
    parse_days,
    parse_duration,
    promotion_problems,
)
from pushdeploy.domain.rules import parse_rules_text
from pushdeploy.errors import RulesError

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a Tuesday
SERVICE = "arn:aws:apprunner:us-east-1:111122223333:service/web-prod/0123456789abcdef0123456789abcdef"


def gates(**spec: object) -> Gates:
    return Gates.model_validate(spec)


def facts(**known: object) -> GateFacts:
    return GateFacts(held_at=T0, **known)  # type: ignore[arg-type]


# --- durations, days and windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("24h", 86400), ("1h30m", 5400), ("2d", 172800), ("90s", 90)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "m30", "1.5h", "30 m", "1m1h"])
def test_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_days_ranges_lists_and_wrapping() -> None:
    assert parse_days("mon-fri") == {0, 1, 2, 3, 4}
    assert parse_days("sat,sun") == {5, 6}
    assert parse_days("mon,wed-fri") == {0, 2, 3, 4}
    assert parse_days("fri-mon") == {4, 5, 6, 0}


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Berlin, 2027-03-22 (Monday) + `day` days."""
    from zoneinfo import ZoneInfo

    return datetime(2027, 3, 22 + day, hour, minute, tzinfo=ZoneInfo("Europe/Berlin"))


WORK_HOURS = Window.model_validate({"days": "mon-fri", "from": "09:00", "to": "17:00", "tz": "Europe/Berlin"})


def test_a_window_is_wall_clock_time_in_its_zone_across_a_dst_change() -> None:
    # Summer time starts in Berlin on Sunday 2027-03-28: 09:00 is 08:00 UTC before, 07:00 UTC after.
    friday_before = datetime(2027, 3, 26, 8, 0, tzinfo=UTC)
    monday_after = datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    assert WORK_HOURS.contains(friday_before)
    assert not WORK_HOURS.contains(friday_before - timedelta(minutes=1))
    assert WORK_HOURS.contains(monday_after)
    assert not WORK_HOURS.contains(monday_after - timedelta(minutes=1))
    assert not WORK_HOURS.contains(berlin(5, 12))  # Saturday


def test_a_window_that_ends_before_it_starts_spans_midnight_from_its_day() -> None:
    night = Window.model_validate({"days": "fri", "from": "22:00", "to": "06:00", "tz": "Europe/Berlin"})
    assert night.contains(berlin(4, 23))  # Friday 23:00
    assert night.contains(berlin(5, 5, 59))  # Saturday 05:59: Friday's night
    assert not night.contains(berlin(5, 22, 30))  # Saturday's night is not in the window
    assert not night.contains(berlin(4, 5))  # Friday 05:00: Thursday's night


# --- each gate ---------------------------------------------------------------------------------------


def test_scan_within_limits_opens_over_limits_rejects_with_the_counts() -> None:
    scan_gate = gates(scan={"max": {"critical": 0, "high": 2}})
    clean = ScanFacts("COMPLETE", {"HIGH": 2, "LOW": 9}, T0)
    dirty = ScanFacts("COMPLETE", {"CRITICAL": 1, "HIGH": 3}, T0)
    assert evaluate(scan_gate, facts(scan=clean), T0).open
    verdict = evaluate(scan_gate, facts(scan=dirty), T0)
    assert verdict.rejected == "scan: the scan found 1 critical (max 0), 3 high (max 2)"


@pytest.mark.parametrize(
    ("on_timeout", "closed", "rejected"),
    [("hold", ("scan",), None), ("deploy", (), None), ("reject", (), "scan: no scan came within 30m")],
)
def test_a_scan_that_never_comes(on_timeout: str, closed: tuple[str, ...], rejected: str | None) -> None:
    scan_gate = gates(scan={"max": {"critical": 0}, "wait": "30m", "on_timeout": on_timeout})
    assert evaluate(scan_gate, facts(), T0 + timedelta(minutes=29)).closed == ("scan",)
    verdict = evaluate(scan_gate, facts(), T0 + timedelta(minutes=30))
    assert (verdict.closed, verdict.rejected) == (closed, rejected)


def test_a_freeze_closes_with_its_reason_and_opens_when_it_ends() -> None:
    frozen = gates(
        freeze=[{"from": "2026-12-20T00:00:00Z", "to": "2027-01-04T00:00:00Z", "reason": "holidays"}]
    )
    inside = evaluate(frozen, facts(), datetime(2026, 12, 24, tzinfo=UTC))
    assert inside.closed == ("freeze",)
    assert "frozen (holidays) until 2027-01-04T00:00:00Z" in inside.notes[0]
    assert evaluate(frozen, facts(), datetime(2027, 1, 4, tzinfo=UTC)).open


def test_approval_waits_opens_rejects_and_times_out() -> None:
    approval = gates(approval={"required": True, "timeout": "24h"})
    assert evaluate(approval, facts(), T0).closed == ("approval",)
    yes = Approval(True, "alice", "CAB-1", T0)
    assert evaluate(approval, facts(approval=yes), T0).open
    no = Approval(False, "bob", "not now", T0)
    assert evaluate(approval, facts(approval=no), T0).rejected == "approval: rejected by bob: not now"
    assert (
        evaluate(approval, facts(), T0 + timedelta(hours=24)).rejected == "approval: no approval within 24h"
    )
    assert evaluate(gates(approval={"required": False}), facts(), T0).open


def test_promotion_waits_for_success_then_the_bake_and_rejects_a_failure_inside_it() -> None:
    after = gates(after={"rule": "web-staging", "bake": "30m"})
    assert evaluate(after, facts(promotion=Promotion("web-staging")), T0).closed == ("promotion",)
    succeeded = Promotion("web-staging", succeeded_at=T0)
    assert evaluate(after, facts(promotion=succeeded), T0 + timedelta(minutes=29)).closed == ("promotion",)
    assert evaluate(after, facts(promotion=succeeded), T0 + timedelta(minutes=30)).open
    failed = Promotion("web-staging", T0, T0 + timedelta(minutes=10), "deployment d-9 rolled back")
    assert "before its bake of 30m ended" in (
        evaluate(after, facts(promotion=failed), T0 + timedelta(hours=1)).rejected or ""
    )
    later = Promotion("web-staging", T0, T0 + timedelta(minutes=45), "it was replaced by deployment d-10")
    assert evaluate(after, facts(promotion=later), T0 + timedelta(hours=1)).open


# --- every gate together: open only when each is --------------------------------------------------

ALL_GATES = gates(
    scan={"max": {"critical": 0}, "wait": "30m", "on_timeout": "hold"},
    windows=[{"days": "mon-fri", "from": "09:00", "to": "17:00", "tz": "UTC"}],
    freeze=[{"from": "2026-12-24T00:00:00Z", "to": "2026-12-27T00:00:00Z", "reason": "holidays"}],
    approval={"required": True, "timeout": "7d"},
    after={"rule": "web-staging", "bake": "1h"},
)

scans = st.one_of(
    st.none(),
    st.builds(
        ScanFacts,
        status=st.sampled_from(["COMPLETE", "FAILED"]),
        counts=st.dictionaries(st.sampled_from(["CRITICAL", "HIGH"]), st.integers(0, 3)),
        at=st.just(T0),
    ),
)
approvals = st.one_of(st.none(), st.builds(Approval, st.booleans(), st.just("alice"), st.none(), st.just(T0)))
promotions = st.one_of(
    st.none(),
    st.builds(
        Promotion,
        st.just("web-staging"),
        st.one_of(st.none(), st.integers(-48, 48).map(lambda h: T0 + timedelta(hours=h))),
    ),
)
moments = st.integers(0, 14 * 24 * 60).map(lambda minutes: T0 + timedelta(minutes=minutes))


@given(scans, approvals, promotions, moments)
def test_a_deployment_may_start_only_when_every_gate_is_open(
    scan: ScanFacts | None, approval: Approval | None, promotion: Promotion | None, now: datetime
) -> None:
    verdict = evaluate(ALL_GATES, facts(scan=scan, approval=approval, promotion=promotion), now)
    if verdict.open:
        assert scan is not None
        assert scan.status == "COMPLETE"
        assert not scan.counts.get("CRITICAL")
        assert ALL_GATES.windows is not None
        assert any(w.contains(now) for w in ALL_GATES.windows)
        assert not any(f.contains(now) for f in ALL_GATES.freeze or ())
        assert approval is not None
        assert approval.approved
        assert promotion is not None
        assert promotion.succeeded_at is not None
        assert now >= promotion.succeeded_at + timedelta(hours=1)
    if scan is not None and scan.status == "COMPLETE" and scan.counts.get("CRITICAL"):
        assert verdict.rejected is not None  # a scan over its limits is never deployed
    if approval is not None and not approval.approved:
        assert verdict.rejected is not None
    assert len(verdict.notes) == 5


# --- the rules file ----------------------------------------------------------------------------------


def rules_file(gates_yaml: str, extra: str = "") -> str:
    return f"""
version: 1
rules:
  - id: web-staging
    service: {SERVICE}
    image: {{repository: web, tag: latest}}
  - id: web-prod
    service: {SERVICE}
    image: {{repository: web, semver: "^1.0.0"}}
    gates:
{gates_yaml}
{extra}"""


def test_the_design_example_is_valid() -> None:
    text = rules_file(
        """      scan: {max: {critical: 0, high: 0}, wait: 30m, on_timeout: hold}
      windows: [{days: mon-fri, from: "09:00", to: "17:00", tz: Europe/Berlin}]
      freeze: [{from: "2026-12-20T00:00:00Z", to: "2027-01-04T00:00:00Z", reason: holidays}]
      approval: {required: true, timeout: 24h}
      after: {rule: web-staging, bake: 30m}"""
    )
    (_, prod) = parse_rules_text(text)
    assert prod.gates is not None
    assert prod.gates.names == ("scan", "window", "freeze", "approval", "promotion")


def test_every_problem_of_the_gates_is_listed_with_the_rule_and_field() -> None:
    text = rules_file(
        """      scan: {max: {critical: -1}, wait: 30x, on_timeout: wait}
      windows: [{days: mon-frx, from: "9am", to: "17:00", tz: Mars/Base}]
      freeze: [{from: "2026-12-20T00:00:00", to: "2026-12-01T00:00:00Z", reason: holidays}]
      approval: {required: "yes"}
      after: {rule: web-qa}"""
    )
    with pytest.raises(RulesError) as refused:
        parse_rules_text(text)
    problems = "\n".join(refused.value.problems)
    for field in (
        "gates.scan.max.critical",
        "gates.scan.wait",
        "gates.scan.on_timeout",
        "gates.windows.0.days",
        "gates.windows.0.from",
        "gates.windows.0.tz",
        "gates.freeze.0.from",
        "gates.approval.required",
    ):
        assert f"rule web-prod: {field}:" in problems, field


def test_a_promotion_must_name_a_rule_of_the_file_and_never_form_a_cycle() -> None:
    assert promotion_problems({"a": None, "b": "a", "c": "zz"}) == [
        "rule c: gates.after.rule: no rule 'zz' in this file"
    ]
    cycle = promotion_problems({"a": "c", "b": "a", "c": "b"})
    assert "rule a: gates.after.rule: promotions form a cycle (a -> c -> b -> a)" in cycle
    assert len(cycle) == 3
    assert promotion_problems({"a": "a"}) == ["rule a: gates.after.rule: promotions form a cycle (a -> a)"]


def test_a_scan_gate_is_refused_on_a_code_rule() -> None:
    text = f"""
version: 1
rules:
  - id: app
    service: {SERVICE}
    code: {{provider: github, repository: acme/app, branch: main}}
    gates: {{scan: {{max: {{critical: 0}}}}}}
"""
    with pytest.raises(RulesError, match=r"deploys a code service.s branch head"):
        parse_rules_text(text)


@pytest.mark.parametrize("gate", ["scan: {max: {critical: 0}}", "after: {rule: web-staging}"])
def test_a_scan_or_promotion_gate_is_refused_on_a_tag_rule_which_pins_no_digest(gate: str) -> None:
    text = f"""
version: 1
rules:
  - id: web-staging
    service: {SERVICE}
    image: {{repository: web, tag_glob: "*"}}
  - id: web-prod
    service: {SERVICE}
    image: {{repository: web, tag: latest}}
    gates: {{{gate}}}
"""
    with pytest.raises(RulesError, match="use tag_glob, tag_regex or semver"):
        parse_rules_text(text)
