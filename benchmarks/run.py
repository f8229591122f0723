"""`make bench`: every benchmark in one go, a table of the figures beside their targets, and the same
figures in `bench.json` (its path from BENCH_OUT, default `.pushdeploy/bench.json`).

- decide_us_median: deciding one change against 10 .. 100,000 rules (benchmarks/decide.py);
- cold_import_ratio: each function's cold import over a bare `import boto3`, in this run (cold_start.py);
- calls_per_deployment, calls_per_idle_tick, contention: AWS calls of the real handlers, counted at the
  client, in process (calls.py);
- push_to_start_ms: push to StartDeployment on the local cloud (push_to_start.py);
- burst: 1,000 pushes over 50 services on the local cloud (burst.py);
- calls_per_sweep: AWS calls of one sweep with 1, 10 and 50 watched repositories, nothing new and one
  push found (sweep.py).

Performance goals live here, never in timed test assertions: the exit status is 1 only when a figure says
something went wrong (a push lost or deployed twice), not when a target is missed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The sibling benchmarks: `python benchmarks/run.py` puts this directory first on the path.
import burst
import calls
import cold_start
import decide
import push_to_start
import sweep

DEFAULT_OUT = ".pushdeploy/bench.json"


@dataclass(frozen=True)
class Target:
    figure: str  # a path into bench.json, dotted
    wanted: str  # in words
    met: Callable[[Any], bool]


TARGETS = (
    *(
        Target(f"cold_import_ratio.{function}", "<= 1.5x import boto3", lambda ratio: ratio <= 1.5)
        for function in cold_start.FUNCTIONS
    ),
    Target(
        "calls_per_deployment",
        "<= 8 DynamoDB + App Runner",
        lambda counted: counted["dynamodb"] + counted["apprunner"] <= 8,
    ),
    Target(
        "calls_per_idle_tick",
        "0 App Runner, <= 1 DynamoDB",
        lambda counted: counted["apprunner"] == 0 and counted["dynamodb"] <= 1,
    ),
    Target("push_to_start_ms.p50", "<= 1000 ms", lambda ms: ms <= 1000),
    Target("burst.pushes_per_s", ">= 100", lambda rate: rate >= 100),
    Target("burst.peak_rss_mb", "<= 1024 MB", lambda mb: mb <= 1024),
    Target("burst.lost", "0", lambda lost: lost == 0),
    Target("burst.duplicated", "0", lambda duplicated: duplicated == 0),
    Target("burst.stopped_cleanly", "local up stops on SIGTERM", lambda stopped: stopped is True),
    Target("contention.too_contended", "0", lambda gave_up: gave_up == 0),
    *(
        Target(
            f"calls_per_sweep.{count}.nothing_new.ecr",
            f"{count}: one per repository",
            lambda n, c=count: n <= c,
        )
        for count in sweep.REPOSITORIES
    ),
    *(
        Target(f"calls_per_sweep.{count}.nothing_new.apprunner", "0 when nothing is new", lambda n: n == 0)
        for count in sweep.REPOSITORIES
    ),
)
_WRONG = ("burst.lost", "burst.duplicated", "contention.too_contended")


def figure(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for key in path.split("."):
        value = value[key]
    return value


def measure() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], None]]] = [
        ("decide", lambda: figures.update(decide_us_median=decide.measure())),
        ("cold imports", lambda: figures.update(cold_import_ratio=cold_start.measure())),
        ("calls", lambda: figures.update(calls.measure_calls())),
        ("push to start", lambda: figures.update(push_to_start_ms=push_to_start.measure_push_to_start())),
        ("burst", lambda: figures.update(burst=burst.measure_burst())),
        ("contention", lambda: figures.update(contention=calls.measure_contention())),
        ("sweep", lambda: figures.update(calls_per_sweep=sweep.measure_sweep())),
    ]
    for name, step in steps:
        began = time.monotonic()
        print(f"--- {name}", flush=True)
        step()
        print(f"    ({time.monotonic() - began:.0f} s)", flush=True)
    return figures


def table(figures: dict[str, Any]) -> tuple[list[str], bool]:
    """The figures beside their targets, and whether every one was met."""
    lines = [f"{'figure':34} {'measured':>40}  {'target':30} met"]
    all_met = True
    for path, value in sorted(_flatten(figures).items()):
        target = next((t for t in TARGETS if t.figure == path), None)
        met = ""
        if target is not None:
            ok = target.met(value)
            all_met &= ok
            met = "yes" if ok else "MISSED"
        lines.append(f"{path:34} {json.dumps(value):>40}  {target.wanted if target else '':30} {met}")
    for target in TARGETS:  # targets on a whole group (calls_per_deployment, ...)
        if "." not in target.figure:
            ok = target.met(figures[target.figure])
            all_met &= ok
            lines.append(f"{target.figure:34} {'(sum)':>40}  {target.wanted:30} {'yes' if ok else 'MISSED'}")
    return lines, all_met


def _flatten(figures: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in figures.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{path}."))
        elif not isinstance(value, list):
            flat[path] = value
    return flat


def main() -> int:
    began = time.monotonic()
    figures = measure()
    out = Path(os.environ.get("BENCH_OUT") or DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    lines, all_met = table(figures)
    print("\n".join(["", *lines, ""]))
    print(f"{'every target met' if all_met else 'some targets MISSED'}; figures in {out}")
    print(f"make bench took {time.monotonic() - began:.0f} s")
    wrong = [path for path in _WRONG if figure(figures, path)]
    for problem in figures.get("burst", {}).get("problems", []):
        print(f"burst problem: {problem}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
