"""The deploy target: how pushdeploy starts a deployment on AWS App Runner and follows its operations.

The controller sees only `DeployTarget` and three outcomes besides success: `TargetBusy` (the service
runs an operation; App Runner has no queue and no cancel, so try later), `TargetUnavailable` (throttled
or failing server-side even after retries) and `TargetRejected` (permanent: fix the rule or service;
`TargetGone` when the service no longer exists or can never run again).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ParamValidationError
from botocore.exceptions import ConnectionError as BotoConnectionError

from pushdeploy.domain.evidence import Operation as Operation  # re-exported: the target's vocabulary
from pushdeploy.errors import PushdeployError

if TYPE_CHECKING:
    from mypy_boto3_apprunner.client import AppRunnerClient
    from mypy_boto3_apprunner.type_defs import (
        ImageConfigurationTypeDef,
        ImageRepositoryTypeDef,
        OperationSummaryTypeDef,
        ServiceTypeDef,
        SourceConfigurationTypeDef,
    )

DeployAction = Literal["start_deployment", "update_service"]
_T = TypeVar("_T")

# Throttling: the request was refused unprocessed, so retrying it can never act twice.
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    }
)
# Error codes that mean "slow down or try again", whatever their HTTP status.
_RETRYABLE_CODES = _THROTTLING_CODES | {
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalServiceErrorException",
    "ServiceUnavailable",
    "InternalFailure",
}
# A service status no waiting will change: refusing to deploy there is permanent, not busy.
_PERMANENT_STATUS = re.compile(r"\b(PAUSED|DELETED|CREATE_FAILED|DELETE_FAILED)\b", re.IGNORECASE)
# A service in one of these will never run a deployment again.
_GONE_STATUSES = frozenset({"DELETED", "CREATE_FAILED", "DELETE_FAILED"})
# How App Runner words "the service is busy" when it answers InvalidRequestException.
_BUSY_WORDING = re.compile(r"OPERATION_IN_PROGRESS|in progress|\bstate\b|\bstatus\b", re.IGNORECASE)


class TargetError(PushdeployError):
    """A deploy target call that did not succeed; `code` is the service's error code, if any."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        # True when an earlier attempt of the same call failed in a way that does not say whether App
        # Runner acted on it (a timeout, a 5xx): a later "busy" may then be that attempt's own operation.
        self.maybe_started = False


class TargetBusy(TargetError):
    """The service has an operation running: try again once it settles."""


class TargetUnavailable(TargetError):
    """Throttled, or a server-side or connection failure, still failing after the retries."""


class TargetRejected(TargetError):
    """Permanent: no such service, invalid input, or a service that cannot deploy (paused, deleted)."""


class TargetGone(TargetRejected):
    """The service does not exist any more (ResourceNotFound, DELETED) or never came up (CREATE_FAILED)."""


@dataclass(frozen=True, slots=True)
class ServiceView:
    """What DescribeService says a service is and runs."""

    status: str
    # The image identifier, or a code service's `<repository url>#<branch>`: what a deployment deploys.
    configured: str
    auto_deployments: bool = False
    image: str | None = None  # an image service's ImageIdentifier
    repository_url: str | None = None  # a code service's repository and branch
    branch: str | None = None

    @property
    def is_code(self) -> bool:
        return self.repository_url is not None


@dataclass(frozen=True, slots=True)
class Started:
    """App Runner accepted a deployment: its operation, and what the service was configured with."""

    operation_id: str
    configured: str


class DeployTarget(Protocol):
    def deploy(self, service_arn: str, action: DeployAction, image: str | None) -> Started:
        """Start a deployment: its operation id and what it deploys."""
        ...

    def take_over(self, service_arn: str) -> Started:
        """Switch a service to manual deployment (UpdateService, AutoDeploymentsEnabled false)."""
        ...

    def list_operations(self, service_arn: str, since: datetime | None = None) -> list[Operation]:
        """The service's operations, newest first: the first page, or back to `since`."""
        ...

    def describe(self, service_arn: str) -> ServiceView:
        """The service's status and configured source."""
        ...


