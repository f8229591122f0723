"""Generated Function URL requests for the webhook, one function per family of mutation, all drawn from a
seeded generator. Bodies start from the real GitHub and Bitbucket payloads (tests/fixtures/payloads).

What each request may lead to is never decided by the family that made it: `webhook_reference.expect`
reads the final request. Families only decide what is tried; the `valid` family's requests (signed, fresh
pushes of a watched repository, with harmless variations) must also be accepted and deployable.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pushdeploy.sources.signatures import sign
from tests.conftest import EVENTS, PAYLOADS
from tests.fuzz import mutate, values
from tests.fuzz.webhook_reference import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MAX_BODY_BYTES,
    SIGNATURE_HEADER,
    Expectation,
    expect,
)
from tests.fuzz.world import GITHUB_BRANCH, GITHUB_REPOSITORY, shorten
from tests.integration.harness import REGION, WEBHOOK_SECRETS

GITHUB_PUSH: dict[str, Any] = json.loads((PAYLOADS / "github-push.body.json").read_bytes())
GITHUB_PING: dict[str, Any] = json.loads((PAYLOADS / "github-ping.body.json").read_bytes())
GITHUB_DELETE_TAG: dict[str, Any] = json.loads((PAYLOADS / "github-push-delete-tag.body.json").read_bytes())
BITBUCKET_PUSH: dict[str, Any] = json.loads((PAYLOADS / "bitbucket-push.body.json").read_bytes())
SAMPLE_REQUEST: dict[str, Any] = json.loads((EVENTS / "webhook-github-push.json").read_bytes())
PROVIDERS = ("github", "bitbucket")
_URL_ID = "abcdefghijklmnopqrstuvwxyz012345"
# Ways to write the JSON media type that a reader of `Content-Type` must accept.
JSON_CONTENT_TYPES = (
    "application/json; charset=utf-8",
    "Application/JSON",
    " application/json ",
    "application/json;",
)
ODD_CONTENT_TYPES = (
    "application/x-www-form-urlencoded",  # GitHub's other choice in a hook's settings
    "text/plain",
    "",
    "application/jsonx",
    "application/json-patch+json",
    "application/json,application/json",  # the header twice, joined as Function URLs join them
    "json",
    "application/json; charset=latin-1",
    "APPLICATION/JSON; charset=utf-8",
)
ODD_EVENT_TYPES = (
    "Push",
    "PUSH",
    "push,push",
    " push",
    "",
    "ping",
    "issues",
    "repo:Push",
    "repo:push ",
    "push",
)
HEADER_VARIANTS = (
    "no event header",
    "the other provider's event header",
    "both providers' event headers",
    "an odd event type",
    "no delivery id",
    "an odd delivery id",
    "an odd content type",
    "no content type",
    "header names in upper case",
    "a header twice, in two cases",
    "many extra headers",
)
_BENIGN_BRANCHES = ("main", "develop", "release/1.2", "feature/ABC-123", "hotfix/x_y", "dependabot/npm/a-1.2")


@dataclass
class Request:
    """A request under construction: everything that ends up in the Function URL event."""

    provider: str
    body: bytes
    headers: dict[str, str]
    path: str = ""
    method: str = "POST"
    base64_encoded: bool = False
    text_body: str | None = None  # set when the body is given as text that is not `body` decoded
    omit_body: bool = False

    def event(self) -> dict[str, Any]:
        """A Lambda Function URL request (payload format 2.0); header names as given."""
        path = self.path or f"/{self.provider}"
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": dict(self.headers),
            "requestContext": {
                "accountId": "anonymous",
                "apiId": _URL_ID,
                "domainName": f"{_URL_ID}.lambda-url.{REGION}.on.aws",
                "domainPrefix": _URL_ID,
                "http": {
                    "method": self.method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.10",
                    "userAgent": "fuzz",
                },
                "requestId": "11111111-2222-3333-4444-555555555555",
                "routeKey": "$default",
                "stage": "$default",
                "time": "26/Nov/2026:08:00:00 +0000",
                "timeEpoch": 1795680000000,
            },
            "isBase64Encoded": self.base64_encoded,
        }
        if self.omit_body:
            return event
        if self.text_body is not None:
            event["body"] = self.text_body
        elif self.base64_encoded:
            event["body"] = base64.b64encode(self.body).decode()
        else:
            event["body"] = self.body.decode("utf-8", "replace")
        return event


@dataclass
class WebhookCase:
    index: int
    family: str
    event: dict[str, Any]
    expectation: Expectation
    must_accept: bool = False  # a valid push: must be answered 202 with every change forwarded
    fault: str | None = None  # an AWS fault injected while this case runs
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        event = self.event
        headers = {name: shorten(value, 80) for name, value in (event.get("headers") or {}).items()}
        body = event.get("body")
        shown = shorten(body if isinstance(body, str) else repr(body), 240)
        notes = f" [{'; '.join(self.notes)}]" if self.notes else ""
        return (
            f"webhook #{self.index} {self.family}{notes}: {event['requestContext']['http']['method']} "
            f"{shorten(event['rawPath'], 60)} base64={event.get('isBase64Encoded')} "
            f"headers={json.dumps(headers, ensure_ascii=True)} body={shown}"
        )


Family = Callable[["WebhookGenerator", datetime], "tuple[Request, str | None, list[str]]"]


class WebhookGenerator:
    """Requests for the webhook, case by case, from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"webhook:{seed}")
        self.github_head: str | None = None  # the last valid push's commit: the next one builds on it
        self.valid_history: list[Request] = []  # earlier valid requests, replayed by the replay family
        self.families: list[tuple[Family, float]] = [
            (WebhookGenerator.valid, 16),
            (WebhookGenerator.signatures, 12),
            (WebhookGenerator.freshness, 6),
            (WebhookGenerator.replay, 4),
            (WebhookGenerator.timestamps, 6),
            (WebhookGenerator.body_keys, 12),
            (WebhookGenerator.branches, 6),
            (WebhookGenerator.commits, 4),
            (WebhookGenerator.structure, 6),
            (WebhookGenerator.headers, 10),
            (WebhookGenerator.request, 7),
            (WebhookGenerator.bitbucket_changes, 2),
            (WebhookGenerator.random_mutations, 6),
            (WebhookGenerator.sizes, 0.4),
            (WebhookGenerator.samples, 0.5),
            (WebhookGenerator.eventbridge_fault, 0.5),
        ]

    # --- the loop ----------------------------------------------------------------------------------

    def case(self, index: int, now: datetime) -> WebhookCase:
        families, weights = zip(*self.families, strict=True)
        family = self.rng.choices(families, weights)[0]
        request, fault, notes = family(self, now)
        event = request.event()
        name = family.__name__
        case = WebhookCase(index, name, event, expect(event, now), name == "valid", fault, notes)
        if name == "valid":
            self.valid_history = [*self.valid_history[-199:], request]
        return case

    def pause(self) -> float:
        """Seconds to let pass before the next case: now and then 73 hours, so that deliveries captured
        before are replayed after the freshness window."""
        return 73 * 3600.0 if self.rng.random() < 0.003 else 0.0

    # --- building blocks ---------------------------------------------------------------------------

    def delivery_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def fresh_commit(self) -> str:
        return values.hex_id(self.rng)

    def github_document(self, now: datetime, pushed_at: datetime | None = None) -> dict[str, Any]:
        """The real GitHub push body, made a fresh push of a new commit on the watched branch."""
        document = copy.deepcopy(GITHUB_PUSH)
        commit = self.fresh_commit()
        moment = pushed_at or now
        document.update(
            ref=f"refs/heads/{GITHUB_BRANCH}",
            before=self.github_head or "0" * 40,
            after=commit,
            created=self.github_head is None,
            compare=f"https://github.com/{GITHUB_REPOSITORY}/compare/{commit}",
        )
        document["repository"]["pushed_at"] = int(moment.timestamp())
        for entry in (document["head_commit"], *document["commits"]):
            entry["id"] = commit
            entry["timestamp"] = values.iso(moment)
        return document

    def bitbucket_document(self, now: datetime, branches: int = 1) -> dict[str, Any]:
        """The real Bitbucket push body, with `branches` fresh branch changes."""
        document = copy.deepcopy(BITBUCKET_PUSH)
        template = document["push"]["changes"][0]
        changes = []
        for _ in range(branches):
            change = copy.deepcopy(template)
            change["new"]["name"] = self.rng.choice(_BENIGN_BRANCHES)
            change["new"]["target"]["hash"] = self.fresh_commit()
            change["new"]["target"]["date"] = values.iso(now)
            change["old"]["target"]["hash"] = self.fresh_commit()
            changes.append(change)
        document["push"]["changes"] = changes
        return document

    def document(self, provider: str, now: datetime) -> dict[str, Any]:
        if provider == "github":
            return self.github_document(now)
        return self.bitbucket_document(now, self.rng.choice((1, 1, 1, 2, 3)))

    def serialize(self, document: Any) -> bytes:
        """JSON text as a sender might format it."""
        style = self.rng.randrange(5)
        if style == 0:
            return json.dumps(document, indent=2).encode()
        if style == 1:
            return json.dumps(document, separators=(",", ":")).encode()
        if style == 2:
            return json.dumps(document, ensure_ascii=False).encode()
        if style == 3:
            return (json.dumps(document, sort_keys=True) + "\n").encode()
        return json.dumps(document).encode()

    def headers_for(
        self, provider: str, body: bytes, event_type: str | None = None, secret: str | None = None
    ) -> dict[str, str]:
        """The headers a real delivery carries, signed with `secret` (the current one by default)."""
        signature = sign(body, secret or WEBHOOK_SECRETS[provider])
        if provider == "github":
            return {
                "Content-Type": "application/json",
                "User-Agent": "GitHub-Hookshot/044aadd",
                "X-GitHub-Event": event_type or "push",
                "X-GitHub-Delivery": self.delivery_id(),
                "X-GitHub-Hook-ID": "292430182",
                "X-Hub-Signature-256": signature,
            }
        return {
            "Content-Type": "application/json",
            "User-Agent": "Bitbucket-Webhooks/2.0",
            "X-Event-Key": event_type or "repo:push",
            "X-Hook-UUID": "cb3a8e4a-5a4c-4a9e-9d0b-5f1e4f6a7b8c",
            "X-Request-UUID": self.delivery_id(),
            "X-Attempt-Number": "1",
            "X-Hub-Signature": signature,
        }

    def signed(self, provider: str, body: bytes, event_type: str | None = None) -> Request:
        """A delivery of `body` signed with the provider's current secret; header names as Lambda gives
        them (lower-cased) or, now and then, as another front end might."""
        headers = self.headers_for(provider, body, event_type)
        if self.rng.random() < 0.7:
            headers = {name.lower(): value for name, value in headers.items()}
        return Request(provider, body, headers)

    def provider(self) -> str:
        return self.rng.choice(PROVIDERS)

    # --- families ----------------------------------------------------------------------------------

    def valid(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed, fresh push of a watched repository, with harmless variations: it must deploy."""
        rng, provider = self.rng, self.provider()
        document = self.document(provider, now)
        notes = []
        if rng.random() < 0.2:
            full_name = document["repository"]["full_name"]
            document["repository"]["full_name"] = rng.choice((full_name.lower(), full_name.upper()))
            notes.append("repository name in another case")
        if rng.random() < 0.2:
            document["x-" + values.ascii_text(rng, 3, 10)] = values.json_value(rng)
            notes.append("an unknown key")
        if provider == "github":
            self.github_head = document["after"]
            if rng.random() < 0.2:
                document["head_commit"]["message"] = values.unicode_text(rng) * rng.randint(1, 50)
                notes.append("a unicode commit message")
        request = self.signed(provider, self.serialize(document))
        request.base64_encoded = rng.random() < 0.3
        if rng.random() < 0.2:
            key = "content-type" if "content-type" in request.headers else "Content-Type"
            request.headers[key] = rng.choice(JSON_CONTENT_TYPES)
            notes.append("another way to write the JSON content type")
        if rng.random() < 0.1:
            key = next(name for name in request.headers if name.lower() == SIGNATURE_HEADER[provider])
            signature = request.headers[key]
            request.headers[key] = rng.choice((signature.upper(), f"  {signature} "))
            notes.append("the signature in upper case or with blanks")
        return request, None, notes

    def signatures(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A fresh push of a watched repository whose signature is wrong, missing or misplaced."""
        rng, provider = self.rng, self.provider()
        body = self.serialize(self.document(provider, now))
        request = self.signed(provider, body)
        headers = {name.lower(): value for name, value in request.headers.items()}
        header = SIGNATURE_HEADER[provider]
        good = sign(body, WEBHOOK_SECRETS[provider])
        key = WEBHOOK_SECRETS[provider].encode()
        other = WEBHOOK_SECRETS["bitbucket" if provider == "github" else "github"]
        variants: dict[str, Callable[[], str | None]] = {
            "missing": lambda: None,
            "empty": lambda: rng.choice(("", " ", "\t")),
            "sha256= empty": lambda: "sha256=",
            "wrong secret": lambda: sign(body, rng.choice(("guess", "", " ", values.ascii_text(rng)))),
            "the other provider's secret": lambda: sign(body, other),
            "sha1": lambda: "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
            "truncated": lambda: good[: rng.randint(0, len(good) - 1)],
            "one digit off": lambda: good[:-1] + ("0" if good[-1] != "0" else "1"),
            "an extra digit": lambda: good + "0",
            "sha512": lambda: "sha512=" + hmac.new(key, body, hashlib.sha512).hexdigest(),
            "no key": lambda: "sha256=" + hashlib.sha256(body).hexdigest(),
            "no prefix": lambda: good.removeprefix("sha256="),
            "twice": lambda: f"{good},{good}",
            "another body's": lambda: sign(body + b" ", WEBHOOK_SECRETS[provider]),
            "over the base64 text": lambda: sign(base64.b64encode(body), WEBHOOK_SECRETS[provider]),
            "unicode": lambda: good[:-4] + values.unicode_text(rng),
            "NUL": lambda: good + "\x00",
        }
        name = rng.choice(sorted(variants))
        value = variants[name]()
        if value is None:
            headers.pop(header, None)
        else:
            headers[header] = value
        if name == "over the base64 text":
            request.base64_encoded = True
        if rng.random() < 0.3:  # the right signature, in the other provider's header name
            headers.pop(header, None)
            wrong_header = "x-hub-signature" if provider == "github" else "x-hub-signature-256"
            headers[wrong_header] = good
            name = f"the valid signature in {wrong_header} only"
        request.headers = headers
        return request, None, [name]

    def freshness(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed push of a new commit whose signed push time is stale, exactly 72 h old, or ahead."""
        rng, provider = self.rng, self.provider()
        kind = rng.choice(("stale", "stale", "edge", "future", "fresh"))
        moment = values.shifted(now, rng, kind)
        if provider == "github":
            document = self.github_document(now, pushed_at=moment)
            if rng.random() < 0.3:  # the push time as ISO 8601 text instead of Unix seconds
                document["repository"]["pushed_at"] = values.iso(moment)
        else:
            document = self.bitbucket_document(now, rng.choice((1, 2, 3)))
            for change in document["push"]["changes"]:  # some changes stale, some not
                pick = kind if rng.random() < 0.7 else rng.choice(("fresh", "stale"))
                change["new"]["target"]["date"] = values.iso(values.shifted(now, rng, pick))
        return self.signed(provider, self.serialize(document)), None, [f"pushed {kind}"]

    def replay(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """An earlier valid delivery sent again, byte for byte, under a new or the same delivery id."""
        if not self.valid_history:
            return self.valid(now)
        original = self.rng.choice(self.valid_history)
        request = copy.deepcopy(original)
        name = "the same delivery id"
        if self.rng.random() < 0.7:
            for header in list(request.headers):
                if header.lower() == DELIVERY_HEADER[request.provider]:
                    request.headers[header] = self.delivery_id()
            name = "a new delivery id"
        return request, None, [f"replayed with {name}"]

    def timestamps(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed push of a new commit whose push time fields are unreadable, mistyped or at the edges."""
        rng, provider = self.rng, self.provider()
        document: dict[str, Any]
        if provider == "github":
            document = self.github_document(now)
            field_name = rng.choice(("repository.pushed_at", "head_commit.timestamp", "both", "head_commit"))
            if field_name in ("repository.pushed_at", "both"):
                document["repository"]["pushed_at"] = values.garbage_time(rng)
            if field_name in ("head_commit.timestamp", "both"):
                document["head_commit"]["timestamp"] = values.garbage_time(rng)
            if field_name == "head_commit":
                document["head_commit"] = rng.choice((None, [], "x"))
                document["repository"].pop("pushed_at")
        else:
            document = self.bitbucket_document(now)
            field_name = "new.target.date"
            document["push"]["changes"][0]["new"]["target"]["date"] = values.garbage_time(rng)
        return self.signed(provider, self.serialize(document)), None, [f"odd {field_name}"]

    def body_keys(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed push with one key the parser reads dropped, mistyped, null, empty or given twice."""
        rng, provider = self.rng, self.provider()
        document = self.document(provider, now)
        targets: list[mutate.Path] = (
            [
                ("ref",),
                ("after",),
                ("before",),
                ("deleted",),
                ("repository",),
                ("repository", "full_name"),
                ("repository", "pushed_at"),
                ("head_commit",),
                ("head_commit", "timestamp"),
                ("created",),
                ("commits",),
            ]
            if provider == "github"
            else [
                ("repository",),
                ("repository", "full_name"),
                ("push",),
                ("push", "changes"),
                ("push", "changes", 0),
                ("push", "changes", 0, "new"),
                ("push", "changes", 0, "new", "type"),
                ("push", "changes", 0, "new", "name"),
                ("push", "changes", 0, "new", "target"),
                ("push", "changes", 0, "new", "target", "hash"),
                ("push", "changes", 0, "new", "target", "date"),
                ("push", "changes", 0, "old"),
                ("push", "changes", 0, "old", "target"),
                ("push", "changes", 0, "old", "target", "hash"),
            ]
        )
        path = rng.choice(targets)
        operation = rng.choice(("drop", "retype", "null", "empty", "duplicate", "list for object"))
        note = f"{operation} {'.'.join(map(str, path))}"
        if operation == "duplicate" and len(path) == 1 and path[0] in document:
            junk = values.other_type(rng, document[path[0]])
            text = mutate.with_duplicate_key(document, str(path[0]), junk, junk_last=rng.random() < 0.5)
            body = text.encode()
        else:
            mutation = {
                "drop": mutate.drop,
                "retype": mutate.retype,
                "null": mutate.nullify,
                "empty": mutate.empty,
                "duplicate": mutate.retype,
                "list for object": mutate.list_for_object,
            }[operation]
            body = self.serialize(mutation(rng, document, path))
        return self.signed(provider, body), None, [note]

    def branches(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed push to an unusual branch or ref: long, unicode, empty, a tag, no prefix."""
        rng, provider = self.rng, self.provider()
        document = self.document(provider, now)
        name = rng.choice(
            (
                "a" * 255,
                "a" * 256,
                "release/" + "é" * 300,
                values.huge_text(rng, high=10_000),
                values.unicode_text(rng),
                values.ascii_text(rng),
                "",
                " ",
                f"{GITHUB_BRANCH}\n",
                GITHUB_BRANCH.upper(),
                f" {GITHUB_BRANCH}",
                "fail/x",
                "HEAD",
                "../" * 10,
            )
        )
        if provider == "github":
            ref = rng.choice(
                (
                    f"refs/heads/{name}",
                    f"refs/tags/{name}",
                    name,
                    "refs/heads/",
                    f"refs/heads/{GITHUB_BRANCH}/{name}",
                )
            )
            document["ref"] = ref
            note = f"ref {shorten(ref, 40)} ({len(ref)} chars)"
        else:
            document["push"]["changes"][0]["new"]["name"] = name
            document["push"]["changes"][0]["new"]["type"] = rng.choice(
                ("branch", "branch", "tag", "named_branch")
            )
            note = f"branch {shorten(name, 40)} ({len(name)} chars)"
        return self.signed(provider, self.serialize(document)), None, [note]

    def commits(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed push whose commit id is short, long, not hex, zeros or very long."""
        rng, provider = self.rng, self.provider()
        document = self.document(provider, now)
        commit = rng.choice(
            (
                values.commit_id(rng),
                "0" * 40,
                "0",
                values.hex_id(rng, rng.choice((1_100, 1_100, 3_000))),  # over the 1 KB and 2 KB key limits
                values.unicode_text(rng),
                "",
            )
        )
        if provider == "github":
            document["after"] = commit
            if rng.random() < 0.3:
                document["before"] = values.commit_id(rng)
        else:
            document["push"]["changes"][0]["new"]["target"]["hash"] = commit
        return self.signed(provider, self.serialize(document)), None, [f"commit {shorten(commit, 40)}"]

    def structure(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A body that is not a JSON object, not JSON, deeply nested, or not UTF-8; mostly signed."""
        rng, provider = self.rng, self.provider()
        document = self.document(provider, now)
        text = json.dumps(document)
        bodies: dict[str, Callable[[], bytes]] = {
            "a list": lambda: json.dumps([document]).encode(),
            "a scalar": lambda: json.dumps(values.scalar(rng)).encode(),
            "empty": lambda: b"",
            "truncated": lambda: text[: rng.randint(0, len(text) - 1)].encode(),
            "trailing garbage": lambda: (text + rng.choice(("}", "x", "{}", "\x00"))).encode(),
            "NaN in an unread key": lambda: (text[:-1] + ', "fuzz": NaN}').encode(),
            "NaN in a read key": lambda: (
                mutate.with_duplicate_key(document, "repository", {}, True)
                .replace('"repository": {}', '"repository": NaN')
                .encode()
            ),
            "byte order mark": lambda: b"\xef\xbb\xbf" + text.encode(),
            "UTF-16": lambda: json.dumps(document, ensure_ascii=False).encode("utf-16"),
            "Latin-1": lambda: json.dumps({**document, "fuzz": "é"}, ensure_ascii=False).encode(
                "latin-1", "replace"
            ),
            "invalid UTF-8": lambda: text[:-1].encode() + b', "fuzz": "\xff\xfe"}',
            "deep in an unread key": lambda: json.dumps({**document, "fuzz": values.deep(rng, 200)}).encode(),
            "deep beyond any parser": lambda: (
                text[:-1] + ', "fuzz": ' + "[" * 100_000 + "]" * 100_000 + "}"
            ).encode(),
            "deep in a read key": lambda: json.dumps(
                {**document, "repository": values.deep(rng, 300)}
            ).encode(),
        }
        name = rng.choice(sorted(bodies))
        body = bodies[name]()
        request = self.signed(provider, body)
        request.base64_encoded = rng.random() < 0.5 or not _utf8(body)
        if rng.random() < 0.15:
            request = Request(provider, body, self.headers_for(provider, body, secret="guess"))
            name += ", signed with another secret"
        return request, None, [name]

    def headers(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed push whose provider, event, delivery or content-type headers are missing, mixed,
        duplicated or odd."""
        rng, provider = self.rng, self.provider()
        other = "bitbucket" if provider == "github" else "github"
        body = self.serialize(self.document(provider, now))
        headers = {name.lower(): value for name, value in self.headers_for(provider, body).items()}
        event_header, delivery_header = EVENT_HEADER[provider], DELIVERY_HEADER[provider]
        variant = rng.choice(HEADER_VARIANTS)
        if variant == "no event header":
            del headers[event_header]
        elif variant == "the other provider's event header":
            headers[EVENT_HEADER[other]] = headers.pop(event_header)
        elif variant == "both providers' event headers":
            headers[EVENT_HEADER[other]] = "push" if other == "github" else "repo:push"
        elif variant == "an odd event type":
            headers[event_header] = rng.choice(ODD_EVENT_TYPES)
        elif variant == "no delivery id":
            del headers[delivery_header]
        elif variant == "an odd delivery id":
            headers[delivery_header] = rng.choice(
                ("", " ", "a,b", "1", values.unicode_text(rng), values.huge_text(rng, high=8_000))
            )
        elif variant == "an odd content type":
            headers["content-type"] = rng.choice(ODD_CONTENT_TYPES)
        elif variant == "no content type":
            del headers["content-type"]
        elif variant == "header names in upper case":
            headers = {name.upper(): value for name, value in headers.items()}
        elif variant == "a header twice, in two cases":  # the last one wins once names are lower-cased
            if rng.random() < 0.5:
                headers[SIGNATURE_HEADER[provider].title()] = sign(body, "guess")
            else:
                headers[event_header.upper()] = "ping"
        else:
            headers.update({f"x-fuzz-{n}": values.text(rng) for n in range(rng.randint(1, 60))})
        shown = headers.get(event_header) if variant == "an odd event type" else None
        return Request(provider, body, headers), None, [variant if shown is None else f"{variant} {shown!r}"]

    def request(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed push sent to another path, with another method, or with its body missing or
        encoded wrongly."""
        rng, provider = self.rng, self.provider()
        request = self.signed(provider, self.serialize(self.document(provider, now)))
        choice = rng.randrange(4)
        if choice == 0:
            request.path = rng.choice(
                (
                    "/",
                    "",
                    "/gitlab",
                    f"/{provider}/",
                    f"/{provider.upper()}",
                    f"//{provider}",
                    f"/{provider}/extra",
                    "/%67ithub",
                    "/" + values.unicode_text(rng),
                    "/" + "a" * 5_000,
                    "/bitbucket" if provider == "github" else "/github",
                )
            )
            return request, None, [f"path {shorten(request.path, 40)}"]
        if choice == 1:
            request.method = rng.choice(
                ("GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "post", "FOO")
            )
            return request, None, [f"method {request.method}"]
        if choice == 2:
            request.omit_body = True
            request.base64_encoded = rng.random() < 0.5
            return request, None, ["no body"]
        request.base64_encoded = True
        encoded = base64.b64encode(request.body).decode()
        request.text_body = rng.choice(
            (
                "not base64!",
                encoded[:-1],
                encoded + "=",
                encoded.replace("+", "-").replace("/", "_"),
                "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)),
                " " + encoded,
                "====",
                encoded.rstrip("="),
            )
        )
        return request, None, ["odd base64"]

    def bitbucket_changes(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A signed Bitbucket push of many changes: branches, tags, deletions, odd types."""
        rng = self.rng
        document = self.bitbucket_document(now, rng.randint(0, 12))
        for change in document["push"]["changes"]:
            roll = rng.random()
            if roll < 0.15:
                change["new"] = None
            elif roll < 0.3:
                change["new"]["type"] = rng.choice(("tag", "named_branch", "bookmark", "Branch"))
            elif roll < 0.4:
                change["old"] = None
        count = len(document["push"]["changes"])
        return self.signed("bitbucket", self.serialize(document)), None, [f"{count} changes"]

    def random_mutations(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A push body mutated anywhere, one to three times; signed (mostly) after the mutation."""
        rng, provider = self.rng, self.provider()
        document, done = mutate.mutate_randomly(rng, self.document(provider, now), rng.randint(1, 3))
        body = self.serialize(document)
        if rng.random() < 0.8:
            return self.signed(provider, body), None, done
        return (
            Request(provider, body, self.headers_for(provider, body, secret="guess")),
            None,
            [*done, "unsigned"],
        )

    def sizes(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """Bodies at the size limit: exactly 1 MiB, one byte over, in base64, or far over."""
        rng, provider = self.rng, self.provider()
        body = self.serialize(self.document(provider, now))
        size = rng.choice((MAX_BODY_BYTES, MAX_BODY_BYTES + 1, MAX_BODY_BYTES - 1, 2 * MAX_BODY_BYTES, 0))
        if size == 0:
            body = b""
        elif size > len(body):
            body = body + b" " * (size - len(body))
        request = self.signed(provider, body)
        request.base64_encoded = rng.random() < 0.5
        return request, None, [f"{len(body)} bytes"]

    def samples(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """The repository's sample request (signed with the sample secret), as is or signed with ours;
        the real ping and tag-deletion bodies."""
        rng = self.rng
        choice = rng.randrange(3)
        if choice == 0:
            body = str(SAMPLE_REQUEST["body"]).encode()
            headers = dict(SAMPLE_REQUEST["headers"])
            if rng.random() < 0.5:
                headers["x-hub-signature-256"] = sign(body, WEBHOOK_SECRETS["github"])
                return Request("github", body, headers), None, ["events/webhook-github-push.json, signed"]
            return Request("github", body, headers), None, ["events/webhook-github-push.json"]
        if choice == 1:
            return self.signed("github", self.serialize(GITHUB_PING), "ping"), None, ["the real ping"]
        return self.signed("github", self.serialize(GITHUB_DELETE_TAG)), None, ["the real tag deletion"]

    def eventbridge_fault(self, now: datetime) -> tuple[Request, str | None, list[str]]:
        """A valid push while EventBridge refuses every entry: answered 500, nothing forwarded."""
        request, _, notes = self.valid(now)
        return request, "eventbridge", [*notes, "EventBridge refuses the entries"]


def _utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _replace_all(target: dict[str, str], new: dict[str, str]) -> None:
    target.clear()
    target.update(new)
