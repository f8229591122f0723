"""How the local cloud's App Runner simulator hears of pushes, as App Runner watches repositories on AWS.

On AWS, App Runner watches a service's repository itself and deploys a service in automatic deployment
mode on each push. The local cloud has no registry or git host of its own; pushes reach it as requests,
and each is told to the simulator (`AppRunnerSimulator.image_pushed` / `code_pushed`) while it is being
answered, so that when `pushdeploy --local push-image` or `push-commit` returns, the automatic deployments
of that push have started:

- `PushWatch`, WSGI middleware in front of moto, reads the requests moto answers with 200:
  - an image push is an ECR PutImage (`push-image`, or any client of the local ECR):
    `image_pushed(account, region, repository, tag, digest)` from moto's answer. The `ECR Image Action`
    event that push-image puts on EventBridge afterwards is only ECR's report of the push: it is not
    told again (so a duplicate delivery of it deploys nothing more);
  - a CodeCommit push is CodeCommit's `Repository State Change` event (`push-commit codecommit`; moto has
    no git): `code_pushed` with the repository's HTTPS clone URL,
    `https://git-codecommit.<region>.amazonaws.com/v1/repos/<name>`.
- `tell_of_delivery`, called by the webhook function's workers (`worker`) for each request to the
  Function URL: a GitHub or Bitbucket push delivery (`push-commit github|bitbucket`) stands for the push
  itself: `code_pushed` with `https://github.com/<owner>/<name>` or `https://bitbucket.org/<workspace>/
  <name>` per branch it updates, sent to the simulator's `PushdeploySim.CodePushed` control. It is told
  whatever the webhook then decides (no rule watches the repository, a bad signature...): App Runner's
  own connection to the repository sees the push, not pushdeploy's webhook.

Nothing here can fail the request it watches: a failure to tell the simulator is logged.
"""

from __future__ import annotations

import io
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pushdeploy.domain.changes import partition_of_region

if TYPE_CHECKING:
    # Types only: a worker imports this module without the simulator.
    from pushdeploy.local.apprunner_sim import AppRunnerSimulator, AutoDeployment

_log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

PUT_IMAGE = "AmazonEC2ContainerRegistry_V20150921.PutImage"
PUT_EVENTS = "AWSEvents.PutEvents"
_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/(?P<region>[a-z0-9-]+)/")
_CODECOMMIT_DETAIL_TYPE = "CodeCommit Repository State Change"
_CONTROL_TIMEOUT_SECONDS = 10
_WEBHOOK_HOSTS = {"github": "https://github.com", "bitbucket": "https://bitbucket.org"}


@dataclass(frozen=True)
class ImagePush:
    account: str
    region: str
    repository: str
    tag: str | None
    digest: str


@dataclass(frozen=True)
class CodePush:
    repository_url: str
    branch: str
    commit: str


Push = ImagePush | CodePush


def pushes_of(target: str, request: bytes, answer: bytes, *, account: str, region: str) -> list[Push]:
    """The pushes that a request moto answered with 200 made: its X-Amz-Target, request body and answer
    body. `account` and `region` are the request's (moto's account; the Region it was signed for)."""
    try:
        sent, answered = json.loads(request), json.loads(answer)
    except ValueError:
        return []
    if not isinstance(sent, dict) or not isinstance(answered, dict):
        return []
    if target == PUT_IMAGE:
        image = _image_push(sent, answered, account, region)
        return [] if image is None else [image]
    if target == PUT_EVENTS:
        entries, results = sent.get("Entries"), answered.get("Entries")
        if not isinstance(entries, list) or not isinstance(results, list):
            return []
        accepted = [
            e for e, r in zip(entries, results, strict=False) if isinstance(r, dict) and "EventId" in r
        ]
        return [push for entry in accepted if (push := _event_push(entry, account, region)) is not None]
    return []


def _image_push(
    sent: dict[str, Any], answered: dict[str, Any], account: str, region: str
) -> ImagePush | None:
    image = answered.get("image")
    if not isinstance(image, dict):
        return None
    image_id = image.get("imageId")
    if not isinstance(image_id, dict):
        image_id = {}
    repository = image.get("repositoryName") or sent.get("repositoryName")
    digest = image_id.get("imageDigest") or sent.get("imageDigest")
    tag = image_id.get("imageTag") or sent.get("imageTag")
    if not isinstance(repository, str) or not isinstance(digest, str):
        return None
    registry = image.get("registryId") or sent.get("registryId") or account
    return ImagePush(str(registry), region, repository, tag if isinstance(tag, str) else None, digest)


def _event_push(entry: Any, account: str, region: str) -> CodePush | None:
    if not isinstance(entry, dict):
        return None
    try:
        detail = json.loads(entry.get("Detail") or "{}")
    except (TypeError, ValueError):
        return None
    if not isinstance(detail, dict):
        return None
    if entry.get("Source") == "aws.codecommit" and entry.get("DetailType") == _CODECOMMIT_DETAIL_TYPE:
        return _codecommit_push(entry, detail, account, region)
    return None


