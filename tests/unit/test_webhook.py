"""The webhook's parts that need no cloud: the signature check with GitHub's documented vector, what
counts as JSON, the body's decoding and size, and how the secrets are cached across a rotation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pushdeploy.sources.signatures import sign
from pushdeploy.webhook import (
    MAX_BODY_BYTES,
    SECRET_REFRESH_SECONDS,
    Delivery,
    Refused,
    WebhookSecrets,
    read_delivery,
    verify,
)

VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:pushdeploy/webhook/github-AbCdEf"


class FakeSecretsManager:
    """GetSecretValue by stage and ListSecretVersionIds, counting calls; AWSPREVIOUS is absent until
    `rotate`, and `revoke` removes it again."""

    def __init__(self, current: str, now: datetime) -> None:
        self.stages: dict[str, str] = {"AWSCURRENT": current}
        self.created = now - timedelta(days=30)  # when AWSCURRENT was made
        self.calls: list[str] = []
        self.meta = None  # Powertools tags the client's user agent when it can

    def rotate(self, new: str, at: datetime) -> None:
        self.stages = {"AWSCURRENT": new, "AWSPREVIOUS": self.stages["AWSCURRENT"]}
        self.created = at

    def revoke(self) -> None:
        self.stages.pop("AWSPREVIOUS", None)

    def get_secret_value(self, SecretId: str, VersionStage: str = "AWSCURRENT") -> dict[str, Any]:
        self.calls.append(VersionStage)
        if VersionStage not in self.stages:
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "no such stage"}}
            raise ClientError(error, "GetSecretValue")  # type: ignore[arg-type]
        return {"ARN": SecretId, "SecretString": self.stages[VersionStage]}

    def list_secret_version_ids(self, SecretId: str) -> dict[str, Any]:
        self.calls.append("versions")
        versions = [{"VersionId": "v2", "VersionStages": ["AWSCURRENT"], "CreatedDate": self.created}]
        if "AWSPREVIOUS" in self.stages:
            versions.append(
                {"VersionId": "v1", "VersionStages": ["AWSPREVIOUS"], "CreatedDate": self.created}
            )
        return {"ARN": SecretId, "Versions": versions}


class Clock:
    """Both clocks a WebhookSecrets reads: monotonic seconds (its cache) and UTC time (the window)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += timedelta(seconds=seconds)


PREVIOUS_FOR = timedelta(hours=24)


def secrets_for(client: FakeSecretsManager, clock: Clock) -> WebhookSecrets:
    return WebhookSecrets(
        client,  # type: ignore[arg-type]
        {"github": ARN, "bitbucket": ARN},
        previous_for=PREVIOUS_FOR,
        clock=clock,
        now=lambda: clock.wall,
    )


def fake(current: str, clock: Clock) -> FakeSecretsManager:
    return FakeSecretsManager(current, clock.wall)


def delivery(body: bytes, signature: str | None) -> Delivery:
    headers = {"x-github-event": "push"}
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    return Delivery("github", headers, body, "192.0.2.1")


# --- the signature -------------------------------------------------------------------------------------


def test_githubs_documented_test_vector_is_valid() -> None:
    assert sign(VECTOR_BODY, VECTOR_SECRET) == VECTOR_SIGNATURE
    secrets = secrets_for(fake(VECTOR_SECRET, clock := Clock()), clock)
    verify(secrets, delivery(VECTOR_BODY, VECTOR_SIGNATURE))  # no Refused


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (VECTOR_BODY + b"\n", VECTOR_SIGNATURE),  # tampered
        (VECTOR_BODY, VECTOR_SIGNATURE.replace("sha256=", "sha1=")),  # another algorithm's prefix
        (VECTOR_BODY, None),  # missing
        (VECTOR_BODY, ""),
    ],
)
def test_anything_else_is_refused_401_with_a_body_that_reveals_nothing(
    body: bytes, signature: str | None
) -> None:
    secrets = secrets_for(fake(VECTOR_SECRET, clock := Clock()), clock)
    with pytest.raises(Refused) as refused:
        verify(secrets, delivery(body, signature))
    assert (refused.value.status, refused.value.message) == (401, "invalid signature")


# --- secrets: cache and rotation -----------------------------------------------------------------------


