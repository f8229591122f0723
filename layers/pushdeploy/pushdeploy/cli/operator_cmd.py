"""The on-call commands (DESIGN 4.6, 4.7): `deploy`, `rollback`, `pause`, `resume`, `approve`, `reject`,
`status`.

Each goes through the controller's queue (one operation per service) and is recorded with who asked and
why. Exit status 0 done, 1 when a `--wait` ended in anything but succeeded, 2 for a refusal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pushdeploy.cli.context import add_target_options, resolve
from pushdeploy.cli.engine import known_services, service_arn
from pushdeploy.domain.deployments import TERMINAL, Deployment, Status, iso
from pushdeploy.installation import Target, TargetError, caller, operator
from pushdeploy.operators import ImageRef, Operator, Refusal, parse_image_identifier

_POLL_SECONDS = 2.0


def register(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="deploy a service now, through its queue (App Runner's manual deployment)",
        description="Without --image: StartDeployment of what the service is configured with. With --image "
        "(image services): UpdateService pinned to that image's digest; a tag is resolved to its digest now. "
        "An image that failed on the service before is refused unless --force.",
    )
    _service_argument(deploy)
    deploy.add_argument("--image", metavar="TAG|@sha256:DIGEST", help="the image of the service's repository")
    _reason_argument(deploy)
    deploy.add_argument("--force", action="store_true", help="deploy even what failed there before")
    _wait_and_json(deploy)
    deploy.set_defaults(handler=run_deploy)

    rollback = commands.add_parser(
        "rollback",
        help="deploy again, pinned by digest, the newest good image before the live one",
        description="Image services only: App Runner deploys a branch's head and cannot pin a commit.",
    )
    _service_argument(rollback)
    rollback.add_argument("--to", metavar="DEPLOYMENT_ID", help="the deployment whose image to deploy again")
    _reason_argument(rollback)
    _wait_and_json(rollback)
    rollback.set_defaults(handler=run_rollback)

    pause = commands.add_parser(
        "pause", help="hold every deployment a push would start on the service, until resume"
    )
    _service_argument(pause)
    pause.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded, shown by status)")
    _json_argument(pause)
    add_target_options(pause)
    pause.set_defaults(handler=run_pause)

    resume = commands.add_parser(
        "resume", help="deploy on push again; the newest held deployment starts, the others are superseded"
    )
    _service_argument(resume)
    resume.add_argument("--discard", action="store_true", help="supersede every held deployment")
    _json_argument(resume)
    add_target_options(resume)
    resume.set_defaults(handler=run_resume)

    for verb, does in (
        ("approve", "open the approval gate of a held deployment (it starts once its other gates are open)"),
        ("reject", "end a held deployment (one awaiting approval, or any other held one): it is rejected"),
    ):
        decide = commands.add_parser(
            verb,
            help=does,
            description=f"{does[0].upper()}{does[1:]}. Recorded with your IAM identity and the reason.",
        )
        decide.add_argument("deployment_id", metavar="DEPLOYMENT_ID", help="the held deployment's id")
        _reason_argument(decide)
        _wait_and_json(decide)
        decide.set_defaults(handler=run_approve if verb == "approve" else run_reject)

    status = commands.add_parser(
        "status",
        help="what App Runner runs on each service, what pushdeploy deployed, and whether they agree",
    )
    status.add_argument(
        "service", nargs="?", metavar="SERVICE", help="an App Runner service ARN or name (default: all known)"
    )
    _json_argument(status)
    add_target_options(status)
    status.set_defaults(handler=run_status)


def _service_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "service",
        metavar="SERVICE",
        help="an App Runner service ARN, or the name of exactly one known service",
    )


def _reason_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar="TEXT", help="why (recorded in the ledger)")


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (the ledger contract's shapes)")


def _wait_and_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="wait until it settles; exit 1 unless it succeeded"
    )
    _json_argument(parser)
    add_target_options(parser)


# --- the commands ---------------------------------------------------------------------------------


def run_deploy(args: argparse.Namespace) -> int:
    target = resolve(args)
    service = service_arn(target, args.service)
    engine = operator(target)
    image = _image(target, engine, service, args.image) if args.image else None
    deployment = engine.deploy(
        service, image=image, reason=args.reason, force=args.force, actor=caller(target)
    )
    return _report(engine, deployment, args)


def run_rollback(args: argparse.Namespace) -> int:
    target = resolve(args)
    service = service_arn(target, args.service)
    engine = operator(target)
    deployment = engine.rollback(service, to=args.to, reason=args.reason, actor=caller(target))
    return _report(engine, deployment, args)


def run_pause(args: argparse.Namespace) -> int:
    target = resolve(args)
    service = service_arn(target, args.service)
    pause = operator(target).pause(service, reason=args.reason, actor=caller(target))
    record = {"reason": pause.reason, "by": pause.by, "at": iso(pause.at)}
    if args.json:
        print(json.dumps({"service": service, "paused": record}, indent=2))
    else:
        print(f"{_name(service)} paused: pushes are held until `pushdeploy resume {_name(service)}`")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    target = resolve(args)
    service = service_arn(target, args.service)
    held = operator(target).resume(service, discard=args.discard, actor=caller(target))
    if args.json:
        print(json.dumps({"service": service, "held": [d.public_view() for d in held]}, indent=2))
        return 0
    print(f"{_name(service)} resumed")
    for deployment in held:
        print(f"  {deployment.id}  {deployment.status}  {_what(deployment)}")
    return 0


def run_approve(args: argparse.Namespace) -> int:
    target = resolve(args)
    engine = operator(target)
    deployment = engine.approve(args.deployment_id, reason=args.reason, actor=caller(target))
    return _report(engine, deployment, args)


def run_reject(args: argparse.Namespace) -> int:
    target = resolve(args)
    engine = operator(target)
    deployment = engine.reject(args.deployment_id, reason=args.reason, actor=caller(target))
    return _report(engine, deployment, args)


def run_status(args: argparse.Namespace) -> int:
    target = resolve(args)
    services = [service_arn(target, args.service)] if args.service else known_services(target)
    engine = operator(target)
    statuses = [engine.status(service) for service in services]
    if args.json:
        print(json.dumps(statuses, indent=2))
        return 0
    if not statuses:
        print("no services: apply a rules file first (pushdeploy rules apply FILE)")
    for status in statuses:
        print(_status_text(status))
    return 0


# --- helpers --------------------------------------------------------------------------------------


def _image(target: Target, engine: Operator, service: str, given: str) -> ImageRef:
    """`TAG` or `@sha256:DIGEST` of the repository the service is configured with, as a digest."""
    view = engine.target.describe(service)
    configured = parse_image_identifier(view.image) if view.image else None
    if configured is None:
        raise Refusal(f"{_name(service)} is not configured with a private ECR image: --image needs one")
    if given.startswith("@"):
        digest = given[1:]
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise Refusal(f"{given} is not @sha256:<64 hex digits>")
        return ImageRef(configured.account, configured.region, configured.repository, digest)
    return ImageRef(
        configured.account,
        configured.region,
        configured.repository,
        _digest_of(target, configured.account, configured.region, configured.repository, given),
        given,
    )


def _digest_of(target: Target, account: str, region: str, repository: str, tag: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    ecr = target.client_in("ecr", region)
    try:
        images = ecr.describe_images(
            registryId=account, repositoryName=repository, imageIds=[{"imageTag": tag}]
        )
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            raise Refusal(f"no image {repository}:{tag} in ECR ({account}, {region})") from None
        raise TargetError(f"cannot read {repository}:{tag} from ECR: {error}") from None
    except BotoCoreError as error:
        raise TargetError(f"cannot read {repository}:{tag} from ECR: {error}") from None
    return str(images["imageDetails"][0]["imageDigest"])


def _report(engine: Operator, deployment: Deployment, args: argparse.Namespace) -> int:
    if args.wait:
        deployment = _wait(engine, deployment, show=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps(deployment.public_view(), indent=2))
    else:
        print(
            f"{deployment.id}  {deployment.status}  {_what(deployment)}  {deployment.detail or ''}".rstrip()
        )
    if args.wait:
        return 0 if deployment.status is Status.SUCCEEDED else 1
    return 0


def _wait(engine: Operator, deployment: Deployment, show: bool) -> Deployment:
    """Poll the ledger until the deployment settles, with a live progress line on a terminal."""
    started = time.monotonic()
    while deployment.status not in TERMINAL:
        if show:
            elapsed = int(time.monotonic() - started)
            print(
                f"\r{deployment.id[:8]}  {deployment.status:<12} {elapsed:>4}s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(_POLL_SECONDS)
        deployment = engine.ledger.deployment(deployment.id) or deployment
    if show:
        print(f"\r{deployment.id[:8]}  {deployment.status:<12}       ", file=sys.stderr)
    return deployment


def _what(deployment: Deployment) -> str:
    if deployment.digest:
        return f"{deployment.repository}:{deployment.tag or '-'} {deployment.digest[:19]}"
    if deployment.commit:
        return f"{deployment.repository}@{deployment.branch} {deployment.commit[:12]}"
    return f"{deployment.repository} (as configured)"


def _name(service: str) -> str:
    return service.split("/")[1] if service.count("/") == 2 else service


def _status_text(status: dict[str, Any]) -> str:
    configured = status["configured"]
    if configured["image"]:
        runs = f"runs {configured['image']}"
    elif configured["repository_url"]:
        runs = f"runs {configured['repository_url']}#{configured['branch']}"
    else:
        runs = "(App Runner does not know this service)"
    lines = [f"{status['name']}  {status['apprunner_status']}  {runs}"]
    live = status["live"]
    if live:
        lines.append(f"  live       {live['id']}  since {live['settled_at']}  ({live['reason']})")
    else:
        lines.append("  live       nothing pushdeploy deployed")
    if status["drift"]:
        lines.append(
            "  DRIFT      App Runner runs something pushdeploy did not deploy (a change made by hand?)"
        )
    if status["auto_deployments"]:
        lines.append("  WARNING    automatic deployment is on: App Runner deploys pushes as well")
    for label in ("in_flight", "pending"):
        if status[label]:
            lines.append(f"  {label:<10} {status[label]['id']}  {status[label]['status']}")
    if status["paused"]:
        paused = status["paused"]
        lines.append(f"  paused     {paused['reason']} (by {paused['by']} at {paused['at']})")
    for held in status["held"]:
        waits = ", ".join(held.get("held_by") or []) or "-"
        lines.append(
            f"  held       {held['id']}  {held.get('tag') or held.get('commit') or ''}  waits for {waits}"
        )
    lines.append(f"  last       {status['last_outcome'] or '-'}")
    return "\n".join(lines)
