"""AWS calls of one sweep, counted at the client on the real sweeper handler, in process (moto's ECR and
DynamoDB, the App Runner simulator): with N watched ECR repositories and nothing new, and with one push
whose event was lost (found, decided and started). Run: `.venv/bin/python benchmarks/sweep.py`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest
from calls import CallCounter, counted_cloud

from pushdeploy.local.inprocess import ACCOUNT, REGION, Cloud, put_image

REPOSITORIES = (1, 10, 50)
_SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event"}


def _by_service(counted: Counter[str]) -> dict[str, int]:
    # ECR's endpoint prefix is "api.ecr".
    found = {service.removeprefix("api."): count for service, count in counted.items()}
    return {service: found.get(service, 0) for service in ("ecr", "dynamodb", "apprunner", "events")}


def _watch(cloud: Cloud, repositories: int) -> None:
    service = cloud.create_image_service("web-staging", tag="latest")
    ecr = boto3.client("ecr", region_name=REGION)
    rules = []
    for number in range(repositories):
        ecr.create_repository(repositoryName=f"repo-{number}")
        rules.append(
            {
                "id": f"repo-{number}",
                "service": service,
                "image": {"repository": f"repo-{number}", "tag": "latest"},
            }
        )
    cloud.apply_rules(rules)


def _sweep(cloud: Cloud, counter: CallCounter) -> dict[str, int]:
    with counter.window() as counted:
        answer = cloud.invoke("sweeper", _SCHEDULED)
    if answer.get("status") != "swept" or answer.get("skipped"):
        raise AssertionError(f"the sweep did not sweep every repository: {answer}")
    return _by_service(counted)


def measure_repositories(repositories: int) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)  # ECR's registry is the rules' account
        patch.setenv("SWEEP_GRACE_SECONDS", "0")
        with counted_cloud() as (cloud, counter):
            _watch(cloud, repositories)
            cloud.invoke("sweeper", _SCHEDULED)  # the first sweep: modules loaded, marks written
            idle = _sweep(cloud, counter)
            put_image("latest", "repo-0")
            found = _sweep(cloud, counter)
    return {"nothing_new": idle, "one_found": found}


def measure_sweep() -> dict[str, Any]:
    """`calls_per_sweep` of bench.json, by the number of watched repositories."""
    figures = {str(count): measure_repositories(count) for count in REPOSITORIES}
    for count, counted in figures.items():
        print(f"calls per sweep, {count} watched repositories: {json.dumps(counted)}")
    return figures


if __name__ == "__main__":
    measure_sweep()
