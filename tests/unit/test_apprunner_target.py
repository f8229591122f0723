"""The App Runner deploy target, against botocore's Stubber (real model shapes) and the simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from pushdeploy.adapters import apprunner
from pushdeploy.adapters.apprunner import (
    AppRunnerTarget,
    DeployTarget,
    ServiceView,
    Started,
    TargetBusy,
    TargetGone,
    TargetRejected,
    TargetUnavailable,
)
from pushdeploy.domain.evidence import Operation
from pushdeploy.errors import PushdeployError
from pushdeploy.local.apprunner_sim import AppRunnerSimulator

if TYPE_CHECKING:
    from mypy_boto3_apprunner.client import AppRunnerClient

ACCOUNT = "111122223333"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
ARN = f"arn:aws:apprunner:us-east-1:{ACCOUNT}:service/web-prod/0123456789abcdef0123456789abcdef"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/apprunner-ecr-access"
CONFIGURED_IMAGE = f"{REGISTRY}/web:v1.3.0"
DIGEST_IMAGE = f"{REGISTRY}/web@sha256:{'c0' * 32}"
OPERATION_ID = "17fe9f55-7e91-4097-b243-fcabbb69a4cf"
WHEN = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
IMAGE_CONFIGURATION = {
    "Port": "8000",
    "RuntimeEnvironmentVariables": {"STAGE": "prod"},
    "RuntimeEnvironmentSecrets": {"DB_PASSWORD": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db"},
    "StartCommand": "gunicorn app:app",
}
CODE_SOURCE = {
    "CodeRepository": {
        "RepositoryUrl": "https://github.com/acme/web",
        "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
    }
}
SERVICE_REQUEST = {"ServiceArn": ARN}


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
                    "ImageIdentifier": CONFIGURED_IMAGE,
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


def expect_describe(stubber: Stubber, status: str = "RUNNING", source: dict[str, Any] | None = None) -> None:
    stubber.add_response("describe_service", described(status, source), SERVICE_REQUEST)


def expect_start(stubber: Stubber, operation_id: str = OPERATION_ID) -> None:
    stubber.add_response("start_deployment", {"OperationId": operation_id}, SERVICE_REQUEST)


def summary(operation_id: str, started_at: datetime, **fields: Any) -> dict[str, Any]:
    """A ListOperations summary of a succeeded StartDeployment, unless `fields` say otherwise."""
    return {
        "Id": operation_id,
        "Type": "START_DEPLOYMENT",
        "Status": "SUCCEEDED",
        "TargetArn": ARN,
        "StartedAt": started_at,
        "EndedAt": started_at + timedelta(minutes=3),
        "UpdatedAt": started_at + timedelta(minutes=3),
        **fields,
    }


def operation_id(number: int) -> str:
    return f"{number:08d}-7e91-4097-b243-fcabbb69a4cf"


def test_it_is_a_deploy_target(target: AppRunnerTarget) -> None:
    deploy_target: DeployTarget = target
    assert deploy_target is target
    assert issubclass(TargetBusy, PushdeployError)
    assert issubclass(TargetGone, TargetRejected)


def test_operation_moved_to_the_evidence_module_and_is_still_importable_from_the_adapter() -> None:
    # vars(): the adapter imports it without `as Operation`, so mypy --strict sees no re-export.
    assert vars(apprunner)["Operation"] is Operation
    assert Operation.__module__ == "pushdeploy.domain.evidence"


# ----- with Stubber -----


def test_start_deployment_returns_the_operation_and_the_configured_image(
    stubber: Stubber, target: AppRunnerTarget
) -> None:
    expect_describe(stubber)
    expect_start(stubber)
    assert target.deploy(ARN, "start_deployment", None) == Started(OPERATION_ID, CONFIGURED_IMAGE)


def test_start_deployment_of_a_code_service_returns_its_repository_and_branch(
    stubber: Stubber, target: AppRunnerTarget
) -> None:
    expect_describe(stubber, source=CODE_SOURCE)
    expect_start(stubber)
    assert target.deploy(ARN, "start_deployment", None) == Started(
        OPERATION_ID, "https://github.com/acme/web#main"
    )


def test_update_service_is_built_from_describe_service(stubber: Stubber, target: AppRunnerTarget) -> None:
    expect_describe(stubber)
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
    assert target.deploy(ARN, "update_service", DIGEST_IMAGE) == Started(OPERATION_ID, DIGEST_IMAGE)


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
    expect_describe(stubber)  # RUNNING when described, busy by the time StartDeployment arrives
    stubber.add_client_error("start_deployment", code, message, http_status_code=400)
    with pytest.raises(TargetBusy) as raised:
        target.deploy(ARN, "start_deployment", None)
    assert raised.value.code == code
    assert raised.value.maybe_started is False


@pytest.mark.parametrize(("action", "image"), [("start_deployment", None), ("update_service", DIGEST_IMAGE)])
def test_busy_is_seen_before_the_deploying_call(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps, action: Any, image: str | None
) -> None:
    expect_describe(stubber, "OPERATION_IN_PROGRESS")  # and no StartDeployment/UpdateService is stubbed
    with pytest.raises(TargetBusy, match="operation in progress"):
        target.deploy(ARN, action, image)
    assert sleeps.delays == []


@pytest.mark.parametrize(("action", "image"), [("start_deployment", None), ("update_service", DIGEST_IMAGE)])
@pytest.mark.parametrize("status", ["PAUSED", "DELETED", "CREATE_FAILED", "DELETE_FAILED"])
def test_a_service_that_cannot_deploy_is_rejected_before_the_deploying_call(
    stubber: Stubber, target: AppRunnerTarget, status: str, action: Any, image: str | None
) -> None:
    expect_describe(stubber, status)
    with pytest.raises(TargetRejected, match=status):
        target.deploy(ARN, action, image)


@pytest.mark.parametrize("status", ["DELETED", "CREATE_FAILED", "DELETE_FAILED"])
def test_a_deleted_or_failed_service_is_gone(stubber: Stubber, target: AppRunnerTarget, status: str) -> None:
    expect_describe(stubber, status)
    with pytest.raises(TargetGone, match=status):
        target.deploy(ARN, "start_deployment", None)


def test_a_paused_service_is_rejected_but_not_gone(stubber: Stubber, target: AppRunnerTarget) -> None:
    expect_describe(stubber, "PAUSED")
    with pytest.raises(TargetRejected) as raised:
        target.deploy(ARN, "update_service", DIGEST_IMAGE)
    assert not isinstance(raised.value, TargetGone)


@pytest.mark.parametrize(
    ("first_call", "call"),
    [
        ("describe_service", lambda target: target.deploy(ARN, "start_deployment", None)),
        ("describe_service", lambda target: target.deploy(ARN, "update_service", DIGEST_IMAGE)),
        ("describe_service", lambda target: target.describe(ARN)),
        ("list_operations", lambda target: target.list_operations(ARN)),
    ],
    ids=["start_deployment", "update_service", "describe", "list_operations"],
)
def test_resource_not_found_is_target_gone(
    stubber: Stubber,
    target: AppRunnerTarget,
    sleeps: Sleeps,
    first_call: str,
    call: Callable[[AppRunnerTarget], object],
) -> None:
    stubber.add_client_error(
        first_call, "ResourceNotFoundException", f"Service not found: {ARN}", http_status_code=400
    )
    with pytest.raises(TargetGone) as raised:
        call(target)
    assert raised.value.code == "ResourceNotFoundException"
    assert sleeps.delays == []


def test_resource_not_found_on_start_deployment_itself_is_target_gone(
    stubber: Stubber, target: AppRunnerTarget
) -> None:
    expect_describe(stubber)  # deleted between the two calls
    stubber.add_client_error(
        "start_deployment", "ResourceNotFoundException", "Service not found", http_status_code=400
    )
    with pytest.raises(TargetGone):
        target.deploy(ARN, "start_deployment", None)


def test_update_on_a_code_based_service_is_rejected(stubber: Stubber, target: AppRunnerTarget) -> None:
    expect_describe(stubber, source=CODE_SOURCE)
    with pytest.raises(TargetRejected, match="code"):
        target.deploy(ARN, "update_service", DIGEST_IMAGE)


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("InternalServiceErrorException", 500), ("Anything", 503)],
)
def test_retries_throttling_and_5xx_then_succeeds(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps, code: str, status: int
) -> None:
    expect_describe(stubber)
    stubber.add_client_error("start_deployment", code, "slow down", http_status_code=status)
    stubber.add_client_error("start_deployment", code, "slow down", http_status_code=status)
    expect_start(stubber)
    assert target.deploy(ARN, "start_deployment", None) == Started(OPERATION_ID, CONFIGURED_IMAGE)
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.2
    assert 0 <= sleeps.delays[1] <= 0.4


def test_describe_service_is_retried_too(stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps) -> None:
    stubber.add_client_error("describe_service", "ThrottlingException", "Rate exceeded", http_status_code=400)
    expect_describe(stubber)
    expect_start(stubber)
    assert target.deploy(ARN, "start_deployment", None).operation_id == OPERATION_ID
    assert len(sleeps.delays) == 1


def test_retry_exhaustion_is_target_unavailable(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps
) -> None:
    expect_describe(stubber)
    for _ in range(4):
        stubber.add_client_error(
            "start_deployment", "ThrottlingException", "Rate exceeded", http_status_code=400
        )
    with pytest.raises(TargetUnavailable) as raised:
        target.deploy(ARN, "start_deployment", None)
    assert raised.value.code == "ThrottlingException"
    assert raised.value.maybe_started is False  # throttled requests were never processed
    assert len(sleeps.delays) == 3
    assert all(0 <= delay <= 0.2 * 2**n for n, delay in enumerate(sleeps.delays))


@pytest.mark.parametrize(
    ("first_code", "first_status", "maybe_started"),
    [("ThrottlingException", 400, False), ("InternalServiceErrorException", 500, True)],
)
def test_busy_after_an_ambiguous_failure_may_be_the_calls_own_operation(
    stubber: Stubber,
    target: AppRunnerTarget,
    first_code: str,
    first_status: int,
    maybe_started: bool,
) -> None:
    expect_describe(stubber)
    stubber.add_client_error("start_deployment", first_code, "oops", http_status_code=first_status)
    stubber.add_client_error(
        "start_deployment", "InvalidStateException", "operation in progress", http_status_code=400
    )
    with pytest.raises(TargetBusy) as raised:
        target.deploy(ARN, "start_deployment", None)
    assert raised.value.maybe_started is maybe_started


def test_backoff_is_capped(client: AppRunnerClient, sleeps: Sleeps) -> None:
    target = AppRunnerTarget(client, sleep=sleeps, max_attempts=8, base_delay=1.0, max_delay=2.0)
    with Stubber(client) as stubber:
        expect_describe(stubber)
        for _ in range(8):
            stubber.add_client_error("start_deployment", "ThrottlingException", http_status_code=400)
        with pytest.raises(TargetUnavailable):
            target.deploy(ARN, "start_deployment", None)
        stubber.assert_no_pending_responses()
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
    expect_describe(stubber)
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


def test_list_operations_times_are_utc(stubber: Stubber, target: AppRunnerTarget) -> None:
    paris = timezone(timedelta(hours=1))
    stubber.add_response(
        "list_operations",
        {"OperationSummaryList": [summary(OPERATION_ID, WHEN.astimezone(paris))]},
        {"ServiceArn": ARN, "MaxResults": 20},
    )
    [operation] = target.list_operations(ARN)
    assert operation.started_at == WHEN
    assert operation.started_at is not None
    assert operation.started_at.utcoffset() == timedelta(0)


def two_pages(stubber: Stubber, *, expect_second: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two ListOperations pages of five operations each, one a minute apart, newest first (WHEN)."""
    first = [summary(operation_id(n), WHEN - timedelta(minutes=n)) for n in range(5)]
    second = [summary(operation_id(n), WHEN - timedelta(minutes=n)) for n in range(5, 10)]
    stubber.add_response(
        "list_operations",
        {"OperationSummaryList": first, "NextToken": "page-2"},
        {"ServiceArn": ARN, "MaxResults": 20},
    )
    if expect_second:
        stubber.add_response(
            "list_operations",
            {"OperationSummaryList": second, "NextToken": "page-3"},
            {"ServiceArn": ARN, "MaxResults": 20, "NextToken": "page-2"},
        )
    return first, second


