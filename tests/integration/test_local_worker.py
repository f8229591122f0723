"""A local Lambda execution environment: Lambda's asynchronous invocation semantics over an SQS queue
(retries, then the on-failure destination with Lambda's invocation record) and the function's timeout."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pushdeploy.local.worker import FunctionTimeout, Invoker, Lifecycle, QueueConsumer, WorkerSpec

HANDLER = """
import json, os, time

def handler(event, context):
    calls = os.environ["CALLS_FILE"]
    with open(calls, "a") as f:
        f.write(json.dumps({"event": event, "request": context.aws_request_id,
                            "remaining": context.get_remaining_time_in_millis()}) + "\\n")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("the function failed")
    return {"ok": True}
"""


class Queues:
    def __init__(self) -> None:
        self.sqs: Any = boto3.client("sqs", region_name="us-east-1")
        self.invocations = self.sqs.create_queue(QueueName="invocations")["QueueUrl"]
        self.failures = self.sqs.create_queue(QueueName="on-failure")["QueueUrl"]

    def drain(self, url: str) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def queues() -> Iterator[Queues]:
    with mock_aws():
        yield Queues()


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queues: Queues) -> WorkerSpec:
    module = f"handler_{uuid.uuid4().hex}"  # a fresh module: the worker imports it by name
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(HANDLER), encoding="utf-8")
    monkeypatch.setenv("CALLS_FILE", str(tmp_path / "calls.jsonl"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the worker puts the code first on the path
    return WorkerSpec(
        logical_id="TestFunction",
        function_name="test-function",
        function_arn="arn:aws:lambda:us-east-1:111122223333:function:test-function",
        code_dir=str(tmp_path),
        handler=f"{module}.handler",
        timeout=5,
        memory=128,
        log_group="/aws/lambda/test-function",
        queue_url=queues.invocations,
        max_retries=2,
        on_failure_url=queues.failures,
        retry_delay=0.1,  # rounds to no delay at all: the retry is visible at once
    )


def consumer(spec: WorkerSpec, queues: Queues) -> QueueConsumer:
    return QueueConsumer(spec, Invoker(spec), queues.sqs, Lifecycle())


def deliver(consumer: QueueConsumer) -> None:
    """Invoke until the queue is empty (a retry is visible again at once)."""
    while messages := consumer.receive(wait_seconds=0):
        for message in messages:
            consumer.handle(message)


def calls(spec: WorkerSpec) -> list[dict[str, Any]]:
    lines = (Path(spec.code_dir) / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_successful_invocation_deletes_the_event(spec: WorkerSpec, queues: Queues) -> None:
    queues.sqs.send_message(QueueUrl=queues.invocations, MessageBody=json.dumps({"id": "e1"}))
    deliver(consumer(spec, queues))
    (call,) = calls(spec)
    assert call["event"] == {"id": "e1"}
    assert 0 < call["remaining"] <= 5000  # the context counts down the function's timeout
    assert queues.drain(queues.invocations) == []
    assert queues.drain(queues.failures) == []


def test_a_failing_event_is_retried_twice_then_sent_to_the_destination(
    spec: WorkerSpec, queues: Queues
) -> None:
    event = {"id": "e2", "fail": True}
    queues.sqs.send_message(QueueUrl=queues.invocations, MessageBody=json.dumps(event))
    deliver(consumer(spec, queues))
    assert len(calls(spec)) == 3  # the invocation and Lambda's two retries
    (record,) = queues.drain(queues.failures)
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == f"{spec.function_arn}:$LATEST"
    assert record["requestPayload"] == event
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["responsePayload"]["errorMessage"] == "the function failed"
    assert queues.drain(queues.invocations) == []


def test_an_event_too_old_is_not_invoked(spec: WorkerSpec, queues: Queues) -> None:
    queues.sqs.send_message(QueueUrl=queues.invocations, MessageBody=json.dumps({"id": "e3"}))
    deliver(consumer(replace(spec, max_event_age=-1), queues))
    (record,) = queues.drain(queues.failures)
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert "responsePayload" not in record
    assert not (Path(spec.code_dir) / "calls.jsonl").exists()


def test_an_invocation_past_the_timeout_is_stopped(spec: WorkerSpec) -> None:
    invoker = Invoker(replace(spec, timeout=1))
    _request, outcome = invoker.invoke({"sleep": 3})
    assert isinstance(outcome.error, FunctionTimeout)
    assert str(outcome.error) == "Task timed out after 1.00 seconds"


def test_the_spec_round_trips_through_json(spec: WorkerSpec) -> None:
    assert WorkerSpec.from_json(spec.to_json()) == spec
