"""The App Runner simulator against App Runner's documented behaviour, through real boto3 clients."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pushdeploy.local import pushes
from pushdeploy.local.apprunner_sim import AppRunnerSimulator
from pushdeploy.local.apprunner_sim_pushes import (
    PUT_EVENTS,
    PUT_IMAGE,
    CodePush,
    PushWatch,
    WsgiApp,
    delivery_pushes,
    pushes_of,
    report_lines,
    tell_of_delivery,
)
from pushdeploy.local.moto_server import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_apprunner.client import AppRunnerClient
    from mypy_boto3_apprunner.type_defs import SourceConfigurationTypeDef

ACCOUNT = "111122223333"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
IMAGE = f"{REGISTRY}/web:latest"
DIGEST = "sha256:" + "ab" * 32
PUBLIC_IMAGE = "public.ecr.aws/nginx/nginx:latest"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/apprunner-ecr-access"
CONNECTION = f"arn:aws:apprunner:us-east-1:{ACCOUNT}:connection/github/0123456789abcdef0123456789abcdef"
EPOCH = 1_790_000_000.0
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def sim(clock: FakeClock, events: list[dict[str, Any]]) -> AppRunnerSimulator:
    return AppRunnerSimulator(clock=clock, event_sink=events.append, epoch=EPOCH)


def make_client(config: Config = NO_RETRIES, endpoint_url: str | None = None) -> AppRunnerClient:
    return boto3.client(
        "apprunner",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
        endpoint_url=endpoint_url,
    )


@pytest.fixture
def client(sim: AppRunnerSimulator) -> AppRunnerClient:
    client = make_client()
    sim.attach(client)
    return client


def image_source(identifier: str = IMAGE, port: str = "8000") -> SourceConfigurationTypeDef:
    return {
        "ImageRepository": {
            "ImageIdentifier": identifier,
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": {"Port": port, "RuntimeEnvironmentVariables": {"STAGE": "prod"}},
        },
        "AuthenticationConfiguration": {"AccessRoleArn": ROLE},
        "AutoDeploymentsEnabled": False,
    }


def public_source(identifier: str = PUBLIC_IMAGE) -> SourceConfigurationTypeDef:
    """An ECR Public image, in the deployment mode App Runner gives it by default."""
    return {
        "ImageRepository": {
            "ImageIdentifier": identifier,
            "ImageRepositoryType": "ECR_PUBLIC",
            "ImageConfiguration": {"Port": "80"},
        }
    }


def new_service(client: AppRunnerClient, name: str = "web-prod", identifier: str = IMAGE) -> str:
    """Create an image-based service; its CREATE_SERVICE operation is left running."""
    return client.create_service(ServiceName=name, SourceConfiguration=image_source(identifier))["Service"][
        "ServiceArn"
    ]


def create(client: AppRunnerClient, clock: FakeClock, name: str = "web-prod", identifier: str = IMAGE) -> str:
    """Create an image-based service and let its CREATE_SERVICE operation finish."""
    arn = new_service(client, name, identifier)
    clock.advance(2.0)
    return arn


def configured_image(client: AppRunnerClient, arn: str) -> str:
    return client.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]["ImageRepository"][
        "ImageIdentifier"
    ]


def operations(client: AppRunnerClient, arn: str) -> list[tuple[str, str]]:
    listed = client.list_operations(ServiceArn=arn)["OperationSummaryList"]
    return [(op["Type"], op["Status"]) for op in listed]


def statuses(events: list[dict[str, Any]]) -> list[str]:
    return [event["detail"]["operationStatus"] for event in events]


def error_code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return error.value.response["Error"]["Code"]


# ----- operations and their lifecycle -----


def test_create_service_runs_its_operation_then_is_running(client: AppRunnerClient, clock: FakeClock) -> None:
    created = client.create_service(ServiceName="web-prod", SourceConfiguration=image_source())
    service = created["Service"]
    assert UUID.match(created["OperationId"])
    assert service["Status"] == "OPERATION_IN_PROGRESS"
    arn_pattern = rf"arn:aws:apprunner:us-east-1:{ACCOUNT}:service/web-prod/[0-9a-f]{{32}}"
    assert re.fullmatch(arn_pattern, service["ServiceArn"])
    assert service["SourceConfiguration"]["AutoDeploymentsEnabled"] is False
    assert operations(client, service["ServiceArn"]) == [("CREATE_SERVICE", "IN_PROGRESS")]

    clock.advance(2.0)
    described = client.describe_service(ServiceArn=service["ServiceArn"])["Service"]
    assert described["Status"] == "RUNNING"
    [operation] = client.list_operations(ServiceArn=service["ServiceArn"])["OperationSummaryList"]
    assert (operation["Id"], operation["Status"]) == (created["OperationId"], "SUCCEEDED")
    assert (operation["EndedAt"] - operation["StartedAt"]).total_seconds() == 2.0
    assert operation["UpdatedAt"] == operation["EndedAt"]


def test_operation_is_in_progress_until_its_time(client: AppRunnerClient, clock: FakeClock) -> None:
    arn = create(client, clock)
    operation_id = client.start_deployment(ServiceArn=arn)["OperationId"]
    clock.advance(1.9)
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "OPERATION_IN_PROGRESS"
    [latest, _] = client.list_operations(ServiceArn=arn)["OperationSummaryList"]
    assert (latest["Id"], latest["Status"]) == (operation_id, "IN_PROGRESS")
    assert "EndedAt" not in latest
    clock.advance(0.1)
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"
    assert operations(client, arn)[0] == ("START_DEPLOYMENT", "SUCCEEDED")


def test_advance_moves_time_without_a_fake_clock(events: list[dict[str, Any]]) -> None:
    sim = AppRunnerSimulator(operation_seconds=30.0, event_sink=events.append)
    client = make_client()
    sim.attach(client)
    arn = new_service(client)
    sim.advance(30.0)
    assert statuses(events) == ["CreateServiceStarted", "CreateServiceCompletedSuccessfully"]
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"


@pytest.mark.parametrize(
    "call",
    [
        lambda c, arn: c.start_deployment(ServiceArn=arn),
        lambda c, arn: c.update_service(
            ServiceArn=arn, SourceConfiguration=image_source(f"{REGISTRY}/web:v2")
        ),
        lambda c, arn: c.pause_service(ServiceArn=arn),
        lambda c, arn: c.delete_service(ServiceArn=arn),
    ],
    ids=["StartDeployment", "UpdateService", "PauseService", "DeleteService"],
)
def test_one_operation_at_a_time(client: AppRunnerClient, clock: FakeClock, call: Any) -> None:
    arn = create(client, clock)
    client.start_deployment(ServiceArn=arn)
    with pytest.raises(ClientError) as raised:
        call(client, arn)
    assert error_code(raised) == "InvalidStateException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "in progress" in raised.value.response["Error"]["Message"]
    clock.advance(2.0)
    call(client, arn)  # accepted once the running operation has settled


def test_busy_while_the_service_is_being_created(client: AppRunnerClient) -> None:
    arn = new_service(client)
    with pytest.raises(ClientError) as raised:
        client.start_deployment(ServiceArn=arn)
    assert error_code(raised) == "InvalidStateException"


def test_update_service_changes_the_image_on_success(client: AppRunnerClient, clock: FakeClock) -> None:
    arn = create(client, clock)
    new_image = f"{REGISTRY}/web@{DIGEST}"
    updated = client.update_service(ServiceArn=arn, SourceConfiguration=image_source(new_image))
    assert updated["Service"]["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"] == new_image
    assert updated["Service"]["Status"] == "OPERATION_IN_PROGRESS"
    assert configured_image(client, arn) == IMAGE  # still the old one while the operation runs
    clock.advance(2.0)
    assert configured_image(client, arn) == new_image
    assert operations(client, arn)[0] == ("UPDATE_SERVICE", "SUCCEEDED")


def test_update_without_image_configuration_resets_it(client: AppRunnerClient, clock: FakeClock) -> None:
    arn = create(client, clock)
    bare: SourceConfigurationTypeDef = {
        "ImageRepository": {"ImageIdentifier": f"{REGISTRY}/web:v2", "ImageRepositoryType": "ECR"}
    }
    client.update_service(ServiceArn=arn, SourceConfiguration=bare)
    clock.advance(2.0)
    source = client.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]
    assert source["ImageRepository"]["ImageConfiguration"] == {"Port": "8080"}
    assert source["AuthenticationConfiguration"] == {"AccessRoleArn": ROLE}


def test_injected_failure_rolls_back_and_keeps_the_old_image(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    arn = create(client, clock)
    sim.fail_next(arn, count=2)
    client.update_service(ServiceArn=arn, SourceConfiguration=image_source(f"{REGISTRY}/web:v2"))
    clock.advance(2.0)
    assert configured_image(client, arn) == IMAGE
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"
    client.start_deployment(ServiceArn=arn)
    clock.advance(2.0)
    client.start_deployment(ServiceArn=arn)
    clock.advance(2.0)
    assert operations(client, arn)[:3] == [
        ("START_DEPLOYMENT", "SUCCEEDED"),
        ("START_DEPLOYMENT", "ROLLBACK_SUCCEEDED"),
        ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED"),
    ]
    assert statuses(events)[2:] == [
        "UpdateServiceStarted",
        "UpdateServiceFailed",
        "DeploymentStarted",
        "DeploymentFailed",
        "DeploymentStarted",
        "DeploymentCompletedSuccessfully",
    ]


@pytest.mark.parametrize(
    ("reference", "fails"),
    [("web:fail", True), ("web:v1.2.0-fail", True), ("fail-demo/web:1.0", True), ("web:failover", False)],
)
def test_an_image_labelled_fail_fails(
    client: AppRunnerClient, clock: FakeClock, reference: str, fails: bool
) -> None:
    arn = create(client, clock)
    client.update_service(ServiceArn=arn, SourceConfiguration=image_source(f"{REGISTRY}/{reference}"))
    clock.advance(2.0)
    assert operations(client, arn)[0] == ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED" if fails else "SUCCEEDED")


def test_creating_with_a_failing_image_ends_create_failed(
    client: AppRunnerClient, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    arn = create(client, clock, identifier=f"{REGISTRY}/web:fail")
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "CREATE_FAILED"
    assert operations(client, arn) == [("CREATE_SERVICE", "FAILED")]
    assert statuses(events) == ["CreateServiceStarted", "CreateServiceFailed"]
    with pytest.raises(ClientError) as raised:
        client.start_deployment(ServiceArn=arn)
    assert "CREATE_FAILED" in raised.value.response["Error"]["Message"]
    client.update_service(ServiceArn=arn, SourceConfiguration=image_source())
    clock.advance(2.0)
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"


def test_pause_blocks_deployments_until_resume(client: AppRunnerClient, clock: FakeClock) -> None:
    arn = create(client, clock)
    client.pause_service(ServiceArn=arn)
    clock.advance(2.0)
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "PAUSED"
    with pytest.raises(ClientError) as raised:
        client.start_deployment(ServiceArn=arn)
    assert error_code(raised) == "InvalidStateException"
    assert "PAUSED" in raised.value.response["Error"]["Message"]
    client.resume_service(ServiceArn=arn)
    clock.advance(2.0)
    assert operations(client, arn)[:2] == [("RESUME_SERVICE", "SUCCEEDED"), ("PAUSE_SERVICE", "SUCCEEDED")]


def test_deleted_service_is_described_but_not_listed(client: AppRunnerClient, clock: FakeClock) -> None:
    arn = create(client, clock)
    other = create(client, clock, name="web-staging")
    client.delete_service(ServiceArn=arn)
    clock.advance(2.0)
    described = client.describe_service(ServiceArn=arn)["Service"]
    assert described["Status"] == "DELETED"
    assert "DeletedAt" in described
    assert [s["ServiceArn"] for s in client.list_services()["ServiceSummaryList"]] == [other]
    # The name is free again.
    create(client, clock)


def test_code_based_service_deploys_its_branch(
    client: AppRunnerClient, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    source: SourceConfigurationTypeDef = {
        "CodeRepository": {
            "RepositoryUrl": "https://github.com/acme/web",
            "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
            "CodeConfiguration": {
                "ConfigurationSource": "API",
                "CodeConfigurationValues": {"Runtime": "PYTHON_311", "BuildCommand": "pip install -r r.txt"},
            },
        },
        "AuthenticationConfiguration": {"ConnectionArn": CONNECTION},
        "AutoDeploymentsEnabled": False,
    }
    arn = client.create_service(ServiceName="web-code", SourceConfiguration=source)["Service"]["ServiceArn"]
    clock.advance(2.0)
    client.start_deployment(ServiceArn=arn)
    clock.advance(2.0)
    assert operations(client, arn)[0] == ("START_DEPLOYMENT", "SUCCEEDED")
    assert statuses(events)[-2:] == ["DeploymentStarted", "DeploymentCompletedSuccessfully"]


# ----- ListOperations and ListServices -----


def test_list_operations_newest_first_with_max_results_and_next_token(
    client: AppRunnerClient, clock: FakeClock
) -> None:
    arn = create(client, clock)
    deployed = []
    for _ in range(4):
        deployed.append(client.start_deployment(ServiceArn=arn)["OperationId"])
        clock.advance(2.0)
    first = client.list_operations(ServiceArn=arn, MaxResults=2)
    second = client.list_operations(ServiceArn=arn, MaxResults=2, NextToken=first["NextToken"])
    third = client.list_operations(ServiceArn=arn, MaxResults=2, NextToken=second["NextToken"])
    pages = [[op["Id"] for op in page["OperationSummaryList"]] for page in (first, second, third)]
    assert pages[:2] == [deployed[:1:-1], deployed[1::-1]]
    assert [op["Type"] for op in third["OperationSummaryList"]] == ["CREATE_SERVICE"]
    assert "NextToken" not in third


def test_list_operations_returns_at_most_20_by_default(client: AppRunnerClient, clock: FakeClock) -> None:
    arn = create(client, clock)
    for _ in range(22):
        client.start_deployment(ServiceArn=arn)
        clock.advance(2.0)
    listed = client.list_operations(ServiceArn=arn)
    assert len(listed["OperationSummaryList"]) == 20
    rest = client.list_operations(ServiceArn=arn, NextToken=listed["NextToken"])
    assert len(rest["OperationSummaryList"]) == 3
    assert rest["OperationSummaryList"][-1]["Type"] == "CREATE_SERVICE"


def test_list_operations_refuses_more_than_20(client: AppRunnerClient, clock: FakeClock) -> None:
    arn = create(client, clock)
    with pytest.raises(ClientError) as raised:
        client.list_operations(ServiceArn=arn, MaxResults=21)  # botocore does not check maximums
    assert error_code(raised) == "InvalidRequestException"
    with pytest.raises(ClientError) as raised:
        client.list_operations(ServiceArn=arn, NextToken="garbage")
    assert error_code(raised) == "InvalidRequestException"


def test_list_services_pages(client: AppRunnerClient, clock: FakeClock) -> None:
    arns = [create(client, clock, name=f"web-{n}") for n in range(3)]
    first = client.list_services(MaxResults=2)
    second = client.list_services(MaxResults=2, NextToken=first["NextToken"])
    listed = [s["ServiceArn"] for s in first["ServiceSummaryList"] + second["ServiceSummaryList"]]
    assert listed == arns
    assert "NextToken" not in second


# ----- events -----


def test_events_are_shaped_as_app_runner_sends_them(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    arn = create(client, clock)
    service_id = arn.rsplit("/", 1)[1]
    client.start_deployment(ServiceArn=arn)
    started = events[-1]
    assert UUID.match(started.pop("id"))
    assert started == {
        "version": "0",
        "detail-type": "AppRunner Service Operation Status Change",
        "source": "aws.apprunner",
        "account": ACCOUNT,
        "time": "2026-09-21T14:13:22Z",  # EPOCH + 2 s
        "region": "us-east-1",
        "resources": [arn],
        "detail": {
            "operationStatus": "DeploymentStarted",
            "serviceName": "web-prod",
            "serviceId": service_id,
            "message": "Deployment started.",
            "severity": "INFO",
        },
    }
    clock.advance(2.0)
    sim.tick()
    assert events[-1]["detail"]["operationStatus"] == "DeploymentCompletedSuccessfully"
    assert events[-1]["time"] == "2026-09-21T14:13:24Z"


def test_lost_events_are_never_sent(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    arn = create(client, clock)
    other = create(client, clock, name="web-staging")
    sim.tick()
    events.clear()
    sim.lose_events(arn, count=1)
    client.start_deployment(ServiceArn=arn)
    client.start_deployment(ServiceArn=other)
    clock.advance(2.0)
    sim.tick()
    sent = [(event["resources"][0], event["detail"]["operationStatus"]) for event in events]
    assert sorted(sent) == sorted(
        [
            (other, "DeploymentStarted"),
            (arn, "DeploymentCompletedSuccessfully"),
            (other, "DeploymentCompletedSuccessfully"),
        ]
    )


def test_a_failing_event_sink_does_not_fail_the_call(clock: FakeClock) -> None:
    def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("consumer down")

    sim = AppRunnerSimulator(clock=clock, event_sink=broken)
    client = make_client()
    sim.attach(client)
    assert create(client, clock).startswith("arn:aws:apprunner:")


# ----- errors and fault injection -----


def test_unknown_service_is_resource_not_found(client: AppRunnerClient) -> None:
    arn = f"arn:aws:apprunner:us-east-1:{ACCOUNT}:service/nope/{'0' * 32}"
    for call in (client.describe_service, client.start_deployment, client.list_operations):
        with pytest.raises(ClientError) as raised:
            call(ServiceArn=arn)
        assert error_code(raised) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (image_source(f"{REGISTRY}/web@sha256:abc"), "digest"),
        ({**public_source(), "AutoDeploymentsEnabled": True}, "ECR Public"),
        (image_source("nginx:latest"), "pattern"),
    ],
    ids=["short-digest", "auto-deploy", "not-ecr"],
)
def test_invalid_sources_are_invalid_requests(
    client: AppRunnerClient, clock: FakeClock, source: SourceConfigurationTypeDef, message: str
) -> None:
    arn = create(client, clock)
    with pytest.raises(ClientError) as raised:
        client.update_service(ServiceArn=arn, SourceConfiguration=source)
    assert error_code(raised) == "InvalidRequestException"
    assert message in raised.value.response["Error"]["Message"]
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"


def test_invalid_creations_are_invalid_requests(client: AppRunnerClient, clock: FakeClock) -> None:
    create(client, clock)
    no_role: SourceConfigurationTypeDef = {"ImageRepository": image_source()["ImageRepository"]}
    for name, source in (("web-prod", image_source()), ("web-new", no_role)):
        with pytest.raises(ClientError) as raised:
            client.create_service(ServiceName=name, SourceConfiguration=source)
        assert error_code(raised) == "InvalidRequestException"
    assert "AccessRoleArn" in raised.value.response["Error"]["Message"]


def test_switching_from_image_to_code_is_an_invalid_request(
    client: AppRunnerClient, clock: FakeClock
) -> None:
    arn = create(client, clock)
    code: SourceConfigurationTypeDef = {
        "CodeRepository": {
            "RepositoryUrl": "https://github.com/acme/web",
            "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
        }
    }
    with pytest.raises(ClientError) as raised:
        client.update_service(ServiceArn=arn, SourceConfiguration=code)
    assert "switch" in raised.value.response["Error"]["Message"]


def test_throttling_is_a_400_throttling_exception(client: AppRunnerClient, sim: AppRunnerSimulator) -> None:
    sim.throttle_next(1)
    with pytest.raises(ClientError) as raised:
        client.list_services()
    assert error_code(raised) == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert client.list_services()["ServiceSummaryList"] == []


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_botocore_retries_treat_it_as_throttling(
    sim: AppRunnerSimulator,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    mode: Literal["standard", "legacy"],
) -> None:
    # botocore's endpoint sleeps between attempts with time.sleep.
    monkeypatch.setattr(time, "sleep", lambda _: None)
    client = make_client(Config(retries={"mode": mode, "total_max_attempts": 3}))
    sim.attach(client)
    arn = create(client, clock)
    sim.throttle_next(2, operation="StartDeployment")
    started = client.start_deployment(ServiceArn=arn)
    assert started["ResponseMetadata"]["RetryAttempts"] == 2
    assert [name for name, _ in sim.calls].count("StartDeployment") == 3
    # A 400 that is not throttling is not retried.
    with pytest.raises(ClientError) as raised:
        client.start_deployment(ServiceArn=arn)
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_injected_internal_errors_are_500s_for_the_named_operation(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock
) -> None:
    arn = create(client, clock)
    sim.error_next(1, operation="ListOperations")
    client.describe_service(ServiceArn=arn)  # another operation: unaffected
    with pytest.raises(ClientError) as raised:
        client.list_operations(ServiceArn=arn)
    assert error_code(raised) == "InternalServiceErrorException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert client.list_operations(ServiceArn=arn)["OperationSummaryList"]


def test_fault_injection_checks_its_arguments(sim: AppRunnerSimulator) -> None:
    with pytest.raises(ValueError, match="unknown App Runner operation"):
        sim.throttle_next(1, operation="Deploy")
    with pytest.raises(ValueError, match="at least 1"):
        sim.error_next(0)


def test_every_call_is_recorded(client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock) -> None:
    arn = create(client, clock)
    client.start_deployment(ServiceArn=arn)
    assert [name for name, _ in sim.calls] == ["CreateService", "StartDeployment"]
    assert sim.calls[1][1] == {"ServiceArn": arn}


def test_handle_speaks_json_1_0(sim: AppRunnerSimulator) -> None:
    status, headers, body = sim.handle("AppRunner.ListServices", b"{}")
    assert (status, headers["Content-Type"], json.loads(body)) == (
        200,
        "application/x-amz-json-1.0",
        {"ServiceSummaryList": []},
    )
    status, _, body = sim.handle("AppRunner.Nope", b"{}")
    assert (status, json.loads(body)["__type"]) == (400, "UnknownOperationException")
    status, _, body = sim.handle("AppRunner.ListServices", b"{not json")
    assert (status, json.loads(body)["__type"]) == (400, "SerializationException")
    status, _, body = sim.handle("AppRunner.StartDeployment", b"{}")
    assert (status, json.loads(body)["__type"]) == (400, "InvalidRequestException")


# ----- loopback HTTP -----


@pytest.fixture
def served(events: list[dict[str, Any]]) -> Iterator[tuple[AppRunnerSimulator, str]]:
    sim = AppRunnerSimulator(operation_seconds=0.2, event_sink=events.append)
    _, url = sim.serve()
    yield sim, url
    sim.stop()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_for_status(client: AppRunnerClient, arn: str, status: str) -> None:
    wait_until(lambda: client.describe_service(ServiceArn=arn)["Service"]["Status"] == status, status)


def test_over_loopback_http(served: tuple[AppRunnerSimulator, str], events: list[dict[str, Any]]) -> None:
    _, url = served
    assert url.startswith("http://127.0.0.1:")
    client = make_client(endpoint_url=url)
    arn = new_service(client)
    wait_for_status(client, arn, "RUNNING")  # settled by the background ticker
    client.start_deployment(ServiceArn=arn)
    with pytest.raises(ClientError) as raised:
        client.start_deployment(ServiceArn=arn)
    assert error_code(raised) == "InvalidStateException"
    wait_for_status(client, arn, "RUNNING")

    # The fault-injection controls are reachable over HTTP too.
    control = urllib.request.Request(  # noqa: S310 - the loopback URL serve() returned
        url,
        data=json.dumps({"ServiceArn": arn, "Count": 1}).encode(),
        headers={"X-Amz-Target": "PushdeploySim.FailNext", "Content-Type": "application/x-amz-json-1.0"},
    )
    with urllib.request.urlopen(control, timeout=5) as answer:  # noqa: S310 - loopback URL from serve()
        assert answer.status == 200
    client.start_deployment(ServiceArn=arn)
    wait_for_status(client, arn, "RUNNING")
    assert [op["Status"] for op in client.list_operations(ServiceArn=arn)["OperationSummaryList"]] == [
        "ROLLBACK_SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
    ]
    # The background ticker may still be handing the last event to the sink.
    wait_until(lambda: statuses(events)[-1] == "DeploymentFailed", "the DeploymentFailed event")


# ----- deployment mode and automatic deployment -----

OTHER_ACCOUNT = "444455556666"
COMMIT = "c0ffee" + "0" * 34
NEW_DIGEST = "sha256:" + "cd" * 32


def auto_source(identifier: str = IMAGE) -> SourceConfigurationTypeDef:
    """`image_source` with the deployment mode left to App Runner's default."""
    source = image_source(identifier)
    del source["AutoDeploymentsEnabled"]
    return source