def test_list_operations_since_follows_next_token_back_to_since(
    stubber: Stubber, target: AppRunnerTarget
) -> None:
    # The first page ends 4 minutes back; `since` is 6 minutes back: the second page reaches past it,
    # and its NextToken is not followed (Stubber would refuse a third call).
    two_pages(stubber, expect_second=True)
    operations = target.list_operations(ARN, since=WHEN - timedelta(minutes=6))
    assert [op.id for op in operations] == [operation_id(n) for n in range(10)]
    assert [op.started_at for op in operations] == [WHEN - timedelta(minutes=n) for n in range(10)]


def test_list_operations_since_stops_at_the_page_that_reaches_it(
    stubber: Stubber, target: AppRunnerTarget
) -> None:
    two_pages(stubber, expect_second=False)
    operations = target.list_operations(ARN, since=WHEN - timedelta(minutes=2, seconds=30))
    assert [op.id for op in operations] == [operation_id(n) for n in range(5)]


def test_list_operations_without_since_reads_one_page(stubber: Stubber, target: AppRunnerTarget) -> None:
    two_pages(stubber, expect_second=False)
    assert len(target.list_operations(ARN)) == 5


def test_list_operations_since_stops_on_the_last_page(stubber: Stubber, target: AppRunnerTarget) -> None:
    stubber.add_response(
        "list_operations",
        {"OperationSummaryList": [summary(OPERATION_ID, WHEN)]},
        {"ServiceArn": ARN, "MaxResults": 20},
    )
    assert len(target.list_operations(ARN, since=WHEN - timedelta(days=365))) == 1


