"""Which EventBridge events may deploy, decided independently of pushdeploy's parsers: the fuzz suite's
reference model, written from the AWS documentation's event shapes as pushdeploy's docs say it reads them.

An event may deploy only when it is a well-formed ECR push or replication (result SUCCESS, with a digest
and a tag of at most 128 characters) or a CodeCommit branch update (a branch of at most 255 characters),
in an account of 12 ASCII digits and a Region name, whose repository, account and Region a rule watches
and whose tag or branch that rule selects. Forwarded webhook changes put by anyone but the webhook never
may (the fuzz suite only forges them). `refused` says whether the event is malformed: an event pushdeploy
should dead-letter.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pushdeploy.domain.change_ids import change_id_for
from tests.fuzz.values import valid_commit, valid_digest
from tests.fuzz.world import (
    CODECOMMIT_BRANCH,
    CODECOMMIT_REPOSITORY,
    IMAGE_REPOSITORY,
    REGEX_REPOSITORY,
    REPLICA_REGION,
)
from tests.integration.harness import ACCOUNT, REGION

MAX_TAG_LENGTH = 128
MAX_BRANCH_LENGTH = 255
SOURCES = ("aws.ecr", "aws.inspector2", "aws.codecommit", "aws.apprunner")
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
# An ECR repository's ARN, as Inspector names the repository of a scanned image.
_REPOSITORY_ARN = re.compile(
    r"arn:aws[a-z-]*:ecr:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:repository/.+", re.DOTALL
)
# Tags the semver rule (>=1.0.0,<2.0.0) may select: a superset (any 1.x.y, build metadata allowed).
_SEMVER_1 = re.compile(r"v?1\.\d+\.\d+(\+.*)?", re.DOTALL)
# r"^v(\d+\.?)+$" as RE2 reads it (ASCII digits), written so that Python matches it in linear time.
_WORKER_TAG = re.compile(r"v[0-9]+(\.[0-9]+)*\.?")


@dataclass(frozen=True)
class EventExpectation:
    refused: bool | None  # malformed (should be dead-lettered); None when the model does not say
    deployable: frozenset[str] = field(default_factory=frozenset)  # change ids that may deploy
    reason: str = ""


def expect_event(function: str, event: Any) -> EventExpectation:
    if function == "reconciler":
        return EventExpectation(False, reason="the reconciler reads no event")
    if not isinstance(event, Mapping):
        return EventExpectation(True, reason="not an object")
    source = event.get("source")
    if source == "pushdeploy.webhook" and function in ("image_pushed", "commit_pushed"):  # one parser
        return EventExpectation(None, reason="forwarded: only the webhook may put these")
    if source not in SOURCES:
        return EventExpectation(True, reason="unknown source")
    problem = _envelope_problem(event)
    if problem:
        return EventExpectation(True, reason=problem)
    detail: dict[str, Any] = event["detail"]
    handler = {
        ("aws.ecr", "ECR Image Action"): _image_action,
        ("aws.ecr", "ECR Replication Action"): _replication,
        ("aws.ecr", "ECR Image Scan"): _scan,
        ("aws.inspector2", "Inspector2 Scan"): _inspector_scan,
        ("aws.codecommit", "CodeCommit Repository State Change"): _codecommit,
        ("aws.apprunner", "AppRunner Service Operation Status Change"): _operation,
    }.get((source, event["detail-type"]))
    if handler is None:
        return EventExpectation(False, reason="another detail-type: ignored")
    return handler(event, detail)


def _envelope_problem(event: Mapping[str, Any]) -> str | None:
    for key in ("id", "detail-type"):
        if not _nonempty(event.get(key)):
            return f"{key} is not a non-empty string"
    account, region = event.get("account"), event.get("region")
    if not (isinstance(account, str) and _ACCOUNT.fullmatch(account)):
        return "account is not 12 ASCII digits"
    if not (isinstance(region, str) and _REGION.fullmatch(region)):
        return "not a Region name"
    resources = event.get("resources", [])
    if not (isinstance(resources, list) and all(_nonempty(r) for r in resources)):
        return "resources is not a list of non-empty strings"
    if not isinstance(event.get("detail"), dict):
        return "detail is not an object"
    if not _optional(event, "time", str):
        return "time is not a string"
    return None


def _image_action(event: Mapping[str, Any], detail: dict[str, Any]) -> EventExpectation:
    if not _nonempty(detail.get("action-type")):
        return EventExpectation(True, reason="action-type")
    return _image(event, detail, must_push=True)


def _replication(event: Mapping[str, Any], detail: dict[str, Any]) -> EventExpectation:
    return _image(event, detail, must_push=False)


def _image(event: Mapping[str, Any], detail: dict[str, Any], must_push: bool) -> EventExpectation:
    shape_ok = (
        _nonempty(detail.get("result"))
        and _nonempty(detail.get("repository-name"))
        and _optional_nonempty(detail, "image-digest")
        and _optional_nonempty(detail, "image-tag")
    )
    if not shape_ok:
        return EventExpectation(True, reason="ECR detail")
    if must_push and detail["action-type"] != "PUSH":
        return EventExpectation(False, reason="not a push")
    tag, digest = detail.get("image-tag"), detail.get("image-digest")
    if detail["result"] == "SUCCESS" and digest is not None and not valid_digest(digest):
        return EventExpectation(True, reason="not a digest")
    if detail["result"] != "SUCCESS" or digest is None or tag is None or len(tag) > MAX_TAG_LENGTH:
        return EventExpectation(False, reason="nothing to deploy")
    place = (event["account"], event["region"], detail["repository-name"])
    if _image_selected(place, tag):
        return EventExpectation(False, frozenset({change_id_for(event["id"], 0)}), "a watched image")
    return EventExpectation(False, reason="no rule selects it")


def _image_selected(place: tuple[str, str, str], tag: str) -> bool:
    if place == (ACCOUNT, REGION, IMAGE_REPOSITORY):
        return tag == "latest" or bool(_SEMVER_1.fullmatch(tag)) or fnmatch.fnmatchcase(tag, "release-*")
    if place == (ACCOUNT, REGION, REGEX_REPOSITORY):
        return bool(_WORKER_TAG.fullmatch(tag))
    return place == (ACCOUNT, REPLICA_REGION, IMAGE_REPOSITORY) and tag == "stable"


def _scan(event: Mapping[str, Any], detail: dict[str, Any]) -> EventExpectation:
    counts = detail.get("finding-severity-counts", {})
    tags = detail.get("image-tags", [])
    shape_ok = (
        all(_nonempty(detail.get(key)) for key in ("scan-status", "repository-name", "image-digest"))
        and isinstance(tags, list)
        and all(isinstance(tag, str) for tag in tags)
        and isinstance(counts, dict)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values())
    )
    return EventExpectation(not shape_ok, reason="a scan result: never deploys")


def _inspector_scan(event: Mapping[str, Any], detail: dict[str, Any]) -> EventExpectation:
    """Inspector's scan of an image (or of an EC2 instance or a Lambda function: no repository)."""
    counts = detail.get("finding-severity-counts", {})
    tags = detail.get("image-tags", [])
    repository = detail.get("repository-name")
    shape_ok = (
        _nonempty(detail.get("scan-status"))
        and _optional_nonempty(detail, "repository-name")
        and _optional_nonempty(detail, "image-digest")
        and isinstance(tags, list)
        and all(isinstance(tag, str) for tag in tags)
        and isinstance(counts, dict)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values())
    )
    # An ARN that is not an ECR repository's is refused, when the detail names an image at all.
    an_image = repository is not None and detail.get("image-digest") is not None
    if shape_ok and an_image and repository.startswith("arn:"):
        shape_ok = bool(_REPOSITORY_ARN.fullmatch(repository))
    return EventExpectation(not shape_ok, reason="a scan result: never deploys")


