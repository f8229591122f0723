"""`pushdeploy --local simulate ...`: inject App Runner faults into the local cloud's simulator, and make an
image's scan end.

- `simulate fail SERVICE_ARN [--count N]`: the next N deployments of the service fail and roll back.
- `simulate lose-events SERVICE_ARN [--count N]`: the next N status events of the service are never sent.
- `simulate throttle [--count N] [--operation OP]`: the next N App Runner requests are throttled.
- `simulate error [--count N] [--operation OP]`: the next N App Runner requests answer HTTP 500.

They go through the simulator's control targets (`PushdeploySim.*`) on its HTTP endpoint.

- `simulate scan REPO@DIGEST [--critical N] [--high N] [--medium N] [--low N] [--informational N]
  [--failed]`: the image's ECR scan ends with those findings (or FAILED): DescribeImageScanFindings answers
  it from then on, and the `ECR Image Scan` event ECR emits is sent, as basic scanning does
  (`pushdeploy.local.scanning`). A scan gate holding a deployment of that image opens or rejects it.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from pushdeploy.cli.context import InputError, resolve
from pushdeploy.installation import TargetError
from pushdeploy.local import pushes, scanning
from pushdeploy.local.apprunner_sim import CONTROL_PREFIX
from pushdeploy.local.sending import put_event

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

    _register_scan(actions)


_SCAN_SEVERITIES = ("critical", "high", "medium", "low", "informational")


def _register_scan(actions: Any) -> None:
    scan = actions.add_parser(
        "scan",
        help="an image's ECR scan ends with these findings, and ECR's scan event is sent",
        description="The image's ECR scan ends: DescribeImageScanFindings answers COMPLETE with these "
        "finding counts (or FAILED) from now on, and the `ECR Image Scan` event ECR emits is sent.",
    )
    scan.add_argument(
        "image", metavar="REPO@DIGEST", help="the image, e.g. web@sha256:... (push-image prints it)"
    )
    for severity in _SCAN_SEVERITIES:
        scan.add_argument(
            f"--{severity}", type=int, default=0, metavar="N", help=f"{severity} findings (default 0)"
        )
    scan.add_argument("--failed", action="store_true", help="the scan fails instead (no findings)")
    scan.add_argument("--json", action="store_true")
    scan.set_defaults(handler=run_scan)


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


def run_scan(args: argparse.Namespace) -> int:
    if not args.local:
        raise TargetError("simulate scan acts on the local cloud's ECR only: add --local")
    try:
        repository, digest = pushes.parse_digest_reference(args.image)
    except ValueError as invalid:
        raise InputError(str(invalid)) from None
    counts = {severity.upper(): getattr(args, severity) for severity in _SCAN_SEVERITIES}
    negative = next((severity for severity in _SCAN_SEVERITIES if getattr(args, severity) < 0), None)
    if negative is not None:
        raise InputError(f"--{negative} is a number of findings: 0 or more")
    if args.failed and any(counts.values()):
        raise InputError("a failed scan finds nothing: leave out the counts, or --failed")
    scan = scanning.Scan("FAILED" if args.failed else "COMPLETE", {s: n for s, n in counts.items() if n})
    target = resolve(args)
    event_id = put_event(target, scanning.finish_scan(target, repository, digest, scan))
    shown = {
        "repository": repository,
        "digest": digest,
        "status": scan.status,
        "counts": counts,
        "event": pushes.ECR_IMAGE_SCAN,
        "event_id": event_id,
    }
    print(json.dumps(shown, indent=2) if args.json else _scan_line(shown))
    return 0


def _scan_line(shown: dict[str, Any]) -> str:
    found = ", ".join(f"{n} {severity.lower()}" for severity, n in shown["counts"].items() if n)
    outcome = "failed" if shown["status"] == "FAILED" else f"found {found or 'nothing'}"
    return f"the scan of {shown['repository']}@{shown['digest']} {outcome}; {shown['event']} event sent"


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