def test_list_operations_retries_a_throttled_second_page(
    stubber: Stubber, target: AppRunnerTarget, sleeps: Sleeps
) -> None:
    first = [summary(operation_id(0), WHEN)]
    stubber.add_response(
        "list_operations",
        {"OperationSummaryList": first, "NextToken": "page-2"},
        {"ServiceArn": ARN, "MaxResults": 20},
    )
    second_request = {"ServiceArn": ARN, "MaxResults": 20, "NextToken": "page-2"}
    stubber.add_client_error("list_operations", "ThrottlingException", http_status_code=400)
    stubber.add_response(
        "list_operations",
        {"OperationSummaryList": [summary(operation_id(1), WHEN - timedelta(hours=1))]},
        second_request,
    )
    operations = target.list_operations(ARN, since=WHEN - timedelta(minutes=30))
    assert [op.id for op in operations] == [operation_id(0), operation_id(1)]
    assert len(sleeps.delays) == 1


@pytest.mark.parametrize("status", ["PAUSED", "RUNNING", "DELETED"])
def test_describe(stubber: Stubber, target: AppRunnerTarget, status: str) -> None:
    expect_describe(stubber, status)
    assert target.describe(ARN) == ServiceView(status, CONFIGURED_IMAGE, image=CONFIGURED_IMAGE)


