"""What the sources hold now: ECR images (DescribeImages) and CodeCommit branch heads (ListBranches,
GetBranch), for the sweep. Takes a factory of clients per service, account and Region; never makes one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from pushdeploy.domain.sweep import ListedImage
from pushdeploy.errors import PushdeployError

ClientFor = Callable[[str, str, str], Any]
"""(service, account, region) -> a boto3 client acting in that account and Region."""

# The sweep skips a source it cannot read, and says why; every other error fails the run (and is retried).
_UNREADABLE = frozenset(
    {
        "RepositoryNotFoundException",  # ECR
        "RepositoryDoesNotExistException",  # CodeCommit
        "BranchDoesNotExistException",
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
    }
)


class SourceUnreadable(PushdeployError):
    """The source cannot be read (gone, or no access): the sweep skips it and says why."""


class SourceReader:
    def __init__(self, client_for: ClientFor) -> None:
        self._client_for = client_for

    def images(self, account: str, region: str, repository: str) -> list[ListedImage]:
        """Every tagged image of the repository: one DescribeImages call per 1,000 images."""
        ecr = self._client_for("ecr", account, region)
        request: dict[str, Any] = {
            "registryId": account,
            "repositoryName": repository,
            "filter": {"tagStatus": "TAGGED"},
            "maxResults": 1000,
        }
        listed: list[ListedImage] = []
        while True:
            page = _read(lambda: ecr.describe_images(**request), f"ECR repository {repository}")
            listed.extend(
                _listed(detail) for detail in page.get("imageDetails", []) if detail.get("imageDigest")
            )
            if not page.get("nextToken"):
                return listed
            request["nextToken"] = page["nextToken"]

    def branches(self, account: str, region: str, repository: str) -> list[str]:
        """Every branch of the CodeCommit repository (for rules that take a branch pattern)."""
        codecommit = self._client_for("codecommit", account, region)
        request: dict[str, Any] = {"repositoryName": repository}
        names: list[str] = []
        while True:
            page = _read(lambda: codecommit.list_branches(**request), f"CodeCommit repository {repository}")
            names.extend(page.get("branches", []))
            if not page.get("nextToken"):
                return names
            request["nextToken"] = page["nextToken"]

    def head(self, account: str, region: str, repository: str, branch: str) -> str | None:
        """The commit the branch points to, or None when there is no such branch (yet)."""
        codecommit = self._client_for("codecommit", account, region)
        try:
            answer = codecommit.get_branch(repositoryName=repository, branchName=branch)
        except ClientError as error:
            if error.response["Error"]["Code"] == "BranchDoesNotExistException":
                return None
            raise _unreadable(error, f"CodeCommit repository {repository}") from error
        commit = (answer.get("branch") or {}).get("commitId")
        return str(commit) if commit else None


def _read(call: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    try:
        return call()
    except ClientError as error:
        raise _unreadable(error, what) from error


def _unreadable(error: ClientError, what: str) -> Exception:
    code = error.response["Error"]["Code"]
    if code in _UNREADABLE:
        return SourceUnreadable(f"{what}: {code}: {error.response['Error'].get('Message', '')}".rstrip(": "))
    return error


def _listed(detail: dict[str, Any]) -> ListedImage:
    pushed_at = detail.get("imagePushedAt")
    if not isinstance(pushed_at, datetime):
        pushed_at = datetime.fromtimestamp(float(pushed_at or 0), UTC)
    elif pushed_at.tzinfo is None:
        pushed_at = pushed_at.replace(tzinfo=UTC)
    return ListedImage(
        str(detail["imageDigest"]), tuple(detail.get("imageTags") or ()), pushed_at.astimezone(UTC)
    )


class AccountClients:
    """Clients for the sweep: this account's own, or, for a source in another account, clients with the
    credentials of the role the user named for that account (STS AssumeRole, kept until near expiry).
    A source in an account with no role is unreadable: the sweep skips it and says which parameter to set.
    """

    _SESSION_SECONDS = 900
    _RENEW_BEFORE_SECONDS = 120

    def __init__(
        self,
        own_account: str,
        roles: dict[str, str],
        own_client: Callable[[str, str], Any],
        sts: Callable[[], Any],
        make_client: Callable[[str, str, dict[str, str]], Any],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._own_account = own_account
        self._roles = roles  # account id -> role ARN
        self._own_client = own_client
        self._sts = sts
        self._make_client = make_client
        self._clock = clock
        self._sessions: dict[str, tuple[dict[str, str], datetime]] = {}

    def __call__(self, service: str, account: str, region: str) -> Any:
        if account == self._own_account:
            return self._own_client(service, region)
        return self._make_client(service, region, self._credentials(account))

    def _credentials(self, account: str) -> dict[str, str]:
        role = self._roles.get(account)
        if role is None:
            raise SourceUnreadable(
                f"account {account} has no sweep role: name one in the stack's SweepRoleArns parameter"
            )
        kept = self._sessions.get(role)
        if kept is not None and (kept[1] - self._clock()).total_seconds() > self._RENEW_BEFORE_SECONDS:
            return kept[0]
        try:
            answer = self._sts().assume_role(
                RoleArn=role, RoleSessionName="pushdeploy-sweep", DurationSeconds=self._SESSION_SECONDS
            )
        except ClientError as error:
            raise SourceUnreadable(f"cannot assume {role}: {error.response['Error']['Code']}") from error
        granted = answer["Credentials"]
        credentials = {
            "aws_access_key_id": granted["AccessKeyId"],
            "aws_secret_access_key": granted["SecretAccessKey"],
            "aws_session_token": granted["SessionToken"],
        }
        self._sessions[role] = (credentials, granted["Expiration"])
        return credentials


def roles_by_account(role_arns: str) -> dict[str, str]:
    """`SWEEP_ROLE_ARNS` (comma-separated role ARNs, may be empty) by the account each belongs to."""
    roles: dict[str, str] = {}
    for arn in filter(None, (part.strip() for part in role_arns.split(","))):
        fields = arn.split(":")
        if len(fields) != 6 or fields[2] != "iam" or not fields[5].startswith("role/"):
            raise PushdeployError(f"SWEEP_ROLE_ARNS: {arn!r} is not an IAM role ARN")
        roles[fields[4]] = arn
    return roles
