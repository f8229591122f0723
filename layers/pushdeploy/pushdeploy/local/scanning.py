"""An image's scan ending on the local cloud, as ECR's basic scanning ends one: from then on
DescribeImageScanFindings answers it (the scan gate's source of truth, through `ecr_scans` in the local
cloud's moto server), and ECR emits `ECR Image Scan`. Used by `pushdeploy --local simulate scan` and by a
push to a repository that scans on push (`sending.push_image`).

`finish_scan` and `scan_on_push` record the scan (`post_scan`, to the control path `ecr_scans.ScanControl`
serves: the CLI runs in another process than moto) and return the event's PutEvents entry: the caller puts
it on the bus (`sending.put_event`), after the push's own event, in the order ECR sends them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pushdeploy.installation import Target, TargetError
from pushdeploy.local import pushes
from pushdeploy.local.accounts import home

SCAN_CONTROL_PATH = "/_pushdeploy/ecr/image-scan"  # served by `ecr_scans.ScanControl`
# How DescribeImageScanFindings reports a finished scan: basic scanning's COMPLETE, enhanced scanning's
# ACTIVE (scanned, and watched continuously), or FAILED (ECR could not scan the image).
STATUSES = ("COMPLETE", "ACTIVE", "FAILED")
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")  # ECR's, in its order
_CONTROL_TIMEOUT_SECONDS = 10


class ScanError(Exception):
    """No such repository or image, or a scan ECR would not report. The message is one line."""


@dataclass(frozen=True)
class Scan:
    """An image's finished scan: COMPLETE (or ACTIVE) with its findings counted by severity, or FAILED."""

    status: str
    counts: Mapping[str, int] = field(default_factory=dict)  # ECR lists only severities with findings
    completed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ScanError(f"a scan ends {' or '.join(STATUSES)}, not {self.status}")
        unknown = sorted(set(self.counts) - set(SEVERITIES))
        if unknown:
            raise ScanError(f"not an ECR severity: {', '.join(unknown)} (ECR's are {', '.join(SEVERITIES)})")
        if any(count < 0 for count in self.counts.values()):
            raise ScanError("a finding count is 0 or more")
        if self.status == "FAILED" and any(self.counts.values()):
            raise ScanError("a failed scan has no findings")


def finish_scan(target: Target, repository: str, digest: str, scan: Scan) -> dict[str, Any]:
    """The image's scan ends as `scan` says. The `ECR Image Scan` entry to put."""
    moto_url = target.endpoints.get("ecr")
    if moto_url is None:
        raise TargetError(f"{target.description} has no ECR endpoint")
    account, region = home(target)
    try:
        post_scan(moto_url, account, region, repository, digest, scan)
    except ScanError as refused:
        raise TargetError(str(refused)) from None
    tags = _tags(target, repository, digest)
    counts = dict(scan.counts)
    return pushes.ecr_scan_entry(
        repository, digest, tags, scan.status, counts, account=account, region=region
    )


def scan_on_push(target: Target, repository: str, digest: str) -> dict[str, Any] | None:
    """When the repository scans on push (imageScanningConfiguration.scanOnPush), ECR scans the new
    image: here a scan that finds nothing. Its `ECR Image Scan` entry, or None."""
    if not target.local or not _scans_on_push(target, repository):
        return None
    return finish_scan(target, repository, digest, Scan("COMPLETE"))


def _scans_on_push(target: Target, repository: str) -> bool:
    described = target.client("ecr").describe_repositories(repositoryNames=[repository])["repositories"]
    return bool(described and described[0].get("imageScanningConfiguration", {}).get("scanOnPush"))


def _tags(target: Target, repository: str, digest: str) -> list[str]:
    """The image's tags, as the scan event lists them."""
    images = target.client("ecr").describe_images(
        repositoryName=repository, imageIds=[{"imageDigest": digest}]
    )
    return sorted({tag for image in images["imageDetails"] for tag in image.get("imageTags", [])})


def post_scan(moto_url: str, account: str, region: str, repository: str, digest: str, scan: Scan) -> None:
    """`record_scan` in the local cloud whose moto server is at `moto_url`. ScanError when it refuses."""
    body = {
        "account": account,
        "region": region,
        "repository": repository,
        "digest": digest,
        "status": scan.status,
        "counts": dict(scan.counts),
    }
    request = urllib.request.Request(  # noqa: S310 - the local cloud's loopback URL
        moto_url.rstrip("/") + SCAN_CONTROL_PATH,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=_CONTROL_TIMEOUT_SECONDS):  # noqa: S310
            return
    except urllib.error.HTTPError as refused:
        raise ScanError(_message(refused.read())) from None
    except (urllib.error.URLError, OSError) as error:
        raise ScanError(f"cannot reach the local cloud's ECR at {moto_url}: {error}") from None


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")
