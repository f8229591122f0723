"""The controller through its real handlers: pushes become App Runner deployments, one at a time per
service, each recorded until it settles. moto holds DynamoDB, SQS and EventBridge; the App Runner
simulator keeps App Runner's rules (one operation at a time, operations take time, rollbacks)."""

from __future__ import annotations

import json

from pushdeploy.adapters.rules_store import RulesStore
from tests.integration.harness import REGISTRY, TABLES, Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 20)]


def test_exact_tag_push_starts_a_deployment_that_succeeds(cloud: Cloud, services: dict[str, str]) -> None:
    cloud.push_image("latest", DIGESTS[0])

    assert cloud.calls("StartDeployment") == [{"ServiceArn": services["staging"]}]
    (deployment,) = cloud.deployments(services["staging"])
    assert (deployment.status, deployment.digest) == ("in_progress", DIGESTS[0])
    assert deployment.operation_id is not None
    assert len(deployment.operation_id) == 36

    cloud.finish_operations()
    (deployment,) = cloud.deployments(services["staging"])
    assert deployment.status == "succeeded"
    assert deployment.operation_status == "SUCCEEDED"
    assert deployment.settled_at is not None
    kinds = [event["detail-type"] for event in cloud.published()]
    assert kinds == ["Deployment Started", "Deployment Succeeded"]


def test_semver_push_pins_the_digest_with_update_service(cloud: Cloud, services: dict[str, str]) -> None:
    cloud.push_image("v1.4.0", DIGESTS[1])

    (update,) = cloud.calls("UpdateService")
    pinned = f"{REGISTRY}/web@{DIGESTS[1]}"
    assert update["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"] == pinned
    # The rest of the image block and the access role are carried over from DescribeService.
    assert update["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"] == {"Port": "8080"}
    assert "AccessRoleArn" in update["SourceConfiguration"]["AuthenticationConfiguration"]
    cloud.finish_operations()
    assert cloud.statuses(services["prod"]) == ["succeeded"]
    assert cloud.configured_image(services["prod"]) == pinned


def test_push_while_in_flight_is_queued_then_started_after_settle(
    cloud: Cloud, services: dict[str, str]
) -> None:
    cloud.push_image("v1.4.0", DIGESTS[1])
    cloud.push_image("v1.5.0", DIGESTS[2])
    assert cloud.statuses(services["prod"]) == ["in_progress", "queued"]
    assert len(cloud.calls("UpdateService")) == 1

    cloud.finish_operations()
    assert cloud.statuses(services["prod"]) == ["succeeded", "in_progress"]
    cloud.finish_operations()
    assert cloud.statuses(services["prod"]) == ["succeeded", "succeeded"]
    assert cloud.configured_image(services["prod"]).endswith(DIGESTS[2])


def test_burst_in_flight_keeps_only_the_newest_waiting(cloud: Cloud, services: dict[str, str]) -> None:
    cloud.push_image("v1.4.0", DIGESTS[1])
    for number, version in enumerate(["v1.5.0", "v1.6.0", "v1.7.0"], start=2):
        cloud.push_image(version, DIGESTS[number])
    assert cloud.statuses(services["prod"]) == ["in_progress", "superseded", "superseded", "queued"]
    _first, second, third, newest = cloud.deployments(services["prod"])
    assert second.superseded_by == third.id
    assert third.superseded_by == newest.id

    cloud.finish_operations()
    cloud.finish_operations()
    assert cloud.statuses(services["prod"]) == ["succeeded", "superseded", "superseded", "succeeded"]
    assert len(cloud.calls("UpdateService")) == 2
    assert cloud.configured_image(services["prod"]).endswith(DIGESTS[4])
    kinds = [event["detail-type"] for event in cloud.published()]
    assert kinds.count("Deployment Superseded") == 2


