"""The local cloud end to end: `pushdeploy local up` running the real handlers behind the template's own
rules, driven as a user drives it (the CLI with --local, boto3 through `pushdeploy local env`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pushdeploy.local.intrinsics import Resolver, StackIdentity
from pushdeploy.local.template import load_template, resources_of_type
from tests.conftest import ROOT
from tests.e2e.cloud import ACCOUNT, REGION, LocalCloud, wait_until

pytestmark = pytest.mark.e2e

TEMPLATE = load_template(ROOT / "template.yaml")
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


# Names and schedules use intrinsics (`!Sub "${AWS::StackName}-..."`); patterns are compared as written.
RESOLVER = Resolver(TEMPLATE, StackIdentity("pushdeploy", REGION, ACCOUNT), {})


def test_the_rules_and_their_patterns_come_from_the_template(local_cloud: LocalCloud) -> None:
    events = local_cloud.client("events")
    sqs = local_cloud.client("sqs")
    buses = [bus["Name"] for bus in events.list_event_buses()["EventBuses"]]
    rules = {rule["Name"]: rule for bus in buses for rule in events.list_rules(EventBusName=bus)["Rules"]}
    expected = 0
    for logical_id, function in FUNCTIONS.items():
        for event in function["Properties"].get("Events", {}).values():
            properties = event["Properties"]
            if event["Type"] == "EventBridgeRule":
                rule = rules[RESOLVER.resolve(properties["RuleName"])]
                assert json.loads(rule["EventPattern"]) == properties["Pattern"]
            elif event["Type"] == "Schedule":
                rule = rules[RESOLVER.resolve(properties["Name"])]
                assert rule["ScheduleExpression"] == RESOLVER.resolve(properties["Schedule"])
            else:
                continue
            expected += 1
            bus = rule.get("EventBusName", "default")
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
            if event["Type"] == "Schedule":
                # The timer feeds the queue: in moto a schedule rule's target would get every event.
                assert targets == []
                continue
            # Every event rule of a function targets that function's invocation queue.
            queue_url = local_cloud.state["functions"][logical_id]["invocation_queue_url"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]
            (target,) = targets
            assert target["Arn"] == queue_arn["QueueArn"]
    assert expected == len(rules) >= 6


def test_local_env_points_sdks_and_the_cli_at_the_local_cloud(local_cloud: LocalCloud) -> None:
    command = [
        sys.executable,
        "-m",
        "pushdeploy.cli.main",
        "local",
        "env",
        "--state-dir",
        str(local_cloud.state_dir),
    ]
    printed = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    exported = dict(re.findall(r"^export (\w+)=(.*)$", printed, re.MULTILINE))
    endpoints = local_cloud.state["endpoints"]
    assert exported["AWS_ENDPOINT_URL_APPRUNNER"] == endpoints["apprunner"]
    for variable in ("DYNAMODB", "ECR", "EVENTBRIDGE", "SQS", "SECRETS_MANAGER"):
        assert exported[f"AWS_ENDPOINT_URL_{variable}"] == endpoints["dynamodb"]  # all moto
    assert exported["AWS_DEFAULT_REGION"] == REGION
    assert exported["AWS_ACCESS_KEY_ID"] == exported["AWS_SECRET_ACCESS_KEY"] == "testing"
    if local_cloud.state["webhook_url"] is not None:
        assert exported["PUSHDEPLOY_WEBHOOK_URL"] == local_cloud.state["webhook_url"]
    # After eval, boto3 without any endpoint_url talks to the local cloud.
    probe = (
        "import boto3; "
        "print(boto3.client('apprunner').list_services()['ServiceSummaryList'] is not None); "
        "print(' '.join(boto3.client('dynamodb').list_tables()['TableNames']))"
    )
    script = f'eval "$({" ".join(command)})" && {sys.executable} -c "{probe}"'
    answer = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env=_no_aws())
    assert answer.stdout.splitlines()[0] == "True"
    assert local_cloud.state["outputs"]["LedgerTableName"] in answer.stdout.split()


def test_an_image_push_is_deployed(local_cloud: LocalCloud, tmp_path: Path) -> None:
    service = local_cloud.create_image_service("e2e-web", "e2e-web")
    local_cloud.apply_rules(
        tmp_path, [{"id": "e2e-web", "service": service, "image": {"repository": "e2e-web", "tag": "latest"}}]
    )
    digest = local_cloud.cli("push-image", "e2e-web:latest").strip()
    assert DIGEST.match(digest)
    deployment = local_cloud.settled_deployment(service)
    assert deployment["status"] == "succeeded"
    assert (deployment["action"], deployment["digest"], deployment["source"]) == (
        "start_deployment",
        digest,
        "ecr",
    )
    operations = local_cloud.client("apprunner").list_operations(ServiceArn=service)["OperationSummaryList"]
    assert operations[0]["Id"] == deployment["operation_id"]
    assert operations[0]["Status"] == "SUCCEEDED"


def test_a_semver_push_deploys_its_exact_digest(local_cloud: LocalCloud, tmp_path: Path) -> None:
    service = local_cloud.create_image_service("e2e-api", "e2e-api", tag="v1.0.0")
    image = {"repository": "e2e-api", "semver": ">=1.0.0"}
    local_cloud.apply_rules(tmp_path, [{"id": "e2e-api", "service": service, "image": image}])
    digest = local_cloud.cli("push-image", "e2e-api:v1.2.0").strip()
    deployment = local_cloud.settled_deployment(service)
    assert (deployment["status"], deployment["action"]) == ("succeeded", "update_service")
    described = local_cloud.client("apprunner").describe_service(ServiceArn=service)["Service"]
    assert described["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"].endswith(
        f"/e2e-api@{digest}"
    )


def test_a_failing_deployment_is_rolled_back_and_recorded_as_such(
    local_cloud: LocalCloud, tmp_path: Path
) -> None:
    service = local_cloud.create_image_service("e2e-broken", "e2e-broken")
    local_cloud.apply_rules(
        tmp_path,
        [{"id": "e2e-broken", "service": service, "image": {"repository": "e2e-broken", "tag": "latest"}}],
    )
    local_cloud.cli("simulate", "fail", service)
    local_cloud.cli("push-image", "e2e-broken:latest")
    assert local_cloud.settled_deployment(service)["status"] == "rolled_back"


def test_lost_app_runner_events_are_settled_by_the_reconciler(
    local_cloud: LocalCloud, tmp_path: Path
) -> None:
    service = local_cloud.create_image_service("e2e-lost", "e2e-lost")
    local_cloud.apply_rules(
        tmp_path,
        [{"id": "e2e-lost", "service": service, "image": {"repository": "e2e-lost", "tag": "latest"}}],
    )
    local_cloud.cli("simulate", "lose-events", service, "--count", "2")  # the deployment's start and end
    local_cloud.cli("push-image", "e2e-lost:latest")
    assert local_cloud.settled_deployment(service)["status"] == "succeeded"


def test_throttled_app_runner_calls_are_retried(local_cloud: LocalCloud, tmp_path: Path) -> None:
    service = local_cloud.create_image_service("e2e-slow", "e2e-slow")
    local_cloud.apply_rules(
        tmp_path,
        [{"id": "e2e-slow", "service": service, "image": {"repository": "e2e-slow", "tag": "latest"}}],
    )
    local_cloud.cli("simulate", "throttle", "--count", "2", "--operation", "StartDeployment")
    local_cloud.cli("push-image", "e2e-slow:latest")
    assert local_cloud.settled_deployment(service)["status"] == "succeeded"


def test_a_codecommit_push_is_deployed(local_cloud: LocalCloud, tmp_path: Path) -> None:
    service = local_cloud.create_code_service(
        "e2e-cc", "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/e2e-cc"
    )
    code = {"provider": "codecommit", "repository": "e2e-cc", "branch": "main"}
    local_cloud.apply_rules(tmp_path, [{"id": "e2e-cc", "service": service, "code": code}])
    commit = "c0ffee" + "0" * 34
    assert local_cloud.cli("push-commit", "codecommit", "e2e-cc", "main", commit).strip() == commit
    deployment = local_cloud.settled_deployment(service)
    assert (deployment["status"], deployment["commit"], deployment["branch"]) == ("succeeded", commit, "main")


@pytest.mark.skipif("WebhookFunction" not in FUNCTIONS, reason="the template has no webhook function yet")
@pytest.mark.parametrize("provider", ["github", "bitbucket"])
def test_a_signed_webhook_push_is_deployed(local_cloud: LocalCloud, tmp_path: Path, provider: str) -> None:
    host = {"github": "github.com", "bitbucket": "bitbucket.org"}[provider]
    service = local_cloud.create_code_service(f"e2e-{provider}", f"https://{host}/acme/e2e-{provider}")
    code = {"provider": provider, "repository": f"acme/e2e-{provider}", "branch": "main"}
    local_cloud.apply_rules(tmp_path, [{"id": f"e2e-{provider}", "service": service, "code": code}])
    answer = local_cloud.cli("push-commit", provider, f"Acme/E2E-{provider}", "main").splitlines()
    commit = answer[0]
    assert answer[1].startswith("HTTP 202"), answer
    deployment = local_cloud.settled_deployment(service)
    assert (deployment["status"], deployment["commit"], deployment["source"]) == (
        "succeeded",
        commit,
        provider,
    )


def test_a_worker_that_dies_is_replaced(local_cloud: LocalCloud) -> None:
    before = local_cloud.state["pids"]["workers"]["OperationChangedFunction"]
    os.kill(before[0], signal.SIGKILL)

    def replaced() -> bool:
        now = local_cloud.state["pids"]["workers"]["OperationChangedFunction"]
        return before[0] not in now and len(now) == len(before)

    wait_until(replaced, timeout=15)


def test_the_state_file_describes_the_local_cloud(local_cloud: LocalCloud) -> None:
    state = local_cloud.state
    assert state["region"] == REGION
    assert state["account"] == ACCOUNT
    assert set(state["endpoints"]) == {
        "apprunner",
        "dynamodb",
        "ecr",
        "events",
        "sqs",
        "secretsmanager",
        "sts",
    }
    assert set(state["outputs"]) == set(TEMPLATE["Outputs"])
    assert state["pids"]["local"] == local_cloud.process.pid
    assert any(line.startswith("ready") for line in local_cloud.output)


def _no_aws() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
