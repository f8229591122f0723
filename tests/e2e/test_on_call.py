"""The on-call story, end to end on the local cloud, through the CLI as a person types it: a manual deploy
queued behind a running operation, a rollback pinned to the previous good digest, a pause during which
pushes are held and a resume that deploys the newest only, `status` showing drift after a change made by
hand, and `changes show` explaining a push that did not deploy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cloud import REGISTRY, LocalCloud, running_local_cloud, wait_until

pytestmark = pytest.mark.e2e

SETTLED = {"succeeded", "failed", "rolled_back", "superseded", "error", "dry_run", "rejected"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # Operations of three seconds: long enough to queue behind, short enough for a test.
    options = ("--operation-seconds", "3", "--reconcile-seconds", "1")
    with running_local_cloud(tmp_path_factory.mktemp("on-call-cloud"), *options) as running:
        yield running


def semver_service(cloud: LocalCloud, directory: Path, name: str) -> str:
    service = cloud.create_image_service(name, name, "v1.0.0")
    cloud.apply_rules(
        directory, [{"id": name, "service": service, "image": {"repository": name, "semver": ">=1.0.0"}}]
    )
    return service


def push(cloud: LocalCloud, repository: str, tag: str) -> str:
    """`pushdeploy --local push-image REPO:TAG`: the digest it printed."""
    out = cloud.cli("push-image", f"{repository}:{tag}", "--json")
    try:
        return str(json.loads(out)["digest"])
    except ValueError:
        return next(word for word in out.split() if word.startswith("sha256:"))


def json_out(cloud: LocalCloud, *args: str, expect: int = 0) -> Any:
    return json.loads(cloud.cli(*args, "--json", expect=expect))


def all_settled(cloud: LocalCloud, service: str, count: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        found = cloud.deployments(service)
        return (
            found if len(found) >= count and all(d["status"] in SETTLED | {"held"} for d in found) else None
        )

    return wait_until(check, timeout=60)


def configured(cloud: LocalCloud, service: str) -> str:
    described = cloud.client("apprunner").describe_service(ServiceArn=service)["Service"]
    return str(described["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"])


def test_a_manual_deploy_waits_for_the_running_operation_then_runs(cloud: LocalCloud, tmp_path: Path) -> None:
    service = semver_service(cloud, tmp_path, "oncall-manual")
    push(cloud, "oncall-manual", "v1.1.0")
    wait_until(lambda: [d for d in cloud.deployments(service) if d["status"] == "in_progress"])

    manual = json_out(cloud, "deploy", "oncall-manual", "--reason", "restart")
    assert manual["status"] == "queued"
    assert (manual["trigger"], manual["source"], manual["reason"]) == ("manual", "manual", "restart")
    assert manual["actor"]

    done = json_out(cloud, "deploy", "oncall-manual", "--wait", expect=0)
    assert done["status"] == "succeeded"
    settled = all_settled(cloud, service, 3)
    assert [d["status"] for d in settled].count("succeeded") >= 2


def test_rollback_pins_the_previous_good_digest(cloud: LocalCloud, tmp_path: Path) -> None:
    service = semver_service(cloud, tmp_path, "oncall-rollback")
    good = push(cloud, "oncall-rollback", "v1.1.0")
    all_settled(cloud, service, 1)
    bad = push(cloud, "oncall-rollback", "v1.2.0")
    all_settled(cloud, service, 2)
    assert configured(cloud, service).endswith(bad)

    rolled = json_out(cloud, "rollback", "oncall-rollback", "--reason", "v1.2.0 is slow", "--wait")
    assert rolled["status"] == "succeeded"
    assert rolled["trigger"] == "rollback"
    assert rolled["image"] == f"{REGISTRY}/oncall-rollback@{good}"
    assert configured(cloud, service) == f"{REGISTRY}/oncall-rollback@{good}"


def test_paused_pushes_are_held_and_resume_deploys_the_newest(cloud: LocalCloud, tmp_path: Path) -> None:
    service = semver_service(cloud, tmp_path, "oncall-pause")
    paused = json_out(cloud, "pause", "oncall-pause", "--reason", "incident 4711")
    assert paused["paused"]["reason"] == "incident 4711"

    digests = {tag: push(cloud, "oncall-pause", tag) for tag in ("v1.1.0", "v1.3.0", "v1.2.0")}
    held = wait_until(lambda: [d for d in cloud.deployments(service) if d["status"] == "held"][2:] and True)
    assert held
    (status,) = json_out(cloud, "status", "oncall-pause")
    assert status["paused"]["reason"] == "incident 4711"
    assert len(status["held"]) == 3
    assert cloud.deploy_operations(service) == []  # nothing reached App Runner

    json_out(cloud, "resume", "oncall-pause")
    settled = all_settled(cloud, service, 3)
    by_tag = {d["tag"]: d["status"] for d in settled}
    assert by_tag == {"v1.1.0": "superseded", "v1.2.0": "superseded", "v1.3.0": "succeeded"}
    assert configured(cloud, service).endswith(digests["v1.3.0"])


def test_status_shows_drift_after_a_change_made_by_hand(cloud: LocalCloud, tmp_path: Path) -> None:
    service = semver_service(cloud, tmp_path, "oncall-drift")
    push(cloud, "oncall-drift", "v1.1.0")
    all_settled(cloud, service, 1)
    (before,) = json_out(cloud, "status", "oncall-drift")
    assert before["drift"] is False
    assert before["last_outcome"] == "succeeded"

    apprunner = cloud.client("apprunner")
    source = apprunner.describe_service(ServiceArn=service)["Service"]["SourceConfiguration"]
    source["ImageRepository"]["ImageIdentifier"] = f"{REGISTRY}/oncall-drift:hotfix"
    apprunner.update_service(ServiceArn=service, SourceConfiguration=source)
    wait_until(lambda: configured(cloud, service).endswith(":hotfix"), timeout=30)

    (after,) = json_out(cloud, "status", "oncall-drift")
    assert after["drift"] is True
    assert after["configured"]["image"] == f"{REGISTRY}/oncall-drift:hotfix"
    assert after["live"]["tag"] == "v1.1.0"  # pushdeploy's record, beside App Runner's truth


def test_changes_show_explains_why_a_push_did_not_deploy(cloud: LocalCloud, tmp_path: Path) -> None:
    service = semver_service(cloud, tmp_path, "oncall-why")
    push(cloud, "oncall-why", "v1.5.0")
    older = push(cloud, "oncall-why", "v1.4.0")

    def explained() -> list[dict[str, Any]] | None:
        try:  # exit 1 until the push's event has been decided
            shown = json.loads(cloud.cli("changes", "show", older, "--json"))
        except AssertionError:
            return None
        return shown if shown and shown[0].get("decisions") else None

    (change,) = wait_until(explained, timeout=30)
    (decision,) = change["decisions"]
    assert decision["deployment"] is None
    assert "older than" in decision["note"]
    all_settled(cloud, service, 1)


def test_automatic_mode_deploys_each_push_twice_until_rules_apply_takes_over(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    service = cloud.create_image_service("oncall-auto", "oncall-auto", "latest")
    cloud.apply_rules(
        tmp_path,
        [{"id": "oncall-auto", "service": service, "image": {"repository": "oncall-auto", "tag": "latest"}}],
    )
    rules = str(tmp_path / "rules.yaml")
    # Someone turns automatic deployment on by hand: App Runner now deploys pushes of :latest itself.
    apprunner = cloud.client("apprunner")
    source = apprunner.describe_service(ServiceArn=service)["Service"]["SourceConfiguration"]
    apprunner.update_service(
        ServiceArn=service, SourceConfiguration={**source, "AutoDeploymentsEnabled": True}
    )
    wait_until(lambda: not any(op["Status"] == "IN_PROGRESS" for op in cloud.operations(service)), timeout=30)
    before = len(cloud.deploy_operations(service))

    push(cloud, "oncall-auto", "latest")
    all_settled(cloud, service, 1)
    # App Runner's own deployment of the push, then pushdeploy's: the double deploy.
    wait_until(lambda: len(cloud.deploy_operations(service)) >= before + 2, timeout=30)
    assert len(cloud.deploy_operations(service)) == before + 2

    _, refusal = cloud.cli_streams("rules", "apply", rules, expect=2)
    assert "oncall-auto is in automatic deployment mode" in refusal
    assert "--take-over" in refusal
    taken = cloud.cli("rules", "apply", rules, "--take-over")
    assert "taking over oncall-auto" in taken
    wait_until(
        lambda: [
            d
            for d in cloud.deployments(service)
            if d["trigger"] == "take-over" and d["status"] == "succeeded"
        ],
        timeout=30,
    )
    assert (
        apprunner.describe_service(ServiceArn=service)["Service"]["SourceConfiguration"][
            "AutoDeploymentsEnabled"
        ]
        is False
    )

    before = len(cloud.deploy_operations(service))
    push(cloud, "oncall-auto", "latest")
    all_settled(cloud, service, 3)
    assert len(cloud.deploy_operations(service)) == before + 1  # pushdeploy's alone
