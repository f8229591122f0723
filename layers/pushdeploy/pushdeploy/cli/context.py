"""Where the CLI's commands act: a deployed stack (resources from its CloudFormation outputs, standard
AWS credentials) or the local cloud (`--local`: endpoints and resources from the state directory).

Both resolve to the same `Target`: stack outputs by name, a Region, and per-service endpoint URLs
(empty on AWS), so every command is written once.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pushdeploy.errors import PushdeployError

DEFAULT_STATE_DIR = ".pushdeploy"
STATE_FILE = "local.json"
DEFAULT_STACK = "pushdeploy"


class TargetError(PushdeployError):
    """The stack or the local cloud cannot be reached or lacks something. Exit status 1."""

    exit_status = 1


class InputError(PushdeployError):
    """Input the command cannot take (a malformed argument): exit status 2, the message says why."""

    exit_status = 2


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


def add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where")
    # Also accepted after the command (`pushdeploy status --local`); SUPPRESS keeps the global one's value.
    group.add_argument(
        "--local", action="store_true", default=argparse.SUPPRESS, help="act on the local cloud"
    )
    group.add_argument(
        "--state-dir",
        default=argparse.SUPPRESS,
        help="the local cloud's state directory (default: .pushdeploy)",
    )
    group.add_argument(
        "--stack",
        default=os.environ.get("PUSHDEPLOY_STACK", DEFAULT_STACK),
        help="CloudFormation stack of pushdeploy (default: $PUSHDEPLOY_STACK or pushdeploy)",
    )
    group.add_argument("--region", default=None, help="AWS Region of the stack (default: the SDK's)")


def add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--local", action="store_true", help="act on the local cloud (pushdeploy local up)")
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("PUSHDEPLOY_STATE_DIR", DEFAULT_STATE_DIR),
        help="the local cloud's state directory (default: .pushdeploy)",
    )


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


def resolve(args: argparse.Namespace) -> Target:
    if getattr(args, "local", False):
        return load_local(args.state_dir)
    return load_stack(getattr(args, "stack", DEFAULT_STACK), getattr(args, "region", None))
