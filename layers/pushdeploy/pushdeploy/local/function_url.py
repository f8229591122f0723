"""A Lambda Function URL's side of an HTTP request: the event it hands the function (payload format 2.0)
and the HTTP answer it makes of what the function returns.

As AWS does it: header names lower-cased, repeated headers joined with commas, cookies apart, the raw
path untouched, the body base64-encoded unless its content type is text, and a function result without a
`statusCode` answered 200 as JSON. A function that raises is answered 502.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

# Content types whose body Lambda passes as text; anything else is base64-encoded.
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|javascript|xml|x-www-form-urlencoded|[^;]*\+(json|xml)))\s*(;.*)?$",
    re.IGNORECASE,
)
FUNCTION_ERROR = (502, [("Content-Type", "text/plain")], b"Internal Server Error")


@dataclass(frozen=True)
class UrlIdentity:
    """Where the URL lives: its id is the first label of `<id>.lambda-url.<region>.on.aws`."""

    url_id: str
    region: str

    @property
    def domain(self) -> str:
        return f"{self.url_id}.lambda-url.{self.region}.on.aws"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str  # the request line's path and query, as sent
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str


def is_text(content_type: str | None) -> bool:
    return content_type is not None and _TEXT_TYPES.match(content_type.strip()) is not None


def request_event(request: HttpRequest, url: UrlIdentity, now: float | None = None) -> dict[str, Any]:
    """The Function URL event (payload format 2.0) for one HTTP request."""
    instant = time.time() if now is None else now
    raw_path, _, raw_query = request.target.partition("?")
    headers, cookies = _headers(request.headers)
    user_agent = headers.get("user-agent", "")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",  # AuthType NONE: the caller is not an AWS principal
            "apiId": url.url_id,
            "domainName": url.domain,
            "domainPrefix": url.url_id,
            "http": {
                "method": request.method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": user_agent,
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(instant)),
            "timeEpoch": int(instant * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = _joined(parse_qsl(raw_query, keep_blank_values=True))
    if request.body:
        _add_body(event, request.body, headers.get("content-type"))
    return event


def _headers(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    headers: list[tuple[str, str]] = []
    cookies: list[str] = []
    for name, value in pairs:
        if name.lower() == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            headers.append((name.lower(), value))
    return _joined(headers), cookies


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _add_body(event: dict[str, Any], body: bytes, content_type: str | None) -> None:
    if is_text(content_type):
        try:
            event["body"] = body.decode("utf-8")
            return
        except UnicodeDecodeError:
            pass  # not really text: base64, as for any binary body
    event["body"] = base64.b64encode(body).decode("ascii")
    event["isBase64Encoded"] = True


def http_answer(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) for what the function returned."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # No statusCode: the whole result is the body, as JSON.
        text = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], text.encode()
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    raw = result.get("body")
    content = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
    body = base64.b64decode(content) if result.get("isBase64Encoded") else content.encode()
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return int(result["statusCode"]), headers, body
