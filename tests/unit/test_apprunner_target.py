"""The App Runner deploy target, against botocore's Stubber (real model shapes) and the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from pushdeploy.adapters.apprunner import (
    AppRunnerTarget,
    DeployTarget,
    Operation,
    TargetBusy,
    TargetRejected,
    TargetUnavailable,
)
from pushdeploy.errors import PushdeployError
from pushdeploy.local.apprunner_sim import AppRunnerSimulator

if TYPE_CHECKING:
    from mypy_boto3_apprunner.client import AppRunnerClient

ACCOUNT = "111122223333"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
ARN = f"arn:aws:apprunner:us-east-1:{ACCOUNT}:service/web-prod/0123456789abcdef0123456789abcdef"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/apprunner-ecr-access"
DIGEST_IMAGE = f"{REGISTRY}/web@sha256:{'c0' * 32}"
OPERATION_ID = "17fe9f55-7e91-4097-b243-fcabbb69a4cf"
WHEN = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
IMAGE_CONFIGURATION = {
    "Port": "8000",
    "RuntimeEnvironmentVariables": {"STAGE": "prod"},
    "RuntimeEnvironmentSecrets": {"DB_PASSWORD": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db"},
    "StartCommand": "gunicorn app:app",
}


def make_client(config: Config | None = None) -> AppRunnerClient:
    return boto3.client(
        "apprunner",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config or Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client() -> AppRunnerClient:
    return make_client()


@pytest.fixture
def stubber(client: AppRunnerClient) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def target(client: AppRunnerClient, sleeps: Sleeps) -> AppRunnerTarget:
    return AppRunnerTarget(client, sleep=sleeps)


def described(status: str = "RUNNING", source: dict[str, Any] | None = None) -> dict[str, Any]:
    """A DescribeService answer with every member the model requires."""
    return {
        "Service": {
            "ServiceName": "web-prod",
            "ServiceId": "0123456789abcdef0123456789abcdef",
            "ServiceArn": ARN,
            "ServiceUrl": "abcdefghij.us-east-1.awsapprunner.com",
            "CreatedAt": WHEN,
            "UpdatedAt": WHEN,
            "Status": status,
            "SourceConfiguration": source
            or {
                "ImageRepository": {
                    "ImageIdentifier": f"{REGISTRY}/web:v1.3.0",
                    "ImageConfiguration": IMAGE_CONFIGURATION,
                    "ImageRepositoryType": "ECR",
                },
                "AutoDeploymentsEnabled": False,
                "AuthenticationConfiguration": {"AccessRoleArn": ROLE},
            },
            "InstanceConfiguration": {"Cpu": "1024", "Memory": "2048"},
            "AutoScalingConfigurationSummary": {},
            "NetworkConfiguration": {},
        }
    }


def test_it_is_a_deploy_target(target: AppRunnerTarget) -> None:
    deploy_target: DeployTarget = target
    assert deploy_target is target
    assert issubclass(TargetBusy, PushdeployError)


# ----- with Stubber -----


def test_start_deployment(stubber: Stubber, target: AppRunnerTarget) -> None:
    stubber.add_response("start_deployment", {"OperationId": OPERATION_ID}, {"ServiceArn": ARN})
    assert target.deploy(ARN, "start_deployment", None) == OPERATION_ID


def test_update_service_is_built_from_describe_service(stubber: Stubber, target: AppRunnerTarget) -> None:
    stubber.add_response("describe_service", described(), {"ServiceArn": ARN})
    expected_request = {
        "ServiceArn": ARN,
        "SourceConfiguration": {
            "ImageRepository": {
                "ImageIdentifier": DIGEST_IMAGE,
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": IMAGE_CONFIGURATION,
            },
            "AuthenticationConfiguration": {"AccessRoleArn": ROLE},
            "AutoDeploymentsEnabled": False,
        },
    }
    updated = {**described("OPERATION_IN_PROGRESS"), "OperationId": OPERATION_ID}
    stubber.add_response("update_service", updated, expected_request)
    assert target.deploy(ARN, "update_service", DIGEST_IMAGE) == OPERATION_ID


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InvalidStateException", "Service cannot be updated in the current state."),
        ("InvalidRequestException", "Service is in OPERATION_IN_PROGRESS state."),
        ("InvalidRequestException", "Cannot start a deployment while another operation is in progress."),
    ],
)
def test_busy_service_is_target_busy(
    stubber: Stubber, target: AppRunnerTarget, code: str, message: str
) -> None:
    stubber.add_client_error("start_deployment", code, message, http_status_code=400)
    with pytest.raises(TargetBusy) as raised:
        target.deploy(ARN, "start_deployment", None)
    assert raised.value.code == code


def test_busy_is_seen_before_update_service(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps
) -> None:
    stubber.add_response("describe_service", described("OPERATION_IN_PROGRESS"), {"ServiceArn": ARN})
    with pytest.raises(TargetBusy):
        target.deploy(ARN, "update_service", DIGEST_IMAGE)
    assert sleeps.delays == []


@pytest.mark.parametrize("status", ["PAUSED", "DELETED", "DELETE_FAILED"])
def test_update_on_a_service_that_cannot_deploy_is_rejected(
    stubber: Stubber, target: AppRunnerTarget, status: str
) -> None:
    stubber.add_response("describe_service", described(status), {"ServiceArn": ARN})
    with pytest.raises(TargetRejected, match=status):
        target.deploy(ARN, "update_service", DIGEST_IMAGE)


def test_update_on_a_code_based_service_is_rejected(stubber: Stubber, target: AppRunnerTarget) -> None:
    code = {
        "CodeRepository": {
            "RepositoryUrl": "https://github.com/acme/web",
            "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
        }
    }
    stubber.add_response("describe_service", described(source=code), {"ServiceArn": ARN})
    with pytest.raises(TargetRejected, match="code"):
        target.deploy(ARN, "update_service", DIGEST_IMAGE)


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("InternalServiceErrorException", 500), ("Anything", 503)],
)
def test_retries_throttling_and_5xx_then_succeeds(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps, code: str, status: int
) -> None:
    stubber.add_client_error("start_deployment", code, "slow down", http_status_code=status)
    stubber.add_client_error("start_deployment", code, "slow down", http_status_code=status)
    stubber.add_response("start_deployment", {"OperationId": OPERATION_ID}, {"ServiceArn": ARN})
    assert target.deploy(ARN, "start_deployment", None) == OPERATION_ID
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.2
    assert 0 <= sleeps.delays[1] <= 0.4


def test_retry_exhaustion_is_target_unavailable(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps
) -> None:
    for _ in range(4):
        stubber.add_client_error(
            "start_deployment", "ThrottlingException", "Rate exceeded", http_status_code=400
        )
    with pytest.raises(TargetUnavailable) as raised:
        target.deploy(ARN, "start_deployment", None)
    assert raised.value.code == "ThrottlingException"
    assert len(sleeps.delays) == 3
    assert all(0 <= delay <= 0.2 * 2**n for n, delay in enumerate(sleeps.delays))


def test_backoff_is_capped(client: AppRunnerClient, sleeps: Sleeps) -> None:
    target = AppRunnerTarget(client, sleep=sleeps, max_attempts=8, base_delay=1.0, max_delay=2.0)
    with Stubber(client) as stubber:
        for _ in range(8):
            stubber.add_client_error("start_deployment", "ThrottlingException", http_status_code=400)
        with pytest.raises(TargetUnavailable):
            target.deploy(ARN, "start_deployment", None)
    assert len(sleeps.delays) == 7
    assert max(sleeps.delays) <= 2.0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ResourceNotFoundException", "Service not found"),
        ("InvalidRequestException", "ImageIdentifier is not valid"),
        ("InvalidStateException", "Service is in PAUSED state."),
        ("ServiceQuotaExceededException", "Quota exceeded"),
        ("AccessDeniedException", "Not authorized"),
    ],
)
def test_permanent_errors_are_rejected_without_retry(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps, code: str, message: str
) -> None:
    stubber.add_client_error("start_deployment", code, message, http_status_code=400)
    with pytest.raises(TargetRejected) as raised:
        target.deploy(ARN, "start_deployment", None)
    assert raised.value.code == code
    assert sleeps.delays == []


def test_client_side_validation_errors_are_rejected(target: AppRunnerTarget) -> None:
    with pytest.raises(TargetRejected, match="invalid request"):
        target.deploy("", "start_deployment", None)  # below the model's minimum length: never sent


def test_list_operations(stubber: Stubber, target: AppRunnerTarget) -> None:
    summaries = [
        {
            "Id": OPERATION_ID,
            "Type": "UPDATE_SERVICE",
            "Status": "IN_PROGRESS",
            "TargetArn": ARN,
            "StartedAt": WHEN,
            "UpdatedAt": WHEN,
        },
        {
            "Id": "27fe9f55-7e91-4097-b243-fcabbb69a4cf",
            "Type": "START_DEPLOYMENT",
            "Status": "ROLLBACK_SUCCEEDED",
            "TargetArn": ARN,
            "StartedAt": WHEN,
            "EndedAt": WHEN,
            "UpdatedAt": WHEN,
        },
    ]
    stubber.add_response(
        "list_operations", {"OperationSummaryList": summaries}, {"ServiceArn": ARN, "MaxResults": 20}
    )
    assert target.list_operations(ARN) == [
        Operation(OPERATION_ID, "UPDATE_SERVICE", "IN_PROGRESS", ARN, WHEN, None, WHEN),
        Operation(
            "27fe9f55-7e91-4097-b243-fcabbb69a4cf",
            "START_DEPLOYMENT",
            "ROLLBACK_SUCCEEDED",
            ARN,
            WHEN,
            WHEN,
            WHEN,
        ),
    ]


def test_service_status(stubber: Stubber, target: AppRunnerTarget) -> None:
    stubber.add_response("describe_service", described("PAUSED"), {"ServiceArn": ARN})
    assert target.service_status(ARN) == "PAUSED"


def test_misuse_is_a_programming_error(target: AppRunnerTarget) -> None:
    with pytest.raises(ValueError, match="takes no image"):
        target.deploy(ARN, "start_deployment", DIGEST_IMAGE)
    with pytest.raises(ValueError, match="needs an image"):
        target.deploy(ARN, "update_service", None)
    with pytest.raises(ValueError, match="max_attempts"):
        AppRunnerTarget(make_client(), max_attempts=0)


# ----- with the simulator -----


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> AppRunnerSimulator:
    return AppRunnerSimulator(clock=clock)


@pytest.fixture
def sim_target(sim: AppRunnerSimulator, sleeps: Sleeps) -> AppRunnerTarget:
    client = make_client()
    sim.attach(client)
    return AppRunnerTarget(client, sleep=sleeps)


@pytest.fixture
def service(sim: AppRunnerSimulator, clock: FakeClock) -> str:
    """A RUNNING image-based service, created through the simulator's protocol front."""
    client = make_client()
    sim.attach(client)
    source = described()["Service"]["SourceConfiguration"]
    arn = client.create_service(ServiceName="web-prod", SourceConfiguration=source)["Service"]["ServiceArn"]
    clock.now += 2.0
    return arn


