"""EventBridge events from ECR, CodeCommit and App Runner, and what pushdeploy makes of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushdeploy.domain.changes import ParsedEvent
from pushdeploy.errors import EventError
from pushdeploy.sources import parse_any, parse_eventbridge_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
# Samples of invocations that are not source events: the reconciler's schedule tick and a webhook's
# Function URL request (whose body `test_sources_webhooks` covers).
NOT_SOURCE_EVENTS = {"reconciler-scheduled.json", "sweeper-scheduled.json", "webhook-github-push.json"}
SOURCE_SAMPLES = sorted(path for path in EVENTS.glob("*.json") if path.name not in NOT_SOURCE_EVENTS)
SERVICE = "arn:aws:apprunner:us-east-1:111122223333:service/web-prod/0123456789abcdef0123456789abcdef"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def with_detail(name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A sample event with detail keys set, or removed when given None."""
    event = load(name)
    for key, value in changes.items():
        if value is None:
            event["detail"].pop(key, None)
        else:
            event["detail"][key] = value
    return event


def parse_error(event: Any) -> str:
    with pytest.raises(EventError) as caught:
        parse_eventbridge_event(event)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ECR image actions


def test_ecr_push_is_one_image_change_in_the_events_account_and_region() -> None:
    event = load("ecr-image-push.json")
    parsed = parse_eventbridge_event(event)
    (change,) = parsed.changes
    assert (change.kind, change.source, change.account, change.region) == (
        "image",
        "ecr",
        "111122223333",
        "us-east-1",
    )
    assert (change.repository, change.tag) == ("web", "v1.4.0")
    assert change.digest == event["detail"]["image-digest"]
    assert parsed.ignored is None
    assert parsed.operation is None
    assert parsed.signature is None
    assert parsed.event_id == event["id"]


def test_ecr_push_of_latest_carries_its_tag() -> None:
    (change,) = parse_eventbridge_event(load("ecr-image-push-latest.json")).changes
    assert change.tag == "latest"


def test_an_untagged_ecr_push_is_a_change_without_tag() -> None:
    (change,) = parse_eventbridge_event(with_detail("ecr-image-push.json", {"image-tag": None})).changes
    assert change.tag is None
    assert change.digest is not None


def test_awss_own_documented_push_example_with_its_placeholder_digest_is_a_change() -> None:
    documented = {
        "version": "0",
        "id": "13cde686-328b-6117-af20-0e5566167482",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "time": "2019-11-16T01:54:34Z",
        "region": "us-west-2",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": "my-repository-name",
            "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234",
            "action-type": "PUSH",
            "image-tag": "latest",
        },
    }
    (change,) = parse_eventbridge_event(documented).changes
    assert change.digest == "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234"
    assert (change.account, change.region, change.repository) == (
        "123456789012",
        "us-west-2",
        "my-repository-name",
    )


def test_ecr_delete_is_ignored_as_not_a_push() -> None:
    parsed = parse_eventbridge_event(load("ecr-image-delete.json"))
    assert parsed.changes == ()
    assert parsed.ignored == "ECR DELETE of web:v1.3.0 is not a push"


def test_ecr_archive_of_an_untagged_image_is_ignored_naming_its_digest() -> None:
    event = with_detail("ecr-image-push.json", {"action-type": "UPDATE_STORAGE_CLASS", "image-tag": None})
    parsed = parse_eventbridge_event(event)
    assert (
        parsed.ignored == f"ECR UPDATE_STORAGE_CLASS of web@{event['detail']['image-digest']} is not a push"
    )


def test_a_failed_ecr_push_is_ignored() -> None:
    parsed = parse_eventbridge_event(with_detail("ecr-image-push.json", {"result": "FAILURE"}))
    assert parsed.changes == ()
    assert parsed.ignored == "ECR push of web:v1.4.0 did not succeed (result FAILURE)"


def test_an_ecr_push_without_digest_is_ignored() -> None:
    parsed = parse_eventbridge_event(with_detail("ecr-image-push.json", {"image-digest": None}))
    assert parsed.changes == ()
    assert parsed.ignored == "ECR push of web:v1.4.0 has no image digest"


