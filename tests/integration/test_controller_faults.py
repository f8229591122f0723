"""The controller when things go wrong: crashes, throttling, busy services, stale versions, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from pushdeploy.runner import Runner
from tests.integration.harness import Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 20)]


def test_crash_between_start_and_record_is_adopted_without_a_second_call(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Lambda died before writing the operation id")

    event = cloud.ecr_push_event("latest", DIGESTS[0])
    with monkeypatch.context() as patch:
        patch.setattr(Runner, "_record_start", crash)
        with pytest.raises(ConnectionError):
            cloud.invoke("image_pushed", event)
    assert len(cloud.calls("StartDeployment")) == 1
    assert cloud.statuses(services["staging"]) == ["starting"]

    # Lambda retries the event: the deployment is already recorded, so App Runner is not called again.
    cloud.invoke("image_pushed", event)
    assert len(cloud.calls("StartDeployment")) == 1

    cloud.advance(180)  # past the start grace period; the operation has finished meanwhile
    cloud.reconcile()
    (deployment,) = cloud.deployments(services["staging"])
    assert deployment.status == "succeeded"
    assert deployment.operation_id is not None
    assert deployment.adopted  # found by the reconciler, not started a second time
    assert deployment.operation_status == "SUCCEEDED"
    assert len(cloud.calls("StartDeployment")) == 1


def test_throttling_and_server_errors_still_deploy_in_the_end(cloud: Cloud, services: dict[str, str]) -> None:
    cloud.sim.throttle_next(count=6, operation="StartDeployment")
    cloud.sim.error_next(count=6, operation="StartDeployment")
    cloud.push_image("latest", DIGESTS[0])
    (deployment,) = cloud.deployments(services["staging"])
    assert deployment.status == "starting"  # left for the reconciler, not lost
    assert "unavailable" in (deployment.detail or "")

    for _ in range(6):
        cloud.advance(180)
        cloud.reconcile()
        if cloud.statuses(services["staging"]) == ["in_progress"]:
            break
    assert cloud.statuses(services["staging"]) == ["in_progress"]
    cloud.finish_operations()
    assert cloud.statuses(services["staging"]) == ["succeeded"]


def test_an_older_semver_tag_is_not_deployed(cloud: Cloud, services: dict[str, str]) -> None:
    cloud.push_image("v1.5.0", DIGESTS[1])
    cloud.finish_operations()
    older = cloud.push_image("v1.4.0", DIGESTS[2])
    same = cloud.push_image("v1.5.0", DIGESTS[3])

    assert cloud.statuses(services["prod"]) == ["succeeded"]
    assert len(cloud.calls("UpdateService")) == 1
    change = cloud.ledger.change(older["changes"][0])
    assert change is not None
    (decision,) = [d for d in change["decisions"] if d["rule"] == "web-prod"]
    assert decision["note"].startswith("not deployed: v1.4.0 is older than or equal to v1.5.0, live since ")
    assert same["deployments"] == []


def test_a_service_busy_with_someone_elses_operation_queues_the_deployment(
    cloud: Cloud, services: dict[str, str]
) -> None:
    cloud.apprunner.start_deployment(ServiceArn=services["staging"])  # a person deploys by hand
    cloud.push_image("latest", DIGESTS[0])
    (deployment,) = cloud.deployments(services["staging"])
    assert deployment.status == "queued"
    assert "busy" in (deployment.detail or "")

    cloud.finish_operations()  # the manual operation ends; its event frees the service
    assert cloud.statuses(services["staging"]) == ["in_progress"]
    cloud.finish_operations()
    assert cloud.statuses(services["staging"]) == ["succeeded"]


def test_a_refused_deployment_is_an_error_and_the_next_one_starts(
    cloud: Cloud, services: dict[str, str]
) -> None:
    code_service = cloud.create_code_service("code-app", "https://github.com/acme/app", "main")
    # A mistaken rule: digest pinning on a code-based service. App Runner cannot do it.
    cloud.apply_rules(
        [
            {"id": "wrong", "service": code_service, "image": {"repository": "web", "tag_glob": "v*"}},
        ]
    )
    cloud.push_image("v9", DIGESTS[5])
    (deployment,) = cloud.deployments(code_service)
    assert deployment.status == "error"
    assert "deploys from code" in (deployment.detail or "")
    assert cloud.ledger.slot(code_service).active is None


def test_an_operation_past_the_bound_is_flagged_stuck(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUCK_AFTER_SECONDS", "600")
    cloud.sim.operation_seconds = 3600
    cloud.push_image("latest", DIGESTS[0])
    cloud.advance(700)
    cloud.reconcile()
    (deployment,) = cloud.deployments(services["staging"])
    assert deployment.status == "in_progress"  # still followed: App Runner has not said how it ended
    assert deployment.stuck_at is not None
    assert "has not settled after 11 minutes" in (deployment.detail or "")
    assert "Deployment Stuck" in [event["detail-type"] for event in cloud.published()]


def test_dry_run_rules_record_and_never_call_app_runner(cloud: Cloud, services: dict[str, str]) -> None:
    preview = cloud.create_image_service("web-preview", tag="latest")
    cloud.apply_rules(
        [
            {
                "id": "preview",
                "service": preview,
                "image": {"repository": "web", "tag_glob": "*"},
                "dry_run": True,
            },
        ]
    )
    cloud.sim.calls.clear()
    cloud.push_image("anything", DIGESTS[6])
    assert cloud.statuses(preview) == ["dry_run"]
    assert cloud.calls("UpdateService") == []


def test_malformed_event_goes_to_the_dead_letter_queue_without_retry(
    cloud: Cloud, services: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    event = cloud.ecr_push_event("latest", DIGESTS[0])
    event["account"] = "not-an-account"
    answer = cloud.invoke("image_pushed", event)  # returns: Lambda must not retry what can never work

    assert answer == {"status": "rejected"}
    (parked,) = cloud.dead_letters()
    assert parked["event"]["id"] == event["id"]
    assert "account" in parked["error"]
    assert cloud.deployments(services["staging"]) == []


def test_a_transient_fault_raises_so_lambda_retries(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    event = cloud.ecr_push_event("latest", DIGESTS[0])
    with monkeypatch.context() as patch:
        patch.setattr("pushdeploy.adapters.ledger.Ledger.reads_for_change", unreachable)
        with pytest.raises(EndpointConnectionError):
            cloud.invoke("image_pushed", event)
    assert cloud.dead_letters() == []
    # The retry (Lambda's own) succeeds: nothing of the failed attempt stands in its way.
    cloud.invoke("image_pushed", event)
    assert cloud.statuses(services["staging"]) == ["in_progress"]


def test_a_webhook_change_forwarded_over_eventbridge_deploys(cloud: Cloud) -> None:
    code_service = cloud.create_code_service("hello", "https://github.com/Codertocat/Hello-World", "master")
    cloud.apply_rules(
        [
            {
                "id": "hello",
                "service": code_service,
                "code": {"provider": "github", "repository": "codertocat/hello-world", "branch": "master"},
            }
        ]
    )
    change = {
        "kind": "commit",
        "source": "github",
        "account": None,
        "region": None,
        "repository": "Codertocat/Hello-World",
        "tag": None,
        "digest": None,
        "branch": "master",
        "commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    }
    event = {
        "version": "0",
        "id": "e1",
        "source": "pushdeploy.webhook",
        "detail-type": "Change Pushed",
        "account": "111122223333",
        "region": "us-east-1",
        "time": "2026-11-26T08:00:00Z",
        "resources": [],
        "detail": {"change": change, "delivery_id": "delivery-1", "provider": "github", "position": 0},
    }
    cloud.invoke("commit_pushed", event)
    redelivered = {**event, "id": "e2"}  # GitHub redelivery: new EventBridge event, same delivery id
    cloud.invoke("commit_pushed", redelivered)
    assert cloud.statuses(code_service) == ["in_progress"]
    assert cloud.calls("StartDeployment") == [{"ServiceArn": code_service}]
