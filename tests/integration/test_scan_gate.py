"""The scan gate through the real handlers (DESIGN 4.7): a push's deployment waits `held` for its image's
scan; the scan's event (ECR basic scanning's `ECR Image Scan`, or enhanced scanning's `Inspector2 Scan`)
says when to look, and ECR's DescribeImageScanFindings (moto's, answering what `Cloud.record_scan` set)
says what was found. Within the rule's limits the deployment starts; over them it is `rejected`, naming
the counts; when no scan comes within `wait`, the reconciler applies `on_timeout`."""

from __future__ import annotations

from typing import Any

import pytest

from pushdeploy.domain.deployments import Deployment
from pushdeploy.local.inprocess import put_image
from tests.integration.concurrency import (
    both_read_before_either_writes,
    in_two_threads,
    separate_containers,
)
from tests.integration.harness import ACCOUNT, Cloud

WAIT_SECONDS = 30 * 60
LIMITS = {"critical": 0, "high": 1}


@pytest.fixture(autouse=True)
def ecr_in_the_rules_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's ECR registry is the account the rules and the events name."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)


def gated(cloud: Cloud, on_timeout: str = "hold") -> str:
    """web-prod follows semver ^1.0.0 of `web`, behind a scan gate: at most 0 critical and 1 high, 30
    minutes to wait for the scan."""
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    scan = {"max": LIMITS, "wait": "30m", "on_timeout": on_timeout}
    rule = {"id": "web-prod", "service": service, "image": {"repository": "web", "semver": "^1.0.0"}}
    cloud.apply_rules([{**rule, "gates": {"scan": scan}}])
    cloud.sim.calls.clear()
    cloud.published()
    return service


@pytest.fixture
def prod(cloud: Cloud) -> str:
    return gated(cloud)


def push(cloud: Cloud, tag: str = "v1.1.0") -> str:
    digest = put_image(tag)
    cloud.push_image(tag, digest)
    return digest


def only(cloud: Cloud, service: str) -> Deployment:
    (deployment,) = cloud.deployments(service)
    return deployment


def published_types(cloud: Cloud) -> list[str]:
    return [event["detail-type"] for event in cloud.published()]


def scanned(cloud: Cloud, event: dict[str, Any]) -> dict[str, Any]:
    answer = cloud.invoke("image_pushed", event)
    assert answer["status"] == "scanned"
    return answer


# --- a push waits for its scan --------------------------------------------------------------------------


def test_a_push_waits_held_for_its_images_scan_and_app_runner_is_not_called(cloud: Cloud, prod: str) -> None:
    push(cloud)
    held = only(cloud, prod)
    assert (str(held.status), held.held_by) == ("held", ("scan",))
    assert "waits for the image's scan (up to 30m)" in (held.detail or "")
    assert cloud.sim.calls == []
    assert published_types(cloud) == ["Deployment Held"]


def test_a_scan_within_the_limits_starts_it_and_records_the_counts(cloud: Cloud, prod: str) -> None:
    digest = push(cloud)
    held = only(cloud, prod)
    counts = {"HIGH": 1, "MEDIUM": 3}
    cloud.record_scan(digest, counts)
    answer = scanned(cloud, cloud.ecr_scan_event(digest, counts))
    assert answer["deployments"] == [held.id]
    started = only(cloud, prod)
    assert str(started.status) == "in_progress"
    assert started.gate_facts["scan"]["status"] == "COMPLETE"
    assert started.gate_facts["scan"]["counts"] == counts
    (update,) = cloud.calls("UpdateService")
    assert update["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"].endswith(f"@{digest}")
    cloud.finish_operations()
    assert str(only(cloud, prod).status) == "succeeded"


