"""Median time to decide one change against 10,000 rules, 10 of which watch its source.

Run with `make bench`. Prints figures; asserts nothing about time.
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


def main() -> None:
    started = time.perf_counter()
    index = build_index(make_rules(10_000, 10))
    build_seconds = time.perf_counter() - started
    change = Change(
        kind="image",
        source="ecr",
        account=ACCOUNT,
        region="us-east-1",
        repository="web",
        tag="v1.4.0",
        digest="sha256:" + "ab" * 32,
    )
    samples = []
    for _ in range(2_000):
        started = time.perf_counter_ns()
        decisions = decide(change, index)
        samples.append(time.perf_counter_ns() - started)
    assert len(decisions) == 10
    samples.sort()
    print(
        f"rules: {len(index)} ({len(decisions)} watch the change's source); "
        f"index built in {build_seconds:.2f} s"
    )
    print(
        f"decide one change: median {statistics.median(samples) / 1000:.1f} us, "
        f"p99 {samples[int(len(samples) * 0.99)] / 1000:.1f} us over {len(samples)} runs"
    )


if __name__ == "__main__":
    main()
