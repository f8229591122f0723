"""What the webhook must do with a Function URL request, decided independently of its code: the fuzz
suite's reference model. It reads a request the way pushdeploy's documentation says the webhook reads it,
and answers which changes the webhook may forward and which may deploy.

- A request is *authentic* when it is a POST to /github or /bitbucket with a JSON content type, a body of
  at most 1 MiB (after base64 decoding), event headers naming the path's provider, and the provider's
  signature header equal (case and surrounding blanks aside) to `sha256=` + HMAC-SHA256 of the body bytes
  keyed by the provider's current secret. Nothing else may be answered 2xx.
- An authentic body is read with JSON types exactly (a number is not a string, a boolean not a number),
  unknown keys ignored, as GitHub's and Bitbucket's push payloads are documented.
- A change may be forwarded when its repository is watched and it is fresh: pushed at most 72 h ago by its
  signed push time (GitHub: `repository.pushed_at`, else `head_commit.timestamp`; Bitbucket: the new
  target's `date`); a push time that cannot be read does not make it stale. A push needs a delivery id.
- A forwarded change may deploy when a rule selects its branch: GitHub `master`, Bitbucket any branch, and
  never a branch over 255 characters.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pushdeploy.domain.change_ids import signed_change_id
from pushdeploy.domain.changes import Change
from pushdeploy.sources.signatures import sign
from tests.fuzz.values import valid_commit
from tests.fuzz.world import BITBUCKET_REPOSITORY, GITHUB_BRANCH, GITHUB_REPOSITORY, MAX_AGE
from tests.integration.harness import WEBHOOK_SECRETS

MAX_BODY_BYTES = 1_048_576
MAX_BRANCH_LENGTH = 255
PATHS = {"/github": "github", "/bitbucket": "bitbucket"}
EVENT_HEADER = {"github": "x-github-event", "bitbucket": "x-event-key"}
DELIVERY_HEADER = {"github": "x-github-delivery", "bitbucket": "x-request-uuid"}
SIGNATURE_HEADER = {"github": "x-hub-signature-256", "bitbucket": "x-hub-signature"}
WATCHED = {"github": GITHUB_REPOSITORY.lower(), "bitbucket": BITBUCKET_REPOSITORY.lower()}


@dataclass(frozen=True)
class RefChange:
    """One branch push the reference read from a body."""

    provider: str
    repository: str
    branch: str
    commit: str
    pushed_at: datetime | None

    @property
    def change_id(self) -> str:
        change = Change(
            kind="commit",
            source=self.provider,
            repository=self.repository,
            branch=self.branch,
            commit=self.commit,
            pushed_at=self.pushed_at,
        )
        return signed_change_id(change)


@dataclass(frozen=True)
class Expectation:
    authentic: bool  # the webhook may answer 2xx
    forwardable: tuple[str, ...] = ()  # change ids the webhook may forward (one per change, in order)
    deployable: frozenset[str] = field(default_factory=frozenset)  # change ids that may deploy
    reason: str = ""  # why not authentic, or what the body is


def expect(event: Mapping[str, Any], now: datetime) -> Expectation:
    """What the webhook may do with this Function URL request at `now`."""
    path = event.get("rawPath")
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", ""))
    provider = PATHS.get(path) if isinstance(path, str) else None
    if provider is None or method.upper() != "POST":
        return Expectation(False, reason="not routed")
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    raw = _body(event)
    if raw is None:
        return Expectation(False, reason="body not decodable")
    if len(raw) > MAX_BODY_BYTES:
        return Expectation(False, reason="too large")
    if not _is_json(headers.get("content-type")):
        return Expectation(False, reason="content type")
    if _sender(headers) != provider:
        return Expectation(False, reason="provider headers")
    if not _signed(raw, headers.get(SIGNATURE_HEADER[provider]), WEBHOOK_SECRETS[provider]):
        return Expectation(False, reason="signature")
    changes = read_changes(provider, headers[EVENT_HEADER[provider]], raw)
    if changes is None:
        return Expectation(True, reason="refused body")
    if changes and not headers.get(DELIVERY_HEADER[provider]):
        return Expectation(True, reason="no delivery id")
    forwardable = [c for c in changes if c.repository.lower() == WATCHED[provider] and fresh(c, now)]
    deployable = {c.change_id for c in forwardable if selected(c)}
    reason = f"{len(changes)} changes" if changes else "ignored"
    return Expectation(True, tuple(c.change_id for c in forwardable), frozenset(deployable), reason)


def fresh(change: RefChange, now: datetime) -> bool:
    return change.pushed_at is None or now - change.pushed_at <= MAX_AGE


def selected(change: RefChange) -> bool:
    if len(change.branch) > MAX_BRANCH_LENGTH:
        return False
    return change.provider == "bitbucket" or change.branch == GITHUB_BRANCH


def _body(event: Mapping[str, Any]) -> bytes | None:
    body = event.get("body")
    if body is None:
        return b""
    if not event.get("isBase64Encoded"):
        try:
            return str(body).encode()
        except UnicodeEncodeError:
            return None
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_json(content_type: Any) -> bool:
    return (
        isinstance(content_type, str) and content_type.split(";", 1)[0].strip().lower() == "application/json"
    )


def _sender(headers: Mapping[str, Any]) -> str | None:
    if EVENT_HEADER["github"] in headers:
        return "github"
    if EVENT_HEADER["bitbucket"] in headers:
        return "bitbucket"
    return None


def _signed(raw: bytes, header: Any, secret: str) -> bool:
    return isinstance(header, str) and header.strip().lower() == sign(raw, secret)


# --- bodies --------------------------------------------------------------------------------------------


def read_changes(provider: str, event_type: str, raw: bytes) -> list[RefChange] | None:
    """The branch pushes an authentic body carries ([] when it is not a push), or None when the webhook
    must refuse it (not a JSON object, or a push of the wrong shape)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    if provider == "github":
        return _github(event_type, document)
    return _bitbucket(event_type, document)


