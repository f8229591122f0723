"""Image scans on the local cloud: through its moto server (the same `MotoServer` as `local up`), a scan
recorded over HTTP is what DescribeImageScanFindings answers, and the `ECR Image Scan` event ECR emits goes
on the bus: after `simulate scan`, and after a push to a repository that scans on push."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pushdeploy.installation import Target, TargetError
from pushdeploy.local import pushes, scanning
from pushdeploy.local.moto_server import MotoServer
from pushdeploy.local.sending import push_image, put_event

ACCOUNT = "111122223333"
REGION = "us-east-1"


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    """A local cloud's moto server (ECR, EventBridge, SQS) as a Target, its default bus's ECR events
    routed to a queue."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)  # the local cloud's own account for its credentials
    server = MotoServer()
    server.start()
    reset = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
    urllib.request.urlopen(reset).close()  # noqa: S310
    endpoints = dict.fromkeys(("ecr", "events", "sqs"), server.url)
    local = Target({}, REGION, endpoints, local=True, description="test cloud", extra={"account": ACCOUNT})
    try:
        yield local
    finally:
        server.stop()


@pytest.fixture
def ecr_events(target: Target) -> Any:
    sqs, events = target.client("sqs"), target.client("events")
    url = sqs.create_queue(QueueName="ecr-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="ecr", EventPattern=json.dumps({"source": ["aws.ecr"]}))
    events.put_targets(Rule="ecr", Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    return received


def findings(target: Target, repository: str, digest: str) -> dict[str, Any]:
    answer: dict[str, Any] = target.client("ecr").describe_image_scan_findings(
        registryId=ACCOUNT, repositoryName=repository, imageId={"imageDigest": digest}, maxResults=1
    )
    return answer


def test_a_simulated_scan_is_ecrs_answer_and_its_event_is_sent(target: Target, ecr_events: Any) -> None:
    digest = push_image(target, "web", "v1.1.0")
    ecr_events()  # the push's own event
    with pytest.raises(ClientError, match="ScanNotFoundException"):
        findings(target, "web", digest)  # no scan yet

    scan = scanning.Scan("COMPLETE", {"CRITICAL": 2, "HIGH": 1})
    put_event(target, scanning.finish_scan(target, "web", digest, scan))

    answer = findings(target, "web", digest)
    assert answer["imageScanStatus"]["status"] == "COMPLETE"
    assert answer["imageScanFindings"]["findingSeverityCounts"] == {"CRITICAL": 2, "HIGH": 1}
    (event,) = ecr_events()
    assert (event["source"], event["detail-type"]) == ("aws.ecr", "ECR Image Scan")
    assert event["region"] == REGION
    assert event["resources"] == [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/web"]
    assert event["detail"] == {
        "scan-status": "COMPLETE",
        "repository-name": "web",
        "finding-severity-counts": {"CRITICAL": 2, "HIGH": 1},
        "image-digest": digest,
        "image-tags": ["v1.1.0"],
    }


def test_a_later_scan_of_the_image_replaces_the_answer(target: Target) -> None:
    digest = push_image(target, "web", "v1.1.0")
    scanning.finish_scan(target, "web", digest, scanning.Scan("COMPLETE", {"CRITICAL": 2}))
    scanning.finish_scan(target, "web", digest, scanning.Scan("FAILED"))
    answer = findings(target, "web", digest)
    assert answer["imageScanStatus"]["status"] == "FAILED"
    assert "imageScanFindings" not in answer


def test_a_push_to_a_repository_that_scans_on_push_is_scanned_clean(target: Target, ecr_events: Any) -> None:
    ecr = target.client("ecr")
    ecr.create_repository(repositoryName="web", imageScanningConfiguration={"scanOnPush": True})
    digest = push_image(target, "web", "latest")
    push, scan = ecr_events()  # in the order ECR sends them
    assert push["detail-type"] == pushes.ECR_IMAGE_ACTION
    assert scan["detail-type"] == pushes.ECR_IMAGE_SCAN
    assert scan["detail"]["scan-status"] == "COMPLETE"
    assert scan["detail"]["finding-severity-counts"] == {}
    answer = findings(target, "web", digest)
    assert answer["imageScanStatus"]["status"] == "COMPLETE"
    assert answer["imageScanFindings"]["findingSeverityCounts"] == {}


def test_a_push_to_a_repository_that_does_not_scan_on_push_is_not_scanned(
    target: Target, ecr_events: Any
) -> None:
    digest = push_image(target, "web", "latest")
    assert [event["detail-type"] for event in ecr_events()] == [pushes.ECR_IMAGE_ACTION]
    with pytest.raises(ClientError, match="ScanNotFoundException"):
        findings(target, "web", digest)


def test_a_scan_of_an_image_ecr_does_not_have_is_refused_in_one_line(target: Target) -> None:
    push_image(target, "web", "latest")
    missing = "sha256:" + "0" * 64
    with pytest.raises(TargetError) as refused:
        scanning.finish_scan(target, "web", missing, scanning.Scan("COMPLETE"))
    message = str(refused.value)
    assert message.startswith(f"no image web@{missing} in {ACCOUNT}, {REGION}: ImageNotFoundException")
    assert "\n" not in message


def test_every_other_request_still_reaches_moto(target: Target) -> None:
    """The control path is the only one ScanControl takes: ECR itself still answers everything else."""
    ecr = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=target.endpoints["ecr"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ecr.create_repository(repositoryName="api")
    assert [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]] == ["api"]
