"""Median time to decide one change against 10 to 100,000 rules, 10 of which watch its source; and a
catastrophic regex on a 128-character tag.

Run alone (`.venv/bin/python benchmarks/decide.py`) or through `make bench`. Prints figures; asserts
nothing about time.
"""

from __future__ import annotations

import statistics
import time

from pushdeploy.domain.changes import Change
from pushdeploy.domain.decisions import decide
from pushdeploy.domain.rules import Rule, build_index

ACCOUNT = "111122223333"
SELECTORS = (
    {"semver": ">=1.2.0,<2.0.0"},
    {"tag_glob": "v1.*"},
    {"tag_regex": r"^v\d+\.\d+\.\d+$"},
    {"tag": "latest"},
)


def make_rules(total: int, watching: int) -> list[Rule]:
    rules = []
    for number in range(total):
        repository = "web" if number < watching else f"repo-{number}"
        service = f"arn:aws:apprunner:us-east-1:{ACCOUNT}:service/svc-{number:05d}/{number:032x}"
        image = {"repository": repository, **SELECTORS[number % len(SELECTORS)]}
        rules.append(Rule.model_validate({"id": f"rule-{number}", "service": service, "image": image}))
    return rules


SIZES = (10, 1_000, 10_000, 100_000)
WATCHING = 10
CHANGE = Change(
    kind="image",
    source="ecr",
    account=ACCOUNT,
    region="us-east-1",
    repository="web",
    tag="v1.4.0",
    digest="sha256:" + "ab" * 32,
)


def decide_samples(total: int, runs: int = 2_000) -> tuple[list[int], float]:
    """Nanoseconds per decision against `total` rules (sorted), and the seconds to build the index."""
    started = time.perf_counter()
    index = build_index(make_rules(total, WATCHING))
    build_seconds = time.perf_counter() - started
    samples = []
    for _ in range(runs):
        started_ns = time.perf_counter_ns()
        decisions = decide(CHANGE, index)
        samples.append(time.perf_counter_ns() - started_ns)
    if len(decisions) != min(total, WATCHING):
        raise AssertionError(f"{len(decisions)} decisions, expected {min(total, WATCHING)}")
    return sorted(samples), build_seconds


def measure(sizes: tuple[int, ...] = SIZES, show: bool = True) -> dict[str, float]:
    """`decide_us_median` of bench.json: the median microseconds per decision, by number of rules."""
    medians: dict[str, float] = {}
    for total in sizes:
        samples, build_seconds = decide_samples(total)
        medians[str(total)] = round(statistics.median(samples) / 1000, 1)
        if show:
            p99 = samples[int(len(samples) * 0.99)] / 1000
            print(
                f"decide one change against {total:>7} rules ({min(total, WATCHING)} watch its source): "
                f"median {medians[str(total)]:.1f} us, p99 {p99:.1f} us; index built in {build_seconds:.2f} s"
            )
    return medians


def main() -> None:
    measure()
    catastrophic_regex()


def catastrophic_regex() -> None:
    """A regex that backtracks exponentially on Python's `re` (hours at 40 characters), deciding tags of
    the registry's 128-character limit that almost match: RE2 answers in linear time."""
    pattern = r"^v(\d+\.?)+$"
    service = f"arn:aws:apprunner:us-east-1:{ACCOUNT}:service/svc-regex/{0:032x}"
    rule = Rule.model_validate(
        {"id": "regex", "service": service, "image": {"repository": "web", "tag_regex": pattern}}
    )
    index = build_index([rule])
    samples = []
    for number in range(2_000):
        tag = "v" + "1" * 126 + ("!" if number % 2 else "1")  # 128 characters, half of them a near miss
        change = CHANGE.model_copy(update={"tag": tag})
        started = time.perf_counter_ns()
        (decision,) = decide(change, index)
        samples.append(time.perf_counter_ns() - started)
        assert decision.deploys is not tag.endswith("!")
    samples.sort()
    print(
        f"regex {pattern} on a 128-character tag: median {statistics.median(samples) / 1000:.1f} us, "
        f"p99 {samples[int(len(samples) * 0.99)] / 1000:.1f} us over {len(samples)} runs"
    )


if __name__ == "__main__":
    main()
