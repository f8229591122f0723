"""Freezes, windows and approvals end to end on the local cloud, with its own clock: a push inside a
freeze is held and deploys by itself on the reconciler's tick once the freeze ends; one outside its
window waits; one that needs an approval starts on `pushdeploy --local approve`, which records who."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.e2e.cloud import LocalCloud, wait_until

FREEZE_SECONDS = 8


def semver_service(local_cloud: LocalCloud, tmp_path: Path, name: str, gates: dict[str, Any]) -> str:
    service = local_cloud.create_image_service(name, name, tag="v1.0.0")
    rule = {"id": name, "service": service, "image": {"repository": name, "semver": "^1.0.0"}, "gates": gates}
    local_cloud.apply_rules(tmp_path, [rule])
    return service


def newest_in(
    local_cloud: LocalCloud, service: str, statuses: set[str], timeout: float = 30.0
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        listed = local_cloud.deployments(service)
        return listed[0] if listed and listed[0]["status"] in statuses else None

    return wait_until(found, timeout=timeout)


def test_a_push_during_a_freeze_is_held_and_deploys_when_the_freeze_ends(
    local_cloud: LocalCloud, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    freeze = {
        "from": (now - timedelta(minutes=1)).isoformat(),
        "to": (now + timedelta(seconds=FREEZE_SECONDS)).isoformat(),
        "reason": "e2e freeze",
    }
    service = semver_service(local_cloud, tmp_path, "e2e-frozen", {"freeze": [freeze]})
    digest = local_cloud.cli("push-image", "e2e-frozen:v1.1.0").strip()
    held = newest_in(local_cloud, service, {"held"})
    assert (held["digest"], held["held_by"]) == (digest, ["freeze"])
    assert "frozen (e2e freeze)" in held["detail"]
    assert local_cloud.deploy_operations(service) == []
    deployed = newest_in(local_cloud, service, {"succeeded"}, timeout=FREEZE_SECONDS + 30)
    assert deployed["id"] == held["id"]
    started = datetime.fromisoformat(deployed["started_at"].replace("Z", "+00:00"))
    assert started >= datetime.fromisoformat(freeze["to"])  # never inside the freeze


def test_a_push_outside_its_window_waits(local_cloud: LocalCloud, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    closed = {
        "days": "mon-sun",
        "from": f"{(now.hour + 12) % 24:02d}:00",
        "to": f"{(now.hour + 13) % 24:02d}:00",
        "tz": "UTC",
    }
    service = semver_service(local_cloud, tmp_path, "e2e-windowed", {"windows": [closed]})
    local_cloud.cli("push-image", "e2e-windowed:v1.1.0")
    held = newest_in(local_cloud, service, {"held"})
    assert held["held_by"] == ["window"]
    assert "deploys when one opens" in held["detail"]


def test_an_approval_by_the_cli_starts_the_held_deployment_and_records_who(
    local_cloud: LocalCloud, tmp_path: Path
) -> None:
    service = semver_service(
        local_cloud, tmp_path, "e2e-approved", {"approval": {"required": True, "timeout": "1h"}}
    )
    local_cloud.cli("push-image", "e2e-approved:v1.1.0")
    held = newest_in(local_cloud, service, {"held"})
    assert held["held_by"] == ["approval"]
    approved = json.loads(local_cloud.cli("approve", held["id"], "--reason", "e2e", "--json"))
    assert approved["gates"]["approval"]["reason"] == "e2e"
    assert approved["gates"]["approval"]["by"]
    deployed = local_cloud.settled_deployment(service)
    assert (deployed["id"], deployed["status"]) == (held["id"], "succeeded")