def test_a_scan_over_the_limits_rejects_it_naming_the_counts(cloud: Cloud, prod: str) -> None:
    digest = push(cloud)
    cloud.published()
    cloud.record_scan(digest, {"CRITICAL": 2, "HIGH": 3})
    scanned(cloud, cloud.ecr_scan_event(digest, {"CRITICAL": 2, "HIGH": 3}))
    rejected = only(cloud, prod)
    assert (str(rejected.status), rejected.held_by) == ("rejected", ())
    assert "2 critical (max 0)" in (rejected.detail or "")
    assert "3 high (max 1)" in (rejected.detail or "")
    assert rejected.settled_at is not None
    assert cloud.sim.calls == []
    assert published_types(cloud) == ["Deployment Rejected"]


def test_ecrs_findings_not_the_events_counts_decide(cloud: Cloud, prod: str) -> None:
    """The event only says when to look: DescribeImageScanFindings is the source of truth."""
    digest = push(cloud)
    cloud.record_scan(digest, {"CRITICAL": 1})
    scanned(cloud, cloud.ecr_scan_event(digest, {}))  # an event that claims no findings
    assert str(only(cloud, prod).status) == "rejected"
    assert cloud.sim.calls == []


def test_a_scan_of_the_same_digest_in_another_repository_opens_nothing(cloud: Cloud, prod: str) -> None:
    digest = push(cloud)
    answer = scanned(cloud, cloud.ecr_scan_event(digest, {}, repository="other"))
    assert answer["deployments"] == []
    assert str(only(cloud, prod).status) == "held"


def test_a_scan_event_delivered_twice_starts_the_deployment_once(cloud: Cloud, prod: str) -> None:
    """No idempotency record: the redelivery looks again and finds nothing held for that scan."""
    digest = push(cloud)
    cloud.record_scan(digest, {})
    event = cloud.ecr_scan_event(digest, {})
    held = only(cloud, prod)
    cloud.published()
    assert scanned(cloud, event)["deployments"] == [held.id]
    assert scanned(cloud, event)["deployments"] == []  # EventBridge's redelivery
    assert len(cloud.calls("UpdateService")) == 1
    assert str(only(cloud, prod).status) == "in_progress"
    assert published_types(cloud) == ["Deployment Started"]


def test_a_scan_event_delivered_twice_while_another_gate_holds_changes_nothing_more(cloud: Cloud) -> None:
    """Held for its scan and an approval: the scan's gate opens once; the redelivery finds the deployment
    held only for its approval and leaves it (and the scan it recorded) as it is."""
    service = cloud.create_image_service("web-prod", tag="v1.0.0")
    gates = {"scan": {"max": LIMITS, "wait": "30m"}, "approval": {"required": True, "timeout": "1h"}}
    image = {"repository": "web", "semver": "^1.0.0"}
    cloud.apply_rules([{"id": "web-prod", "service": service, "image": image, "gates": gates}])
    digest = push(cloud)
    cloud.record_scan(digest, {"HIGH": 1})
    event = cloud.ecr_scan_event(digest, {"HIGH": 1})
    scanned(cloud, event)
    after_first = only(cloud, service)
    assert (str(after_first.status), after_first.held_by) == ("held", ("approval",))
    cloud.published()
    cloud.sim.calls.clear()
    cloud.advance(60)
    assert scanned(cloud, event)["deployments"] == []
    assert only(cloud, service) == after_first
    assert published_types(cloud) == []
    assert cloud.sim.calls == []


