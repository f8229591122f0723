"""The controller under a deterministic simulation of faults (issue 8, "Prove it"): a fixed seed, at
least 10,000 steps through the real handlers, and no invariant violated. `make soak` runs the same engine
with any seed and length."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.simulation import fast_moto
from tests.simulation.engine import plan_episodes, run_simulation

SEED = 20261126
STEPS = 10_000

pytestmark = pytest.mark.simulation


def test_no_invariant_is_violated_over_ten_thousand_steps() -> None:
    report = run_simulation(SEED, STEPS, shrink_seconds=60)
    lines = report.lines()
    print("\n".join(lines))
    assert report.steps >= STEPS
    assert report.faults > STEPS // 10  # the schedule does inject faults
    assert len(report.violations) == 0, "\n".join(lines)


def test_a_schedule_replays_identically() -> None:
    """Shrinking depends on it: the same schedule makes the same App Runner calls and finds the same."""
    (plan,) = plan_episodes(7, 120, 120)
    runs = [plan.episode().run() for _ in range(2)]
    assert runs[0].trace == runs[1].trace
    assert runs[0].counts == runs[1].counts
    assert runs[0].violations == runs[1].violations
    assert runs[0].trace  # it did call App Runner


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Any:
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(variable, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


def test_the_faster_moto_cancels_a_transaction_whole(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    item = {
        **_key("a"),
        "n": {"N": "1"},
        "m": {"M": {"l": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}]}, "ss": {"SS": ["p", "q"]}}},
    }
    dynamodb.put_item(TableName="t", Item=item)
    before = dynamodb.get_item(TableName="t", Key=_key("a"))["Item"]
    fast_moto.install(monkeypatch)
    assert dynamodb.get_item(TableName="t", Key=_key("a"))["Item"] == before  # answers as moto does

    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {**_key("b"), "n": {"N": "2"}}}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": _key("a"),
                        "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": _key("c"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "Item" not in dynamodb.get_item(TableName="t", Key=_key("b"))
    assert dynamodb.get_item(TableName="t", Key=_key("a"))["Item"] == before

    dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": "t", "Item": {**_key("b"), "n": {"N": "2"}}}}]
    )
    assert dynamodb.get_item(TableName="t", Key=_key("b"))["Item"]["n"] == {"N": "2"}