# ECR replication and scans


def test_a_successful_replication_is_a_change_in_the_replicas_region() -> None:
    event = load("ecr-replication-success.json")
    assert event["detail"]["source-region"] == "us-east-1"
    (change,) = parse_eventbridge_event(event).changes
    assert (change.account, change.region, change.repository, change.tag) == (
        "111122223333",
        "eu-west-1",
        "web",
        "v1.4.0",
    )
    assert change.digest == load("ecr-image-push.json")["detail"]["image-digest"]


def test_a_failed_replication_is_ignored() -> None:
    parsed = parse_eventbridge_event(with_detail("ecr-replication-success.json", {"result": "FAILED"}))
    assert parsed.changes == ()
    assert parsed.ignored == "ECR replication of web:v1.4.0 did not succeed (result FAILED)"


def test_an_image_scan_is_parsed_for_the_scan_gate_but_is_not_a_push() -> None:
    event = load("ecr-image-scan.json")
    parsed = parse_eventbridge_event(event)
    assert parsed.changes == ()
    assert parsed.ignored == "ECR image scan result, not a push"
    assert parsed.scan is not None
    assert (parsed.scan.account, parsed.scan.region, parsed.scan.repository) == (
        "111122223333",
        "us-east-1",
        "web",
    )
    assert parsed.scan.digest == event["detail"]["image-digest"]
    assert (parsed.scan.status, parsed.scan.tags) == ("COMPLETE", ("v1.4.0",))
    assert parsed.scan.severity_counts == {"HIGH": 2, "MEDIUM": 5}


def test_a_scan_with_no_findings_has_no_severity_counts() -> None:
    parsed = parse_eventbridge_event(with_detail("ecr-image-scan.json", {"finding-severity-counts": None}))
    assert parsed.scan is not None
    assert parsed.scan.severity_counts == {}


def test_an_inspector2_scan_names_its_repository_by_arn_and_is_not_a_push() -> None:
    """Enhanced scanning: Inspector's event, whose `repository-name` is the repository's ARN (as in the
    AWS sample of "EventBridge events sent for enhanced scanning in Amazon ECR"); TOTAL is not a
    severity, and is left out."""
    event = load("inspector2-scan.json")
    parsed = parse_eventbridge_event(event)
    assert parsed.changes == ()
    assert parsed.ignored == "Inspector2 image scan result, not a push"
    assert parsed.scan is not None
    assert (parsed.scan.account, parsed.scan.region, parsed.scan.repository) == (
        "111122223333",
        "us-east-1",
        "web",
    )
    assert parsed.scan.digest == load("ecr-image-push.json")["detail"]["image-digest"]
    assert (parsed.scan.status, parsed.scan.tags) == ("COMPLETE", ("v1.4.0",))
    assert parsed.scan.severity_counts == {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 4}
    assert parsed.event_id == event["id"]


def test_an_inspector2_scan_takes_account_region_and_nested_name_from_the_arn() -> None:
    arn = "arn:aws:ecr:us-east-2:123456789012:repository/amazon/amazon-ecs-sample"
    parsed = parse_eventbridge_event(with_detail("inspector2-scan.json", {"repository-name": arn}))
    assert parsed.scan is not None
    assert (parsed.scan.account, parsed.scan.region, parsed.scan.repository) == (
        "123456789012",
        "us-east-2",
        "amazon/amazon-ecs-sample",
    )


def test_an_inspector2_scan_in_another_partition_is_read_too() -> None:
    arn = "arn:aws-cn:ecr:cn-north-1:111122223333:repository/web"
    parsed = parse_eventbridge_event(with_detail("inspector2-scan.json", {"repository-name": arn}))
    assert parsed.scan is not None
    assert (parsed.scan.region, parsed.scan.repository) == ("cn-north-1", "web")


