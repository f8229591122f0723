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
        change = Change(
            kind="image",
            source="ecr",
            account=ACCOUNT,
            region="us-east-1",
            repository="web",
            tag=tag,
            digest="sha256:" + "ab" * 32,
        )
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
