"""What goes wrong in a real cloud, end to end on the local cloud: events delivered twice, and a function
that dies between App Runner's answer and the ledger write. (A lost App Runner event and throttling are in
test_local_cloud.py.)

This module runs a local cloud of its own: the reconciler every second and a start grace period of a few
seconds, so that a start nobody recorded is looked for, and adopted, within the test's time.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pushdeploy.adapters.apprunner import AppRunnerTarget
from pushdeploy.adapters.notifier import EventBridgeNotifier
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.controller import Controller, Settings
from pushdeploy.domain.change_ids import change_id_for
from pushdeploy.domain.changes import Change
from pushdeploy.domain.deployments import TERMINAL, Deployment
from pushdeploy.local import pushes, sending
from tests.e2e.cloud import ACCOUNT, REGION, LocalCloud, running_local_cloud, wait_until

pytestmark = pytest.mark.e2e

START_GRACE_SECONDS = 3
PUSH_FUNCTION = "ImagePushedFunction"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    options = (
        "--operation-seconds",
        "1",
        "--reconcile-seconds",
        "1",
        "--env",
        f"START_GRACE_SECONDS={START_GRACE_SECONDS}",
    )
    with running_local_cloud(tmp_path_factory.mktemp("scenarios-cloud"), *options) as running:
        yield running


# ----- duplicate events -----


def test_an_event_delivered_twice_deploys_once(cloud: LocalCloud, tmp_path: Path) -> None:
    """EventBridge delivers at least once: the same event (same id) reaches the rule's target twice."""
    service = _tag_service(cloud, tmp_path, "e2e-dup")
    digest = put_image(cloud, "e2e-dup", "latest")
    event = ecr_push_event(str(uuid.uuid4()), "e2e-dup", "latest", digest)
    queue = cloud.invocation_queue(PUSH_FUNCTION)  # the target of the template's ECR push rule
    sqs = cloud.client("sqs")
    for _ in range(2):  # both wait at once: the function's two workers may take them together
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))

    wait_until(lambda: cloud.queue_drained(queue), timeout=30)  # both deliveries were handled
    deployment = cloud.settled_deployment(service)
    assert (deployment["status"], deployment["digest"]) == ("succeeded", digest)
    assert len(cloud.deployments(service)) == 1
    (operation,) = cloud.deploy_operations(service)  # one App Runner call
    assert (operation["Type"], operation["Id"]) == ("START_DEPLOYMENT", deployment["operation_id"])
    recorded = [c for c in cloud.changes() if c["change"]["digest"] == digest]
    assert [c["event_id"] for c in recorded] == [event["id"]]


def test_the_same_push_put_on_the_bus_twice_deploys_once(cloud: LocalCloud, tmp_path: Path) -> None:
    """A producer that retries PutEvents: two events (EventBridge gives each its own id), one change."""
    service = _tag_service(cloud, tmp_path, "e2e-twice")
    digest = put_image(cloud, "e2e-twice", "latest")
    events = cloud.client("events")
    for _ in range(2):
        answer = events.put_events(Entries=[pushes.ecr_push_entry("e2e-twice", "latest", digest)])
        assert answer["FailedEntryCount"] == 0

    def both_recorded() -> list[dict[str, Any]] | None:
        recorded = [c for c in cloud.changes() if c["change"]["digest"] == digest]
        return recorded if len(recorded) == 2 else None

    recorded = wait_until(both_recorded, timeout=30)
    deployment = cloud.settled_deployment(service)
    assert (deployment["status"], deployment["digest"]) == ("succeeded", digest)
    assert len(cloud.deployments(service)) == 1
    (operation,) = cloud.deploy_operations(service)
    assert operation["Id"] == deployment["operation_id"]
    notes = sorted(str(c["decisions"][0]["note"]) for c in recorded)
    deployed = [c for c in recorded if c["decisions"][0]["deployment"] == deployment["id"]]
    assert len(deployed) == 1, notes
    assert any(note.startswith("not deployed: already") for note in notes), notes


# ----- a crash between StartDeployment and the ledger write -----


class SimulatedCrash(Exception):
    """The function's execution environment died (timeout, out of memory) mid-invocation."""