def test_an_inspector2_scan_with_a_plain_repository_name_is_in_the_events_account_and_region() -> None:
    parsed = parse_eventbridge_event(with_detail("inspector2-scan.json", {"repository-name": "team/web"}))
    assert parsed.scan is not None
    assert (parsed.scan.account, parsed.scan.region, parsed.scan.repository) == (
        "111122223333",
        "us-east-1",
        "team/web",
    )


def test_an_inspector2_scan_with_no_findings_listed_has_no_severity_counts() -> None:
    event = with_detail("inspector2-scan.json", {"finding-severity-counts": {"TOTAL": 0}})
    parsed = parse_eventbridge_event(event)
    assert parsed.scan is not None
    assert parsed.scan.severity_counts == {}
    parsed = parse_eventbridge_event(with_detail("inspector2-scan.json", {"finding-severity-counts": None}))
    assert parsed.scan is not None
    assert parsed.scan.severity_counts == {}


def test_an_inspector2_scan_of_an_ec2_instance_is_ignored() -> None:
    event = with_detail("inspector2-scan.json", {"repository-name": None, "image-digest": None})
    event["detail"]["instance-id"] = "i-087d63509b8c97098"
    parsed = parse_eventbridge_event(event)
    assert (parsed.scan, parsed.changes) == (None, ())
    assert parsed.ignored == "Inspector2 Scan of a resource that is not an ECR image, not a push"


def test_an_inspector2_scan_that_is_not_finished_does_not_open_a_gate() -> None:
    parsed = parse_eventbridge_event(with_detail("inspector2-scan.json", {"scan-status": "IN_PROGRESS"}))
    assert parsed.scan is None
    assert parsed.ignored == "Inspector2 Scan of web with scan-status IN_PROGRESS, not a push"


def test_an_inspector2_scan_whose_arn_is_not_an_ecr_repository_is_an_error() -> None:
    arn = "arn:aws:lambda:us-east-1:111122223333:function:web"
    message = parse_error(with_detail("inspector2-scan.json", {"repository-name": arn}))
    assert message == f"Inspector2 Scan: {arn} is not an ECR repository ARN"


def test_another_inspector_event_type_is_ignored() -> None:
    event = load("inspector2-scan.json") | {"detail-type": "Inspector2 Finding"}
    assert parse_eventbridge_event(event).ignored == "Inspector2 Finding is not a push"


def test_another_ecr_event_type_is_ignored() -> None:
    event = load("ecr-image-push.json") | {"detail-type": "ECR Pull Through Cache Action"}
    assert parse_eventbridge_event(event).ignored == "ECR Pull Through Cache Action is not a push"


# CodeCommit


def test_a_codecommit_branch_update_is_a_commit_change() -> None:
    event = load("codecommit-branch-updated.json")
    (change,) = parse_eventbridge_event(event).changes
    assert (change.kind, change.source, change.account, change.region) == (
        "commit",
        "codecommit",
        "111122223333",
        "us-east-1",
    )
    assert (change.repository, change.branch, change.commit) == ("api", "main", event["detail"]["commitId"])
    assert change.tag is None
    assert change.digest is None


def test_a_new_codecommit_branch_is_a_commit_change() -> None:
    (change,) = parse_eventbridge_event(
        with_detail("codecommit-branch-updated.json", {"event": "referenceCreated", "oldCommitId": None})
    ).changes
    assert change.branch == "main"


def test_a_codecommit_tag_is_ignored() -> None:
    parsed = parse_eventbridge_event(load("codecommit-tag-created.json"))
    assert parsed.changes == ()
    assert parsed.ignored == "CodeCommit tag v1.4.0 of api is not a branch"


def test_a_deleted_codecommit_branch_is_ignored() -> None:
    event = with_detail("codecommit-branch-updated.json", {"event": "referenceDeleted", "commitId": None})
    assert parse_eventbridge_event(event).ignored == "CodeCommit branch main of api was deleted"