def code_source(
    url: str = "https://github.com/acme/web", branch: str = "main", source_directory: str | None = None
) -> SourceConfigurationTypeDef:
    """A code repository, in the deployment mode App Runner gives it by default."""
    source: SourceConfigurationTypeDef = {
        "CodeRepository": {
            "RepositoryUrl": url,
            "SourceCodeVersion": {"Type": "BRANCH", "Value": branch},
            "CodeConfiguration": {"ConfigurationSource": "REPOSITORY"},
        },
        "AuthenticationConfiguration": {"ConnectionArn": CONNECTION},
    }
    if source_directory is not None:
        source["CodeRepository"]["SourceDirectory"] = source_directory
    return source


def create_with(
    client: AppRunnerClient, clock: FakeClock, source: SourceConfigurationTypeDef, name: str = "web-prod"
) -> str:
    arn = client.create_service(ServiceName=name, SourceConfiguration=source)["Service"]["ServiceArn"]
    clock.advance(2.0)
    return arn


def mode(client: AppRunnerClient, arn: str) -> bool:
    return client.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]["AutoDeploymentsEnabled"]


def push(sim: AppRunnerSimulator, tag: str = "latest", **where: str) -> list[tuple[str, str | None]]:
    """A push of `web:<tag>` (or of `repository` in `account`/`region`): (service, operation id) pairs."""
    done = sim.image_pushed(
        where.get("account", ACCOUNT),
        where.get("region", "us-east-1"),
        where.get("repository", "web"),
        tag,
        where.get("digest", "sha256:" + uuid.uuid4().hex * 2),  # a new image each time
    )
    return [(d.service_arn, d.operation_id) for d in done]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (auto_source(), True),
        (code_source(), True),
        (public_source(), False),
        (auto_source(f"{OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/web:latest"), False),
        (image_source(), False),  # explicit false is kept
        ({**auto_source(), "AutoDeploymentsEnabled": True}, True),
    ],
    ids=["same-account-ecr", "code", "ecr-public", "other-account-ecr", "explicit-false", "explicit-true"],
)
def test_deployment_mode_defaults_as_app_runner_documents(
    client: AppRunnerClient, clock: FakeClock, source: SourceConfigurationTypeDef, expected: bool
) -> None:
    created = client.create_service(ServiceName="web-prod", SourceConfiguration=source)["Service"]
    assert created["SourceConfiguration"]["AutoDeploymentsEnabled"] is expected
    clock.advance(2.0)
    assert mode(client, created["ServiceArn"]) is expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (public_source(), "doesn't support automatic deployments for an image in an ECR Public repository"),
        (
            auto_source(f"{OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/web:latest"),
            f"ECR repository in another AWS account ({OTHER_ACCOUNT})",
        ),
    ],
    ids=["ecr-public", "other-account-ecr"],
)
def test_automatic_mode_is_refused_where_app_runner_refuses_it(
    client: AppRunnerClient, clock: FakeClock, source: SourceConfigurationTypeDef, message: str
) -> None:
    automatic: SourceConfigurationTypeDef = {**source, "AutoDeploymentsEnabled": True}
    with pytest.raises(ClientError) as raised:
        client.create_service(ServiceName="web-prod", SourceConfiguration=automatic)
    assert error_code(raised) == "InvalidRequestException"
    assert message in raised.value.response["Error"]["Message"]
    arn = create_with(client, clock, source)  # the same source in manual mode is fine
    with pytest.raises(ClientError) as raised:
        client.update_service(ServiceArn=arn, SourceConfiguration=automatic)
    assert error_code(raised) == "InvalidRequestException"
    assert mode(client, arn) is False


