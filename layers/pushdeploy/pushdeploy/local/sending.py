"""Making a push happen on an installation, as its source would: ECR PutImage and the `ECR Image Action`
event ECR emits, CodeCommit's branch event, or a signed delivery POSTed to the webhook. Shared by the CLI's
`push-image`/`push-commit`, the demo and the benchmarks; the events' shapes are `pushes`'."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from typing import Any

from pushdeploy.installation import Target, TargetError
from pushdeploy.local import pushes

_SECRET_OUTPUTS = {"github": "GitHubWebhookSecretArn", "bitbucket": "BitbucketWebhookSecretArn"}
_WEBHOOK_TIMEOUT_SECONDS = 15


def push_image(target: Target, repository: str, tag: str | None) -> str:
    """ECR PutImage of a new manifest, then the `ECR Image Action` event AWS would emit. The digest."""
    digest = put_image(target, repository, tag)
    put_event(target, pushes.ecr_push_entry(repository, tag, digest))
    return digest


def put_image(target: Target, repository: str, tag: str | None, create_repository: bool = True) -> str:
    """ECR PutImage of a new manifest (a new digest every time), without the event: the digest. The
    repository is created first unless the caller knows it exists."""
    ecr = target.client("ecr")
    if create_repository:
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository)
    manifest = pushes.image_manifest(repository, tag)
    put: dict[str, Any] = {
        "repositoryName": repository,
        "imageManifest": manifest.text,
        "imageManifestMediaType": pushes.MANIFEST_MEDIA_TYPE,
        "imageDigest": manifest.digest,  # ECR checks it against the manifest; moto takes it as given
    }
    if tag is not None:
        put["imageTag"] = tag
    return str(ecr.put_image(**put)["image"]["imageId"]["imageDigest"])


def push_codecommit(target: Target, repository: str, branch: str, commit: str) -> str:
    """CodeCommit's `Repository State Change` event of a branch update. The event's id."""
    account = target.extra.get("account")
    if not account or target.region is None:
        raise TargetError(f"{target.description} does not say its account and Region")
    entry = pushes.codecommit_push_entry(repository, branch, commit, account=account, region=target.region)
    return put_event(target, entry)


def push_webhook(
    target: Target, provider: str, repository: str, branch: str, commit: str | None = None
) -> tuple[int, str]:
    """A realistic push delivery, signed with the stack's secret, POSTed to its webhook: the answer."""
    secret = _webhook_secret(target, provider)
    build = pushes.github_push if provider == "github" else pushes.bitbucket_push
    delivery = build(repository, branch, commit or pushes.random_commit(), secret)
    # WebhookUrl ends with '/', like a Function URL: the provider's path goes right after it.
    url = target.output("WebhookUrl").rstrip("/") + f"/{provider}"
    return post(url, delivery)


def _webhook_secret(target: Target, provider: str) -> str:
    secrets = target.client("secretsmanager")
    arn = target.output(_SECRET_OUTPUTS[provider])
    try:
        return str(secrets.get_secret_value(SecretId=arn)["SecretString"])
    except secrets.exceptions.ResourceNotFoundException:
        raise TargetError(f"no webhook secret {arn}") from None


def post(url: str, delivery: pushes.Delivery) -> tuple[int, str]:
    """POST a delivery: the HTTP status and body of the answer, whatever the status."""
    request = urllib.request.Request(url, data=delivery.body, headers=delivery.headers, method="POST")  # noqa: S310 - http(s) from outputs
    try:
        with urllib.request.urlopen(request, timeout=_WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as refused:
        return int(refused.code), refused.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        raise TargetError(f"cannot reach the webhook at {url}: {error}") from None


def put_event(target: Target, entry: dict[str, Any]) -> str:
    """PutEvents of one entry on the installation's bus entry: the event's id, or a one-line error."""
    answer = target.client("events").put_events(Entries=[entry])
    result = answer["Entries"][0]
    if answer.get("FailedEntryCount") or "EventId" not in result:
        raise TargetError(f"EventBridge refused the event: {result.get('ErrorMessage', result)}")
    return str(result["EventId"])
