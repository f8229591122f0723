"""ECR image scans in moto, made controllable: what DescribeImageScanFindings answers for an image.

The scan gate takes an image's finding counts from DescribeImageScanFindings (the scan events only say when
to look). moto answers it only for an image it was asked to StartImageScan (once a day), then with one
fixed HIGH finding, or with answers queued through its own API, each kept for good by the first call that
takes it. Neither lets a test or `simulate scan` say "this image's scan found 2 critical" and change it
later. So, in the process that runs moto:

- `record_scan(...)` records an image's finished scan (status and counts by severity) on moto's ECR backend
  of its account and Region (so a moto reset forgets it with everything else);
- `patches()` makes DescribeImageScanFindings answer a recorded scan, in ECR's shape; an image with none
  keeps moto's own answer (ScanNotFoundException until StartImageScan);
- `ScanControl`, WSGI middleware of the local cloud's moto server, takes `record_scan` over HTTP
  (`scanning.post_scan`), for the CLI, which runs in another process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from moto.core.utils import iso_8601_datetime_without_milliseconds
from moto.ecr.exceptions import ImageNotFoundException, RepositoryNotFoundException
from moto.ecr.models import ECRBackend, ecr_backends

from pushdeploy.local.scanning import SCAN_CONTROL_PATH, SEVERITIES, Scan, ScanError

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Patch = tuple[object, str, Any]

_MAX_FINDINGS = 100  # ECR's page of findings without maxResults
_ATTRIBUTE = "pushdeploy_scans"  # where a backend keeps its recorded scans
_ORIGINAL_DESCRIBE = ECRBackend.describe_image_scan_findings


def record_scan(account: str, region: str, repository: str, digest: str, scan: Scan) -> None:
    """From now on, DescribeImageScanFindings of that image answers `scan` (until another is recorded)."""
    try:
        backend = ecr_backends[account][region]
    except KeyError:
        raise ScanError(f"ECR has no Region {region}") from None
    try:
        image = backend._get_repository(repository, account)._get_image(None, digest)
    except (RepositoryNotFoundException, ImageNotFoundException) as missing:  # ECR's own message
        raise ScanError(f"no image {repository}@{digest} in {account}, {region}: {missing}") from None
    _scans(backend)[(repository, image.get_image_digest())] = scan


def patches() -> list[Patch]:
    """What to replace in moto, as (owner, attribute name, new value)."""
    return [(ECRBackend, "describe_image_scan_findings", _describe_image_scan_findings)]


def install() -> None:
    """Apply the patches for the rest of the process (the local cloud's moto server)."""
    for owner, name, value in patches():
        setattr(owner, name, value)


def _scans(backend: ECRBackend) -> dict[tuple[str, str], Scan]:
    scans: dict[tuple[str, str], Scan] = backend.__dict__.setdefault(_ATTRIBUTE, {})
    return scans


def _describe_image_scan_findings(
    self: ECRBackend, registry_id: str, repository_name: str, image_id: dict[str, Any]
) -> dict[str, Any]:
    repository = self._get_repository(repository_name, registry_id)  # ECR's errors first, as moto's
    image = repository._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))
    scan = _scans(self).get((repository_name, image.get_image_digest()))
    if scan is None:
        return _ORIGINAL_DESCRIBE(self, registry_id, repository_name, image_id)
    return _answer(repository.registry_id, repository_name, image, scan)


_DESCRIPTIONS = {  # ECR's descriptions of the statuses
    "COMPLETE": "The scan was completed successfully.",
    "ACTIVE": "Continuous scan is selected for image.",
    "FAILED": "UnsupportedImageError: The operating system and/or package manager are not supported.",
}


def _answer(registry_id: str, repository: str, image: Any, scan: Scan) -> dict[str, Any]:
    """DescribeImageScanFindings' answer, as ECR gives it: basic scanning's findings, enhanced
    scanning's (Inspector's), or a failed scan's none."""
    answer: dict[str, Any] = {
        "registryId": registry_id,
        "repositoryName": repository,
        "imageId": {"imageDigest": image.get_image_digest(), "imageTag": image.image_tag},
        "imageScanStatus": {"status": scan.status, "description": _DESCRIPTIONS[scan.status]},
    }
    if scan.status == "FAILED":
        return answer
    completed = iso_8601_datetime_without_milliseconds(scan.completed_at)
    kind = "findings" if scan.status == "COMPLETE" else "enhancedFindings"
    answer["imageScanFindings"] = {
        "imageScanCompletedAt": completed,
        "vulnerabilitySourceUpdatedAt": completed,
        kind: _findings(scan.counts, enhanced=kind == "enhancedFindings"),
        "findingSeverityCounts": {s: n for s, n in scan.counts.items() if n > 0},
    }
    return answer


def _findings(counts: Mapping[str, int], *, enhanced: bool) -> list[dict[str, Any]]:
    """Made-up findings that add up to the counts (the first page of them), most severe first."""
    findings: list[dict[str, Any]] = []
    for severity in SEVERITIES:
        for number in range(counts.get(severity, 0)):
            if len(findings) == _MAX_FINDINGS:
                return findings
            name = f"CVE-0000-{severity[:1]}{number:04d}"
            if enhanced:
                findings.append({"title": name, "severity": severity, "status": "ACTIVE"})
            else:
                uri = f"https://cve.mitre.org/cgi-bin/cvename.cgi?name={name}"
                findings.append({"name": name, "uri": uri, "severity": severity})
    return findings


# ----- over HTTP, for the local cloud's moto server -----


class ScanControl:
    """WSGI middleware: `POST SCAN_CONTROL_PATH` with {account, region, repository, digest, status,
    counts} records that scan (200 `{}`), or answers 400 with `{"message": ...}`. Everything else goes to
    moto."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != SCAN_CONTROL_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        try:
            _record_from(_read_json(environ))
        except (ScanError, ValueError, KeyError, TypeError) as refused:
            return _respond(start_response, "400 Bad Request", {"message": str(refused)})
        return _respond(start_response, "200 OK", {})


def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    if not isinstance(body, dict):
        raise ValueError("the body is a JSON object")
    return body


def _record_from(body: dict[str, Any]) -> None:
    counts = {str(severity): int(count) for severity, count in dict(body.get("counts") or {}).items()}
    scan = Scan(str(body["status"]), counts)
    record_scan(str(body["account"]), str(body["region"]), str(body["repository"]), str(body["digest"]), scan)


def _respond(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
