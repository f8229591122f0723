"""`pushdeploy webhook url|secret|rotate`: what a user pastes into GitHub's or Bitbucket's webhook
settings, and a rotation that revokes the old secret after a bounded window."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pushdeploy.cli.context import add_target_options, resolve
from pushdeploy.installation import Target, TargetError

PROVIDERS = ("github", "bitbucket")
# Stack outputs (the local cloud records the same names in its state file).
URL_OUTPUT = "WebhookUrl"
SECRET_OUTPUTS = {"github": "GitHubWebhookSecretArn", "bitbucket": "BitbucketWebhookSecretArn"}
WINDOW_OUTPUT = "PreviousSecretHours"
SECRET_LENGTH = 40  # as the template generates them


def register(commands: Any) -> None:
    parser = commands.add_parser("webhook", help="the webhook's URL and secrets, for GitHub and Bitbucket")
    actions = parser.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")

    url = actions.add_parser("url", help="the payload URL to give GitHub or Bitbucket (both by default)")
    url.add_argument("provider", nargs="?", choices=PROVIDERS)
    add_target_options(url)
    url.set_defaults(handler=run_url)

    secret = actions.add_parser("secret", help="the secret to give GitHub or Bitbucket (keep it private)")
    secret.add_argument("provider", choices=PROVIDERS)
    add_target_options(secret)
    secret.set_defaults(handler=run_secret)

    rotate = actions.add_parser(
        "rotate",
        help="set a new random secret and print it; the old one is accepted for a bounded window",
        description="Sets a new random secret (printed on stdout: paste it into the webhook's settings). "
        "Deliveries signed with the old one are still accepted for the stack's PreviousSecretHours "
        "(24 by default), so that nothing is refused while you paste; --revoke-previous refuses them at "
        "once (a leaked secret).",
    )
    rotate.add_argument("provider", choices=PROVIDERS)
    rotate.add_argument(
        "--revoke-previous", action="store_true", help="refuse the old secret at once (within a minute)"
    )
    add_target_options(rotate)
    rotate.set_defaults(handler=run_rotate)


def webhook_url(base: str, provider: str) -> str:
    """The Function URL ends with '/', a local URL may not: join without doubling or losing the slash."""
    return f"{base.rstrip('/')}/{provider}"


def run_url(args: argparse.Namespace) -> int:
    base = resolve(args).output(URL_OUTPUT)
    if args.provider:
        print(webhook_url(base, args.provider))
        return 0
    for provider in PROVIDERS:
        print(f"{provider:10} {webhook_url(base, provider)}")
    return 0


def run_secret(args: argparse.Namespace) -> int:
    print(current_secret(resolve(args), args.provider))
    return 0


def current_secret(target: Target, provider: str) -> str:
    """The secret's AWSCURRENT value: what new deliveries must be signed with."""
    from botocore.exceptions import BotoCoreError, ClientError

    arn = target.output(SECRET_OUTPUTS[provider])
    try:
        found = target.client("secretsmanager").get_secret_value(SecretId=arn)
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot read the {provider} webhook secret: {error}") from None
    value = found.get("SecretString")
    if not isinstance(value, str):
        raise TargetError(f"the {provider} webhook secret {arn} holds no text value")
    return value


def run_rotate(args: argparse.Namespace) -> int:
    target = resolve(args)
    arn = target.output(SECRET_OUTPUTS[args.provider])
    new_value, rotated_at = rotate_secret(target, arn)
    print(new_value)
    if args.revoke_previous:
        revoke_previous(target, arn)
        print(f"the previous {args.provider} secret is refused from now on", file=sys.stderr)
        return 0
    window = timedelta(hours=float(target.output(WINDOW_OUTPUT)))
    until = (rotated_at + window).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(
        f"paste the new secret into the {args.provider} webhook's settings; deliveries signed with the "
        f"previous one are accepted until {until}",
        file=sys.stderr,
    )
    return 0


def rotate_secret(target: Target, arn: str) -> tuple[str, datetime]:
    """A new random AWSCURRENT (Secrets Manager moves the old value to AWSPREVIOUS): the value and when."""
    from botocore.exceptions import BotoCoreError, ClientError

    secrets = target.client("secretsmanager")
    try:
        value = secrets.get_random_password(PasswordLength=SECRET_LENGTH, ExcludePunctuation=True)
        new_value: str = value["RandomPassword"]
        secrets.put_secret_value(SecretId=arn, SecretString=new_value)
        versions = secrets.list_secret_version_ids(SecretId=arn)["Versions"]
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot rotate the webhook secret {arn}: {error}") from None
    current = next(v for v in versions if "AWSCURRENT" in v.get("VersionStages", []))
    created: datetime = current.get("CreatedDate") or datetime.now(UTC)
    return new_value, created.astimezone(UTC)


def revoke_previous(target: Target, arn: str) -> None:
    """Remove the AWSPREVIOUS stage: the webhook stops accepting that value once its cache expires."""
    from botocore.exceptions import BotoCoreError, ClientError

    secrets = target.client("secretsmanager")
    try:
        versions = secrets.list_secret_version_ids(SecretId=arn)["Versions"]
        for version in versions:
            if "AWSPREVIOUS" in version.get("VersionStages", []):
                secrets.update_secret_version_stage(
                    SecretId=arn, VersionStage="AWSPREVIOUS", RemoveFromVersionId=version["VersionId"]
                )
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot revoke the previous webhook secret of {arn}: {error}") from None
