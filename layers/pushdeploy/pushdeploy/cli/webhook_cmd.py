"""`pushdeploy webhook url|secret`: what a user pastes into GitHub's or Bitbucket's webhook settings."""

from __future__ import annotations

import argparse
from typing import Any

from pushdeploy.cli.context import Target, TargetError, add_target_options, resolve

PROVIDERS = ("github", "bitbucket")
# Stack outputs (the local cloud records the same names in its state file).
URL_OUTPUT = "WebhookUrl"
SECRET_OUTPUTS = {"github": "GitHubWebhookSecretArn", "bitbucket": "BitbucketWebhookSecretArn"}


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
