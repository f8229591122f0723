"""Other accounts and Regions of the local cloud, reached as on AWS: with that account's credentials.

moto keeps accounts apart by the request's access key (see `moto_accounts`): the local cloud's own test
credentials are its account; the temporary credentials of an STS AssumeRole of a role in another account
are that account. `in_account()` makes that AssumeRole and checks, with GetCallerIdentity, that moto
answers as the other account (a local cloud that pins every request to one account would not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pushdeploy.domain.changes import partition_of_region
from pushdeploy.installation import Target, TargetError

# The role assumed in the other account. moto does not require it to exist; on AWS it would be a role
# that account lets you assume.
ROLE_NAME = "pushdeploy-local"
SESSION_NAME = "pushdeploy-local"


@dataclass(frozen=True)
class Account:
    """One account and Region of the local cloud, with credentials of that account."""

    account: str
    region: str
    endpoint_url: str  # moto's, which serves every account
    credentials: dict[str, str]  # AccessKeyId, SecretAccessKey, SessionToken

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.credentials["AccessKeyId"],
            aws_secret_access_key=self.credentials["SecretAccessKey"],
            aws_session_token=self.credentials["SessionToken"],
        )


def home(target: Target) -> tuple[str, str]:
    """The local cloud's own account and Region."""
    account, region = target.extra.get("account"), target.region
    if not account or not region:
        raise TargetError(f"{target.description} does not say its account and Region")
    return str(account), region


def role_arn(account: str, region: str) -> str:
    return f"arn:{partition_of_region(region)}:iam::{account}:role/{ROLE_NAME}"


def in_account(target: Target, account: str, region: str) -> Account:
    """Credentials of `account` in the local cloud (STS AssumeRole), for its services in `region`."""
    endpoint = target.endpoints.get("sts") or target.endpoints.get("dynamodb")  # moto answers STS too
    if endpoint is None:
        raise TargetError(f"{target.description} has no moto endpoint")
    answer = target.client("sts").assume_role(RoleArn=role_arn(account, region), RoleSessionName=SESSION_NAME)
    credentials = {
        key: str(answer["Credentials"][key]) for key in ("AccessKeyId", "SecretAccessKey", "SessionToken")
    }
    other = Account(account, region, endpoint, credentials)
    answered = other.client("sts").get_caller_identity()["Account"]
    if answered != account:
        raise TargetError(
            f"{target.description} answers credentials of account {account} as {answered}: it keeps one "
            "account only; restart it (pushdeploy local up) with this version"
        )
    return other