def test_an_unreferenced_merge_commit_is_ignored() -> None:
    event = load("codecommit-branch-updated.json")
    event["detail"] = {
        "event": "unreferencedMergeCommitCreated",
        "repositoryName": "api",
        "commitId": "7f0103f",
    }
    assert parse_eventbridge_event(event).ignored == "CodeCommit unreferencedMergeCommitCreated is not a push"


def test_a_codecommit_pull_request_event_is_ignored() -> None:
    event = load("codecommit-branch-updated.json") | {"detail-type": "CodeCommit Pull Request State Change"}
    assert parse_eventbridge_event(event).ignored == "CodeCommit Pull Request State Change is not a push"


def test_a_codecommit_push_without_commit_id_is_an_error() -> None:
    message = parse_error(with_detail("codecommit-branch-updated.json", {"commitId": None}))
    assert message == "CodeCommit Repository State Change event detail: commitId: Field required"


# App Runner


def test_a_successful_deployment_is_an_operation_event_and_nothing_else() -> None:
    event = load("apprunner-operation-succeeded.json")
    parsed = parse_eventbridge_event(event)
    assert parsed.operation is not None
    assert parsed.operation.model_dump() == {
        "service": SERVICE,
        "status": "DeploymentCompletedSuccessfully",
        "outcome": "succeeded",
    }
    assert parsed.changes == ()
    assert parsed.ignored is None
    assert parsed.event_id == event["id"]


def test_a_failed_deployment_is_a_failed_operation() -> None:
    operation = parse_eventbridge_event(load("apprunner-operation-failed.json")).operation
    assert operation is not None
    assert (operation.status, operation.outcome) == ("DeploymentFailed", "failed")


def test_the_older_pascal_case_operation_event_is_understood() -> None:
    operation = parse_eventbridge_event(load("apprunner-operation-pascalcase.json")).operation
    assert operation is not None
    assert (operation.service, operation.status, operation.outcome) == (
        SERVICE,
        "UpdateServiceCompletedSuccessfully",
        "succeeded",
    )


def test_a_pascal_case_operation_status_key_is_understood() -> None:
    event = load("apprunner-operation-succeeded.json")
    event["detail"] = {"OperationStatus": "DeploymentStarted", "ServiceName": "web-prod"}
    operation = parse_eventbridge_event(event).operation
    assert operation is not None
    assert operation.outcome == "started"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("DeploymentStarted", "started"),
        ("UpdateServiceStarted", "started"),
        ("DeploymentCompletedSuccessfully", "succeeded"),
        ("UpdateServiceCompletedSuccessfully", "succeeded"),
        ("DeploymentFailed", "failed"),
        ("UpdateServiceFailed", "failed"),
        ("PauseServiceCompletedSuccessfully", "succeeded"),
        ("DeploymentRolledBack", "unknown"),
    ],
)
def test_operation_outcome_follows_the_status_suffix(status: str, outcome: str) -> None:
    event = with_detail("apprunner-operation-succeeded.json", {"operationStatus": status})
    operation = parse_eventbridge_event(event).operation
    assert operation is not None
    assert (operation.status, operation.outcome) == (status, outcome)


def test_an_operation_event_without_a_service_is_an_error() -> None:
    event = load("apprunner-operation-succeeded.json")
    event["resources"] = []
    assert "no service ARN in resources" in parse_error(event)


def test_an_operation_event_without_a_status_is_an_error() -> None:
    message = parse_error(with_detail("apprunner-operation-succeeded.json", {"operationStatus": None}))
    assert (
        message == "AppRunner Service Operation Status Change event detail: operationStatus: Field required"
    )


def test_a_service_status_change_is_ignored() -> None:
    parsed = parse_eventbridge_event(load("apprunner-service-status-change.json"))
    assert parsed.operation is None
    assert parsed.changes == ()
    assert parsed.ignored == "AppRunner Service Status Change is not an operation status change"


# Events pushdeploy cannot read


def test_an_unknown_source_is_an_error_naming_it() -> None:
    event = load("ecr-image-push.json") | {"source": "aws.s3"}
    assert parse_error(event) == "unknown event source aws.s3"


