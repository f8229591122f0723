"""The local cloud's moto server keeps DynamoDB's promise that a conditional write is atomic, which the
ledger's one-deployment-in-flight rule relies on, while requests arrive concurrently."""

from __future__ import annotations

import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pushdeploy.local.moto_server import MotoServer

KEYS = 60
CONTENDERS = 6


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    server = MotoServer()
    server.start()
    # moto's backends live in the process, not in the server: start from nothing.
    reset = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
    urllib.request.urlopen(reset).close()  # noqa: S310
    try:
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=server.url,
            config=Config(max_pool_connections=CONTENDERS * 2),
        )
        client.create_table(
            TableName="slots",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
    finally:
        server.stop()


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """The server runs in this process: switching threads very often makes an unguarded check-then-write
    in moto interleave (the test below fails without the lock), as concurrent workers' requests do."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_a_conditional_put_wins_once_per_key_under_contention(dynamodb: Any) -> None:
    refusals: list[str] = []

    def claim(contender: int) -> list[str]:
        won = []
        for key in range(KEYS):
            try:
                dynamodb.put_item(
                    TableName="slots",
                    Item={"pk": {"S": f"service-{key}"}, "owner": {"N": str(contender)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as error:  # not client.exceptions: botocore builds those lazily, per thread
                refusals.append(error.response["Error"]["Code"])
                continue
            won.append(f"service-{key}")
        return won

    with ThreadPoolExecutor(CONTENDERS) as pool:
        wins = Counter(key for won in pool.map(claim, range(CONTENDERS)) for key in won)
    assert len(wins) == KEYS
    assert set(wins.values()) == {1}
    assert set(refusals) == {"ConditionalCheckFailedException"}


def test_the_server_answers_every_moto_service(dynamodb: Any) -> None:
    url = dynamodb.meta.endpoint_url
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=url)
    assert sqs.create_queue(QueueName="q")["QueueUrl"].startswith(url)
    assert dynamodb.list_tables()["TableNames"] == ["slots"]
