"""Normalized changes: what a push means, whatever source reported it.

A change is either an image (ECR registry, repository, tag, digest) or a commit (provider, repository,
branch, commit). Every source parser produces these, and rules and decisions only ever see these.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ChangeKind = Literal["image", "commit"]
Source = Literal["ecr", "codecommit", "github", "bitbucket"]
SignatureState = Literal["unchecked", "valid", "invalid", "missing"]
OperationOutcome = Literal["started", "succeeded", "failed", "unknown"]

# Hosts whose repository names compare case-insensitively; ECR and CodeCommit names are exact.
CASE_INSENSITIVE_SOURCES: frozenset[str] = frozenset({"github", "bitbucket"})

_REGION_PARTITIONS: tuple[tuple[str, str], ...] = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-iso-", "aws-iso"),
    ("us-isob-", "aws-iso-b"),
)


def partition_of_region(region: str) -> str:
    """The AWS partition a Region belongs to (`aws` unless the Region says otherwise)."""
    for prefix, partition in _REGION_PARTITIONS:
        if region.startswith(prefix):
            return partition
    return "aws"


def registry_host(account: str, region: str, partition: str) -> str:
    """The ECR registry host: `amazonaws.com.cn` in the China partition, `amazonaws.com` elsewhere."""
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


SourceKey = tuple[str, str, str, str]
"""(source, account, region, repository): how rules that watch a change are found. Account and region are
empty strings for GitHub and Bitbucket, whose repository part is lower-cased."""


def source_key(source: str, repository: str, account: str | None, region: str | None) -> SourceKey:
    if source in CASE_INSENSITIVE_SOURCES:
        return (source, "", "", repository.lower())
    return (source, account or "", region or "", repository)


def format_source_key(key: SourceKey) -> str:
    """A stable string form of a source key, used as a DynamoDB partition key."""
    return "|".join(key)


_ACCOUNT = re.compile(r"^[0-9]{12}$")
# The OCI digest grammar and a commit id's characters, both bounded: they become DynamoDB keys (AWS's own
# documented examples carry placeholder digests shorter than 64 hex digits).
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{1,128}$")
_COMMIT = re.compile(r"^[0-9a-zA-Z]{1,128}$")


class Change(BaseModel):
    """One deployable change. Field names and meanings are the `explain --json` contract (DESIGN 4.2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ChangeKind
    source: Source
    account: str | None = None
    region: str | None = None
    repository: str
    tag: str | None = None
    digest: str | None = None
    branch: str | None = None
    commit: str | None = None
    # What orders pushes (pushdeploy.domain.order); not part of the `explain` contract, so not dumped.
    pushed_at: datetime | None = Field(default=None, exclude=True)
    previous_commit: str | None = Field(default=None, exclude=True)  # the branch's commit before the push

    @model_validator(mode="after")
    def _consistent(self) -> Change:
        if self.kind == "image":
            if self.source != "ecr" or not self.digest or self.branch or self.commit:
                raise ValueError("an image change comes from ECR and has a digest, no branch or commit")
        elif self.source == "ecr" or not self.branch or not self.commit or self.tag or self.digest:
            raise ValueError("a commit change has a branch and a commit, no tag or digest")
        has_location = self.source in ("ecr", "codecommit")
        if has_location != (self.account is not None and self.region is not None):
            raise ValueError("account and region are set for ECR and CodeCommit changes only")
        if self.account is not None and not _ACCOUNT.match(self.account):
            raise ValueError(f"account {self.account!r} is not 12 digits")
        if self.digest is not None and not _DIGEST.match(self.digest):
            raise ValueError("an image digest is algorithm:hex, e.g. sha256: and 64 hex digits")
        if self.commit is not None and not _COMMIT.match(self.commit):
            raise ValueError("a commit id is at most 128 letters and digits")
        return self

    @property
    def key(self) -> SourceKey:
        return source_key(self.source, self.repository, self.account, self.region)

    @property
    def artifact(self) -> str:
        """What was pushed: the image digest or the commit id."""
        return self.digest if self.kind == "image" else self.commit  # type: ignore[return-value]

    def describe(self) -> str:
        """A short human description, for logs and tables."""
        if self.kind == "image":
            tag = self.tag if self.tag is not None else "(untagged)"
            return f"ecr {self.account}/{self.region}/{self.repository}:{tag} {self.digest}"
        return f"{self.source} {self.repository}@{self.branch} {self.commit}"


class OperationEvent(BaseModel):
    """An App Runner operation status change: which service, the status as sent, and what it means."""

    model_config = ConfigDict(frozen=True)

    service: str
    status: str
    outcome: OperationOutcome


class ScanResult(BaseModel):
    """An ECR image scan finished. Parsed so that a scan gate can use it; never a deployable change."""

    model_config = ConfigDict(frozen=True)

    account: str
    region: str
    repository: str
    digest: str
    tags: tuple[str, ...] = ()
    status: str
    severity_counts: dict[str, int] = {}


class ParsedEvent(BaseModel):
    """Everything pushdeploy understood from one event or webhook delivery.

    Exactly one of: `changes` non-empty, `ignored` set (understood, nothing to deploy), or `operation` set.
    `event_id` is the EventBridge event id or the webhook delivery id, used to recognise redeliveries.
    """

    model_config = ConfigDict(frozen=True)

    changes: tuple[Change, ...] = ()
    ignored: str | None = None
    operation: OperationEvent | None = None
    signature: SignatureState | None = None
    scan: ScanResult | None = None
    event_id: str | None = None
    provider: str | None = None
