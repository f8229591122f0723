"""p50/p99 of the webhook handler on a warm container, in process, with moto behind it.

Each sample is one signed GitHub push (a new delivery id each time) through the real handler: Function URL
event in, HTTP answer out, with the secret read (cached), the signature checked, the rules queried, the
idempotency record written and the change put on EventBridge. The replay and refusal paths are measured
too. moto answers in process, so the totals are the handler's own cost plus moto's; the "own" figures
leave out the time spent inside AWS calls (botocore and moto). On AWS, add the network round trips
instead: for a forwarded push two DynamoDB writes (the idempotency record) and one PutEvents, a few
milliseconds each; the rules and the secrets are cached on a warm container.

Run: `.venv/bin/python benchmarks/webhook_latency.py [INVOCATIONS]`. Prints figures; asserts no timing.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from moto import mock_aws

from pushdeploy.local.inprocess import WEBHOOK_SECRETS, Cloud, build_cloud
from pushdeploy.sources.signatures import sign

ROOT = Path(__file__).resolve().parents[1]

BODY = (ROOT / "tests" / "fixtures" / "payloads" / "github-push.body.json").read_bytes()
SERVICE = "arn:aws:apprunner:us-east-1:111122223333:service/hello-world/0123456789abcdef0123456789abcdef"
WARM_UP = 20


def headers(delivery: str, secret: str = WEBHOOK_SECRETS["github"]) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(BODY, secret),
    }


class AwsClock:
    """Seconds spent inside AWS SDK calls (moto included), to tell them apart from the handler's own."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original = BaseClient._make_api_call  # type: ignore[attr-defined]

        def timed_call(client: BaseClient, operation: str, params: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                self.seconds += time.perf_counter() - started

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(BaseClient, "_make_api_call", timed_call)
            yield


Samples = tuple[list[float], list[float]]  # total and own milliseconds per call


def timed(
    aws: AwsClock,
    invocations: int,
    call: Callable[[int], dict[str, Any]],
    expected: int,
    warm_up: int = WARM_UP,
) -> Samples:
    """Milliseconds per call, after a warm-up; every answer must have the expected status."""
    for number in range(warm_up):
        call(-1 - number)
    total, own = [], []
    for number in range(invocations):
        aws.seconds = 0.0
        started = time.perf_counter()
        answer = call(number)
        elapsed = time.perf_counter() - started
        total.append(elapsed * 1000)
        own.append((elapsed - aws.seconds) * 1000)
        assert answer["statusCode"] == expected, answer
    return total, own


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, samples: Samples) -> None:
    total, own = samples
    print(
        f"{name:30} n={len(total):4}  total p50 {percentile(total, 0.50):6.2f} ms  "
        f"p99 {percentile(total, 0.99):6.2f} ms  (mean {statistics.fmean(total):6.2f})  "
        f"own p50 {percentile(own, 0.50):5.2f} ms  p99 {percentile(own, 0.99):5.2f} ms"
    )


def measure(cloud: Cloud, aws: AwsClock, invocations: int) -> dict[str, Samples]:
    cloud.apply_rules(
        [
            {
                "id": "hello-world",
                "service": SERVICE,
                "code": {"provider": "github", "repository": "Codertocat/Hello-World", "branch": "master"},
            }
        ]
    )
    results = {
        # Loads the function, reads the secrets, queries the rules: an in-process cold start.
        "first call": timed(aws, 1, lambda n: cloud.webhook("/github", BODY, headers("first")), 202, 0),
        "signed push, forwarded (202)": timed(
            aws, invocations, lambda n: cloud.webhook("/github", BODY, headers(f"push-{n}")), 202
        ),
        "redelivery, replayed (202)": timed(
            aws, invocations, lambda n: cloud.webhook("/github", BODY, headers("push-0")), 202
        ),
        "wrong secret, refused (401)": timed(
            aws, invocations, lambda n: cloud.webhook("/github", BODY, headers(f"bad-{n}", "forged")), 401
        ),
    }
    cloud.forwarded()
    return results


def main() -> None:
    invocations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with (
        pytest.MonkeyPatch.context() as patch,
        mock_aws(),
        open(os.devnull, "w") as devnull,  # the handler's log and metric lines
    ):
        for name, value in env.items():
            patch.setenv(name, value)
        cloud = build_cloud(patch)
        patch.setenv("RULES_CACHE_SECONDS", "30")  # the deployed default (the harness turns it off)
        aws = AwsClock()
        with contextlib.redirect_stdout(devnull), aws.installed():
            results = measure(cloud, aws, invocations)
    print(f"webhook handler, warm container, in process with moto ({invocations} invocations each):")
    for name, samples in results.items():
        report(name, samples)


if __name__ == "__main__":
    main()