def test_secrets_are_cached_and_a_missing_previous_is_remembered() -> None:
    clock = Clock()
    client = fake("one", clock)
    secrets = secrets_for(client, clock)

    assert secrets.values("github") == ["one"]
    assert secrets.values("github") == ["one"]
    assert client.calls == ["AWSCURRENT", "versions"]  # one read each, then the cache

    clock.advance(61)
    client.calls.clear()
    assert secrets.values("github") == ["one"]
    assert client.calls == ["versions"]  # the version list expired; Powertools' own clock still holds


def test_after_a_rotation_the_previous_value_is_accepted_for_the_window_only() -> None:
    clock = Clock()
    client = fake("one", clock)
    client.rotate("two", at=clock.wall)
    secrets = secrets_for(client, clock)
    assert secrets.values("github") == ["two", "one"]

    clock.advance(PREVIOUS_FOR.total_seconds() - 120)
    assert secrets.values("github") == ["two", "one"]  # still inside the window
    clock.advance(121)
    assert secrets.values("github") == ["two"]  # the leaked or old secret no longer signs anything


def test_a_revoked_previous_secret_is_refused_within_the_cache_time() -> None:
    clock = Clock()
    client = fake("one", clock)
    client.rotate("two", at=clock.wall)
    secrets = secrets_for(client, clock)
    verify(secrets, delivery(b"{}", sign(b"{}", "one")))

    client.revoke()
    clock.advance(61)
    with pytest.raises(Refused):
        verify(secrets, delivery(b"{}", sign(b"{}", "one")))


def test_a_failed_signature_reads_the_secrets_again_at_most_every_few_seconds() -> None:
    clock = Clock()
    client = fake("one", clock)
    secrets = secrets_for(client, clock)
    verify(secrets, delivery(b"{}", sign(b"{}", "one")))  # a warm cache of the old secret
    client.rotate("two", at=clock.wall)

    verify(secrets, delivery(b"{}", sign(b"{}", "two")))  # refreshed: the rotation is seen at once
    reads = len(client.calls)
    with pytest.raises(Refused):
        verify(secrets, delivery(b"{}", sign(b"{}", "forged")))
    assert len(client.calls) == reads  # refreshed a moment ago: no new read for a forgery

    clock.advance(SECRET_REFRESH_SECONDS)
    with pytest.raises(Refused):
        verify(secrets, delivery(b"{}", sign(b"{}", "forged")))
    assert len(client.calls) == reads + 3  # AWSCURRENT, the version list and AWSPREVIOUS once more


def test_an_error_other_than_not_found_is_raised_not_taken_for_no_previous() -> None:
    client = fake("one", Clock())

    def throttled(SecretId: str, VersionStage: str = "AWSCURRENT") -> dict[str, Any]:
        error = {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}
        raise ClientError(error, "GetSecretValue")  # type: ignore[arg-type]

    client.get_secret_value = throttled  # type: ignore[method-assign]
    with pytest.raises(Exception, match="ThrottlingException"):
        secrets_for(client, Clock()).values("github")


# --- the request ---------------------------------------------------------------------------------------


def url_event(body: str | None, content_type: str | None = "application/json", b64: bool = False) -> Any:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return {"headers": headers, "body": body, "isBase64Encoded": b64, "requestContext": {"http": {}}}


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"]
)
def test_json_content_types(content_type: str) -> None:
    assert read_delivery("github", url_event("{}", content_type)).body == b"{}"


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/json", "application/json-patch+json", None]
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(Refused) as refused:
        read_delivery("github", url_event("{}", content_type))
    assert refused.value.status == 415


def test_a_base64_body_is_decoded_to_the_bytes_that_were_signed() -> None:
    raw = '{"name": "café"}'.encode()
    event = url_event(base64.b64encode(raw).decode(), b64=True)
    assert read_delivery("bitbucket", event).body == raw


def test_a_text_body_gives_back_its_utf8_bytes() -> None:
    assert read_delivery("github", url_event('{"name": "café"}')).body == '{"name": "café"}'.encode()


def test_size_is_checked_before_content_type() -> None:
    with pytest.raises(Refused) as refused:
        read_delivery("github", url_event("x" * (MAX_BODY_BYTES + 1), "text/plain"))
    assert refused.value.status == 413


def test_no_body_is_an_empty_body() -> None:
    assert read_delivery("github", url_event(None)).body == b""
