"""`pushdeploy --local simulate ...`: inject App Runner faults into the local cloud's simulator.

- `simulate fail SERVICE_ARN [--count N]`: the next N deployments of the service fail and roll back.
- `simulate lose-events SERVICE_ARN [--count N]`: the next N status events of the service are never sent.
- `simulate throttle [--count N] [--operation OP]`: the next N App Runner requests are throttled.
- `simulate error [--count N] [--operation OP]`: the next N App Runner requests answer HTTP 500.

They go through the simulator's control targets (`PushdeploySim.*`) on its HTTP endpoint.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from pushdeploy.cli.context import resolve
from pushdeploy.installation import TargetError
from pushdeploy.local.apprunner_sim import CONTROL_PREFIX

_CONTROLS = {
    "fail": ("FailNext", "the next {count} deployment(s) of {service} fail and roll back"),
    "lose-events": ("LoseEvents", "the next {count} status event(s) of {service} are lost"),
    "throttle": ("ThrottleNext", "the next {count} App Runner request(s){only} are throttled"),
    "error": ("ErrorNext", "the next {count} App Runner request(s){only} fail with HTTP 500"),
}


def register(commands: Any) -> None:
    parser = commands.add_parser("simulate", help="inject App Runner faults into the local cloud")
    actions = parser.add_subparsers(dest="simulate_command", required=True, metavar="FAULT")
    for name, about in (
        ("fail", "the service's next deployments fail and roll back"),
        ("lose-events", "the service's next App Runner status events are never sent"),
    ):
        action = actions.add_parser(name, help=about)
        action.add_argument("service", metavar="SERVICE_ARN")
        _count_option(action)
        action.set_defaults(handler=run, fault=name)
    for name, about in (
        ("throttle", "the next App Runner requests are throttled (ThrottlingException)"),
        ("error", "the next App Runner requests fail (HTTP 500)"),
    ):
        action = actions.add_parser(name, help=about)
        _count_option(action)
        action.add_argument("--operation", metavar="OP", help="only this operation, e.g. StartDeployment")
        action.set_defaults(handler=run, fault=name, service=None)


def _count_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1, metavar="N", help="how many (default 1)")


def run(args: argparse.Namespace) -> int:
    if not args.local:
        raise TargetError("simulate acts on the local cloud's App Runner simulator only: add --local")
    target = resolve(args)
    if "apprunner" not in target.endpoints:
        raise TargetError(f"{target.description} has no App Runner endpoint")
    if args.count < 1:
        raise TargetError("--count must be at least 1")
    command, message = _CONTROLS[args.fault]
    params: dict[str, Any] = {"Count": args.count}
    if args.service is not None:
        params["ServiceArn"] = args.service
    operation = getattr(args, "operation", None)
    if operation:
        params["Operation"] = operation
    send_control(target.endpoints["apprunner"], command, params)
    only = f" of {operation}" if operation else ""
    print(message.format(count=args.count, service=args.service, only=only))
    return 0


def send_control(url: str, command: str, params: dict[str, Any]) -> None:
    """POST one control request to the simulator; its error message becomes a TargetError."""
    request = urllib.request.Request(  # noqa: S310 - the simulator's loopback URL
        url,
        data=json.dumps(params).encode(),
        headers={"X-Amz-Target": f"{CONTROL_PREFIX}{command}", "Content-Type": "application/x-amz-json-1.0"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            return
    except urllib.error.HTTPError as refused:
        body = refused.read().decode("utf-8", "replace")
        try:
            message = json.loads(body).get("Message", body)
        except ValueError:
            message = body
        raise TargetError(f"the App Runner simulator refused {command}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        raise TargetError(f"cannot reach the App Runner simulator at {url}: {error}") from None
