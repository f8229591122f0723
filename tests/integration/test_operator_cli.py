"""The on-call commands through the CLI (DESIGN 4.6) against moto and the App Runner simulator, with the
real handlers deciding pushes and settling operations around them."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import boto3
import pytest

from pushdeploy.cli import operator_cmd
from pushdeploy.cli.main import main
from tests.integration.cli_stack import as_stack
from tests.integration.harness import ACCOUNT, REGION, REGISTRY, Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 30)]
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}
)


@pytest.fixture
def stack(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    return as_stack(cloud, monkeypatch)


@pytest.fixture
def web(stack: Cloud, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An image service on a semver rule, and a code service on a GitHub rule."""
    image = stack.create_image_service("web-prod", tag="v1.0.0")
    code = stack.create_code_service("api-svc", "https://github.com/acme/api", "main")
    stack.apply_rules(
        [
            {"id": "web-prod", "service": image, "image": {"repository": "web", "semver": ">=1.0.0"}},
            {
                "id": "api",
                "service": code,
                "code": {"provider": "github", "repository": "acme/api", "branch": "main"},
            },
        ]
    )
    stack.sim.calls.clear()
    resolve = operator_cmd._digest_of

    def in_the_services_account(*args: Any) -> str:
        # moto keeps ECR per account and ignores registryId: ask as the services' account, as AWS would.
        with monkeypatch.context() as patch:
            patch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
            return resolve(*args)

    monkeypatch.setattr(operator_cmd, "_digest_of", in_the_services_account)
    return {"image": image, "code": code}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    try:
        return status, json.loads(out), err
    except ValueError:
        return status, out, err


def settle(cloud: Cloud) -> None:
    cloud.finish_operations()
    cloud.finish_operations()


def put_image(tag: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    try:
        return _put_image(tag)
    finally:
        monkeypatch.delenv("MOTO_ACCOUNT_ID")


def _put_image(tag: str) -> str:
    ecr = boto3.client("ecr", region_name=REGION)
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName="web")
    manifest = json.dumps({**json.loads(MANIFEST), "tag": tag})
    return str(
        ecr.put_image(repositoryName="web", imageManifest=manifest, imageTag=tag)["image"]["imageId"][
            "imageDigest"
        ]
    )