def test_duplicate_event_gives_one_deployment(cloud: Cloud, services: dict[str, str]) -> None:
    event = cloud.ecr_push_event("latest", DIGESTS[0])
    cloud.invoke("image_pushed", event)
    cloud.invoke("image_pushed", event)
    assert len(cloud.calls("StartDeployment")) == 1
    assert len(cloud.deployments(services["staging"])) == 1


def test_same_digest_under_several_tags_deploys_once_per_service(
    cloud: Cloud, services: dict[str, str]
) -> None:
    glob = cloud.create_image_service("web-glob", tag="latest")
    cloud.apply_rules(
        [
            {"id": "web-glob", "service": glob, "image": {"repository": "web", "tag_glob": "v1*"}},
        ]
    )
    cloud.push_image("v1.4", DIGESTS[3])
    second = cloud.push_image("v1.4.0", DIGESTS[3])
    cloud.push_image("v1", DIGESTS[3])
    assert cloud.statuses(glob) == ["in_progress"]

    change = cloud.ledger.change(second["changes"][0])
    assert change is not None
    (decision,) = [d for d in change["decisions"] if d["rule"] == "web-glob"]
    assert decision["action"] == "update_service"
    assert decision["deployment"] is None
    assert decision["note"].startswith("not deployed: already being deployed as ")


def test_rollback_is_recorded_as_rolled_back_not_success(cloud: Cloud, services: dict[str, str]) -> None:
    cloud.sim.fail_next(services["prod"])
    cloud.push_image("v1.4.0", DIGESTS[1])
    cloud.finish_operations()

    (deployment,) = cloud.deployments(services["prod"])
    assert deployment.status == "rolled_back"
    assert deployment.operation_status == "ROLLBACK_SUCCEEDED"
    assert "not live" in (deployment.detail or "")
    assert cloud.configured_image(services["prod"]).endswith(":v1.0.0")
    assert [e["detail-type"] for e in cloud.published()][-1] == "Deployment Rolled Back"


def test_lost_apprunner_event_is_settled_by_the_reconciler(cloud: Cloud, services: dict[str, str]) -> None:
    cloud.sim.lose_events(services["staging"], count=10)
    cloud.push_image("latest", DIGESTS[0])
    cloud.settle_operations()
    assert cloud.deliver_apprunner_events() == 0
    assert cloud.statuses(services["staging"]) == ["in_progress"]

    report = cloud.reconcile()
    assert report["services"] == 1
    assert cloud.statuses(services["staging"]) == ["succeeded"]


def test_reconciler_costs_one_query_when_nothing_is_in_flight(cloud: Cloud, services: dict[str, str]) -> None:
    assert cloud.reconcile() == {"status": "reconciled", "services": 0, "failures": 0}
    assert cloud.sim.calls == []


def test_a_stored_rule_this_version_refuses_is_skipped_and_the_next_apply_removes_it(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """A rule stored by an older pushdeploy (here a lookahead regex, which RE2 cannot run) must not stop
    the other rules of its repository from deciding, and `rules apply` cleans it up."""
    stale = {
        "id": "old-lookahead",
        "service": services["staging"],
        "image": {"repository": "web", "tag_regex": "^(?!dev).*$"},
        "dry_run": False,
    }
    key = {"S": "ecr|111122223333|us-east-1|web"}
    cloud.dynamodb.put_item(
        TableName=TABLES["RulesTable"],
        Item={"source_key": key, "rule_id": {"S": "old-lookahead"}, "rule": {"S": json.dumps(stale)}},
    )
    answer = cloud.push_image("latest", "sha256:" + "5" * 64)
    assert answer["status"] == "decided"
    assert cloud.statuses(services["staging"]) == ["in_progress"]  # web-staging still decided

    store = RulesStore(cloud.dynamodb, TABLES["RulesTable"])
    store.apply(store.all_rules(), store.all_rules())
    stored = cloud.dynamodb.scan(TableName=TABLES["RulesTable"])["Items"]
    assert "old-lookahead" not in {item["rule_id"]["S"] for item in stored}