def test_sim_start_deployment_then_settles(
    sim_target: AppRunnerTarget, clock: FakeClock, service: str
) -> None:
    operation_id = sim_target.deploy(service, "start_deployment", None)
    latest = sim_target.list_operations(service)[0]
    assert (latest.id, latest.type, latest.status, latest.target_arn) == (
        operation_id,
        "START_DEPLOYMENT",
        "IN_PROGRESS",
        service,
    )
    assert latest.started_at is not None
    assert latest.started_at.tzinfo is UTC
    assert latest.ended_at is None
    assert sim_target.service_status(service) == "OPERATION_IN_PROGRESS"
    clock.now += 2.0
    assert sim_target.list_operations(service)[0].status == "SUCCEEDED"
    assert sim_target.service_status(service) == "RUNNING"


def test_sim_update_service_keeps_the_image_configuration(
    sim: AppRunnerSimulator, sim_target: AppRunnerTarget, clock: FakeClock, service: str
) -> None:
    sim_target.deploy(service, "update_service", DIGEST_IMAGE)
    clock.now += 2.0
    sim.tick()
    name, request = sim.calls[-1]
    assert name == "UpdateService"
    assert request["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"] == IMAGE_CONFIGURATION
    client = make_client()
    sim.attach(client)
    repository = client.describe_service(ServiceArn=service)["Service"]["SourceConfiguration"][
        "ImageRepository"
    ]
    assert repository == {
        "ImageIdentifier": DIGEST_IMAGE,
        "ImageConfiguration": IMAGE_CONFIGURATION,
        "ImageRepositoryType": "ECR",
    }


