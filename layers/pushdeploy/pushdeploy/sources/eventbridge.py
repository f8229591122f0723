"""EventBridge events from ECR, Amazon Inspector, CodeCommit and App Runner, as pushdeploy understands them.

Shapes follow the AWS docs: "Amazon ECR events and EventBridge", "EventBridge events sent for enhanced
scanning in Amazon ECR" (Inspector's `Inspector2 Scan`), "Monitoring CodeCommit events in Amazon
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


class _Inspector2Scan(PayloadModel):
    """The detail of `Inspector2 Scan`. Inspector sends it for EC2 instances and Lambda functions too,
    which have no repository or image."""

    scan_status: NonEmptyStr = Field(alias="scan-status")
    # The repository's ARN in AWS's sample (a plain name is taken too).
    repository_name: NonEmptyStr | None = Field(default=None, alias="repository-name")
    image_digest: NonEmptyStr | None = Field(default=None, alias="image-digest")
    image_tags: list[str] = Field(default_factory=list, alias="image-tags")
    # Severities with findings, and TOTAL: a sum over every severity, listed or not.
    finding_severity_counts: dict[str, int] = Field(default_factory=dict, alias="finding-severity-counts")


# arn:<partition>:ecr:<region>:<account>:repository/<name>; the name may hold '/' (`team/web`).
_ECR_REPOSITORY_ARN = re.compile(
    r"arn:aws[a-z-]*:ecr:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}):(?P<account>[0-9]{12}):"
    r"repository/(?P<name>.+)",
    re.DOTALL,  # the name is not checked further, as a plain name is not
)
# The only scan-status Inspector documents for this event: the image's first scan is done (later ones
# come as `Inspector2 Finding` events, which the scan gate does not wait for).
_INSPECTOR_FINISHED = frozenset({"INITIAL_SCAN_COMPLETE"})


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


def _inspector2_scan(envelope: _Envelope) -> ParsedEvent:
    """Enhanced scanning's first scan of an image: a ScanResult like `ECR Image Scan`'s, in the account
    and Region of the repository its ARN names."""
    detail = _detail(_Inspector2Scan, envelope)
    if detail.repository_name is None or detail.image_digest is None:
        return _ignored(envelope, "Inspector2 Scan of a resource that is not an ECR image, not a push")
    account, region, repository = _repository_place(envelope, detail.repository_name)
    if detail.scan_status not in _INSPECTOR_FINISHED:
        return _ignored(
            envelope, f"Inspector2 Scan of {repository} with scan-status {detail.scan_status}, not a push"
        )
    scan = ScanResult(
        account=account,
        region=region,
        repository=repository,
        digest=detail.image_digest,
        tags=tuple(detail.image_tags),
        status="COMPLETE",
        severity_counts={k: n for k, n in detail.finding_severity_counts.items() if k.upper() != "TOTAL"},
    )
    return ParsedEvent(ignored="Inspector2 image scan result, not a push", scan=scan, event_id=envelope.id)


def _repository_place(envelope: _Envelope, name_or_arn: str) -> tuple[str, str, str]:
    """(account, region, name) of a repository given by ARN, or by name in the event's account and
    Region. A value that claims to be an ARN and is not an ECR repository's is an error."""
    if not name_or_arn.startswith("arn:"):
        return envelope.account, envelope.region, name_or_arn
    found = _ECR_REPOSITORY_ARN.fullmatch(name_or_arn)
    if found is None:
        raise EventError(one_line(f"{envelope.detail_type}: {name_or_arn} is not an ECR repository ARN"))
    return found["account"], found["region"], found["name"]


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
    "aws.inspector2": _Family({"Inspector2 Scan": _inspector2_scan}, "{} is not a push"),
    "aws.codecommit": _Family(
        {"CodeCommit Repository State Change": _codecommit_state_change}, "{} is not a push"
    ),
    "aws.apprunner": _Family(
        {"AppRunner Service Operation Status Change": _apprunner_operation},
        "{} is not an operation status change",
    ),
}
