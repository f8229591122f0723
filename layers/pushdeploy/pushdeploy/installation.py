"""A pushdeploy installation, reached from outside its functions: a deployed stack (resources from its
CloudFormation outputs, standard AWS credentials) or the local cloud (endpoints and resources from its
state directory).

Both are a `Target`: outputs by name, a Region and per-service endpoint URLs (empty on AWS), so the CLI,
the demo and the benchmarks are written once; and the controller wired against it, as the functions wire
it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushdeploy.errors import PushdeployError

if TYPE_CHECKING:
    from pushdeploy.controller import Controller
    from pushdeploy.operators import Operator

DEFAULT_STATE_DIR = ".pushdeploy"
STATE_FILE = "local.json"


class TargetError(PushdeployError):
    """The stack or the local cloud cannot be reached or lacks something. Exit status 1."""

    exit_status = 1


@dataclass(frozen=True)
class Target:
    """A pushdeploy installation: its outputs (as the template names them) and how to reach AWS."""

    outputs: dict[str, str]
    region: str | None
    endpoints: dict[str, str] = field(default_factory=dict)  # boto3 service name -> endpoint URL
    local: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # anything else the local cloud recorded

    def output(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            raise TargetError(f"{self.description} has no output {name}: is it up to date?") from None

    def client(self, service: str) -> Any:
        return self.client_in(service, self.region)

    def client_in(self, service: str, region: str | None) -> Any:
        """A client in another Region (a rule may name a service anywhere); the local cloud has one."""
        import boto3

        kwargs: dict[str, Any] = {"region_name": region if not self.local else self.region}
        if service in self.endpoints:
            kwargs["endpoint_url"] = self.endpoints[service]
        elif self.local and service == "sts" and "dynamodb" in self.endpoints:
            kwargs["endpoint_url"] = self.endpoints["dynamodb"]  # moto's server answers STS as well
        if self.local:
            kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
        return boto3.client(service, **kwargs)  # type: ignore[call-overload]


def state_path(state_dir: str) -> Path:
    return Path(state_dir) / STATE_FILE


def load_local(state_dir: str) -> Target:
    path = state_path(state_dir)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TargetError(
            f"no local cloud: {path} is missing (start one with `pushdeploy local up`)"
        ) from None
    except (OSError, ValueError) as error:
        raise TargetError(f"cannot read {path}: {error}") from None
    return Target(
        outputs=dict(state.get("outputs", {})),
        region=state.get("region"),
        endpoints=dict(state.get("endpoints", {})),
        local=True,
        description=f"the local cloud in {state_dir}",
        extra=state,
    )


def load_stack(stack: str, region: str | None) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cloudformation = boto3.client("cloudformation", region_name=region)
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot read stack {stack}: {error}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Target(outputs=outputs, region=cloudformation.meta.region_name, description=f"stack {stack}")


# --- the controller, wired against an installation ------------------------------------------------------


def controller(target: Target) -> Controller:
    from pushdeploy.adapters.apprunner import AppRunnerTarget
    from pushdeploy.adapters.ledger import Ledger
    from pushdeploy.adapters.notifier import EventBridgeNotifier
    from pushdeploy.adapters.regional import RegionalTarget
    from pushdeploy.adapters.rules_store import RulesStore
    from pushdeploy.adapters.scans import ScanReader
    from pushdeploy.controller import Controller

    dynamodb = target.client("dynamodb")
    ledger = Ledger(dynamodb, target.output("LedgerTableName"))
    rules = RulesStore(dynamodb, target.output("RulesTableName"), cache_seconds=0)
    regional = RegionalTarget(lambda region: AppRunnerTarget(target.client_in("apprunner", region)))
    notifier = EventBridgeNotifier(target.client("events"), target.outputs.get("EventBusName", "default"))
    scans = ScanReader(lambda region: target.client_in("ecr", region), clock=lambda: now())
    # The clock is late-bound: tests move it.
    return Controller(ledger, regional, rules, notifier, clock=lambda: now(), scans=scans)


def now() -> datetime:
    """The clock of the controller wired here, looked up late so that a test can move it."""
    from pushdeploy.controller import utc_now

    return utc_now()


def operator(target: Target) -> Operator:
    from pushdeploy.operators import Operator

    return Operator(controller(target))


def caller(target: Target) -> str:
    """The IAM identity of whoever acts (STS GetCallerIdentity), recorded as the actor."""
    from botocore.exceptions import BotoCoreError, ClientError

    sts = target.client("sts")
    try:
        arn: str = sts.get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot tell who you are (sts:GetCallerIdentity): {error}") from None
    return arn