def test_a_manual_deploy_waits_behind_a_running_operation_and_records_who_asked(
    web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, deployment, _ = cli(
        capsys, "deploy", "web-prod", "--reason", "restart after config change", "--json"
    )
    assert status == 0
    assert deployment["status"] == "in_progress"
    assert deployment["trigger"] == "manual"
    assert deployment["source"] == "manual"
    assert deployment["rule"] is None
    assert deployment["actor"].startswith("arn:aws:")
    assert deployment["reason"] == "restart after config change"

    status, second, _ = cli(capsys, "deploy", "web-prod", "--json")
    assert (status, second["status"]) == (0, "queued")  # one operation per service: it waits its turn


def test_deploy_image_pins_the_tags_digest_and_refuses_what_failed_unless_forced(
    stack: Cloud, web: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = put_image("v1.4.0", monkeypatch)
    stack.sim.fail_next(web["image"])
    status, deployment, err = cli(capsys, "deploy", web["image"], "--image", "v1.4.0", "--json")
    assert status == 0, err
    assert deployment["image"] == f"{REGISTRY}/web@{digest}"
    assert deployment["digest"] == digest
    settle(stack)
    assert stack.ledger.deployment(deployment["id"]).status == "rolled_back"

    status, _, err = cli(capsys, "deploy", web["image"], "--image", f"@{digest}")
    assert status == 2
    assert "rolled back on this service before" in err
    status, forced, _ = cli(capsys, "deploy", web["image"], "--image", f"@{digest}", "--force", "--json")
    assert (status, forced["status"]) == (0, "in_progress")


def test_rollback_pins_the_previous_good_digest(
    stack: Cloud, web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.1.0", DIGESTS[1])
    settle(stack)
    stack.push_image("v1.2.0", DIGESTS[2])
    settle(stack)
    assert stack.configured_image(web["image"]) == f"{REGISTRY}/web@{DIGESTS[2]}"

    status, deployment, _ = cli(capsys, "rollback", "web-prod", "--reason", "v1.2.0 leaks memory", "--json")
    assert status == 0
    assert deployment["trigger"] == "rollback"
    assert deployment["image"] == f"{REGISTRY}/web@{DIGESTS[1]}"
    settle(stack)
    assert stack.configured_image(web["image"]) == f"{REGISTRY}/web@{DIGESTS[1]}"


def test_rollback_of_a_code_service_is_refused(
    web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = cli(capsys, "rollback", "api-svc")
    assert status == 2
    assert "cannot pin a commit" in err
    assert err.count("\n") == 1


def test_pause_holds_pushes_and_resume_deploys_the_newest_only(
    stack: Cloud, web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, paused, _ = cli(capsys, "pause", "web-prod", "--reason", "incident 42", "--json")
    assert status == 0
    assert paused["paused"]["reason"] == "incident 42"
    for n, version in enumerate(("v1.1.0", "v1.3.0", "v1.2.0")):
        stack.push_image(version, DIGESTS[n + 3])
    assert stack.calls("UpdateService") == []
    assert stack.statuses(web["image"]) == ["held", "held", "held"]
    held = stack.deployments(web["image"])[0]
    assert held.held_by == ("pause",)

    _, status_json, _ = cli(capsys, "status", "web-prod", "--json")
    assert status_json[0]["paused"]["reason"] == "incident 42"
    assert len(status_json[0]["held"]) == 3

    status, _resumed, _ = cli(capsys, "resume", "web-prod", "--json")
    assert status == 0
    by_version = {d.tag: str(d.status) for d in stack.deployments(web["image"])}
    assert by_version == {"v1.1.0": "superseded", "v1.3.0": "in_progress", "v1.2.0": "superseded"}
    (update,) = stack.calls("UpdateService")
    assert update["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"].endswith(DIGESTS[4])


def test_resume_discard_supersedes_every_held_deployment(
    stack: Cloud, web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "pause", "web-prod", "--reason", "freeze")
    stack.push_image("v1.1.0", DIGESTS[6])
    status, _, _ = cli(capsys, "resume", "web-prod", "--discard")
    assert status == 0
    assert stack.statuses(web["image"]) == ["superseded"]
    assert stack.calls("UpdateService") == []


def test_status_shows_drift_after_a_change_made_by_hand(
    stack: Cloud, web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.1.0", DIGESTS[7])
    settle(stack)
    _, before, _ = cli(capsys, "status", "web-prod", "--json")
    assert before[0]["drift"] is False
    assert before[0]["live"]["digest"] == DIGESTS[7]
    assert before[0]["last_outcome"] == "succeeded"

    source = stack.apprunner.describe_service(ServiceArn=web["image"])["Service"]["SourceConfiguration"]
    source["ImageRepository"]["ImageIdentifier"] = f"{REGISTRY}/web:hotfix"
    source.pop("AutoDeploymentsEnabled", None)
    stack.apprunner.update_service(ServiceArn=web["image"], SourceConfiguration=source)
    settle(stack)
    _, after, _ = cli(capsys, "status", "web-prod", "--json")
    assert after[0]["drift"] is True
    assert after[0]["configured"]["image"] == f"{REGISTRY}/web:hotfix"


def test_changes_show_a_digest_explains_why_a_push_did_not_deploy(
    stack: Cloud, web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.5.0", DIGESTS[8])
    stack.push_image("v1.4.0", DIGESTS[9])  # older than what is in flight
    status, shown, _ = cli(capsys, "changes", "show", DIGESTS[9], "--json")
    assert status == 0
    (change,) = shown
    (decision,) = change["decisions"]
    assert decision["deployment"] is None
    assert "older than" in decision["note"]

    status, listed, _ = cli(capsys, "changes", "list", "--since", "1h", "--repository", "web", "--json")
    assert status == 0
    assert [c["change"]["digest"] for c in listed] == [DIGESTS[9], DIGESTS[8]]


def test_an_unknown_service_name_is_one_line_and_exit_2(
    web: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = cli(capsys, "deploy", "nope")
    assert status == 1
    assert "no known service is named nope" in err
    assert err.count("\n") == 1


# --- approvals (DESIGN 4.7) ----------------------------------------------------------------------


@pytest.fixture
def gated(stack: Cloud) -> str:
    """web-prod on a semver rule that needs an approval."""
    image = stack.create_image_service("web-prod", tag="v1.0.0")
    approval = {"approval": {"required": True, "timeout": "24h"}}
    stack.apply_rules(
        [
            {
                "id": "web-prod",
                "service": image,
                "image": {"repository": "web", "semver": ">=1.0.0"},
                "gates": approval,
            }
        ]
    )
    stack.sim.calls.clear()
    return image


def test_approve_starts_the_held_deployment_and_records_the_callers_identity_and_reason(
    stack: Cloud, gated: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.1.0", DIGESTS[0])
    status, shown, _ = cli(capsys, "status", "web-prod")
    assert status == 0
    assert "waits for approval" in shown
    (held,) = stack.deployments(gated)
    status, approved, err = cli(capsys, "approve", held.id, "--reason", "CAB-42", "--json")
    assert status == 0, err
    assert approved["status"] == "in_progress"
    assert approved["gates"]["approval"]["by"].startswith("arn:aws:")
    assert approved["gates"]["approval"]["reason"] == "CAB-42"


def test_reject_ends_it_and_a_second_decision_is_refused(
    stack: Cloud, gated: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.1.0", DIGESTS[0])
    (held,) = stack.deployments(gated)
    status, rejected, _ = cli(capsys, "reject", held.id, "--reason", "freeze week", "--json")
    assert (status, rejected["status"]) == (0, "rejected")
    assert "freeze week" in rejected["detail"]
    status, _, err = cli(capsys, "approve", held.id)
    assert status == 2
    assert "does not await approval" in err
    assert stack.sim.calls == []