def _github(event_type: str, document: dict[str, Any]) -> list[RefChange] | None:
    if event_type != "push":
        return []
    ref, after = document.get("ref"), document.get("after")
    repository, head = document.get("repository"), document.get("head_commit")
    shape_ok = (
        _nonempty(ref)
        and _nonempty(after)
        and _optional(document, "before", str)
        and isinstance(document.get("deleted", False), bool)
        and isinstance(repository, dict)
        and _nonempty(repository.get("full_name"))
        and _optional(repository, "pushed_at", int, str)
        and (head is None or (isinstance(head, dict) and _optional(head, "timestamp", str)))
    )
    if not shape_ok:
        return None
    assert isinstance(ref, str)
    assert isinstance(after, str)
    assert isinstance(repository, dict)
    if document.get("deleted", False) or set(after) == {"0"}:
        return []
    branch = ref.removeprefix("refs/heads/")
    if branch == ref or not branch:
        return []
    if not valid_commit(after):
        return None  # not a commit id: a malformed push
    pushed_at = read_time(repository.get("pushed_at"))
    if pushed_at is None and isinstance(head, dict):
        pushed_at = read_time(head.get("timestamp"))
    return [RefChange("github", repository["full_name"], branch, after, pushed_at)]


def _bitbucket(event_type: str, document: dict[str, Any]) -> list[RefChange] | None:
    if event_type != "repo:push":
        return []
    repository, push = document.get("repository"), document.get("push")
    if not (isinstance(repository, dict) and _nonempty(repository.get("full_name"))):
        return None
    if not (isinstance(push, dict) and isinstance(push.get("changes"), list)):
        return None
    changes: list[RefChange] = []
    for entry in push["changes"]:
        if not isinstance(entry, dict):
            return None
        new, old = entry.get("new"), entry.get("old")
        if new is not None and not _bitbucket_ref(new):
            return None
        if old is not None and not (isinstance(old, dict) and _target(old.get("target"), optional=True)):
            return None
        if new is not None and new["type"] == "branch":
            target = new["target"]
            if not valid_commit(target["hash"]):
                return None  # not a commit id: a malformed push
            changes.append(
                RefChange(
                    "bitbucket",
                    repository["full_name"],
                    new["name"],
                    target["hash"],
                    read_time(target.get("date")),
                )
            )
    return changes


def _bitbucket_ref(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and _nonempty(value.get("type"))
        and _nonempty(value.get("name"))
        and _target(value.get("target"), optional=False)
    )


def _target(value: Any, optional: bool) -> bool:
    if value is None:
        return optional
    return isinstance(value, dict) and _nonempty(value.get("hash")) and _optional(value, "date", str)


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _optional(document: Mapping[str, Any], key: str, *types: type) -> bool:
    """The key is absent, null, or of one of `types` exactly (a boolean is not an int)."""
    value = document.get(key)
    if value is None:
        return True
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def read_time(value: Any) -> datetime | None:
    """A sender's timestamp in UTC: Unix seconds or ISO 8601; None when absent or unreadable (including
    a time that UTC cannot hold)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
