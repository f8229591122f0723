"""The local Function URL: HTTP request -> payload format 2.0 event, function result -> HTTP answer."""

from __future__ import annotations

import base64
import json

import pytest

from pushdeploy.local.function_url import (
    FUNCTION_ERROR,
    HttpRequest,
    UrlIdentity,
    http_answer,
    is_text,
    request_event,
)

URL = UrlIdentity("abcdef0123456789abcdef0123456789", "us-east-1")


def request(
    body: bytes = b"", content_type: str | None = "application/json", target: str = "/github"
) -> HttpRequest:
    headers = [("Host", "127.0.0.1:9000"), ("User-Agent", "GitHub-Hookshot/1"), ("X-GitHub-Event", "push")]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    return HttpRequest("POST", target, headers, body, "127.0.0.1")


def test_event_has_the_payload_2_0_shape() -> None:
    event = request_event(request(b'{"a": 1}'), URL, now=1_790_000_000.0)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/github"
    assert event["rawQueryString"] == ""
    assert event["body"] == '{"a": 1}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/github",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "GitHub-Hookshot/1",
    }
    assert context["domainName"] == f"{URL.url_id}.lambda-url.us-east-1.on.aws"
    assert context["accountId"] == "anonymous"
    assert context["timeEpoch"] == 1_790_000_000_000
    assert context["time"] == "21/Sep/2026:14:13:20 +0000"
    assert "queryStringParameters" not in event
    assert "cookies" not in event


def test_header_names_are_lower_cased_and_repeats_joined() -> None:
    http = HttpRequest("POST", "/x", [("X-Thing", "a"), ("x-thing", "b"), ("Cookie", "s=1; t=2")], b"", "::1")
    event = request_event(http, URL)
    assert event["headers"] == {"x-thing": "a,b"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert "body" not in event  # no body at all, as Lambda sends it


def test_raw_path_and_query_are_kept_as_sent() -> None:
    event = request_event(request(target="//github/?a=1&a=2&b="), URL)
    assert event["rawPath"] == "//github/"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}


@pytest.mark.parametrize("content_type", ["application/octet-stream", None, "image/png"])
def test_binary_bodies_are_base64_encoded(content_type: str | None) -> None:
    body = bytes(range(256))
    event = request_event(request(body, content_type), URL)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_text_that_is_not_utf8_is_base64_encoded() -> None:
    event = request_event(request(b"\xff\xfe", "text/plain"), URL)
    assert event["isBase64Encoded"] is True


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.github+json", True),
        ("text/plain", True),
        ("application/xml", True),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_text_content_types(content_type: str | None, text: bool) -> None:
    assert is_text(content_type) is text


def test_answer_from_a_full_response() -> None:
    status, headers, body = http_answer(
        {"statusCode": 202, "headers": {"Content-Type": "text/plain"}, "cookies": ["a=b"], "body": "ok"}
    )
    assert status == 202
    assert ("Content-Type", "text/plain") in headers
    assert ("Set-Cookie", "a=b") in headers
    assert body == b"ok"


def test_answer_from_a_base64_body() -> None:
    encoded = base64.b64encode(b"\x00\x01").decode()
    assert http_answer({"statusCode": 200, "body": encoded, "isBase64Encoded": True})[2] == b"\x00\x01"


def test_a_result_without_status_code_is_a_json_200() -> None:
    status, headers, body = http_answer({"message": "hi"})
    assert (status, json.loads(body)) == (200, {"message": "hi"})
    assert ("Content-Type", "application/json") in headers


def test_function_errors_are_502() -> None:
    assert FUNCTION_ERROR[0] == 502
