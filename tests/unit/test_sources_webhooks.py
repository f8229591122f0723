"""GitHub and Bitbucket push webhooks, real bodies included, and what pushdeploy makes of them."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushdeploy.errors import EventError
from pushdeploy.sources import detect_provider, parse_any, parse_webhook
from pushdeploy.sources.signatures import sign

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
EVENTS = Path(__file__).resolve().parents[2] / "events"
SECRET = "webhook-secret"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

GITHUB_PUSH = (PAYLOADS / "github-push.body.json").read_bytes()
GITHUB_DELETE_TAG = (PAYLOADS / "github-push-delete-tag.body.json").read_bytes()
GITHUB_PING = (PAYLOADS / "github-ping.body.json").read_bytes()
BITBUCKET_PUSH = (PAYLOADS / "bitbucket-push.body.json").read_bytes()


def github(event: str, body: bytes, secret: str | None = SECRET) -> dict[str, str]:
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": DELIVERY,
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(body, secret)
    return headers


def bitbucket(event_key: str, body: bytes, secret: str | None = SECRET) -> dict[str, str]:
    headers = {"X-Event-Key": event_key, "X-Request-UUID": DELIVERY, "X-Attempt-Number": "1"}
    if secret is not None:
        headers["X-Hub-Signature"] = sign(body, secret)
    return headers


def edited(body: bytes, **changes: Any) -> bytes:
    return json.dumps(json.loads(body) | changes).encode()


def bitbucket_push(*news: dict[str, Any] | None) -> bytes:
    payload = json.loads(BITBUCKET_PUSH)
    template = payload["push"]["changes"][0]
    payload["push"]["changes"] = [template | {"new": new} for new in news]
    return json.dumps(payload).encode()


def ref(kind: str, name: str, commit: str) -> dict[str, Any]:
    return {"type": kind, "name": name, "target": {"type": "commit", "hash": commit}}


def parse_error(body: bytes, headers: dict[str, str]) -> str:
    with pytest.raises(EventError) as caught:
        parse_webhook(body, headers)
    message = str(caught.value)
    assert "\n" not in message
    return message


# Which provider sent it


@pytest.mark.parametrize(
    ("headers", "provider"),
    [
        ({"X-GitHub-Event": "push"}, "github"),
        ({"x-github-event": "push"}, "github"),
        ({"X-EVENT-KEY": "repo:push"}, "bitbucket"),
        ({"x-event-key": "repo:push"}, "bitbucket"),
        ({"Content-Type": "application/json"}, None),
        ({}, None),
    ],
)
def test_the_provider_comes_from_its_event_header_whatever_its_case(
    headers: dict[str, str], provider: str | None
) -> None:
    assert detect_provider(headers) == provider


# GitHub


def test_a_github_branch_push_is_a_commit_change() -> None:
    parsed = parse_webhook(GITHUB_PUSH, github("push", GITHUB_PUSH), [SECRET])
    (change,) = parsed.changes
    assert (change.kind, change.source, change.account, change.region) == ("commit", "github", None, None)
    assert (change.repository, change.branch) == ("Codertocat/Hello-World", "master")
    assert change.commit == json.loads(GITHUB_PUSH)["after"] == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert (parsed.signature, parsed.provider, parsed.event_id, parsed.ignored) == (
        "valid",
        "github",
        DELIVERY,
        None,
    )


def test_lower_case_headers_as_a_lambda_function_url_passes_them_work_the_same() -> None:
    headers = {name.lower(): value for name, value in github("push", GITHUB_PUSH).items()}
    parsed = parse_webhook(GITHUB_PUSH, headers, [SECRET])
    assert (len(parsed.changes), parsed.signature, parsed.event_id) == (1, "valid", DELIVERY)


def test_without_secrets_the_signature_is_unchecked() -> None:
    assert parse_webhook(GITHUB_PUSH, github("push", GITHUB_PUSH)).signature == "unchecked"


def test_a_github_push_signed_with_another_secret_is_invalid_but_still_decided() -> None:
    parsed = parse_webhook(GITHUB_PUSH, github("push", GITHUB_PUSH, "someone-else"), [SECRET])
    assert parsed.signature == "invalid"
    assert len(parsed.changes) == 1


def test_an_unsigned_github_push_is_missing_but_still_decided() -> None:
    parsed = parse_webhook(GITHUB_PUSH, github("push", GITHUB_PUSH, secret=None), [SECRET])
    assert parsed.signature == "missing"
    assert len(parsed.changes) == 1


def test_githubs_legacy_sha1_header_alone_counts_as_missing() -> None:
    headers = github("push", GITHUB_PUSH, secret=None)
    headers["X-Hub-Signature"] = "sha1=" + hmac.new(SECRET.encode(), GITHUB_PUSH, hashlib.sha1).hexdigest()
    assert parse_webhook(GITHUB_PUSH, headers, [SECRET]).signature == "missing"


def test_a_github_push_signed_with_the_previous_secret_is_valid_during_a_rotation() -> None:
    headers = github("push", GITHUB_PUSH, "old-secret")
    assert parse_webhook(GITHUB_PUSH, headers, [SECRET, "old-secret"]).signature == "valid"


def test_a_deleted_github_tag_is_ignored() -> None:
    parsed = parse_webhook(GITHUB_DELETE_TAG, github("push", GITHUB_DELETE_TAG), [SECRET])
    assert parsed.changes == ()
    assert parsed.ignored == "GitHub push deleted refs/tags/simple-tag"
    assert parsed.signature == "valid"


def test_a_branch_deletion_is_ignored_even_without_the_deleted_flag() -> None:
    payload = json.loads(GITHUB_PUSH) | {"after": "0" * 40}
    del payload["deleted"]
    body = json.dumps(payload).encode()
    assert parse_webhook(body, github("push", body)).ignored == "GitHub push deleted refs/heads/master"


def test_a_github_tag_push_is_ignored() -> None:
    body = edited(GITHUB_PUSH, ref="refs/tags/v1.4.0")
    assert (
        parse_webhook(body, github("push", body)).ignored
        == "GitHub push to refs/tags/v1.4.0 is not to a branch"
    )


def test_a_github_ping_is_ignored() -> None:
    parsed = parse_webhook(GITHUB_PING, github("ping", GITHUB_PING), [SECRET])
    assert (parsed.changes, parsed.ignored, parsed.signature) == ((), "GitHub ping", "valid")


def test_another_github_event_type_is_ignored() -> None:
    body = b'{"action": "opened"}'
    assert (
        parse_webhook(body, github("pull_request", body)).ignored == "GitHub pull_request event is not a push"
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"ref=refs/heads/main", "the webhook body is not JSON"),
        (b'["push"]', "the webhook body is not a JSON object"),
        (edited(GITHUB_PUSH, ref=None), "GitHub push: ref: Input should be a valid string"),
        (edited(GITHUB_PUSH, repository={"name": "x"}), "GitHub push: repository.full_name: Field required"),
    ],
)
def test_an_unreadable_github_push_is_an_error(body: bytes, problem: str) -> None:
    assert parse_error(body, github("push", body)) == problem


# Bitbucket Cloud


def test_a_bitbucket_push_is_one_commit_change_per_branch() -> None:
    parsed = parse_webhook(BITBUCKET_PUSH, bitbucket("repo:push", BITBUCKET_PUSH), [SECRET])
    (change,) = parsed.changes
    assert (change.kind, change.source, change.account, change.region) == ("commit", "bitbucket", None, None)
    assert (change.repository, change.branch, change.commit) == (
        "team_name/repo_name",
        "name-of-branch",
        "709d658dc5b6d6afcd46049c2f332ee3f515a67d",
    )
    assert (parsed.signature, parsed.provider, parsed.event_id) == ("valid", "bitbucket", DELIVERY)


def test_a_bitbucket_push_to_several_branches_is_several_changes() -> None:
    body = bitbucket_push(
        ref("branch", "main", "a" * 40), ref("tag", "v1", "b" * 40), ref("branch", "dev", "c" * 40)
    )
    changes = parse_webhook(body, bitbucket("repo:push", body)).changes
    assert [(change.branch, change.commit) for change in changes] == [("main", "a" * 40), ("dev", "c" * 40)]


def test_a_bitbucket_push_of_tags_and_deletions_only_is_ignored() -> None:
    body = bitbucket_push(ref("tag", "v1", "b" * 40), None)
    parsed = parse_webhook(body, bitbucket("repo:push", body))
    assert parsed.changes == ()
    assert parsed.ignored == "Bitbucket push updated no branch (only tags or deletions)"


def test_bitbuckets_sha256_signature_header_is_checked() -> None:
    headers = bitbucket("repo:push", BITBUCKET_PUSH, "someone-else")
    assert parse_webhook(BITBUCKET_PUSH, headers, [SECRET]).signature == "invalid"
    assert (
        parse_webhook(BITBUCKET_PUSH, bitbucket("repo:push", BITBUCKET_PUSH, None), [SECRET]).signature
        == "missing"
    )


def test_another_bitbucket_event_is_ignored() -> None:
    body = b"{}"
    parsed = parse_webhook(body, bitbucket("pullrequest:created", body))
    assert parsed.ignored == "Bitbucket pullrequest:created event is not a push"


def test_a_bitbucket_push_without_changes_is_an_error() -> None:
    body = edited(BITBUCKET_PUSH, push={})
    assert parse_error(body, bitbucket("repo:push", body)) == "Bitbucket push: push.changes: Field required"


def test_a_bitbucket_branch_without_a_commit_is_an_error() -> None:
    body = bitbucket_push({"type": "branch", "name": "main", "target": {}})
    assert "push.changes.0.new.target.hash: Field required" in parse_error(body, bitbucket("repo:push", body))


def test_a_delivery_without_provider_headers_is_an_error() -> None:
    assert "says which provider sent it" in parse_error(GITHUB_PUSH, {"Content-Type": "application/json"})


# parse_any: headers decide


def test_parse_any_reads_a_webhook_when_the_headers_name_a_provider() -> None:
    parsed = parse_any(GITHUB_PUSH, github("push", GITHUB_PUSH), [SECRET])
    assert (parsed.provider, parsed.signature, parsed.changes[0].branch) == ("github", "valid", "master")


def test_parse_any_reads_an_eventbridge_event_when_no_header_names_a_provider() -> None:
    raw = (EVENTS / "ecr-image-push.json").read_bytes()
    parsed = parse_any(raw, {"Content-Type": "application/json"}, [SECRET])
    assert (parsed.changes[0].source, parsed.signature) == ("ecr", None)


def test_parse_any_refuses_a_webhook_body_without_its_headers() -> None:
    with pytest.raises(EventError, match="no webhook headers say which provider sent it"):
        parse_any(GITHUB_PUSH)


def test_parse_any_refuses_what_is_not_json() -> None:
    with pytest.raises(EventError, match="not JSON"):
        parse_any(b"\xff\xfe not json")


# Properties: whatever arrives, the only failure is an EventError.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
push_keys = st.sampled_from(["ref", "after", "deleted", "repository", "push", "changes", "new", "full_name"])
bodies = st.binary() | st.dictionaries(push_keys | st.text(max_size=5), json_values).map(
    lambda payload: json.dumps(payload).encode()
)
headers = st.sampled_from(
    [
        {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"},
        {"X-GitHub-Event": "ping"},
        {"X-Event-Key": "repo:push", "X-Hub-Signature": "sha1=00"},
        {"x-event-key": "repo:push"},
        {},
    ]
)


@given(body=bodies, headers=headers, secrets=st.none() | st.lists(st.text(max_size=8), max_size=2))
def test_any_delivery_parses_or_is_an_event_error(
    body: bytes, headers: dict[str, str], secrets: list[str] | None
) -> None:
    try:
        parsed = parse_any(body, headers, secrets)
    except EventError as error:
        message = str(error)
    else:
        assert parsed.signature in ("unchecked", "valid", "invalid", "missing")
        return
    assert "\n" not in message


@given(
    news=st.lists(
        st.none()
        | st.fixed_dictionaries({"type": st.sampled_from(["branch", "tag"]), "name": st.text(max_size=8)}),
        max_size=3,
    )
)
def test_any_bitbucket_change_list_parses_or_is_an_event_error(news: list[dict[str, Any] | None]) -> None:
    body = bitbucket_push(*[None if new is None else new | {"target": {"hash": "a" * 40}} for new in news])
    try:
        parsed = parse_webhook(body, bitbucket("repo:push", body))
    except EventError:
        return
    assert all(change.branch for change in parsed.changes)