def test_sim_busy_service(sim_target: AppRunnerTarget, service: str) -> None:
    sim_target.deploy(service, "start_deployment", None)
    with pytest.raises(TargetBusy):
        sim_target.deploy(service, "start_deployment", None)
    with pytest.raises(TargetBusy):
        sim_target.deploy(service, "update_service", DIGEST_IMAGE)


def test_sim_rollback_is_reported(
    sim: AppRunnerSimulator, sim_target: AppRunnerTarget, clock: FakeClock, service: str
) -> None:
    sim.fail_next(service)
    operation_id = sim_target.deploy(service, "update_service", DIGEST_IMAGE)
    clock.now += 2.0
    latest = sim_target.list_operations(service)[0]
    assert (latest.id, latest.status) == (operation_id, "ROLLBACK_SUCCEEDED")


def test_sim_paused_service_is_rejected(
    sim: AppRunnerSimulator, sim_target: AppRunnerTarget, clock: FakeClock, service: str
) -> None:
    client = make_client()
    sim.attach(client)
    client.pause_service(ServiceArn=service)
    clock.now += 2.0
    with pytest.raises(TargetRejected, match="PAUSED"):
        sim_target.deploy(service, "start_deployment", None)


def test_sim_bad_digest_and_unknown_service_are_rejected(sim_target: AppRunnerTarget, service: str) -> None:
    with pytest.raises(TargetRejected, match="InvalidRequestException"):
        sim_target.deploy(service, "update_service", f"{REGISTRY}/web@sha256:abc")
    with pytest.raises(TargetRejected, match="ResourceNotFoundException"):
        sim_target.deploy(ARN, "start_deployment", None)


def test_sim_throttled_then_success(
    sim: AppRunnerSimulator, sim_target: AppRunnerTarget, sleeps: Sleeps, service: str
) -> None:
    sim.throttle_next(2, operation="StartDeployment")
    assert len(sim_target.deploy(service, "start_deployment", None)) == 36
    assert len(sleeps.delays) == 2


def test_sim_persistent_500s_are_unavailable(
    sim: AppRunnerSimulator, sim_target: AppRunnerTarget, sleeps: Sleeps, service: str
) -> None:
    sim.error_next(10)
    before = len(sim.calls)
    with pytest.raises(TargetUnavailable, match="InternalServiceErrorException"):
        sim_target.list_operations(service)
    assert len(sim.calls) - before == 4
    assert len(sleeps.delays) == 3
