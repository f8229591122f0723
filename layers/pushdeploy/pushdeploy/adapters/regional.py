"""App Runner in the service's own Region: a rule may name a service in any Region of the account."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pushdeploy.adapters.apprunner import DeployAction, DeployTarget, ServiceView, Started
from pushdeploy.domain.evidence import Operation


def region_of(service_arn: str) -> str:
    return service_arn.split(":")[3]


class RegionalTarget:
    """A DeployTarget that routes each call to a target for the Region in the service ARN, made on first
    use (one App Runner client per Region)."""

    def __init__(self, make_target: Callable[[str], DeployTarget]) -> None:
        self._make_target = make_target
        self._targets: dict[str, DeployTarget] = {}

    def _target(self, service_arn: str) -> DeployTarget:
        region = region_of(service_arn)
        if region not in self._targets:
            self._targets[region] = self._make_target(region)
        return self._targets[region]

    def deploy(self, service_arn: str, action: DeployAction, image: str | None) -> Started:
        return self._target(service_arn).deploy(service_arn, action, image)

    def take_over(self, service_arn: str) -> Started:
        return self._target(service_arn).take_over(service_arn)

    def list_operations(self, service_arn: str, since: datetime | None = None) -> list[Operation]:
        return self._target(service_arn).list_operations(service_arn, since)

    def describe(self, service_arn: str) -> ServiceView:
        return self._target(service_arn).describe(service_arn)
