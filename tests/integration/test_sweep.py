"""The sweep through the real sweeper handler: pushes whose events were lost are found at their source
(moto's ECR; CodeCommit through botocore's Stubber, since moto has no GetBranch) and deployed once, under
the same order and dedup rules as pushes that arrived by event."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pushdeploy import runtime
from pushdeploy.domain.sweep import FOUND_BY_SWEEP
from pushdeploy.local.inprocess import put_image, tag_image
from tests.integration.harness import ACCOUNT, REGION, TABLES, Cloud

OTHER_ACCOUNT = "222233334444"
SWEEP_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/pushdeploy-sweep"
CODECOMMIT_URL = "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app"
C1, C2, C3 = ("a" * 40, "b" * 40, "c" * 40)


@pytest.fixture(autouse=True)
def sweep_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)  # the ECR registry of the rules' account
    monkeypatch.setenv("SWEEP_GRACE_SECONDS", "0")
    monkeypatch.setenv("SWEEP_ROLE_ARNS", "")


def sweep(cloud: Cloud) -> dict[str, Any]:
    return cloud.invoke("sweeper", {"source": "aws.events", "detail-type": "Scheduled Event"})


@pytest.fixture
def staging(cloud: Cloud) -> str:
    """An image service that follows web:latest, its rule applied, set-up calls forgotten."""
    service = cloud.create_image_service("web-staging", tag="latest")
    cloud.apply_rules(
        [{"id": "web-staging", "service": service, "image": {"repository": "web", "tag": "latest"}}]
    )
    cloud.sim.calls.clear()
    return service


def change_records(cloud: Cloud, digest: str) -> list[dict[str, Any]]:
    return cloud.ledger.changes_of_artifact(digest, limit=None)


# --- ECR -------------------------------------------------------------------------------------------


def test_a_push_whose_event_was_lost_is_deployed_by_the_next_sweep_and_recorded_as_found_by_it(
    cloud: Cloud, staging: str
) -> None:
    digest = put_image("latest")
    answer = sweep(cloud)
    assert answer["status"] == "swept"
    assert len(answer["found"]) == 1
    assert len(cloud.calls("StartDeployment")) == 1
    (deployment,) = cloud.deployments(staging)
    assert (deployment.digest, deployment.trigger) == (digest, "sweep")
    (record,) = change_records(cloud, digest)
    assert (record["trigger"], record["note"]) == ("sweep", FOUND_BY_SWEEP)
    cloud.finish_operations()
    assert cloud.statuses(staging) == ["succeeded"]


def test_a_sweep_with_nothing_new_makes_no_app_runner_call(cloud: Cloud, staging: str) -> None:
    put_image("latest")
    sweep(cloud)
    cloud.finish_operations()
    cloud.sim.calls.clear()
    for _ in range(3):
        assert sweep(cloud)["found"] == []
    assert cloud.sim.calls == []
    assert len(cloud.deployments(staging)) == 1


def test_a_sweep_that_races_the_late_real_event_deploys_once(cloud: Cloud, staging: str) -> None:
    digest = put_image("latest")
    sweep(cloud)
    late = cloud.push_image("latest", digest)  # the event, delivered after all
    assert late["deployments"] == []
    assert len(cloud.calls("StartDeployment")) == 1
    assert len(cloud.deployments(staging)) == 1
    records = change_records(cloud, digest)
    assert sorted(r.get("trigger") for r in records) == ["push", "sweep"]  # both are in the record


def test_a_push_whose_event_arrived_is_not_swept_again(cloud: Cloud, staging: str) -> None:
    digest = put_image("latest")
    cloud.push_image("latest", digest)
    assert sweep(cloud)["found"] == []
    assert len(cloud.calls("StartDeployment")) == 1
    assert len(change_records(cloud, digest)) == 1


def test_a_push_younger_than_the_grace_period_is_left_to_its_event(
    cloud: Cloud, staging: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWEEP_GRACE_SECONDS", "120")
    runtime.reset()
    put_image("latest")
    assert sweep(cloud)["found"] == []
    cloud.advance(121)
    assert len(sweep(cloud)["found"]) == 1
    assert len(cloud.calls("StartDeployment")) == 1


def test_an_image_pushed_before_its_rule_was_watching_is_not_swept(cloud: Cloud) -> None:
    service = cloud.create_image_service("web-staging", tag="latest")
    put_image("latest")
    cloud.apply_rules(
        [{"id": "web-staging", "service": service, "image": {"repository": "web", "tag": "latest"}}]
    )
    stamp_rules(cloud, datetime.now(UTC) + timedelta(seconds=1))  # stored to the second: surely after it
    cloud.advance(5)
    cloud.sim.calls.clear()
    assert sweep(cloud)["found"] == []
    assert cloud.sim.calls == []


def stamp_rules(cloud: Cloud, applied_at: datetime) -> None:
    """Set when the stored rules were applied, as `rules apply` records it."""
    stamp = applied_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    for item in cloud.dynamodb.scan(TableName=TABLES["RulesTable"])["Items"]:
        cloud.dynamodb.update_item(
            TableName=TABLES["RulesTable"],
            Key={"source_key": item["source_key"], "rule_id": item["rule_id"]},
            UpdateExpression="SET updated_at = :at",
            ExpressionAttributeValues={":at": {"S": stamp}},
        )


def test_the_newest_of_several_lost_pushes_is_what_runs(cloud: Cloud) -> None:
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    cloud.apply_rules(
        [{"id": "web-prod", "service": service, "image": {"repository": "web", "semver": "^1.0.0"}}]
    )
    cloud.sim.calls.clear()
    newest = put_image("v1.3.0")
    put_image("v1.2.0")  # pushed later, but an older version
    sweep(cloud)
    for _ in range(3):
        cloud.finish_operations()
        cloud.reconcile()
    assert cloud.configured_image(service).endswith(f"web@{newest}")
    assert all(d.trigger == "sweep" for d in cloud.deployments(service))


# --- other accounts --------------------------------------------------------------------------------


def test_a_source_in_another_account_without_a_role_is_skipped_and_the_log_says_so(
    cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    service = cloud.create_image_service("web-staging", tag="latest")
    rule = {"repository": "web", "tag": "latest", "account": OTHER_ACCOUNT}
    cloud.apply_rules([{"id": "web-staging", "service": service, "image": rule}])
    with caplog.at_level(logging.WARNING):
        answer = sweep(cloud)
    assert answer["found"] == []
    (skipped,) = answer["skipped"]
    assert OTHER_ACCOUNT in skipped
    assert "SweepRoleArns" in skipped
    assert "a watched source was not swept" in caplog.text


@pytest.fixture
def accounts_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto keeps accounts apart by the credentials STS issued, unless MOTO_ACCOUNT_ID puts every call in
    one account: this account's calls then go to moto's default account, the other's to its own."""
    monkeypatch.delenv("MOTO_ACCOUNT_ID")


