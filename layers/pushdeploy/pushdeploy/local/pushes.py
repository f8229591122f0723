"""Pushes as their sources report them, for the local cloud: an image manifest for ECR PutImage and the
`ECR Image Action` event ECR emits (and `ECR Image Scan` when the image's scan ends), CodeCommit's
`Repository State Change` event, and GitHub and Bitbucket push deliveries (body and headers, signed as
those hosts sign them).

Shapes follow the AWS docs' examples and the real payloads in `tests/fixtures/payloads`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pushdeploy.domain.changes import partition_of_region
from pushdeploy.sources.signatures import sign

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ECR_IMAGE_ACTION = "ECR Image Action"
ECR_IMAGE_SCAN = "ECR Image Scan"
CODECOMMIT_STATE_CHANGE = "CodeCommit Repository State Change"

# ECR's repository names (as `rules` checks them) and the registry's tags (the OCI distribution grammar).
_ECR_REPOSITORY = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY_RULE = "lowercase letters and digits, separated by '.', '_', '-' or '/', 2 to 256 characters"
_TAG_RULE = "letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'"


def random_commit() -> str:
    return secrets.token_hex(20)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----- ECR -----


def parse_image_reference(reference: str) -> tuple[str, str | None]:
    """`REPO[:TAG]` as `docker push` takes it: `web:v1` -> ("web", "v1"); `team/web` -> ("team/web",
    None), an untagged push. Raises ValueError saying, in one line, what is wrong with anything else."""
    shown = repr(reference)
    if not reference.strip():
        raise ValueError("no image given: give REPO[:TAG], e.g. web:v1.2.0")
    if "@" in reference:
        raise ValueError(
            f"{shown}: a push makes a new image, and ECR computes its digest: give REPO[:TAG], not a digest"
        )
    repository, separator, tag = reference.partition(":")
    if ":" in tag:
        raise ValueError(f"{shown} is not REPO[:TAG]: it has more than one ':'")
    if not repository:
        raise ValueError(f"{shown} is not REPO[:TAG]: no repository before ':'")
    if ".dkr.ecr." in repository.split("/", 1)[0]:
        raise ValueError(f"{shown}: give the repository's name without the registry host")
    if not (2 <= len(repository) <= 256 and _ECR_REPOSITORY.match(repository)):
        raise ValueError(f"repository {repository!r} is not an ECR repository name ({_REPOSITORY_RULE})")
    if not separator:
        return repository, None
    if not tag:
        raise ValueError(f"{shown} has no tag after ':' (leave ':' out for an untagged push)")
    if not _IMAGE_TAG.match(tag):
        raise ValueError(f"tag {tag!r} is not an image tag ({_TAG_RULE})")
    return repository, tag


def parse_digest_reference(reference: str) -> tuple[str, str]:
    """`REPO@sha256:<64 hex>`, one image of a repository: `web@sha256:...` -> ("web", "sha256:...").
    Raises ValueError saying, in one line, what is wrong with anything else."""
    repository, separator, digest = reference.partition("@")
    if not separator:
        raise ValueError(f"{reference!r} is not REPO@DIGEST: give the digest push-image printed")
    if not (2 <= len(repository) <= 256 and _ECR_REPOSITORY.match(repository)):
        raise ValueError(f"repository {repository!r} is not an ECR repository name ({_REPOSITORY_RULE})")
    if not _DIGEST.match(digest):
        raise ValueError(f"{digest!r} is not an image digest (sha256: and 64 hex digits)")
    return repository, digest


@dataclass(frozen=True)
class Manifest:
    text: str  # the exact bytes ECR stores (the digest is theirs)

    @property
    def digest(self) -> str:
        return _sha256(self.text.encode())


def image_manifest(repository: str, tag: str | None) -> Manifest:
    """A Docker v2 image manifest no push has used before: a fresh config and layer each time, so each
    push gets a new digest, as a rebuilt image does."""
    config = json.dumps(
        {
            "architecture": "arm64",
            "os": "linux",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": {"Labels": {"pushdeploy.repository": repository, "pushdeploy.tag": tag or ""}},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(secrets.token_bytes(32))]},
        }
    ).encode()
    layer_size = 1024 + secrets.randbelow(1 << 20)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": len(config), "digest": _sha256(config)},
        "layers": [
            {"mediaType": LAYER_MEDIA_TYPE, "size": layer_size, "digest": _sha256(secrets.token_bytes(32))}
        ],
    }
    return Manifest(json.dumps(manifest, indent=3))


def ecr_push_entry(repository: str, tag: str | None, digest: str) -> dict[str, Any]:
    """The PutEvents entry of the `ECR Image Action` event ECR emits for a successful push."""
    detail: dict[str, Any] = {
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "PUSH",
        "manifest-media-type": MANIFEST_MEDIA_TYPE,
        "artifact-media-type": CONFIG_MEDIA_TYPE,
    }
    if tag is not None:
        detail["image-tag"] = tag  # absent for an untagged push
    return {
        "Source": "aws.ecr",
        "DetailType": ECR_IMAGE_ACTION,
        "Detail": json.dumps(detail),
        "Resources": [],
    }


def ecr_scan_detail(
    repository: str, digest: str, tags: list[str], status: str, counts: dict[str, int]
) -> dict[str, Any]:
    """The detail of `ECR Image Scan` (basic scanning): only severities with findings are counted."""
    return {
        "scan-status": status,
        "repository-name": repository,
        "finding-severity-counts": {severity: n for severity, n in counts.items() if n > 0},
        "image-digest": digest,
        "image-tags": tags,
    }


def ecr_scan_entry(
    repository: str,
    digest: str,
    tags: list[str],
    status: str,
    counts: dict[str, int],
    *,
    account: str,
    region: str,
) -> dict[str, Any]:
    """The PutEvents entry of the `ECR Image Scan` event ECR emits when an image's scan ends."""
    arn = f"arn:{partition_of_region(region)}:ecr:{region}:{account}:repository/{repository}"
    return {
        "Source": "aws.ecr",
        "DetailType": ECR_IMAGE_SCAN,
        "Detail": json.dumps(ecr_scan_detail(repository, digest, tags, status, counts)),
        "Resources": [arn],
    }