def test_a_failed_scans_event_delivered_again_keeps_it_held_and_a_late_copy_changes_nothing(
    cloud: Cloud,
) -> None:
    """on_timeout hold: a failed scan's event delivered twice keeps the deployment held for its scan (the
    failure recorded again); once the scan is done again and the deployment started, a late copy of the
    failed scan's event finds nothing held for it."""
    service = gated(cloud, on_timeout="hold")
    digest = push(cloud)
    cloud.record_scan(digest, {}, status="FAILED")
    failed = cloud.ecr_scan_event(digest, {}, status="FAILED")
    scanned(cloud, failed)
    held = only(cloud, service)
    assert scanned(cloud, failed)["deployments"] == [held.id]
    again = only(cloud, service)
    assert (str(again.status), again.held_by, again.detail) == ("held", ("scan",), held.detail)
    assert again.gate_facts["scan"]["status"] == "FAILED"
    cloud.record_scan(digest, {"LOW": 1})
    scanned(cloud, cloud.ecr_scan_event(digest, {"LOW": 1}))
    assert scanned(cloud, failed)["deployments"] == []
    started = only(cloud, service)
    assert str(started.status) == "in_progress"
    assert started.gate_facts["scan"]["counts"] == {"LOW": 1}
    assert len(cloud.calls("UpdateService")) == 1


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # one flush took both's metrics
def test_a_scan_event_delivered_twice_at_once_starts_the_deployment_once(
    cloud: Cloud, prod: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of the scan's event in two containers at once, both past reading the held
    deployment before either writes: one records the scan and admits it, the other's writes are refused
    by their conditions (the scan already recorded, the deployment no longer held) and change nothing."""
    digest = push(cloud)
    cloud.record_scan(digest, {})
    event = cloud.ecr_scan_event(digest, {})
    cloud.published()
    separate_containers(cloud, monkeypatch)
    waited = both_read_before_either_writes()
    in_two_threads(lambda: scanned(cloud, event))
    assert len(waited) == 2
    assert len(cloud.calls("UpdateService")) == 1
    started = only(cloud, prod)
    assert str(started.status) == "in_progress"
    assert published_types(cloud) == ["Deployment Started"]


# --- enhanced scanning: Inspector's event ---------------------------------------------------------------


def test_an_inspector2_scan_within_the_limits_starts_it(cloud: Cloud, prod: str) -> None:
    """Enhanced scanning: ECR reports the image ACTIVE (scanned, watched continuously); Inspector's
    event names the repository by its ARN."""
    digest = push(cloud)
    cloud.record_scan(digest, {"HIGH": 1, "LOW": 7}, status="ACTIVE")
    answer = scanned(cloud, cloud.inspector_scan_event(digest, {"HIGH": 1, "LOW": 7}))
    assert answer["deployments"] == [only(cloud, prod).id]
    started = only(cloud, prod)
    assert str(started.status) == "in_progress"
    assert started.gate_facts["scan"]["counts"] == {"HIGH": 1, "LOW": 7}


def test_an_inspector2_scan_over_the_limits_rejects_it(cloud: Cloud, prod: str) -> None:
    digest = push(cloud)
    cloud.record_scan(digest, {"CRITICAL": 1}, status="ACTIVE")
    scanned(cloud, cloud.inspector_scan_event(digest, {"CRITICAL": 1}))
    rejected = only(cloud, prod)
    assert str(rejected.status) == "rejected"
    assert "1 critical (max 0)" in (rejected.detail or "")


def test_when_ecr_cannot_say_the_events_counts_are_used(cloud: Cloud, prod: str) -> None:
    """No scan readable in ECR (moto's ScanNotFoundException): the counts the event carries decide, its
    TOTAL left out."""
    digest = push(cloud)
    scanned(cloud, cloud.inspector_scan_event(digest, {"CRITICAL": 0, "HIGH": 2}))
    rejected = only(cloud, prod)
    assert str(rejected.status) == "rejected"
    assert rejected.gate_facts["scan"]["counts"] == {"CRITICAL": 0, "HIGH": 2}
    assert "2 high (max 1)" in (rejected.detail or "")


# --- a scan already there -------------------------------------------------------------------------------


def test_a_scan_complete_before_the_push_is_decided_is_used_at_once(cloud: Cloud, prod: str) -> None:
    digest = put_image("v1.1.0")
    cloud.record_scan(digest, {"MEDIUM": 2})  # scan on push finished before the push's event came
    cloud.push_image("v1.1.0", digest)
    started = only(cloud, prod)
    assert (str(started.status), started.held_by) == ("in_progress", ())
    assert started.gate_facts["scan"]["counts"] == {"MEDIUM": 2}
    assert len(cloud.calls("UpdateService")) == 1


def test_a_scan_over_the_limits_before_the_push_is_decided_rejects_it_at_once(
    cloud: Cloud, prod: str
) -> None:
    digest = put_image("v1.1.0")
    cloud.record_scan(digest, {"CRITICAL": 3})
    cloud.push_image("v1.1.0", digest)
    rejected = only(cloud, prod)
    assert str(rejected.status) == "rejected"
    assert "3 critical (max 0)" in (rejected.detail or "")
    assert cloud.sim.calls == []


# --- a scan that never comes ----------------------------------------------------------------------------


def test_before_the_wait_is_over_the_reconciler_keeps_it_held(cloud: Cloud, prod: str) -> None:
    push(cloud)
    cloud.advance(WAIT_SECONDS - 60)
    cloud.reconcile()
    held = only(cloud, prod)
    assert (str(held.status), held.held_by) == ("held", ("scan",))
    assert cloud.sim.calls == []


def test_on_timeout_hold_keeps_it_held_until_a_scan_comes(cloud: Cloud, prod: str) -> None:
    digest = push(cloud)
    cloud.advance(WAIT_SECONDS + 60)
    cloud.reconcile()
    held = only(cloud, prod)
    assert (str(held.status), held.held_by) == ("held", ("scan",))
    assert "no scan came within 30m; held (on_timeout: hold) until a scan comes" in (held.detail or "")
    assert cloud.sim.calls == []
    cloud.record_scan(digest, {})  # the scan comes at last
    scanned(cloud, cloud.ecr_scan_event(digest, {}))
    assert str(only(cloud, prod).status) == "in_progress"


def test_on_timeout_deploy_deploys_it_on_the_reconcilers_tick(cloud: Cloud) -> None:
    service = gated(cloud, on_timeout="deploy")
    digest = push(cloud)
    cloud.advance(WAIT_SECONDS + 60)
    cloud.reconcile()
    started = only(cloud, service)
    assert str(started.status) == "in_progress"
    (update,) = cloud.calls("UpdateService")
    assert update["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"].endswith(f"@{digest}")


def test_on_timeout_reject_rejects_it_on_the_reconcilers_tick(cloud: Cloud) -> None:
    service = gated(cloud, on_timeout="reject")
    push(cloud)
    cloud.published()
    cloud.advance(WAIT_SECONDS + 60)
    cloud.reconcile()
    rejected = only(cloud, service)
    assert str(rejected.status) == "rejected"
    assert "no scan came within 30m" in (rejected.detail or "")
    assert cloud.sim.calls == []
    assert published_types(cloud) == ["Deployment Rejected"]


def test_a_failed_scan_applies_on_timeout_at_once(cloud: Cloud) -> None:
    """ECR could not scan the image: no scan will come, so the gate does not wait out its 30 minutes."""
    service = gated(cloud, on_timeout="reject")
    digest = push(cloud)
    cloud.record_scan(digest, {}, status="FAILED")
    scanned(cloud, cloud.ecr_scan_event(digest, {}, status="FAILED"))
    rejected = only(cloud, service)
    assert str(rejected.status) == "rejected"
    assert "the scan ended FAILED" in (rejected.detail or "")


def test_a_scan_that_failed_and_was_done_again_opens_the_gate(cloud: Cloud) -> None:
    """on_timeout hold after a failed scan: held until a scan comes, and a scan done again does open it."""
    service = gated(cloud, on_timeout="hold")
    digest = push(cloud)
    cloud.record_scan(digest, {}, status="FAILED")
    scanned(cloud, cloud.ecr_scan_event(digest, {}, status="FAILED"))
    held = only(cloud, service)
    assert (str(held.status), held.held_by) == ("held", ("scan",))
    cloud.record_scan(digest, {"LOW": 1})
    scanned(cloud, cloud.ecr_scan_event(digest, {"LOW": 1}))
    started = only(cloud, service)
    assert str(started.status) == "in_progress"
    assert started.gate_facts["scan"]["counts"] == {"LOW": 1}