def test_a_source_in_another_account_is_swept_through_the_role_named_for_it(
    accounts_apart: None, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = cloud.create_image_service("web-staging", tag="latest")
    cloud.apply_rules(
        [
            {
                "id": "web-staging",
                "service": service,
                "image": {"repository": "web", "tag": "latest", "account": OTHER_ACCOUNT},
            }
        ]
    )
    cloud.sim.calls.clear()
    theirs = put_image("latest", ecr=ecr_in(OTHER_ACCOUNT))
    ours = put_image("latest")  # this account's repository of the same name is not the rule's
    monkeypatch.setenv("SWEEP_ROLE_ARNS", SWEEP_ROLE)
    runtime.reset()
    answer = sweep(cloud)
    assert answer["skipped"] == []
    (deployment,) = cloud.deployments(service)
    assert (deployment.account, deployment.digest) == (OTHER_ACCOUNT, theirs)
    assert ours != theirs


def ecr_in(account: str) -> Any:
    """An ECR client acting in `account` (moto keeps accounts apart by the credentials STS issued)."""
    granted = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/test-setup", RoleSessionName="setup"
    )["Credentials"]
    return boto3.client(
        "ecr",
        region_name=REGION,
        aws_access_key_id=granted["AccessKeyId"],
        aws_secret_access_key=granted["SecretAccessKey"],
        aws_session_token=granted["SessionToken"],
    )


# --- CodeCommit ------------------------------------------------------------------------------------


@pytest.fixture
def app_service(cloud: Cloud) -> str:
    service = cloud.create_code_service("app-code", CODECOMMIT_URL, "main")
    cloud.apply_rules(
        [
            {
                "id": "app",
                "service": service,
                "code": {"provider": "codecommit", "repository": "app", "branch": "main"},
            }
        ]
    )
    cloud.sim.calls.clear()
    return service


