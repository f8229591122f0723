"""An image's scan as ECR keeps it (DescribeImageScanFindings), the scan gate's source of truth: the
`ECR Image Scan` and `Inspector2 Scan` events only say when to look. Basic and enhanced scanning both
answer here. Takes a factory of ECR clients per Region; never makes one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from pushdeploy.domain.gates import ScanFacts

logger = Logger(service="pushdeploy", child=True)

# ECR's scan statuses: a finished scan (basic COMPLETE; enhanced ACTIVE, scanned and watched), one that
# will give nothing, or one still to come.
_FINISHED = frozenset({"COMPLETE", "ACTIVE"})
_NOTHING = frozenset({"FAILED", "UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE", "SCAN_ELIGIBILITY_EXPIRED"})
_NOT_YET = frozenset({"ScanNotFoundException", "ImageNotFoundException", "RepositoryNotFoundException"})


class ScanReader:
    def __init__(self, ecr_for: Callable[[str], Any], clock: Callable[[], datetime]) -> None:
        self._ecr_for = ecr_for
        self._clock = clock

    def findings(self, account: str, region: str, repository: str, digest: str) -> ScanFacts | None:
        """The finished scan of the image, or None while there is none (or it cannot be read: then the
        scan gate waits, and its `on_timeout` decides)."""
        try:
            answer = self._ecr_for(region).describe_image_scan_findings(
                registryId=account, repositoryName=repository, imageId={"imageDigest": digest}, maxResults=1
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code not in _NOT_YET:
                logger.warning(
                    "cannot read the image's scan; the scan gate waits",
                    extra={"repository": repository, "digest": digest, "error": code},
                )
            return None
        status = str((answer.get("imageScanStatus") or {}).get("status", ""))
        if status in _NOTHING:
            return ScanFacts("FAILED", {}, self._clock())
        if status not in _FINISHED:
            return None
        found = answer.get("imageScanFindings") or {}
        counts = {str(k).upper(): int(v) for k, v in (found.get("findingSeverityCounts") or {}).items()}
        return ScanFacts("COMPLETE", counts, _utc(found.get("imageScanCompletedAt")) or self._clock())


def _utc(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
