"""The local cloud's moto server patches answer as moto does (`pushdeploy.local.fast_moto`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pushdeploy.local import fast_moto

ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "MessageRetentionPeriod",
]


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _answers(sqs: Any, queue: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    selected = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=ATTRIBUTES)["Attributes"]
    everything = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    return selected, everything, sorted(everything)


def test_sqs_answers_as_moto_does(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=str(n), DelaySeconds=60 if n == 2 else 0)
    sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=30)
    before = _answers(sqs, queue)
    for owner, name, value in fast_moto.server_patches():
        monkeypatch.setattr(owner, name, value)
    assert _answers(sqs, queue) == before
    assert before[0]["ApproximateNumberOfMessages"] == "1"
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=5)["Messages"]
    assert [m["Body"] for m in received] == ["1"]  # within its retention period, not delayed
    with pytest.raises(sqs.exceptions.ClientError):
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["NoSuchAttribute"])


def test_a_parsed_input_path_is_kept_for_the_next_event(monkeypatch: pytest.MonkeyPatch) -> None:
    import jsonpath_ng.ext

    for owner, name, value in fast_moto.server_patches():
        monkeypatch.setattr(owner, name, value)
    first = jsonpath_ng.ext.parse("$.detail.x")  # type: ignore[attr-defined]
    assert jsonpath_ng.ext.parse("$.detail.x") is first  # type: ignore[attr-defined]
    assert [m.value for m in first.find({"detail": {"x": 1}})] == [1]