@pytest.fixture
def codecommit(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The sweeper's CodeCommit client, stubbed: every call must be one the test expects."""
    client = boto3.client("codecommit", region_name=REGION)
    stubber = Stubber(client)
    patched: Callable[..., Any] = runtime.client

    def with_codecommit(service: str, region: str | None = None) -> Any:
        return client if service == "codecommit" else patched(service, region)

    monkeypatch.setattr(runtime, "client", with_codecommit)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def head_is(stubber: Stubber, commit: str, branch: str = "main") -> None:
    stubber.add_response(
        "get_branch",
        {"branch": {"branchName": branch, "commitId": commit}},
        {"repositoryName": "app", "branchName": branch},
    )


def test_a_branch_head_whose_event_was_lost_is_deployed_and_the_first_look_is_only_a_baseline(
    cloud: Cloud, app_service: str, codecommit: Stubber
) -> None:
    head_is(codecommit, C1)
    assert sweep(cloud)["found"] == []  # what the branch held when it started being watched
    head_is(codecommit, C2)
    assert len(sweep(cloud)["found"]) == 1
    (deployment,) = cloud.deployments(app_service)
    assert (deployment.commit, deployment.previous_commit, deployment.trigger) == (C2, C1, "sweep")
    assert len(cloud.calls("StartDeployment")) == 1
    head_is(codecommit, C2)
    assert sweep(cloud)["found"] == []  # looked up once, never again
    assert len(cloud.calls("StartDeployment")) == 1


def test_a_branch_pattern_lists_the_branches_and_asks_only_for_those_it_takes(
    cloud: Cloud, codecommit: Stubber
) -> None:
    service = cloud.create_code_service("app-code", CODECOMMIT_URL, "release/1")
    code = {"provider": "codecommit", "repository": "app", "branch_glob": "release/*"}
    cloud.apply_rules([{"id": "app", "service": service, "code": code}])
    codecommit.add_response("list_branches", {"branches": ["main", "release/1"]}, {"repositoryName": "app"})
    head_is(codecommit, C1, "release/1")
    sweep(cloud)
    codecommit.add_response("list_branches", {"branches": ["main", "release/1"]}, {"repositoryName": "app"})
    head_is(codecommit, C3, "release/1")
    assert len(sweep(cloud)["found"]) == 1
    assert [d.branch for d in cloud.deployments(service)] == ["release/1"]


def test_one_source_that_fails_does_not_stop_the_others_and_is_swept_again_next_time(
    cloud: Cloud, staging: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = cloud.create_image_service("api-staging", tag="latest")
    cloud.apply_rules(
        [
            {"id": "web-staging", "service": staging, "image": {"repository": "web", "tag": "latest"}},
            {"id": "api-staging", "service": other, "image": {"repository": "api", "tag": "latest"}},
        ]
    )
    put_image("latest", repository="api")
    put_image("latest", repository="web")
    from pushdeploy.adapters import sources

    real_images = sources.SourceReader.images

    def api_fails(self: Any, account: str, region: str, repository: str) -> Any:
        if repository == "api":
            raise RuntimeError("DynamoDB is having a bad day")
        return real_images(self, account, region, repository)

    monkeypatch.setattr(sources.SourceReader, "images", api_fails)
    answer = sweep(cloud)
    assert answer["failed"] == ["ecr 111122223333/us-east-1/api"]
    assert len(answer["found"]) == 1  # web's lost push is deployed all the same
    monkeypatch.setattr(sources.SourceReader, "images", real_images)
    assert len(sweep(cloud)["found"]) == 1  # api's mark did not move: its push is found next time
    assert [d.trigger for d in cloud.deployments(other)] == ["sweep"]


def test_a_tag_moved_onto_an_older_image_whose_event_was_lost_is_deployed_by_the_sweep(
    cloud: Cloud, staging: str
) -> None:
    """ECR keeps an image's first push time when a tag moves onto it: the sweep follows the tag itself."""
    first = put_image("latest")
    cloud.push_image("latest", first)  # its event came: deployed
    cloud.finish_operations()
    older = put_image("build-7")  # a build, not deployed by this rule
    cloud.advance(600)
    sweep(cloud)  # looks at the tags: latest -> first
    tag_image(older, "latest")  # the re-tag's event is lost
    cloud.advance(60)
    answer = sweep(cloud)
    assert len(answer["found"]) == 1
    (_, swept) = cloud.deployments(staging)
    assert (swept.digest, swept.tag, swept.trigger) == (older, "latest", "sweep")
    assert sweep(cloud)["found"] == []  # found once


def test_a_sweep_that_died_before_recording_its_push_is_finished_by_the_next_even_after_the_late_event(
    cloud: Cloud, staging: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pushdeploy.adapters.ledger import Ledger

    # Two rules deploy the push, so its record is written after both admissions (a push one rule deploys
    # is recorded in its admission's transaction, and cannot be deployed unrecorded).
    preview = cloud.create_image_service("web-preview", tag="latest")
    cloud.apply_rules(
        [
            {"id": "web-staging", "service": staging, "image": {"repository": "web", "tag": "latest"}},
            {"id": "web-preview", "service": preview, "image": {"repository": "web", "tag": "latest"}},
        ]
    )
    digest = put_image("latest")
    real_record = Ledger.record_change

    def dies(self: Ledger, change_id: str, attributes: Any, expires_at: Any) -> bool:
        raise RuntimeError("the sweeper's Lambda timed out here")

    with monkeypatch.context() as patch:
        patch.setattr(Ledger, "record_change", dies)
        assert sweep(cloud)["failed"] == ["ecr 111122223333/us-east-1/web"]  # deployed, not recorded
    assert Ledger.record_change is real_record
    (deployment,) = cloud.deployments(staging)
    assert deployment.change_id is not None
    assert cloud.ledger.change(deployment.change_id) is None
    shown = cloud.ledger.change(deployment.change_id, from_decisions=True)  # as `changes show` reads it
    assert shown is not None
    assert deployment.id in {decision["deployment"] for decision in shown["decisions"]}
    cloud.push_image("latest", digest)  # the late event: recorded, deploys nothing more
    sweep(cloud)
    records = {r["change_id"]: r for r in change_records(cloud, digest)}
    assert deployment.change_id in records  # the sweep's own change is recorded after all
    assert records[deployment.change_id]["trigger"] == "sweep"
    assert len(cloud.deployments(staging)) == 1
    assert len(cloud.deployments(preview)) == 1
