"""GitHub and Bitbucket Cloud push webhooks, as pushdeploy understands them.

Parsing never refuses a delivery over its signature: it reports the signature state and decides regardless,
so that `explain` can show what would happen. The webhook function is what refuses unsigned deliveries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pushdeploy.domain.changes import Change, ParsedEvent, SignatureState
from pushdeploy.errors import EventError
from pushdeploy.sources._parsing import (
    NonEmptyStr,
    PayloadModel,
    load_json_object,
    new_change,
    one_line,
    parse_time,
    validate,
)
from pushdeploy.sources.signatures import check_signature

Provider = Literal["github", "bitbucket"]

# Header names, lower-cased: HTTP header names are case-insensitive (Lambda function URLs lower-case them).
EVENT_HEADER: dict[Provider, str] = {"github": "x-github-event", "bitbucket": "x-event-key"}
DELIVERY_HEADER: dict[Provider, str] = {"github": "x-github-delivery", "bitbucket": "x-request-uuid"}
# GitHub's `X-Hub-Signature` is its legacy SHA-1 header; Bitbucket sends SHA-256 under that same name.
SIGNATURE_HEADER: dict[Provider, str] = {"github": "x-hub-signature-256", "bitbucket": "x-hub-signature"}

_BRANCH_PREFIX = "refs/heads/"
_NULL_COMMIT = re.compile(r"0+")


class _Repository(PayloadModel):
    full_name: NonEmptyStr


class _GitHubRepository(_Repository):
    pushed_at: int | str | None = None  # Unix seconds in push payloads


class _GitHubCommit(PayloadModel):
    timestamp: str | None = None


class _GitHubPush(PayloadModel):
    ref: NonEmptyStr
    after: NonEmptyStr
    before: str | None = None
    deleted: bool = False
    repository: _GitHubRepository
    head_commit: _GitHubCommit | None = None

    @property
    def pushed_at(self) -> datetime | None:
        pushed = parse_time(self.repository.pushed_at)
        if pushed is None and self.head_commit is not None:
            return parse_time(self.head_commit.timestamp)
        return pushed


class _BitbucketTarget(PayloadModel):
    hash: NonEmptyStr
    date: str | None = None


class _BitbucketRef(PayloadModel):
    type: NonEmptyStr
    name: NonEmptyStr
    target: _BitbucketTarget


class _BitbucketOldRef(PayloadModel):
    target: _BitbucketTarget | None = None


class _BitbucketChange(PayloadModel):
    new: _BitbucketRef | None = None  # null when the branch or tag was deleted
    old: _BitbucketOldRef | None = None  # null when the branch was created


class _BitbucketChanges(PayloadModel):
    changes: list[_BitbucketChange]


class _BitbucketPush(PayloadModel):
    repository: _Repository
    push: _BitbucketChanges


# A parser's verdict: the changes a delivery carries, or why it carries none.
_Verdict = tuple[Change, ...] | str


def detect_provider(headers: Mapping[str, str]) -> Provider | None:
    names = {name.lower() for name in headers}
    return next((provider for provider, header in EVENT_HEADER.items() if header in names), None)


def parse_webhook(
    body: bytes, headers: Mapping[str, str], secrets: Sequence[str] | None = None
) -> ParsedEvent:
    """Read one delivery. `secrets` None means the signature is not checked (`unchecked`)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    provider = detect_provider(lowered)
    if provider is None:
        raise EventError("no webhook header (X-GitHub-Event or X-Event-Key) says which provider sent it")
    payload = load_json_object(body, "the webhook body")
    signature: SignatureState = (
        "unchecked"
        if secrets is None
        else check_signature(body, lowered.get(SIGNATURE_HEADER[provider]), secrets)
    )
    verdict = _PARSERS[provider](lowered[EVENT_HEADER[provider]], payload)
    return ParsedEvent(
        changes=() if isinstance(verdict, str) else verdict,
        ignored=one_line(verdict) if isinstance(verdict, str) else None,
        signature=signature,
        event_id=lowered.get(DELIVERY_HEADER[provider]),
        provider=provider,
    )


def _github(event: str, payload: dict[str, Any]) -> _Verdict:
    if event == "ping":
        return "GitHub ping"
    if event != "push":
        return f"GitHub {event} event is not a push"
    push = validate(_GitHubPush, payload, "GitHub push")
    if push.deleted or _NULL_COMMIT.fullmatch(push.after):
        return f"GitHub push deleted {push.ref}"
    branch = push.ref.removeprefix(_BRANCH_PREFIX)
    if branch == push.ref or not branch:
        return f"GitHub push to {push.ref} is not to a branch"
    return (
        new_change(
            kind="commit",
            source="github",
            repository=push.repository.full_name,
            branch=branch,
            commit=push.after,
            pushed_at=push.pushed_at,
            previous_commit=None
            if push.before is None or _NULL_COMMIT.fullmatch(push.before)
            else push.before,
        ),
    )


def _bitbucket(event_key: str, payload: dict[str, Any]) -> _Verdict:
    if event_key != "repo:push":
        return f"Bitbucket {event_key} event is not a push"
    push = validate(_BitbucketPush, payload, "Bitbucket push")
    changes = tuple(
        new_change(
            kind="commit",
            source="bitbucket",
            repository=push.repository.full_name,
            branch=change.new.name,
            commit=change.new.target.hash,
            pushed_at=parse_time(change.new.target.date),
            previous_commit=change.old.target.hash if change.old and change.old.target else None,
        )
        for change in push.push.changes
        if change.new is not None and change.new.type == "branch"
    )
    return changes or "Bitbucket push updated no branch (only tags or deletions)"


_PARSERS: dict[Provider, Callable[[str, dict[str, Any]], _Verdict]] = {
    "github": _github,
    "bitbucket": _bitbucket,
}
