"""Making a push happen on an installation, as its source would: ECR PutImage and the `ECR Image Action`
event ECR emits, CodeCommit's branch event, or a signed delivery POSTed to the webhook. Shared by the CLI's
`push-image`/`push-commit`, the demo and the benchmarks; the events' shapes are `pushes`'.

On the local cloud a push may also happen in another account or Region (`push_image_in`,
`push_codecommit_in`): there, with that account's credentials, the event goes on that account's own bus,
and reaches pushdeploy's through the forwarder, if pushdeploy's bus policy admits the account
(`forwarding`).
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from pushdeploy.installation import Target, TargetError
from pushdeploy.local import accounts, forwarding, pushes, scanning


class Clients(Protocol):
    """Where AWS calls go: an installation (`Target`), or another account of the local cloud."""

    def client(self, service: str) -> Any: ...


_SECRET_OUTPUTS = {"github": "GitHubWebhookSecretArn", "bitbucket": "BitbucketWebhookSecretArn"}
_WEBHOOK_TIMEOUT_SECONDS = 15


def push_image(target: Target, repository: str, tag: str | None) -> str:
    """ECR PutImage of a new manifest, then the `ECR Image Action` event AWS would emit, then (when the
    repository scans on push) the image's scan and its `ECR Image Scan` event. The digest."""
    digest = put_image(target, repository, tag)
    put_event(target, pushes.ecr_push_entry(repository, tag, digest))
    scanned = scanning.scan_on_push(target, repository, digest)
    if scanned is not None:
        put_event(target, scanned)
    return digest


def put_image(target: Clients, repository: str, tag: str | None, create_repository: bool = True) -> str:
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


def put_event(target: Clients, entry: dict[str, Any]) -> str:
    """PutEvents of one entry on the installation's bus entry: the event's id, or a one-line error."""
    answer = target.client("events").put_events(Entries=[entry])
    result = answer["Entries"][0]
    if answer.get("FailedEntryCount") or "EventId" not in result:
        raise TargetError(f"EventBridge refused the event: {result.get('ErrorMessage', result)}")
    return str(result["EventId"])


# ----- pushes in another account or Region (local cloud) -----


@dataclass(frozen=True)
class Elsewhere:
    """Another account or Region of the local cloud, and the way from there to pushdeploy's bus."""

    account: accounts.Account
    bus_arn: str
    rules: list[forwarding.ForwarderRule]  # the forwarder's, as deployed there
    policy: dict[str, Any] | None  # pushdeploy's bus's resource policy

    def refuse_unless_admitted(self, source: str, detail_type: str) -> None:
        """A one-line error, before anything is pushed, if pushdeploy's bus would refuse such events."""
        event = {"source": source, "detail-type": detail_type}
        admitted, why = forwarding.admits(self.policy, self.account.account, event, self.bus_arn)
        if not admitted:
            parameter = forwarding.SOURCE_ACCOUNTS_PARAMETER
            raise TargetError(
                f"pushdeploy's bus refuses events from account {self.account.account}: {why}; start local "
                f"up with --parameter {parameter}={self.account.account}"
            )

    def send(self, entry: dict[str, Any]) -> forwarding.Forwarding:
        """The event on this account's default bus, as its service emits it there; moto forwards it by
        the forwarder's rules (deployed first, if missing). What becomes of it."""
        forwarding.deploy(self.account, self.rules)
        put_event(self.account, entry)
        event = forwarding.event_of(entry, self.account.account, self.account.region)
        return forwarding.decide(event, self.rules, self.policy, self.bus_arn)


def elsewhere(target: Target, account: str, region: str) -> Elsewhere:
    """`account` and `region` of the local cloud `target`, which must not be its own pair (the forwarder
    would forward its bus to itself)."""
    if (account, region) == accounts.home(target):
        raise TargetError(
            f"{account} in {region} is the local cloud's own account and Region: nothing to forward"
        )
    bus_arn = target.output("EventBusArn")
    described = target.client("events").describe_event_bus(Name=bus_arn.rsplit("/", 1)[-1])
    policy = json.loads(described["Policy"]) if described.get("Policy") else None
    rules = forwarding.forwarder_rules(account, region, bus_arn)
    return Elsewhere(accounts.in_account(target, account, region), bus_arn, rules, policy)


def push_image_in(
    target: Target, account: str, region: str, repository: str, tag: str | None, *, lose_event: bool = False
) -> tuple[str, forwarding.Forwarding | None]:
    """ECR PutImage in another account or Region, then ECR's event there, forwarded to pushdeploy's bus
    by the forwarder (none with `lose_event`): the digest, and what became of the event."""
    place = elsewhere(target, account, region)
    if not lose_event:  # an event never sent needs no admission
        place.refuse_unless_admitted("aws.ecr", pushes.ECR_IMAGE_ACTION)
    digest = put_image(place.account, repository, tag)
    if lose_event:
        return digest, None
    return digest, place.send(pushes.ecr_push_entry(repository, tag, digest))


def push_codecommit_in(
    target: Target, account: str, region: str, repository: str, branch: str, commit: str
) -> forwarding.Forwarding:
    """CodeCommit's branch event in another account or Region, forwarded as `push_image_in` forwards."""
    place = elsewhere(target, account, region)
    place.refuse_unless_admitted("aws.codecommit", pushes.CODECOMMIT_STATE_CHANGE)
    entry = pushes.codecommit_push_entry(repository, branch, commit, account=account, region=region)
    return place.send(entry)