class AppRunnerTarget:
    """`DeployTarget` on App Runner, through a boto3 App Runner client the caller provides.

    Throttling, 5xx and connection failures are retried `max_attempts` times in all, with exponential
    backoff and full jitter, on top of the client's own retries; then TargetUnavailable.
    """

    def __init__(
        self,
        client: AppRunnerClient,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay

    def deploy(self, service_arn: str, action: DeployAction, image: str | None) -> Started:
        """StartDeployment (redeploy what the service is configured with, which DescribeService tells
        first) or UpdateService to `image`."""
        if action == "start_deployment":
            if image is not None:
                raise ValueError("start_deployment deploys the configured source and takes no image")
            described = self._deployable(self._describe(service_arn), "StartDeployment")
            started = self._call(
                f"StartDeployment on {service_arn}",
                lambda: self._client.start_deployment(ServiceArn=service_arn),
            )
            return Started(started["OperationId"], _configured(described))
        if action == "update_service":
            if not image:
                raise ValueError("update_service needs an image")
            return Started(self._update_image(service_arn, image), image)
        raise ValueError(f"unknown deploy action: {action!r}")

    def list_operations(self, service_arn: str, since: datetime | None = None) -> list[Operation]:
        """ListOperations, newest first: the first page (20), or every page back to `since`."""
        operations: list[Operation] = []
        request: dict[str, Any] = {"ServiceArn": service_arn, "MaxResults": 20}
        while True:
            listed = self._call(
                f"ListOperations on {service_arn}", lambda: self._client.list_operations(**request)
            )
            page = [_operation(summary) for summary in listed.get("OperationSummaryList", [])]
            operations.extend(page)
            token = listed.get("NextToken")
            oldest = page[-1].started_at if page else None
            if since is None or token is None or oldest is None or oldest < since:
                return operations
            request["NextToken"] = token

    def describe(self, service_arn: str) -> ServiceView:
        service = self._describe(service_arn)
        source = service["SourceConfiguration"]
        image = source.get("ImageRepository", {}).get("ImageIdentifier")
        code = source.get("CodeRepository")
        return ServiceView(
            status=service["Status"],
            configured=_configured(service),
            auto_deployments=bool(source.get("AutoDeploymentsEnabled", False)),
            image=image,
            repository_url=code["RepositoryUrl"] if code else None,
            branch=code["SourceCodeVersion"]["Value"] if code else None,
        )

    @staticmethod
    def _deployable(service: ServiceTypeDef, call: str) -> ServiceTypeDef:
        arn, status = service["ServiceArn"], service["Status"]
        if status == "OPERATION_IN_PROGRESS":
            raise TargetBusy(f"{call} on {arn}: the service has an operation in progress")
        if status in _GONE_STATUSES:
            raise TargetGone(f"{call} on {arn}: the service is {status}")
        if _PERMANENT_STATUS.fullmatch(status):
            raise TargetRejected(f"{call} on {arn}: the service is {status}")
        return service

    def _describe(self, service_arn: str) -> ServiceTypeDef:
        described = self._call(
            f"DescribeService on {service_arn}",
            lambda: self._client.describe_service(ServiceArn=service_arn),
        )
        return described["Service"]

    def take_over(self, service_arn: str) -> Started:
        """UpdateService with the service's own source and AutoDeploymentsEnabled false: from then on only
        pushdeploy deploys it. App Runner deploys the configured source again as it applies the change."""
        described = self._deployable(self._describe(service_arn), "UpdateService")
        source = _manual_source(described)
        updated = self._call(
            f"UpdateService on {service_arn}",
            lambda: self._client.update_service(ServiceArn=service_arn, SourceConfiguration=source),
        )
        return Started(updated["OperationId"], _configured(described))

    def _update_image(self, service_arn: str, image: str) -> str:
        source = _image_source(self._deployable(self._describe(service_arn), "UpdateService"), image)
        updated = self._call(
            f"UpdateService on {service_arn}",
            lambda: self._client.update_service(ServiceArn=service_arn, SourceConfiguration=source),
        )
        return updated["OperationId"]

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        attempt = 0
        ambiguous = False
        while True:
            try:
                return call()
            except (ClientError, BotoCoreError) as error:
                failure = _failure(what, error)
                failure.maybe_started = ambiguous
                attempt += 1
                if not isinstance(failure, TargetUnavailable) or attempt >= self._max_attempts:
                    raise failure from error
                # Throttling means the request was refused unprocessed; anything else may have acted.
                ambiguous = ambiguous or failure.code not in _THROTTLING_CODES
            self._sleep(self._delay(attempt))

    def _delay(self, attempt: int) -> float:
        # Full jitter: uniform in [0, base * 2^(attempt-1)], capped, so clients don't retry in step.
        ceiling = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


def _image_source(service: ServiceTypeDef, image: str) -> SourceConfigurationTypeDef:
    """The service's SourceConfiguration with only ImageIdentifier replaced.

    UpdateService replaces the ImageRepository block whole, so its type and configuration (port,
    environment, secrets, start command) are carried over, with the access role and deployment mode.
    """
    arn = service["ServiceArn"]
    current = service["SourceConfiguration"]
    repository = current.get("ImageRepository")
    if repository is None:
        raise TargetRejected(f"UpdateService on {arn}: the service deploys from code, not from an image")
    replaced: ImageRepositoryTypeDef = {
        "ImageIdentifier": image,
        "ImageRepositoryType": repository["ImageRepositoryType"],
    }
    if "ImageConfiguration" in repository:
        # The output shape is the input shape (dicts where the input takes mappings).
        replaced["ImageConfiguration"] = cast("ImageConfigurationTypeDef", repository["ImageConfiguration"])
    source: SourceConfigurationTypeDef = {"ImageRepository": replaced}
    if "AuthenticationConfiguration" in current:
        source["AuthenticationConfiguration"] = current["AuthenticationConfiguration"]
    if "AutoDeploymentsEnabled" in current:
        source["AutoDeploymentsEnabled"] = current["AutoDeploymentsEnabled"]
    return source


def _manual_source(service: ServiceTypeDef) -> SourceConfigurationTypeDef:
    """The service's SourceConfiguration as it is, in manual deployment mode."""
    current = service["SourceConfiguration"]
    if "ImageRepository" in current:
        source = _image_source(service, current["ImageRepository"]["ImageIdentifier"])
    else:
        # The output shape is the input shape: the code repository block is sent back as described.
        source = cast("SourceConfigurationTypeDef", {"CodeRepository": current["CodeRepository"]})
        if "AuthenticationConfiguration" in current:
            source["AuthenticationConfiguration"] = current["AuthenticationConfiguration"]
    source["AutoDeploymentsEnabled"] = False
    return source


def _configured(service: ServiceTypeDef) -> str:
    source = service["SourceConfiguration"]
    if "ImageRepository" in source:
        return source["ImageRepository"]["ImageIdentifier"]
    code = source.get("CodeRepository")
    if code is None:
        return ""
    return f"{code['RepositoryUrl']}#{code['SourceCodeVersion']['Value']}"


def _failure(what: str, error: ClientError | BotoCoreError) -> TargetError:
    if isinstance(error, BotoCoreError):
        if isinstance(error, BotoConnectionError | HTTPClientError):
            return TargetUnavailable(f"{what}: {error}")
        kind = "invalid request" if isinstance(error, ParamValidationError) else "client error"
        return TargetRejected(f"{what}: {kind}: {error}")
    details = error.response.get("Error", {})
    code, message = details.get("Code", ""), details.get("Message", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    text = f"{what}: {code}: {message}"
    if code in _RETRYABLE_CODES or status >= 500 or status == 429:
        return TargetUnavailable(text, code=code)
    if code == "ResourceNotFoundException":
        return TargetGone(text, code=code)
    if _PERMANENT_STATUS.search(message):
        return TargetRejected(text, code=code)
    busy_request = code == "InvalidRequestException" and _BUSY_WORDING.search(message) is not None
    if code == "InvalidStateException" or busy_request:
        return TargetBusy(text, code=code)
    return TargetRejected(text, code=code)


def _operation(summary: OperationSummaryTypeDef) -> Operation:
    return Operation(
        id=summary.get("Id", ""),
        type=summary.get("Type", ""),
        status=summary.get("Status", ""),
        target_arn=summary.get("TargetArn", ""),
        started_at=_utc(summary.get("StartedAt")),
        ended_at=_utc(summary.get("EndedAt")),
        updated_at=_utc(summary.get("UpdatedAt")),
    )


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None
