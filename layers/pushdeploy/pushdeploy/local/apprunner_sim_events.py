"""The EventBridge events the App Runner simulator emits, shaped as App Runner sends them.

App Runner's `AppRunner Service Operation Status Change` event names the service in `resources[0]` and
carries a status such as `DeploymentStarted` in `detail.operationStatus`, with the service name and id, a
message and a severity. It carries no operation id: consumers confirm with ListOperations.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

DETAIL_TYPE = "AppRunner Service Operation Status Change"
SOURCE = "aws.apprunner"

Phase = Literal["Started", "CompletedSuccessfully", "Failed"]

# The operationStatus prefix App Runner uses for each operation type.
_PREFIXES: dict[str, str] = {
    "START_DEPLOYMENT": "Deployment",
    "UPDATE_SERVICE": "UpdateService",
    "CREATE_SERVICE": "CreateService",
    "PAUSE_SERVICE": "PauseService",
    "RESUME_SERVICE": "ResumeService",
    "DELETE_SERVICE": "DeleteService",
}

# App Runner's documented message for each operationStatus.
_MESSAGES: dict[str, str] = {
    "DeploymentStarted": "Deployment started.",
    "DeploymentCompletedSuccessfully": "Deployment completed successfully.",
    "DeploymentFailed": "Deployment failed. For details, see service logs.",
    "UpdateServiceStarted": "Service update started.",
    "UpdateServiceCompletedSuccessfully": (
        "Service update completed successfully. New application and configuration is deployed."
    ),
    "UpdateServiceFailed": "Service update failed. For details, see service logs.",
    "CreateServiceStarted": "Service creation started.",
    "CreateServiceCompletedSuccessfully": "Service creation completed successfully.",
    "CreateServiceFailed": "Service creation failed. For details, see service logs.",
    "PauseServiceStarted": "Service pause started.",
    "PauseServiceCompletedSuccessfully": "Service pause completed successfully.",
    "PauseServiceFailed": "Service pause failed.",
    "ResumeServiceStarted": "Service resume started.",
    "ResumeServiceCompletedSuccessfully": "Service resume completed successfully.",
    "ResumeServiceFailed": "Service resume failed.",
    "DeleteServiceStarted": "Service deletion started.",
    "DeleteServiceCompletedSuccessfully": "Service deletion completed successfully.",
    "DeleteServiceFailed": "Service deletion failed.",
}


def operation_status(operation_type: str, phase: Phase) -> str:
    """`DeploymentStarted`, `UpdateServiceFailed`, ...: the status App Runner reports for an operation."""
    return f"{_PREFIXES[operation_type]}{phase}"


def iso_time(epoch_seconds: float) -> str:
    """EventBridge's `time`: ISO 8601 UTC to the second, with a `Z`."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def operation_status_event(
    *,
    account: str,
    region: str,
    service_arn: str,
    service_name: str,
    service_id: str,
    status: str,
    epoch_seconds: float,
) -> dict[str, Any]:
    """One `AppRunner Service Operation Status Change` event, as delivered on the default bus."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": iso_time(epoch_seconds),
        "region": region,
        "resources": [service_arn],
        "detail": {
            "operationStatus": status,
            "serviceName": service_name,
            "serviceId": service_id,
            "message": _MESSAGES[status],
            "severity": "ERROR" if status.endswith("Failed") else "INFO",
        },
    }
