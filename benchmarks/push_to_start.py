"""Push to StartDeployment on the local cloud: from the moment a push begins (ECR PutImage, then ECR's event
on the bus) to the start of the App Runner operation it caused, as App Runner records it (ListOperations'
StartedAt). One service per sample, each with an exact-tag rule on its own repository, pushed one at a
time: nothing queues, so the figure is the pipeline's own (EventBridge to the worker, the handler, the
App Runner call).

Run: `.venv/bin/python benchmarks/push_to_start.py [SAMPLES]`. Prints figures; asserts no timing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.domain.rules import validate_rules_document
from pushdeploy.installation import Target, load_local
from pushdeploy.local.cloud import CloudOptions, LocalCloud, default_template
from pushdeploy.local.sending import push_image
from pushdeploy.local.services import image_source

SAMPLES = 40
_TIMEOUT_SECONDS = 30.0
_ROLE = "arn:aws:iam::{account}:role/AppRunnerECRAccessRole"


def _create_services(target: Target, count: int) -> list[str]:
    apprunner = target.client("apprunner")
    account = target.extra["account"]
    registry = f"{account}.dkr.ecr.{target.region}.amazonaws.com"
    arns = []
    for number in range(count):
        source = image_source(f"{registry}/latency-{number}:latest", _ROLE.format(account=account))
        created = apprunner.create_service(ServiceName=f"latency-{number}", SourceConfiguration=source)
        arns.append(created["Service"]["ServiceArn"])
    _wait(lambda: all(_status(apprunner, arn) == "RUNNING" for arn in arns), "services to be RUNNING")
    rules = [
        {"id": f"latency-{n}", "service": arn, "image": {"repository": f"latency-{n}", "tag": "latest"}}
        for n, arn in enumerate(arns)
    ]
    store = RulesStore(target.client("dynamodb"), target.output("RulesTableName"))
    store.apply(store.all_rules(), validate_rules_document({"version": 1, "rules": rules}))
    return arns


def _status(apprunner: Any, arn: str) -> str:
    return str(apprunner.describe_service(ServiceArn=arn)["Service"]["Status"])


def _wait(check: Any, what: str) -> Any:
    deadline = time.monotonic() + _TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise TimeoutError(f"waited {_TIMEOUT_SECONDS:.0f} s for {what}")


def _deployment_started(apprunner: Any, arn: str) -> float | None:
    listed = apprunner.list_operations(ServiceArn=arn)["OperationSummaryList"]
    started = [op["StartedAt"].timestamp() for op in listed if op["Type"] == "START_DEPLOYMENT"]
    return min(started) if started else None


def measure_push_to_start(samples: int = SAMPLES) -> dict[str, float]:
    """`push_to_start_ms` of bench.json: p50 and p99 over `samples` pushes."""
    with tempfile.TemporaryDirectory(prefix="pushdeploy-latency-") as tmp:
        state_dir = Path(tmp)
        options = CloudOptions(
            state_dir=state_dir, template=default_template(), operation_seconds=1.0, reconcile_seconds=5.0
        )
        with open(state_dir / "local-cloud.log", "w", encoding="utf-8") as log:
            cloud = LocalCloud(options, out=log)
            cloud.start()
            try:
                target = load_local(str(state_dir))
                apprunner = target.client("apprunner")
                latencies = []
                for number, arn in enumerate(_create_services(target, samples)):
                    began = time.time()
                    push_image(target, f"latency-{number}", "latest")
                    started = _wait(lambda arn=arn: _deployment_started(apprunner, arn), "StartDeployment")
                    latencies.append((started - began) * 1000)
            finally:
                cloud.stop()
    latencies.sort()
    figures = {
        "p50": round(statistics.median(latencies), 1),
        "p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
    }
    print(f"push -> StartDeployment on the local cloud over {samples} pushes: {figures} ms")
    return figures


if __name__ == "__main__":
    measure_push_to_start(int(sys.argv[1]) if len(sys.argv) > 1 else SAMPLES)