@pytest.mark.parametrize("key", ["source", "detail-type", "detail", "id"])
def test_an_envelope_without_a_required_key_is_an_error(key: str) -> None:
    event = load("ecr-image-push.json")
    del event[key]
    assert key in parse_error(event)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("account", 111122223333, "account: Input should be a valid string"),
        ("account", "1111-2222-3333", "account: an account id is 12 digits"),
        ("region", "US East", "region: not an AWS Region name"),
        ("detail", ["PUSH"], "detail: Input should be a valid dictionary"),
    ],
)
def test_a_malformed_envelope_is_an_error_naming_the_field(key: str, value: Any, problem: str) -> None:
    event = load("ecr-image-push.json") | {key: value}
    assert parse_error(event) == f"EventBridge event: {problem}"


def test_an_ecr_detail_without_repository_is_an_error() -> None:
    message = parse_error(with_detail("ecr-image-push.json", {"repository-name": None}))
    assert message == "ECR Image Action event detail: repository-name: Field required"


def test_an_empty_digest_is_an_error_not_a_change() -> None:
    assert "image-digest" in parse_error(with_detail("ecr-image-push.json", {"image-digest": ""}))


def test_a_non_object_event_is_an_error() -> None:
    assert parse_error(["not", "an", "event"]) == "an EventBridge event is a JSON object"


@pytest.mark.parametrize("path", SOURCE_SAMPLES, ids=lambda path: path.name)
def test_every_sample_event_is_understood_by_parse_any(path: Path) -> None:
    parsed = parse_any(path.read_bytes())
    # Exactly one of: changes, an ignored reason, an operation.
    assert [bool(parsed.changes), parsed.ignored is not None, parsed.operation is not None].count(True) == 1
    assert parsed.event_id == json.loads(path.read_text())["id"]


# Properties: whatever arrives, the only failure is an EventError.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
DETAIL_KEYS = [
    "action-type",
    "result",
    "repository-name",
    "image-digest",
    "image-tag",
    "image-tags",
    "scan-status",
    "finding-severity-counts",
    "event",
    "repositoryName",
    "referenceType",
    "referenceName",
    "commitId",
    "operationStatus",
    "Status",
]
SAMPLES = [load(path.name) for path in SOURCE_SAMPLES]


def parses_or_refuses(event: Any) -> None:
    """Parse `event`: the only failure allowed is an EventError, and its message is one line."""
    try:
        parsed = parse_eventbridge_event(event)
    except EventError as error:
        message = str(error)
    else:
        assert isinstance(parsed, ParsedEvent)
        return
    assert "\n" not in message


@given(
    event=st.dictionaries(st.sampled_from(["source", "detail-type", "detail", "id"]) | st.text(), json_values)
)
def test_any_json_object_parses_or_is_an_event_error(event: dict[str, Any]) -> None:
    parses_or_refuses(event)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(SAMPLES),
    detail=st.dictionaries(
        st.sampled_from(DETAIL_KEYS), json_values | st.sampled_from(["PUSH", "SUCCESS", "branch"])
    ),
)
def test_a_known_event_with_any_detail_parses_or_is_an_event_error(
    sample: dict[str, Any], detail: dict[str, Any]
) -> None:
    event = copy.deepcopy(sample)
    event["detail"].update(detail)
    parses_or_refuses(event)


@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_a_known_event_with_one_envelope_value_replaced_parses_or_is_an_event_error(
    sample: dict[str, Any], data: st.DataObject
) -> None:
    event = copy.deepcopy(sample)
    event[data.draw(st.sampled_from(sorted(event)))] = data.draw(json_values)
    parses_or_refuses(event)


@given(raw=st.binary() | json_values.map(lambda value: json.dumps(value).encode()))
def test_parse_any_on_any_bytes_parses_or_is_an_event_error(raw: bytes) -> None:
    try:
        parsed = parse_any(raw)
    except EventError as error:
        message = str(error)
    else:
        assert parsed.changes or parsed.ignored or parsed.operation
        return
    assert "\n" not in message