def _codecommit_push(
    entry: dict[str, Any], detail: dict[str, Any], account: str, region: str
) -> CodePush | None:
    if detail.get("event") not in ("referenceCreated", "referenceUpdated"):
        return None
    if detail.get("referenceType") != "branch":
        return None
    name, branch, commit = detail.get("repositoryName"), detail.get("referenceName"), detail.get("commitId")
    if not (isinstance(name, str) and isinstance(branch, str) and isinstance(commit, str)):
        return None
    resources = entry.get("Resources")
    # The repository's ARN, arn:<partition>:codecommit:<region>:<account>:<name>, says its Region, and its
    # account: a clone URL does not name the account, and App Runner follows its own account's
    # repositories, so another account's push (`push-commit --account`) is not this simulator's.
    if isinstance(resources, list) and resources and isinstance(resources[0], str):
        parts = resources[0].split(":")
        if len(parts) == 6 and parts[2] == "codecommit" and parts[3]:
            region = parts[3]
            if parts[4] and parts[4] != account:
                return None
    suffix = ".cn" if partition_of_region(region) == "aws-cn" else ""
    return CodePush(f"https://git-codecommit.{region}.amazonaws.com{suffix}/v1/repos/{name}", branch, commit)


def delivery_pushes(headers: Iterable[tuple[str, str]], body: bytes) -> list[CodePush]:
    """The branch updates a GitHub or Bitbucket push delivery carries (its signature unchecked: the push
    happened whoever signed the delivery); none for anything else."""
    from pushdeploy.errors import EventError
    from pushdeploy.sources.webhooks import detect_provider, parse_webhook

    lowered = {name.lower(): value for name, value in headers}
    if detect_provider(lowered) is None:
        return []
    try:
        parsed = parse_webhook(body, lowered)
    except EventError:
        return []
    return [
        CodePush(f"{_WEBHOOK_HOSTS[change.source]}/{change.repository}", change.branch, change.commit)
        for change in parsed.changes
        if change.source in _WEBHOOK_HOSTS and change.branch and change.commit
    ]


def tell_of_delivery(simulator_url: str, headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Tell the simulator at `simulator_url` (over its `PushdeploySim.CodePushed` control) of the pushes a
    request to the webhook carries. Never raises: the webhook's answer must not depend on it."""
    from pushdeploy.local.apprunner_sim import CONTROL_PREFIX

    try:
        for push in delivery_pushes(headers, body):
            params = {"RepositoryUrl": push.repository_url, "Branch": push.branch, "Commit": push.commit}
            request = urllib.request.Request(  # noqa: S310 - the simulator's loopback URL
                simulator_url,
                data=json.dumps(params).encode(),
                headers={
                    "X-Amz-Target": f"{CONTROL_PREFIX}CodePushed",
                    "Content-Type": "application/x-amz-json-1.0",
                },
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=_CONTROL_TIMEOUT_SECONDS):  # noqa: S310
                pass
    except Exception:
        _log.exception("telling the App Runner simulator of a webhook push failed")


def tell(simulator: AppRunnerSimulator, push: Push) -> list[AutoDeployment]:
    """Tell the simulator of one push: what it did to each service configured for it."""
    if isinstance(push, ImagePush):
        return simulator.image_pushed(push.account, push.region, push.repository, push.tag, push.digest)
    return simulator.code_pushed(push.repository_url, push.branch, push.commit)


class PushWatch:
    """WSGI middleware in front of moto that tells the simulator of each push (see the module docstring).

    `simulator` is read at each push (the local cloud starts the simulator after moto; pushes before
    that are not told)."""

    def __init__(
        self, app: WsgiApp, simulator: Callable[[], AppRunnerSimulator | None], *, account: str, region: str
    ) -> None:
        self._app = app
        self._simulator = simulator
        self._account = account
        self._region = region

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target not in (PUT_IMAGE, PUT_EVENTS) or not environ.get("CONTENT_LENGTH"):
            return self._app(environ, start_response)
        request = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        environ["wsgi.input"] = io.BytesIO(request)
        statuses: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            statuses.append(status)
            return start_response(status, headers, *exc_info)

        answered = self._app(environ, capture)
        try:
            answer = b"".join(answered)
        finally:
            close = getattr(answered, "close", None)
            if close is not None:
                close()
        if statuses and statuses[-1].startswith("200"):
            self._tell(target, request, answer, _signed_region(environ) or self._region)
        return [answer]

    def _tell(self, target: str, request: bytes, answer: bytes, region: str) -> None:
        simulator = self._simulator()
        if simulator is None:
            return
        try:
            for push in pushes_of(target, request, answer, account=self._account, region=region):
                tell(simulator, push)
        except Exception:
            # App Runner's trouble is not the registry's: moto's answer stands.
            _log.exception("telling the App Runner simulator of a push failed")


def report_lines(what: str, done: list[AutoDeployment]) -> list[str]:
    """What the local cloud says of a push (a simulator's `push_listener`): the services in automatic
    mode it deployed, or did not and why. Services in manual mode are not mentioned."""
    lines = []
    for deployment in (d for d in done if d.automatic):
        if deployment.operation_id is not None:
            lines.append(
                f"App Runner deploys {deployment.service_name} by itself (automatic deployment, "
                f"operation {deployment.operation_id}) on the {what}"
            )
        else:
            lines.append(
                f"App Runner does not deploy {deployment.service_name} on the {what}: {deployment.reason}"
            )
    return lines


def _signed_region(environ: dict[str, Any]) -> str | None:
    """The Region in the request's SigV4 credential scope."""
    match = _CREDENTIAL_REGION.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return match.group("region") if match else None
