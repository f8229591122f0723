"""`local up` runs each scheduled function at its own interval: the sweep every `--sweep-seconds`, every
other schedule (the reconciler) every `--reconcile-seconds`."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushdeploy.cli.local_cmd import SWEEP_FUNCTION
from pushdeploy.cli.main import build_parser
from pushdeploy.local.cloud import CloudOptions, ScheduleClock, describe_intervals, schedule_intervals
from pushdeploy.local.stack import FunctionSpec, ScheduleSpec


def function(logical_id: str, name: str, *, scheduled: bool = True, enabled: bool = True) -> FunctionSpec:
    schedules = (ScheduleSpec("Tick", f"{name}-tick", "rate(5 minutes)", enabled),) if scheduled else ()
    return FunctionSpec(
        logical_id=logical_id,
        function_name=name,
        code_dir=Path("functions") / name,
        handler="app.handler",
        timeout=30,
        memory=256,
        environment={},
        max_retries=2,
        max_event_age=21600,
        on_failure_arn=None,
        rules=(),
        schedules=schedules,
        has_url=False,
    )


RECONCILER = function("ReconcilerFunction", "pushdeploy-reconciler")
SWEEPER = function(SWEEP_FUNCTION, "pushdeploy-sweeper")
PUSHED = function("ImagePushedFunction", "pushdeploy-image-pushed", scheduled=False)


def options(**changes: object) -> CloudOptions:
    return CloudOptions(state_dir=Path("s"), template=Path("template.yaml"), **changes)  # type: ignore[arg-type]


def test_the_sweep_has_its_own_interval_and_every_other_schedule_the_reconcile_one() -> None:
    chosen = options(reconcile_seconds=2.0, schedule_seconds={SWEEP_FUNCTION: 30.0})
    intervals = schedule_intervals(chosen, [RECONCILER, SWEEPER, PUSHED])
    assert intervals == {"ReconcilerFunction": 2.0, SWEEP_FUNCTION: 30.0}  # no schedule, no interval
    assert describe_intervals([RECONCILER, SWEEPER], intervals) == (
        "every 2 s: pushdeploy-reconciler; every 30 s: pushdeploy-sweeper"
    )


def test_without_a_sweep_interval_every_schedule_runs_at_the_reconcile_interval() -> None:
    intervals = schedule_intervals(options(reconcile_seconds=5.0), [RECONCILER, SWEEPER])
    assert intervals == {"ReconcilerFunction": 5.0, SWEEP_FUNCTION: 5.0}
    assert describe_intervals([RECONCILER, SWEEPER], intervals) == (
        "every 5 s: pushdeploy-reconciler, pushdeploy-sweeper"
    )


def test_a_disabled_schedule_is_not_run() -> None:
    disabled = function("OffFunction", "pushdeploy-off", enabled=False)
    assert schedule_intervals(options(), [disabled, RECONCILER]) == {"ReconcilerFunction": 5.0}


def test_each_function_ticks_at_its_own_interval() -> None:
    clock = ScheduleClock({"reconciler": 2.0, "sweeper": 3.0}, start=100.0)
    ticks: list[tuple[float, list[str]]] = []
    now = 100.0
    while now < 112.0:
        now += clock.wait_seconds(now)
        ticks.append((now, clock.due(now)))
    assert ticks == [
        (102.0, ["reconciler"]),
        (103.0, ["sweeper"]),
        (104.0, ["reconciler"]),
        (106.0, ["reconciler", "sweeper"]),
        (108.0, ["reconciler"]),
        (109.0, ["sweeper"]),
        (110.0, ["reconciler"]),
        (112.0, ["reconciler", "sweeper"]),
    ]


def test_a_late_tick_is_not_made_up_for() -> None:
    clock = ScheduleClock({"sweeper": 2.0}, start=0.0)
    assert clock.due(7.5) == ["sweeper"]  # due at 2, 4 and 6: one tick, not three
    assert clock.due(7.9) == []
    assert clock.wait_seconds(7.9) == pytest.approx(0.1)


@pytest.mark.parametrize(("given", "expected"), [([], 30.0), (["--sweep-seconds", "2"], 2.0)])
def test_local_up_takes_the_sweep_interval(given: list[str], expected: float) -> None:
    args = build_parser().parse_args(["local", "up", *given])
    assert (args.sweep_seconds, args.reconcile_seconds) == (expected, 5.0)


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_local_up_refuses_a_sweep_interval_that_is_not_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["local", "up", "--sweep-seconds", value])
    assert exited.value.code == 2
    assert "--sweep-seconds" in capsys.readouterr().err