def test_describe_a_code_service(stubber: Stubber, target: AppRunnerTarget) -> None:
    expect_describe(stubber, source=CODE_SOURCE)
    described = target.describe(ARN)
    assert described == ServiceView(
        "RUNNING",
        "https://github.com/acme/web#main",
        repository_url="https://github.com/acme/web",
        branch="main",
    )
    assert described.is_code


def test_misuse_is_a_programming_error(target: AppRunnerTarget) -> None:
    with pytest.raises(ValueError, match="takes no image"):
        target.deploy(ARN, "start_deployment", DIGEST_IMAGE)
    with pytest.raises(ValueError, match="needs an image"):
        target.deploy(ARN, "update_service", None)
    with pytest.raises(ValueError, match="unknown deploy action"):
        target.deploy(ARN, "delete_service", None)  # type: ignore[arg-type]
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
def sim_client(sim: AppRunnerSimulator) -> AppRunnerClient:
    client = make_client()
    sim.attach(client)
    return client


@pytest.fixture
def service(sim_client: AppRunnerClient, clock: FakeClock) -> str:
    """A RUNNING image-based service, created through the simulator's protocol front."""
    source = described()["Service"]["SourceConfiguration"]
    created = sim_client.create_service(ServiceName="web-prod", SourceConfiguration=source)
    clock.now += 2.0
    return created["Service"]["ServiceArn"]


def test_sim_start_deployment_then_settles(
    sim_target: AppRunnerTarget, clock: FakeClock, service: str
) -> None:
    started = sim_target.deploy(service, "start_deployment", None)
    assert started.configured == CONFIGURED_IMAGE
    latest = sim_target.list_operations(service)[0]
    assert (latest.id, latest.type, latest.status, latest.target_arn) == (
        started.operation_id,
        "START_DEPLOYMENT",
        "IN_PROGRESS",
        service,
    )
    assert latest.started_at is not None
    assert latest.started_at.tzinfo is UTC
    assert latest.ended_at is None
    assert sim_target.describe(service) == ServiceView(
        "OPERATION_IN_PROGRESS", CONFIGURED_IMAGE, image=CONFIGURED_IMAGE
    )
    clock.now += 2.0
    assert sim_target.list_operations(service)[0].status == "SUCCEEDED"
    assert sim_target.describe(service).status == "RUNNING"


