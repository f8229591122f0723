"""EventBridge events from ECR, CodeCommit and App Runner, as pushdeploy understands them.

Shapes follow the AWS docs: "Amazon ECR events and EventBridge", "Monitoring CodeCommit events in Amazon
EventBridge" and "Handling App Runner events in EventBridge". The envelope is checked strictly; the docs'
own examples use placeholder digests and commit ids (`sha256:7f5b...`, `3e5983EXAMPLE`), so those are only
required to be non-empty strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, AliasChoices, Field
from pydantic_core import PydanticCustomError

from pushdeploy.domain.changes import OperationEvent, OperationOutcome, ParsedEvent, ScanResult
from pushdeploy.errors import EventError
from pushdeploy.sources._parsing import (
    M,
    NonEmptyStr,
    PayloadModel,
    new_change,
    one_line,
    parse_time,
    validate,
)


def _matching(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError("pattern_mismatch", message)
        return value

    return AfterValidator(check)


class _Envelope(PayloadModel):
    id: NonEmptyStr
    source: NonEmptyStr
    detail_type: NonEmptyStr = Field(alias="detail-type")
    account: Annotated[str, _matching(r"[0-9]{12}", "an account id is 12 digits")]
    region: Annotated[str, _matching(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", "not an AWS Region name")]
    resources: list[NonEmptyStr] = Field(default_factory=list)
    detail: dict[str, Any]
    time: str | None = None  # when the push happened: what orders pushes that arrive out of order

    @property
    def pushed_at(self) -> datetime | None:
        return parse_time(self.time)


class _EcrImage(PayloadModel):
    """The detail of `ECR Replication Action`, and the common part of `ECR Image Action`."""

    result: NonEmptyStr
    repository_name: NonEmptyStr = Field(alias="repository-name")
    image_digest: NonEmptyStr | None = Field(default=None, alias="image-digest")
    image_tag: NonEmptyStr | None = Field(default=None, alias="image-tag")  # absent for an untagged push


class _EcrImageAction(_EcrImage):
    action_type: NonEmptyStr = Field(alias="action-type")


class _EcrImageScan(PayloadModel):
    scan_status: NonEmptyStr = Field(alias="scan-status")
    repository_name: NonEmptyStr = Field(alias="repository-name")
    image_digest: NonEmptyStr = Field(alias="image-digest")
    image_tags: list[str] = Field(default_factory=list, alias="image-tags")
    # Only severities with findings are listed, and the whole key may be missing.
    finding_severity_counts: dict[str, int] = Field(default_factory=dict, alias="finding-severity-counts")


class _CodeCommitEvent(PayloadModel):
    event: NonEmptyStr


class _CodeCommitReference(_CodeCommitEvent):
    repository_name: NonEmptyStr = Field(alias="repositoryName")
    reference_type: NonEmptyStr = Field(alias="referenceType")
    reference_name: NonEmptyStr = Field(alias="referenceName")

    def describe(self) -> str:
        return f"CodeCommit {self.reference_type} {self.reference_name} of {self.repository_name}"


class _CodeCommitPush(_CodeCommitReference):
    commit_id: NonEmptyStr = Field(alias="commitId")  # absent from referenceDeleted only
    old_commit_id: NonEmptyStr | None = Field(default=None, alias="oldCommitId")  # referenceUpdated only


class _AppRunnerOperation(PayloadModel):
    # Current docs: `operationStatus`; older docs: `Status` (and PascalCase keys elsewhere).
    status: NonEmptyStr = Field(validation_alias=AliasChoices("operationStatus", "OperationStatus", "Status"))


_Handler = Callable[[_Envelope], ParsedEvent]


class _Family(NamedTuple):
    """The detail-types pushdeploy reads from one source, and why it ignores the others."""

    handlers: Mapping[str, _Handler]
    other: str  # a reason template for any other detail-type


def parse_eventbridge_event(event: Mapping[str, Any]) -> ParsedEvent:
    if not isinstance(event, Mapping):
        raise EventError("an EventBridge event is a JSON object")
    source = event.get("source")
    if source is None:
        raise EventError("not an EventBridge event: no source")
    family = _FAMILIES.get(source) if isinstance(source, str) else None
    if family is None:
        raise EventError(one_line(f"unknown event source {source}"))
    envelope = validate(_Envelope, dict(event), "EventBridge event")
    handler = family.handlers.get(envelope.detail_type)
    if handler is None:
        return _ignored(envelope, family.other.format(envelope.detail_type))
    return handler(envelope)


def _ignored(envelope: _Envelope, reason: str) -> ParsedEvent:
    return ParsedEvent(ignored=one_line(reason), event_id=envelope.id)


def _detail(model: type[M], envelope: _Envelope) -> M:
    return validate(model, envelope.detail, f"{envelope.detail_type} event detail")


def _image_ref(detail: _EcrImage) -> str:
    if detail.image_tag is not None:
        return f"{detail.repository_name}:{detail.image_tag}"
    if detail.image_digest is not None:
        return f"{detail.repository_name}@{detail.image_digest}"
    return detail.repository_name


def _ecr_image_action(envelope: _Envelope) -> ParsedEvent:
    detail = _detail(_EcrImageAction, envelope)
    if detail.action_type != "PUSH":
        return _ignored(envelope, f"ECR {detail.action_type} of {_image_ref(detail)} is not a push")
    return _ecr_image_change(envelope, detail, "push")


def _ecr_replication(envelope: _Envelope) -> ParsedEvent:
    # The envelope is the replica's: the image is now in the event's own account and Region.
    return _ecr_image_change(envelope, _detail(_EcrImage, envelope), "replication")


def _ecr_image_change(envelope: _Envelope, detail: _EcrImage, action: str) -> ParsedEvent:
    ref = _image_ref(detail)
    if detail.result != "SUCCESS":
        return _ignored(envelope, f"ECR {action} of {ref} did not succeed (result {detail.result})")
    if detail.image_digest is None:
        return _ignored(envelope, f"ECR {action} of {ref} has no image digest")
    change = new_change(
        kind="image",
        source="ecr",
        account=envelope.account,
        region=envelope.region,
        repository=detail.repository_name,
        tag=detail.image_tag,
        digest=detail.image_digest,
        pushed_at=envelope.pushed_at,
    )
    return ParsedEvent(changes=(change,), event_id=envelope.id)


def _ecr_image_scan(envelope: _Envelope) -> ParsedEvent:
    detail = _detail(_EcrImageScan, envelope)
    scan = ScanResult(
        account=envelope.account,
        region=envelope.region,
        repository=detail.repository_name,
        digest=detail.image_digest,
        tags=tuple(detail.image_tags),
        status=detail.scan_status,
        severity_counts=detail.finding_severity_counts,
    )
    return ParsedEvent(ignored="ECR image scan result, not a push", scan=scan, event_id=envelope.id)


def _codecommit_state_change(envelope: _Envelope) -> ParsedEvent:
    event = _detail(_CodeCommitEvent, envelope).event
    if event == "referenceDeleted":
        deleted = _detail(_CodeCommitReference, envelope)
        return _ignored(envelope, f"{deleted.describe()} was deleted")
    if event not in ("referenceCreated", "referenceUpdated"):
        return _ignored(envelope, f"CodeCommit {event} is not a push")
    push = _detail(_CodeCommitPush, envelope)
    if push.reference_type != "branch":
        return _ignored(envelope, f"{push.describe()} is not a branch")
    change = new_change(
        kind="commit",
        source="codecommit",
        account=envelope.account,
        region=envelope.region,
        repository=push.repository_name,
        branch=push.reference_name,
        commit=push.commit_id,
        pushed_at=envelope.pushed_at,
        previous_commit=push.old_commit_id,
    )
    return ParsedEvent(changes=(change,), event_id=envelope.id)


_OUTCOMES: tuple[tuple[str, OperationOutcome], ...] = (
    ("Started", "started"),
    ("CompletedSuccessfully", "succeeded"),
    ("Failed", "failed"),
)


def _outcome(status: str) -> OperationOutcome:
    return next((outcome for suffix, outcome in _OUTCOMES if status.endswith(suffix)), "unknown")


def _apprunner_operation(envelope: _Envelope) -> ParsedEvent:
    # The event carries no operation id, image or commit: the service is all there is to go on.
    if not envelope.resources:
        raise EventError(f"{envelope.detail_type} event has no service ARN in resources")
    status = _detail(_AppRunnerOperation, envelope).status
    operation = OperationEvent(service=envelope.resources[0], status=status, outcome=_outcome(status))
    return ParsedEvent(operation=operation, event_id=envelope.id)


_FAMILIES: dict[str, _Family] = {
    "aws.ecr": _Family(
        {
            "ECR Image Action": _ecr_image_action,
            "ECR Replication Action": _ecr_replication,
            "ECR Image Scan": _ecr_image_scan,
        },
        "{} is not a push",
    ),
    "aws.codecommit": _Family(
        {"CodeCommit Repository State Change": _codecommit_state_change}, "{} is not a push"
    ),
    "aws.apprunner": _Family(
        {"AppRunner Service Operation Status Change": _apprunner_operation},
        "{} is not an operation status change",
    ),
}
