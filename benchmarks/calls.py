"""AWS calls the real handlers make, counted at the client, in process (moto and the App Runner simulator):

- per deployment: one push that deploys and settles on the happy path (the push handler decides, admits
  and calls App Runner; App Runner's status event reaches operation_changed, which settles), for a semver
  rule (UpdateService pinned to the digest) and an exact tag (StartDeployment), on a container that has
  read the repository's rules before; and the first push a container sees of a repository, which
  queries its rules too;
- per idle reconcile tick: the reconciler's scheduled run with nothing in flight;
- contention: many pushes to one service at once, each in its own thread as Lambda runs them in their own
  containers: how often the slot's optimistic commit lost a race, and whether any gave up ("too
  contended").

Calls are counted with botocore's `before-call` event on the session every client is made from, so a
retried call counts once and the harness's own calls (setting up, reading results) are left out by
counting only inside the measured window. Run: `.venv/bin/python benchmarks/calls.py [--trace]`.
"""

from __future__ import annotations

import json
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stdout
from io import StringIO
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pushdeploy.local.inprocess import Cloud, build_cloud, silence_notifications

CONCURRENT_PUSHES = 50
_SERVICES = ("dynamodb", "apprunner", "events")


class CallCounter:
    """API calls by service (its endpoint prefix), and failed slot commits."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.trace: list[str] = []  # "service.Operation", in order
        self.conflicts = 0
        self.counting = False
        self._lock = threading.Lock()

    def before_call(self, model: Any, **_: Any) -> None:
        if self.counting:
            service = model.service_model.endpoint_prefix  # dynamodb, apprunner, events
            with self._lock:
                self.calls[service] += 1
                self.trace.append(f"{service}.{model.name}")

    def after_call(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        # A transaction cancelled on its conditions: the slot (or a record) moved since it was read.
        code = parsed.get("Error", {}).get("Code")
        if self.counting and model.name == "TransactWriteItems" and code == "TransactionCanceledException":
            with self._lock:
                self.conflicts += 1

    @contextmanager
    def window(self) -> Iterator[Counter[str]]:
        self.calls.clear()
        self.trace.clear()
        self.conflicts = 0
        self.counting = True
        try:
            yield self.calls
        finally:
            self.counting = False


@contextmanager
def counted_cloud() -> Iterator[tuple[Cloud, CallCounter]]:
    """An in-process cloud whose every client reports its calls to one counter."""
    counter = CallCounter()
    with pytest.MonkeyPatch.context() as patch, mock_aws(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Powertools: "No application metrics to publish"
        for variable, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(variable, value)
        boto3.setup_default_session()  # clients copy the session's handlers when they are made
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call", counter.before_call)
        boto3.DEFAULT_SESSION.events.register("after-call", counter.after_call)
        cloud = build_cloud(patch)
        silence_notifications()
        with redirect_stdout(StringIO()):  # the handlers' JSON log and metric lines
            yield cloud, counter
    boto3.DEFAULT_SESSION = None


def _digest(number: int) -> str:
    return f"sha256:{number:064x}"


def _only(counted: Counter[str], services: tuple[str, ...]) -> dict[str, int]:
    return {service: counted.get(service, 0) for service in services}


def one_deployment(cloud: Cloud, counter: CallCounter, tag: str, digest: str, service: str) -> dict[str, int]:
    with counter.window() as counted:
        answer = cloud.push_image(tag, digest)
        cloud.finish_operations()
    (deployment,) = [d for d in cloud.deployments(service) if d.digest == digest]
    if str(deployment.status) != "succeeded" or not answer.get("deployments"):
        raise AssertionError(f"the push of {tag} did not deploy: {deployment.status} {answer}")
    return _only(counted, _SERVICES)


def measure_calls(trace: bool = False) -> dict[str, Any]:
    """`calls_per_deployment` and `calls_per_idle_tick` of bench.json (and the StartDeployment figures);
    with `trace`, every call of the semver deployment is printed, in order."""
    with counted_cloud() as (cloud, counter):
        staging = cloud.create_image_service("web-staging", tag="latest")
        prod = cloud.create_image_service("web-prod", tag="v1.0.0")
        cloud.apply_rules(
            [
                {"id": "staging", "service": staging, "image": {"repository": "web", "tag": "latest"}},
                {"id": "prod", "service": prod, "image": {"repository": "web", "semver": ">=1.0.0"}},
            ]
        )
        cloud.deliver_apprunner_events()  # the services' creation, before the window: no deployment's
        cloud.invoke("reconciler", {"source": "aws.events"})  # warm: modules loaded, clients made
        first_push = one_deployment(cloud, counter, "v1.1.0", _digest(1), prod)
        first_calls = list(counter.trace)
        pinned = one_deployment(cloud, counter, "v1.2.0", _digest(2), prod)
        calls_made = list(counter.trace)
        started = one_deployment(cloud, counter, "latest", _digest(3), staging)
        with counter.window() as counted:
            cloud.reconcile()
        idle = _only(counted, ("dynamodb", "apprunner"))
    if trace:
        print("calls of one semver deployment, push to settled:\n  " + "\n  ".join(calls_made))
        extra = Counter(first_calls) - Counter(calls_made)
        print(f"the container's first push of the repository adds: {', '.join(extra.elements())}")
    for label, figures in (
        ("UpdateService (semver)", pinned),
        ("StartDeployment (tag)", started),
        ("a container's first push of the repository", first_push),
    ):
        total = figures["dynamodb"] + figures["apprunner"]
        print(f"calls per deployment, {label}: {figures} ({total} DynamoDB and App Runner)")
    print(f"calls per idle reconcile tick: {idle}")
    return {
        "calls_per_deployment": pinned,
        "calls_per_deployment_start": started,
        "calls_per_deployment_first_push": first_push,
        "calls_per_idle_tick": idle,
    }


def measure_contention(pushes: int = CONCURRENT_PUSHES) -> dict[str, Any]:
    """`contention` of bench.json: `pushes` semver pushes to one service, all at once."""
    with counted_cloud() as (cloud, counter):
        prod = cloud.create_image_service("web-prod", tag="v1.0.0")
        cloud.apply_rules(
            [{"id": "prod", "service": prod, "image": {"repository": "web", "semver": ">=1.0.0"}}]
        )
        cloud.push_image("warm-up", _digest(99), repository="unwatched")  # load the handler once
        events = [cloud.ecr_push_event(f"v2.0.{n}", _digest(100 + n)) for n in range(pushes)]
        gave_up: list[str] = []
        start = threading.Barrier(pushes)

        def push(event: dict[str, Any]) -> None:
            start.wait()
            try:
                cloud.invoke("image_pushed", event)
            except Exception as error:  # what a Lambda retry would see
                gave_up.append(str(error))

        with counter.window(), ThreadPoolExecutor(max_workers=pushes) as pool:
            list(pool.map(push, events))
        conflicts = counter.conflicts
        too_contended = sum("too contended" in error for error in gave_up)
        for _ in range(pushes):
            cloud.finish_operations()
            cloud.advance(130)
            cloud.reconcile()
            if not any(
                str(d.status) in ("queued", "starting", "in_progress") for d in cloud.deployments(prod)
            ):
                break
        newest = cloud.configured_image(prod).endswith(_digest(100 + pushes - 1))
    figures = {
        "concurrent_pushes": pushes,
        "conflicts_per_push": round(conflicts / pushes, 2),
        "too_contended": too_contended,
        "other_errors": len(gave_up) - too_contended,
        "ends_on_newest": newest,
    }
    print(f"contention, {pushes} pushes to one service at once: {json.dumps(figures)}")
    return figures


if __name__ == "__main__":
    measure_calls(trace="--trace" in sys.argv)
    measure_contention()