def test_an_automatic_service_deploys_on_a_push_of_its_tag(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    arn = create_with(client, clock, auto_source())
    sim.tick()
    events.clear()
    [done] = sim.image_pushed(ACCOUNT, "us-east-1", "web", "latest", NEW_DIGEST)
    assert (done.service_arn, done.reason) == (arn, None)
    assert UUID.match(done.operation_id or "")
    [latest, _] = client.list_operations(ServiceArn=arn)["OperationSummaryList"]
    assert (latest["Id"], latest["Type"], latest["Status"]) == (
        done.operation_id,
        "START_DEPLOYMENT",
        "IN_PROGRESS",
    )
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "OPERATION_IN_PROGRESS"
    assert statuses(events) == ["DeploymentStarted"]
    assert events[0]["resources"] == [arn]
    clock.advance(2.0)
    sim.tick()
    assert operations(client, arn)[0] == ("START_DEPLOYMENT", "SUCCEEDED")
    assert statuses(events) == ["DeploymentStarted", "DeploymentCompletedSuccessfully"]
    assert configured_image(client, arn) == IMAGE  # it redeploys the tag; the configuration is unchanged
    assert "StartDeployment" not in [name for name, _ in sim.calls]  # App Runner deployed by itself


@pytest.mark.parametrize(
    "where",
    [
        {"tag": "v2"},
        {"repository": "api"},
        {"account": OTHER_ACCOUNT},
        {"region": "eu-west-1"},
    ],
    ids=["other-tag", "other-repository", "other-account", "other-region"],
)
def test_a_push_of_anything_else_deploys_nothing(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, where: dict[str, str]
) -> None:
    arn = create_with(client, clock, auto_source())
    tag = where.pop("tag", "latest")
    assert push(sim, tag, **where) == []
    assert operations(client, arn) == [("CREATE_SERVICE", "SUCCEEDED")]


def test_a_service_in_another_region_of_the_image_never_deploys(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock
) -> None:
    # The image is in eu-west-1, the service in us-east-1: App Runner deploys only from its own Region.
    arn = create_with(client, clock, auto_source(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/web:latest"))
    assert mode(client, arn) is True
    assert push(sim, region="eu-west-1") == []
    assert operations(client, arn) == [("CREATE_SERVICE", "SUCCEEDED")]


def test_no_tag_means_latest_and_a_digest_never_deploys(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock
) -> None:
    untagged = create_with(client, clock, auto_source(f"{REGISTRY}/web"), name="web-untagged")
    pinned = create_with(client, clock, auto_source(f"{REGISTRY}/web@{DIGEST}"), name="web-pinned")
    assert mode(client, pinned) is True
    assert [service for service, _ in push(sim, "latest")] == [untagged]
    assert operations(client, pinned) == [("CREATE_SERVICE", "SUCCEEDED")]
    assert sim.image_pushed(ACCOUNT, "us-east-1", "web", None, NEW_DIGEST) == []  # an untagged push


def test_a_manual_service_is_reported_but_not_deployed(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock
) -> None:
    arn = create(client, clock)  # AutoDeploymentsEnabled false
    [done] = sim.image_pushed(ACCOUNT, "us-east-1", "web", "latest", NEW_DIGEST)
    assert (done.service_arn, done.operation_id, done.automatic) == (arn, None, False)
    assert "automatic deployment is off" in (done.reason or "")
    assert operations(client, arn) == [("CREATE_SERVICE", "SUCCEEDED")]


def test_a_push_during_an_operation_is_not_deployed_then_or_later(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    arn = create_with(client, clock, auto_source())
    client.update_service(ServiceArn=arn, SourceConfiguration=auto_source(f"{REGISTRY}/web:latest"))
    [done] = sim.image_pushed(ACCOUNT, "us-east-1", "web", "latest", NEW_DIGEST)
    assert done.operation_id is None
    assert "UPDATE_SERVICE" in (done.reason or "")
    assert "does not queue" in (done.reason or "")
    clock.advance(10.0)
    sim.tick()
    # Nothing was queued: the push stays undeployed.
    assert operations(client, arn) == [("UPDATE_SERVICE", "SUCCEEDED"), ("CREATE_SERVICE", "SUCCEEDED")]
    # A push during an automatic deployment is dropped the same way.
    [(_, first)] = push(sim)
    [(_, second)] = push(sim)
    assert first is not None
    assert second is None
    clock.advance(2.0)
    sim.tick()
    assert [op for op in operations(client, arn) if op[0] == "START_DEPLOYMENT"] == [
        ("START_DEPLOYMENT", "SUCCEEDED")
    ]
    assert statuses(events).count("DeploymentStarted") == 1


def test_a_paused_service_does_not_deploy_and_a_repeated_push_is_no_change(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock
) -> None:
    arn = create_with(client, clock, auto_source())
    client.pause_service(ServiceArn=arn)
    clock.advance(2.0)
    [done] = sim.image_pushed(ACCOUNT, "us-east-1", "web", "latest", NEW_DIGEST)
    assert done.reason == "the service is PAUSED"
    client.resume_service(ServiceArn=arn)
    clock.advance(2.0)
    # The same digest again (a duplicate notification) changes nothing; a new one deploys.
    [again] = sim.image_pushed(ACCOUNT, "us-east-1", "web", "latest", NEW_DIGEST)
    assert again.operation_id is None
    assert "changes nothing" in (again.reason or "")
    [(_, operation)] = push(sim)
    assert operation is not None


def test_an_automatic_deployment_fails_and_rolls_back_like_any_other(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    failing = create_with(client, clock, auto_source(f"{REGISTRY}/web:fail"), name="web-failing")
    injected = create_with(client, clock, auto_source(), name="web-injected")
    sim.fail_next(injected)
    assert client.describe_service(ServiceArn=failing)["Service"]["Status"] == "CREATE_FAILED"
    assert push(sim, "fail") == [(failing, None)]  # CREATE_FAILED: no deployment
    [(_, operation)] = push(sim, "latest")
    assert operation is not None
    clock.advance(2.0)
    sim.tick()
    assert operations(client, injected)[0] == ("START_DEPLOYMENT", "ROLLBACK_SUCCEEDED")
    assert statuses(events)[-2:] == ["DeploymentStarted", "DeploymentFailed"]
    assert client.describe_service(ServiceArn=injected)["Service"]["Status"] == "RUNNING"


def test_a_code_service_deploys_on_a_push_to_its_branch(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    arn = create_with(client, clock, code_source(), name="web-code")
    assert sim.code_pushed("https://github.com/acme/web", "develop", COMMIT) == []
    assert sim.code_pushed("https://github.com/acme/api", "main", COMMIT) == []
    # The same repository, written another way.
    [done] = sim.code_pushed("https://GitHub.com/acme/web.git/", "main", COMMIT)
    assert (done.service_arn, done.reason) == (arn, None)
    clock.advance(2.0)
    sim.tick()
    assert operations(client, arn)[0] == ("START_DEPLOYMENT", "SUCCEEDED")
    assert statuses(events)[-2:] == ["DeploymentStarted", "DeploymentCompletedSuccessfully"]
    [again] = sim.code_pushed("https://github.com/acme/web", "main", COMMIT)
    assert "changes nothing" in (again.reason or "")


def test_a_code_service_with_a_source_directory_deploys_on_changes_under_it(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock
) -> None:
    arn = create_with(client, clock, code_source(source_directory="/services/web"), name="web-code")
    [outside] = sim.code_pushed("https://github.com/acme/web", "main", "1" * 40, ["docs/README.md"])
    assert "source directory services/web/" in (outside.reason or "")
    [inside] = sim.code_pushed("https://github.com/acme/web", "main", "2" * 40, ["services/web/app.py"])
    assert inside.operation_id is not None
    clock.advance(2.0)
    [unknown] = sim.code_pushed("https://github.com/acme/web", "main", "3" * 40)  # paths unknown
    assert unknown.operation_id is not None
    clock.advance(2.0)
    assert [op for op in operations(client, arn) if op[0] == "START_DEPLOYMENT"] == [
        ("START_DEPLOYMENT", "SUCCEEDED"),
        ("START_DEPLOYMENT", "SUCCEEDED"),
    ]


def test_update_service_switches_the_mode(
    client: AppRunnerClient, sim: AppRunnerSimulator, clock: FakeClock
) -> None:
    arn = create(client, clock)  # manual
    client.update_service(
        ServiceArn=arn, SourceConfiguration={**image_source(), "AutoDeploymentsEnabled": True}
    )
    assert mode(client, arn) is False  # only once the update succeeds
    clock.advance(2.0)
    assert mode(client, arn) is True
    [(_, operation)] = push(sim)
    assert operation is not None
    clock.advance(2.0)
    # Left out of an update, the mode is kept.
    client.update_service(ServiceArn=arn, SourceConfiguration=auto_source(f"{REGISTRY}/web:v2"))
    clock.advance(2.0)
    assert mode(client, arn) is True
    assert push(sim, "latest") == []  # the service now watches v2
    [(_, operation)] = push(sim, "v2")
    assert operation is not None
    clock.advance(2.0)
    client.update_service(ServiceArn=arn, SourceConfiguration=image_source(f"{REGISTRY}/web:v2"))  # false
    clock.advance(2.0)
    assert mode(client, arn) is False
    assert push(sim, "v2") == [(arn, None)]


def test_an_update_to_an_image_that_cannot_deploy_automatically_makes_it_manual(
    client: AppRunnerClient, clock: FakeClock
) -> None:
    arn = create_with(client, clock, auto_source())
    assert mode(client, arn) is True
    client.update_service(ServiceArn=arn, SourceConfiguration=public_source())
    clock.advance(2.0)
    assert mode(client, arn) is False
    source = client.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]
    assert source["ImageRepository"]["ImageIdentifier"] == PUBLIC_IMAGE


def test_pushes_check_their_arguments(sim: AppRunnerSimulator) -> None:
    with pytest.raises(ValueError, match="digest"):
        sim.image_pushed(ACCOUNT, "us-east-1", "web", "latest", "sha256:abc")
    with pytest.raises(ValueError, match="commit"):
        sim.code_pushed("https://github.com/acme/web", "main", "")


def control(url: str, command: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - the loopback URL serve() returned
        url,
        data=json.dumps(params).encode(),
        headers={"X-Amz-Target": f"PushdeploySim.{command}", "Content-Type": "application/x-amz-json-1.0"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback URL
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_pushes_over_loopback_http(
    served: tuple[AppRunnerSimulator, str], events: list[dict[str, Any]]
) -> None:
    _, url = served
    client = make_client(endpoint_url=url)
    image = client.create_service(ServiceName="web-prod", SourceConfiguration=auto_source())["Service"]
    code = client.create_service(ServiceName="web-code", SourceConfiguration=code_source())["Service"]
    manual = new_service(client, name="web-manual")
    for arn in (image["ServiceArn"], code["ServiceArn"], manual):
        wait_for_status(client, arn, "RUNNING")

    status, answer = control(url, "ImagePushed", {"Repository": "web", "Tag": "latest", "Digest": NEW_DIGEST})
    assert status == 200
    by_service = {entry["ServiceArn"]: entry for entry in answer["Services"]}
    assert UUID.match(by_service[image["ServiceArn"]]["OperationId"])
    assert "automatic deployment is off" in by_service[manual]["NotDeployed"]

    status, answer = control(
        url,
        "CodePushed",
        {"RepositoryUrl": "https://github.com/acme/web", "Branch": "main", "Commit": COMMIT},
    )
    assert status == 200
    [entry] = answer["Services"]
    assert entry["ServiceArn"] == code["ServiceArn"]
    assert UUID.match(entry["OperationId"])
    wait_for_status(client, image["ServiceArn"], "RUNNING")
    wait_for_status(client, code["ServiceArn"], "RUNNING")
    wait_until(lambda: statuses(events).count("DeploymentCompletedSuccessfully") == 2, "both deployments")

    for command, params in (("ImagePushed", {"Repository": "web"}), ("CodePushed", {"Branch": "main"})):
        status, answer = control(url, command, params)
        assert (status, answer["__type"]) == (400, "InvalidRequestException")
        assert f"Bad {command} request" in answer["Message"]


# ----- the local cloud tells the simulator of the pushes moto takes -----

MOTO_ACCOUNT = "123456789012"  # moto's account when MOTO_ACCOUNT_ID is unset


@pytest.fixture
def watched_moto(clock: FakeClock) -> Iterator[tuple[AppRunnerSimulator, str, list[str]]]:
    """moto behind PushWatch, telling a simulator in moto's account, whose push listener says what the
    local cloud says: (simulator, moto's URL, the lines said)."""
    said: list[str] = []
    sim = AppRunnerSimulator(
        account=MOTO_ACCOUNT,
        clock=clock,
        push_listener=lambda what, done: said.extend(report_lines(what, done)),
    )

    def watch(app: WsgiApp) -> WsgiApp:
        return PushWatch(app, lambda: sim, account=MOTO_ACCOUNT, region="us-east-1")

    server = MotoServer(middleware=watch)
    server.start()
    try:
        yield sim, server.url, said
    finally:
        server.stop()


def moto_client(service: str, url: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_the_local_cloud_tells_the_simulator_of_pushes(
    watched_moto: tuple[AppRunnerSimulator, str, list[str]], clock: FakeClock
) -> None:
    sim, url, said = watched_moto
    apprunner = make_client()
    sim.attach(apprunner)
    repository = f"watched-{uuid.uuid4().hex[:8]}"
    registry = f"{MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    image = create_with(apprunner, clock, auto_source(f"{registry}/{repository}:latest"), name="image-svc")
    codecommit_url = "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app"
    codecommit = create_with(apprunner, clock, code_source(codecommit_url, "main"), name="codecommit-svc")

    # push-image: ECR PutImage, then the ECR event (which is only a report: it deploys nothing more).
    ecr, events = moto_client("ecr", url), moto_client("events", url)
    ecr.create_repository(repositoryName=repository)
    manifest = pushes.image_manifest(repository, "latest")
    ecr.put_image(
        repositoryName=repository,
        imageManifest=manifest.text,
        imageTag="latest",
        imageManifestMediaType=pushes.MANIFEST_MEDIA_TYPE,
        imageDigest=manifest.digest,
    )
    assert operations(apprunner, image)[0] == ("START_DEPLOYMENT", "IN_PROGRESS")
    events.put_events(Entries=[pushes.ecr_push_entry(repository, "latest", manifest.digest)])
    assert len(operations(apprunner, image)) == 2
    assert said == [said[0]]
    assert "App Runner deploys image-svc by itself" in said[0]
    assert f"{repository}:latest" in said[0]

    # push-commit codecommit: CodeCommit's event; a deleted branch is not a push.
    entry = pushes.codecommit_push_entry("app", "main", COMMIT, account=MOTO_ACCOUNT, region="us-east-1")
    deleted = json.loads(entry["Detail"]) | {"event": "referenceDeleted"}
    events.put_events(Entries=[{**entry, "Detail": json.dumps(deleted)}])
    assert len(operations(apprunner, codecommit)) == 1
    events.put_events(Entries=[entry])
    assert operations(apprunner, codecommit)[0] == ("START_DEPLOYMENT", "IN_PROGRESS")

    # While the image service deploys, a new push is not deployed, and the local cloud says why.
    again = pushes.image_manifest(repository, "latest")
    ecr.put_image(repositoryName=repository, imageManifest=again.text, imageTag="latest")
    assert len(operations(apprunner, image)) == 2
    assert "App Runner does not deploy image-svc" in said[-1]
    assert "does not queue" in said[-1]


@pytest.mark.parametrize(
    ("target", "request_body", "answer"),
    [
        (PUT_IMAGE, {"repositoryName": "web"}, {"image": {"repositoryName": "web"}}),  # no digest
        (PUT_IMAGE, {}, "not json"),
        (
            PUT_EVENTS,
            {
                "Entries": [
                    pushes.codecommit_push_entry("app", "main", COMMIT, account=ACCOUNT, region="us-east-1")
                ]
            },
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]},  # not accepted
        ),
        (
            PUT_EVENTS,
            {"Entries": [pushes.ecr_push_entry("web", "latest", DIGEST)]},
            {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]},  # ECR's report, not the push
        ),
        ("DynamoDB_20120810.PutItem", {}, {}),
    ],
    ids=["no-digest", "not-json", "refused-entry", "ecr-event", "other-target"],
)
def test_what_is_not_a_push(target: str, request_body: dict[str, Any], answer: Any) -> None:
    raw_answer = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
    found = pushes_of(
        target, json.dumps(request_body).encode(), raw_answer, account=ACCOUNT, region="us-east-1"
    )
    assert found == []


def test_a_codecommit_push_names_its_region_by_its_repository_arn() -> None:
    entry = pushes.codecommit_push_entry("app", "main", COMMIT, account=ACCOUNT, region="eu-west-1")
    found = pushes_of(
        PUT_EVENTS,
        json.dumps({"Entries": [entry]}).encode(),
        json.dumps({"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}).encode(),
        account=ACCOUNT,
        region="us-east-1",
    )
    assert found == [CodePush("https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/app", "main", COMMIT)]


def headers_of(delivery: pushes.Delivery) -> list[tuple[str, str]]:
    return list(delivery.headers.items())


def test_a_webhook_push_delivery_is_the_push_app_runner_sees() -> None:
    github = pushes.github_push("acme/web", "main", COMMIT, "a-secret")
    bitbucket = pushes.bitbucket_push("team/api", "release", COMMIT, "another-secret")
    assert delivery_pushes(headers_of(github), github.body) == [
        CodePush("https://github.com/acme/web", "main", COMMIT)
    ]
    assert delivery_pushes(headers_of(bitbucket), bitbucket.body) == [
        CodePush("https://bitbucket.org/team/api", "release", COMMIT)
    ]
    # Not pushes: another request, a ping, a branch deletion, a body that is not a delivery.
    ping = [(name, "ping" if name == "X-GitHub-Event" else value) for name, value in headers_of(github)]
    deleted = json.loads(github.body) | {"deleted": True, "after": "0" * 40}
    assert delivery_pushes([("Content-Type", "application/json")], github.body) == []
    assert delivery_pushes(ping, github.body) == []
    assert delivery_pushes(headers_of(github), json.dumps(deleted).encode()) == []
    assert delivery_pushes(headers_of(github), b"{not json") == []


def test_the_webhook_tells_the_simulator_over_http(
    served: tuple[AppRunnerSimulator, str], events: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = served
    client = make_client(endpoint_url=url)
    github = client.create_service(ServiceName="gh-svc", SourceConfiguration=code_source())["Service"][
        "ServiceArn"
    ]
    bitbucket_source = code_source("https://bitbucket.org/team/api", "release")
    bitbucket = client.create_service(ServiceName="bb-svc", SourceConfiguration=bitbucket_source)["Service"][
        "ServiceArn"
    ]
    wait_for_status(client, github, "RUNNING")
    wait_for_status(client, bitbucket, "RUNNING")
    for delivery in (
        pushes.github_push("acme/web", "main", COMMIT, "a-secret"),
        pushes.bitbucket_push("team/api", "release", COMMIT, "whatever"),  # the signature does not matter
    ):
        tell_of_delivery(url, headers_of(delivery), delivery.body)
    for arn in (github, bitbucket):
        assert client.list_operations(ServiceArn=arn)["OperationSummaryList"][0]["Type"] == "START_DEPLOYMENT"
    # An unreachable simulator is logged, never raised: the webhook answers anyway.
    delivery = pushes.github_push("acme/web", "main", "f" * 40, "a-secret")
    tell_of_delivery("http://127.0.0.1:9", headers_of(delivery), delivery.body)
    assert "telling the App Runner simulator of a webhook push failed" in caplog.text