def test_sim_update_service_keeps_the_image_configuration(
    sim: AppRunnerSimulator,
    sim_target: AppRunnerTarget,
    sim_client: AppRunnerClient,
    clock: FakeClock,
    service: str,
) -> None:
    started = sim_target.deploy(service, "update_service", DIGEST_IMAGE)
    assert started.configured == DIGEST_IMAGE
    clock.now += 2.0
    sim.tick()
    name, request = sim.calls[-1]
    assert name == "UpdateService"
    assert request["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"] == IMAGE_CONFIGURATION
    repository = sim_client.describe_service(ServiceArn=service)["Service"]["SourceConfiguration"][
        "ImageRepository"
    ]
    assert repository == {
        "ImageIdentifier": DIGEST_IMAGE,
        "ImageConfiguration": IMAGE_CONFIGURATION,
        "ImageRepositoryType": "ECR",
    }
    assert sim_target.describe(service).configured == DIGEST_IMAGE


def test_sim_busy_service(sim: AppRunnerSimulator, sim_target: AppRunnerTarget, service: str) -> None:
    sim_target.deploy(service, "start_deployment", None)
    before = len(sim.calls)
    with pytest.raises(TargetBusy):
        sim_target.deploy(service, "start_deployment", None)
    with pytest.raises(TargetBusy):
        sim_target.deploy(service, "update_service", DIGEST_IMAGE)
    # Seen in DescribeService: the deploying calls were not even made.
    assert [name for name, _ in sim.calls[before:]] == ["DescribeService", "DescribeService"]


def test_sim_rollback_is_reported(
    sim: AppRunnerSimulator, sim_target: AppRunnerTarget, clock: FakeClock, service: str
) -> None:
    sim.fail_next(service)
    started = sim_target.deploy(service, "update_service", DIGEST_IMAGE)
    clock.now += 2.0
    latest = sim_target.list_operations(service)[0]
    assert (latest.id, latest.status) == (started.operation_id, "ROLLBACK_SUCCEEDED")
    assert sim_target.describe(service).configured == CONFIGURED_IMAGE  # the old image still runs


def test_sim_paused_service_is_rejected(
    sim_target: AppRunnerTarget, sim_client: AppRunnerClient, clock: FakeClock, service: str
) -> None:
    sim_client.pause_service(ServiceArn=service)
    clock.now += 2.0
    with pytest.raises(TargetRejected, match="PAUSED") as raised:
        sim_target.deploy(service, "start_deployment", None)
    assert not isinstance(raised.value, TargetGone)


def test_sim_deleted_service_is_gone(
    sim_target: AppRunnerTarget, sim_client: AppRunnerClient, clock: FakeClock, service: str
) -> None:
    sim_client.delete_service(ServiceArn=service)
    clock.now += 2.0
    assert sim_target.describe(service).status == "DELETED"
    with pytest.raises(TargetGone, match="DELETED"):
        sim_target.deploy(service, "start_deployment", None)
    with pytest.raises(TargetGone, match="DELETED"):
        sim_target.deploy(service, "update_service", DIGEST_IMAGE)


def test_sim_bad_digest_and_unknown_service_are_rejected(sim_target: AppRunnerTarget, service: str) -> None:
    with pytest.raises(TargetRejected, match="InvalidRequestException"):
        sim_target.deploy(service, "update_service", f"{REGISTRY}/web@sha256:abc")
    with pytest.raises(TargetGone, match="ResourceNotFoundException"):
        sim_target.deploy(ARN, "start_deployment", None)


def test_sim_list_operations_since_pages_back(
    sim_target: AppRunnerTarget, clock: FakeClock, service: str
) -> None:
    # 25 deployments after the creation: 26 operations, more than one page of 20.
    for _ in range(25):
        sim_target.deploy(service, "start_deployment", None)
        clock.now += 2.0
    newest_first = sim_target.list_operations(service)
    assert len(newest_first) == 20
    everything = sim_target.list_operations(service, since=datetime(2000, 1, 1, tzinfo=UTC))
    assert len(everything) == 26
    assert everything[:20] == newest_first
    assert everything[-1].type == "CREATE_SERVICE"
    starts = [op.started_at for op in everything]
    assert starts == sorted(starts, reverse=True)  # type: ignore[type-var]


def test_sim_throttled_then_success(
    sim: AppRunnerSimulator, sim_target: AppRunnerTarget, sleeps: Sleeps, service: str
) -> None:
    sim.throttle_next(2, operation="StartDeployment")
    assert len(sim_target.deploy(service, "start_deployment", None).operation_id) == 36
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