def test_a_start_the_ledger_never_recorded_is_adopted_not_repeated(
    cloud: LocalCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _tag_service(cloud, tmp_path, "e2e-crash")
    started_events = listen(cloud, service, "Deployment Started")
    digest = put_image(cloud, "e2e-crash", "latest")
    controller = _controller(cloud)
    record_start = controller.runner._record_start
    crashes: list[str] = []

    def crash_once(
        deployment: Deployment, operation_id: str, started_at: datetime, detail: str, *args: Any, **kw: Any
    ) -> bool:
        if not crashes:
            crashes.append(operation_id)
            raise SimulatedCrash("the function died before writing the operation id")
        return record_start(deployment, operation_id, started_at, detail, *args, **kw)

    monkeypatch.setattr(controller.runner, "_record_start", crash_once)
    change = Change(
        kind="image",
        source="ecr",
        account=ACCOUNT,
        region=REGION,
        repository="e2e-crash",
        tag="latest",
        digest=digest,
    )
    event_id = str(uuid.uuid4())
    with pytest.raises(SimulatedCrash):
        controller.handle_change(change, change_id_for(event_id, 0), event_id)

    # App Runner runs the operation; the ledger holds the slot without knowing it.
    (operation,) = cloud.deploy_operations(service)
    assert crashes == [operation["Id"]]
    (crashed,) = cloud.ledger.for_service(service)
    assert (crashed.status, crashed.operation_id) == ("starting", None)

    # The local cloud's own reconciler, once the start grace period is over, adopts the operation.
    def settled() -> Deployment | None:
        (deployment,) = cloud.ledger.for_service(service)
        return deployment if deployment.status in TERMINAL else None

    adopted = wait_until(settled, timeout=START_GRACE_SECONDS + 20)
    assert adopted.status == "succeeded"
    assert adopted.operation_id == operation["Id"]
    assert adopted.operation_status == "SUCCEEDED"
    assert adopted.adopted  # the ledger keeps that the reconciler found it
    # The start time is App Runner's, not the reconciler's: it adopted, it did not start anew.
    assert adopted.started_at is not None
    assert abs((adopted.started_at - operation["StartedAt"]).total_seconds()) < 0.01
    assert [op["Id"] for op in cloud.deploy_operations(service)] == [operation["Id"]]  # never twice
    (started,) = wait_until(lambda: receive_all(cloud, started_events), timeout=10)
    assert started["detail"]["id"] == adopted.id
    assert f"adopted operation {operation['Id']}" in started["detail"]["detail"]


# ----- helpers -----


def _tag_service(cloud: LocalCloud, directory: Path, name: str) -> str:
    """An image service following `NAME:latest`, and a rule that redeploys it on every push of it."""
    service = cloud.create_image_service(name, name)
    cloud.apply_rules(
        directory, [{"id": name, "service": service, "image": {"repository": name, "tag": "latest"}}]
    )
    return service


def _controller(cloud: LocalCloud) -> Controller:
    """A controller wired as `runtime.make_controller` wires a function's, against the local cloud."""
    target = cloud.target
    dynamodb = target.client("dynamodb")
    return Controller(
        cloud.ledger,
        AppRunnerTarget(target.client("apprunner")),
        RulesStore(dynamodb, target.output("RulesTableName"), cache_seconds=0),
        EventBridgeNotifier(target.client("events"), "default"),
        Settings(start_grace=timedelta(seconds=START_GRACE_SECONDS)),
    )


def put_image(cloud: LocalCloud, repository: str, tag: str) -> str:
    """ECR PutImage of a new image, without the event ECR would emit: the digest."""
    return sending.put_image(cloud.target, repository, tag)


def ecr_push_event(event_id: str, repository: str, tag: str, digest: str) -> dict[str, Any]:
    """The `ECR Image Action` event as EventBridge delivers it to a rule's target."""
    entry = pushes.ecr_push_entry(repository, tag, digest)
    return {
        "version": "0",
        "id": event_id,
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": entry["Resources"],
        "detail": json.loads(entry["Detail"]),
    }


def listen(cloud: LocalCloud, service: str, detail_type: str) -> str:
    """A queue that receives pushdeploy's own events of that type about the service: its URL."""
    sqs, events = cloud.client("sqs"), cloud.client("events")
    name = f"e2e-listen-{uuid.uuid4().hex[:12]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["pushdeploy"], "detail-type": [detail_type], "resources": [service]}
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "listener", "Arn": arn}])
    return str(queue)


def receive_all(cloud: LocalCloud, queue: str) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]
