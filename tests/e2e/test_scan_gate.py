"""The scan gate end to end on the local cloud: `push-image` to a rule with a scan gate is held until
`simulate scan` ends the image's scan (ECR's DescribeImageScanFindings answer and the `ECR Image Scan`
event, routed by the template's rule to the image-pushed function); a repository that scans on push is
scanned, and deployed, by itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.cloud import LocalCloud, wait_until

SCAN_GATE = {"scan": {"max": {"critical": 0, "high": 0}, "wait": "30m", "on_timeout": "hold"}}


def gated_service(local_cloud: LocalCloud, tmp_path: Path, name: str) -> str:
    service = local_cloud.create_image_service(name, name, tag="latest")
    rule = {
        "id": name,
        "service": service,
        "image": {"repository": name, "tag_glob": "latest"},  # a scan gate needs a rule that pins the digest
        "gates": SCAN_GATE,
    }
    local_cloud.apply_rules(tmp_path, [rule])
    return service


def newest_in(local_cloud: LocalCloud, service: str, statuses: set[str]) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        listed = local_cloud.deployments(service)
        return listed[0] if listed and listed[0]["status"] in statuses else None

    return wait_until(found)


def test_a_push_held_for_its_scan_deploys_once_the_scan_is_clean(
    local_cloud: LocalCloud, tmp_path: Path
) -> None:
    service = gated_service(local_cloud, tmp_path, "e2e-scanned")
    digest = local_cloud.cli("push-image", "e2e-scanned:latest").strip()
    held = newest_in(local_cloud, service, {"held"})
    assert (held["digest"], held["held_by"]) == (digest, ["scan"])
    assert local_cloud.deploy_operations(service) == []

    said = local_cloud.cli("simulate", "scan", f"e2e-scanned@{digest}", "--medium", "2")
    assert said.strip().endswith("found 2 medium; ECR Image Scan event sent")
    deployed = local_cloud.settled_deployment(service)
    assert (deployed["id"], deployed["status"]) == (held["id"], "succeeded")


def test_a_scan_over_the_limits_rejects_the_push(local_cloud: LocalCloud, tmp_path: Path) -> None:
    service = gated_service(local_cloud, tmp_path, "e2e-vulnerable")
    digest = local_cloud.cli("push-image", "e2e-vulnerable:latest").strip()
    newest_in(local_cloud, service, {"held"})
    shown = json.loads(
        local_cloud.cli("simulate", "scan", f"e2e-vulnerable@{digest}", "--critical", "1", "--json")
    )
    assert (shown["status"], shown["counts"]["CRITICAL"]) == ("COMPLETE", 1)
    rejected = newest_in(local_cloud, service, {"rejected"})
    assert "the scan found 1 critical (max 0)" in rejected["detail"]
    assert local_cloud.deploy_operations(service) == []


def test_a_repository_that_scans_on_push_is_scanned_and_deployed_by_itself(
    local_cloud: LocalCloud, tmp_path: Path
) -> None:
    local_cloud.client("ecr").create_repository(
        repositoryName="e2e-scan-on-push", imageScanningConfiguration={"scanOnPush": True}
    )
    service = gated_service(local_cloud, tmp_path, "e2e-scan-on-push")
    digest = local_cloud.cli("push-image", "e2e-scan-on-push:latest").strip()
    deployed = local_cloud.settled_deployment(service)
    assert (deployed["digest"], deployed["status"]) == (digest, "succeeded")
