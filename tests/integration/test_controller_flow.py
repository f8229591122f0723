"""The controller through its real handlers: pushes become App Runner deployments, one at a time per
service, each recorded until it settles. moto holds DynamoDB, SQS and EventBridge; the App Runner
simulator keeps App Runner's rules (one operation at a time, operations take time, rollbacks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pushdeploy import runtime
from pushdeploy.adapters.rules_store import RulesStore
from tests.integration.concurrency import (
    both_read_before_either_writes,
    in_two_threads,
    separate_containers,
)
from tests.integration.harness import ACCOUNT, REGION, REGISTRY, TABLES, Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 20)]
CODECOMMIT_URL = "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app"


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
    """EventBridge delivers at least once: the same event again is answered from its change's record (no
    idempotency table), naming the same deployment, and nothing is decided or deployed again."""
    event = cloud.ecr_push_event("latest", DIGESTS[0])
    first = cloud.invoke("image_pushed", event)
    writes = _ledger_writes(cloud)
    second = cloud.invoke("image_pushed", event)
    assert second == first
    (deployment,) = cloud.deployments(services["staging"])
    assert first["deployments"] == [deployment.id]
    assert len(cloud.calls("StartDeployment")) == 1
    assert writes() == []  # read, not written again
    assert [e["detail-type"] for e in cloud.published()] == ["Deployment Started"]


def test_duplicate_commit_event_gives_one_deployment(cloud: Cloud) -> None:
    service = cloud.create_code_service("app-code", CODECOMMIT_URL)
    code = {"provider": "codecommit", "repository": "app", "branch": "main"}
    cloud.apply_rules([{"id": "app", "service": service, "code": code}])
    event = _codecommit_event(cloud, "c" * 40, "b" * 40)
    first = cloud.invoke("commit_pushed", event)
    second = cloud.invoke("commit_pushed", event)
    assert second == first
    (deployment,) = cloud.deployments(service)
    assert first["deployments"] == [deployment.id]
    assert len(cloud.calls("StartDeployment")) == 1


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # one flush took both's metrics
def test_the_same_event_delivered_twice_at_once_deploys_once(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one event in two containers at once, both past reading the change's record and
    its deployment before either writes: the admission transaction lets one in, the other is told its
    deployment exists (DuplicateDeployment) and reports it; the change's record is written once."""
    event = cloud.ecr_push_event("latest", DIGESTS[0])
    separate_containers(cloud, monkeypatch)
    both_read_before_either_writes()
    answers = in_two_threads(lambda: cloud.invoke("image_pushed", event))

    (deployment,) = cloud.deployments(services["staging"])
    assert len(cloud.calls("StartDeployment")) == 1
    assert [answer["deployments"] for answer in answers] == [[deployment.id], [deployment.id]]
    record = cloud.ledger.change(answers[0]["changes"][0])
    assert record is not None
    assert [d["deployment"] for d in record["decisions"] if d["rule"] == "web-staging"] == [deployment.id]
    assert cloud.invoke("image_pushed", event)["deployments"] == [deployment.id]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_delivery_that_loses_the_admission_may_write_the_record_and_names_the_deployment(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries at once: B has read everything and waits before its first write while A commits
    its admission; A then waits until B has answered, so B's change record is the one written. B's
    admission fails on the deployment A created (DuplicateDeployment): its answer and the record name A's
    deployment."""
    event = cloud.ecr_push_event("latest", DIGESTS[0])
    separate_containers(cloud, monkeypatch)
    b_reached_write, a_committed, b_done = threading.Event(), threading.Event(), threading.Event()
    names: dict[int, str] = {}
    steps: list[str] = []

    def before_write(model: Any, **_: Any) -> None:
        who = names.get(threading.get_ident())
        if who == "B" and "b waits" not in steps:
            steps.append("b waits")
            b_reached_write.set()
            assert a_committed.wait(20)
        elif who == "A" and model.name == "TransactWriteItems" and "a commits" not in steps:
            assert b_reached_write.wait(20)
            steps.append("a commits")

    def after_write(model: Any, **_: Any) -> None:
        who = names.get(threading.get_ident())
        if who == "A" and model.name == "TransactWriteItems" and "a committed" not in steps:
            steps.append("a committed")
            a_committed.set()
            assert b_done.wait(20)

    dynamodb = runtime.client("dynamodb")
    for write in ("TransactWriteItems", "PutItem", "UpdateItem"):
        dynamodb.meta.events.register(f"before-call.dynamodb.{write}", before_write)
        dynamodb.meta.events.register(f"after-call.dynamodb.{write}", after_write)
    answers: dict[str, dict[str, Any]] = {}

    def deliver(who: str) -> None:
        names[threading.get_ident()] = who
        try:
            answers[who] = cloud.invoke("image_pushed", event)
        finally:
            if who == "B":
                b_done.set()

    threads = [threading.Thread(target=deliver, args=(who,)) for who in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert steps == ["b waits", "a commits", "a committed"]
    (deployment,) = cloud.deployments(services["staging"])
    assert len(cloud.calls("StartDeployment")) == 1
    assert answers["A"]["deployments"] == answers["B"]["deployments"] == [deployment.id]
    record = cloud.ledger.change(answers["A"]["changes"][0])
    assert record is not None
    assert [d["deployment"] for d in record["decisions"] if d["rule"] == "web-staging"] == [deployment.id]


def _ledger_writes(cloud: Cloud) -> Callable[[], list[str]]:
    """From now on, the write operations the handlers send to DynamoDB."""
    seen: list[str] = []

    def note(model: Any, **_: Any) -> None:
        if model.name in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"):
            seen.append(model.name)

    runtime.client("dynamodb").meta.events.register("before-call.dynamodb", note)
    return lambda: list(seen)


def _codecommit_event(cloud: Cloud, commit: str, previous: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "codecommit-dup-1",
        "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit",
        "account": ACCOUNT,
        "time": cloud.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:codecommit:{REGION}:{ACCOUNT}:app"],
        "detail": {
            "commitId": commit,
            "oldCommitId": previous,
            "event": "referenceUpdated",
            "referenceFullName": "refs/heads/main",
            "referenceName": "main",
            "referenceType": "branch",
            "repositoryName": "app",
        },
    }


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