# ----- CodeCommit -----


def codecommit_push_entry(
    repository: str, branch: str, commit: str, *, account: str, region: str, partition: str = "aws"
) -> dict[str, Any]:
    """The PutEvents entry of CodeCommit's event for a branch updated to `commit`."""
    detail = {
        "callerUserArn": f"arn:{partition}:iam::{account}:user/pushdeploy-local",
        "commitId": commit,
        "event": "referenceUpdated",
        "oldCommitId": random_commit(),
        "referenceFullName": f"refs/heads/{branch}",
        "referenceName": branch,
        "referenceType": "branch",
        "repositoryId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"codecommit:{account}:{region}:{repository}")),
        "repositoryName": repository,
    }
    return {
        "Source": "aws.codecommit",
        "DetailType": CODECOMMIT_STATE_CHANGE,
        "Detail": json.dumps(detail),
        "Resources": [f"arn:{partition}:codecommit:{region}:{account}:{repository}"],
    }


# ----- webhooks -----


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    delivery_id: str


def github_push(repository: str, branch: str, commit: str, secret: str) -> Delivery:
    """A GitHub `push` delivery of one commit to a branch, signed with `secret`."""
    owner, _, name = repository.partition("/")
    before = random_commit()
    author = {"name": "pushdeploy", "email": "pushdeploy@users.noreply.github.com", "username": owner}
    head_commit = {
        "id": commit,
        "tree_id": random_commit(),
        "distinct": True,
        "message": f"Update {branch}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "url": f"https://github.com/{repository}/commit/{commit}",
        "author": author,
        "committer": author,
        "added": [],
        "removed": [],
        "modified": ["README.md"],
    }
    payload = {
        "ref": f"refs/heads/{branch}",
        "before": before,
        "after": commit,
        "repository": {
            "id": _number(repository),
            "name": name,
            "full_name": repository,
            "private": True,
            "owner": {"name": owner, "login": owner},
            "html_url": f"https://github.com/{repository}",
            "default_branch": "main",
            "pushed_at": int(time.time()),
        },
        "pusher": {"name": owner, "email": author["email"]},
        "sender": {"login": owner, "id": _number(owner), "type": "User"},
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{repository}/compare/{before[:12]}...{commit[:12]}",
        "commits": [head_commit],
        "head_commit": head_commit,
    }
    body = json.dumps(payload, indent=2).encode()
    delivery_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/pushdeploy",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": str(_number(f"hook:{repository}")),
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": str(_number(repository)),
        "X-Hub-Signature": "sha1=" + _hmac_sha1(body, secret),  # GitHub's legacy header, sent along
        "X-Hub-Signature-256": sign(body, secret),
    }
    return Delivery(body, headers, delivery_id)


def bitbucket_push(repository: str, branch: str, commit: str, secret: str) -> Delivery:
    """A Bitbucket Cloud `repo:push` delivery of one commit to a branch, signed with `secret`."""
    _workspace, _, name = repository.partition("/")
    previous = random_commit()
    links = {"html": {"href": f"https://bitbucket.org/{repository}/branch/{branch}"}}
    change = {
        "new": {
            "type": "branch",
            "name": branch,
            "target": {
                "type": "commit",
                "hash": commit,
                "message": f"Update {branch}\n",
                "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            },
            "links": links,
        },
        "old": {"type": "branch", "name": branch, "target": {"type": "commit", "hash": previous}},
        "created": False,
        "closed": False,
        "forced": False,
        "truncated": False,
        "commits": [{"type": "commit", "hash": commit, "message": f"Update {branch}\n"}],
    }
    payload = {
        "actor": {"nickname": "pushdeploy", "display_name": "pushdeploy", "type": "user"},
        "repository": {
            "type": "repository",
            "full_name": repository,
            "name": name,
            "scm": "git",
            "is_private": True,
            "uuid": "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"bitbucket:{repository}")) + "}",
        },
        "push": {"changes": [change]},
    }
    body = json.dumps(payload, indent=2).encode()
    delivery_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Bitbucket-Webhooks/2.0",
        "X-Event-Key": "repo:push",
        "X-Hook-UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"hook:{repository}")),
        "X-Request-UUID": delivery_id,
        "X-Attempt-Number": "1",
        "X-Hub-Signature": sign(body, secret),
    }
    return Delivery(body, headers, delivery_id)


def _number(text: str) -> int:
    """A stable id for a name, as the hosts give repositories and users numeric ids."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _hmac_sha1(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