def _codecommit(event: Mapping[str, Any], detail: dict[str, Any]) -> EventExpectation:
    kind = detail.get("event")
    if not _nonempty(kind):
        return EventExpectation(True, reason="CodeCommit event")
    if kind not in ("referenceCreated", "referenceUpdated", "referenceDeleted"):
        return EventExpectation(False, reason="not a push")
    if not all(_nonempty(detail.get(k)) for k in ("repositoryName", "referenceType", "referenceName")):
        return EventExpectation(True, reason="CodeCommit reference")
    if kind == "referenceDeleted":
        return EventExpectation(False, reason="a deletion")
    if not (_nonempty(detail.get("commitId")) and _optional_nonempty(detail, "oldCommitId")):
        return EventExpectation(True, reason="CodeCommit commit")
    if detail["referenceType"] == "branch" and not valid_commit(detail["commitId"]):
        return EventExpectation(True, reason="not a commit id")
    branch = detail["referenceName"]
    place = (event["account"], event["region"], detail["repositoryName"])
    selected = (
        detail["referenceType"] == "branch"
        and place == (ACCOUNT, REGION, CODECOMMIT_REPOSITORY)
        and branch == CODECOMMIT_BRANCH
        and len(branch) <= MAX_BRANCH_LENGTH
    )
    if selected:
        return EventExpectation(False, frozenset({change_id_for(event["id"], 0)}), "a watched branch")
    return EventExpectation(False, reason="no rule selects it")


def _operation(event: Mapping[str, Any], detail: dict[str, Any]) -> EventExpectation:
    if not event.get("resources"):
        return EventExpectation(True, reason="no service ARN")
    key = next((k for k in ("operationStatus", "OperationStatus", "Status") if k in detail), None)
    if key is None or not _nonempty(detail[key]):
        return EventExpectation(True, reason="operation status")
    return EventExpectation(False, reason="an operation: confirmed with ListOperations")


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _optional(document: Mapping[str, Any], key: str, kind: type) -> bool:
    value = document.get(key)
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _optional_nonempty(document: Mapping[str, Any], key: str) -> bool:
    value = document.get(key)
    return value is None or _nonempty(value)
