"""Values the generators draw from, one function per kind: strings (plain, unicode, huge, hostile), JSON
values of every type, commit ids, digests, timestamps. Every function takes the run's seeded generator, so
a seed replays the same values.

No generated string ever equals a name the fuzz world watches (repositories, branches, tags, event
types, results...), so a mutation cannot turn an event into a deployable one by chance: what may deploy
is decided by the reference models, never by luck.
"""

from __future__ import annotations

import random
import re
import string
from datetime import datetime, timedelta
from typing import Any

# Names with a meaning somewhere in the parsers or the rules: never produced by `text` and friends.
MAGIC_WORDS = frozenset(
    {
        "web",
        "worker",
        "api",
        "latest",
        "stable",
        "main",
        "master",
        "push",
        "ping",
        "repo:push",
        "branch",
        "tag",
        "commit",
        "image",
        "github",
        "bitbucket",
        "codecommit",
        "ecr",
        "SUCCESS",
        "PUSH",
        "referenceCreated",
        "referenceUpdated",
        "referenceDeleted",
    }
)

_UNICODE_SAMPLES = (
    "é",  # Latin-1 range
    "ß",
    "Ω",
    "Ж",
    "中文",
    "日本語",
    "한국어",
    "עברית",  # right to left
    "العربية",
    "\u202e",  # right-to-left override
    "\u200b",  # zero-width space
    "\ufeff",  # byte order mark
    "e\u0301",  # combining accent
    "🚀",  # astral plane
    "👩‍👩‍👧",  # a zero-width-joiner sequence
    "\U0010fffd",  # the last private-use code point
    "\u0661\u0662\u0663",  # Arabic-Indic digits (\d in Python regexes, not in RE2's)
    "\u0000",  # NUL
    "\x7f",
    "\t",
    "\n",
    "\r\n",
    "\\",
    '"',
    "'",
    "%00",
    "../",
    "${jndi:ldap://x}",
    "<script>",
    "' OR '1'='1",
)


def not_magic(value: str) -> str:
    """`value`, or a variant of it when it happens to be a watched or meaningful name."""
    return value if value not in MAGIC_WORDS else value + "~"


def ascii_text(rng: random.Random, low: int = 1, high: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits + "-_./"
    return not_magic("".join(rng.choice(alphabet) for _ in range(rng.randint(low, high))))


def unicode_text(rng: random.Random) -> str:
    parts = [rng.choice(_UNICODE_SAMPLES) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.5:
        parts.insert(rng.randint(0, len(parts)), ascii_text(rng, 1, 8))
    return not_magic("".join(parts))


def huge_text(rng: random.Random, high: int = 200_000) -> str:
    """A long string: up to `high` characters, sometimes of multi-byte characters."""
    length = rng.choice((257, 1_000, 4_096, 10_000, high))
    unit = rng.choice(("a", "é", "🚀", "ab/", "0"))
    return not_magic((unit * (length // len(unit) + 1))[:length])


def text(rng: random.Random) -> str:
    """Any string: empty, blank, plain, unicode or long."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(("", " ", "\t", "\n"))
    if roll < 0.55:
        return ascii_text(rng)
    if roll < 0.9:
        return unicode_text(rng)
    return huge_text(rng, high=20_000)


def scalar(rng: random.Random) -> Any:
    """A JSON scalar of any type (no NaN: EventBridge and Lambda hand over standard JSON)."""
    return rng.choice(
        (
            None,
            True,
            False,
            0,
            -1,
            rng.randint(-(2**63), 2**63),
            2**70,
            0.5,
            -1e308,
            text(rng),
        )
    )


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of any type, nested a little."""
    roll = rng.random()
    if depth > 2 or roll < 0.6:
        return scalar(rng)
    if roll < 0.8:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {ascii_text(rng, 1, 8): json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def other_type(rng: random.Random, value: Any) -> Any:
    """A JSON value of another type than `value` (bool, number, string, null, list and object differ)."""
    while True:
        candidate = json_value(rng)
        if _json_type(candidate) != _json_type(value):
            return candidate


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def deep(rng: random.Random, depth: int) -> Any:
    """A value nested `depth` levels deep (lists or objects)."""
    value: Any = scalar(rng)
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def hex_id(rng: random.Random, length: int = 40) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def commit_id(rng: random.Random) -> str:
    """A commit id as a sender might put it: mostly 40 hex digits; sometimes odd."""
    roll = rng.random()
    if roll < 0.7:
        return hex_id(rng)
    return rng.choice(
        (
            hex_id(rng, 7),
            hex_id(rng, 39),
            hex_id(rng, 41),
            hex_id(rng, 64),  # SHA-256 repositories
            hex_id(rng).upper(),
            "z" * 40,
            unicode_text(rng),
            "0" * 39 + "1",
            ascii_text(rng, 1, 3),
        )
    )


def digest(rng: random.Random) -> str:
    return "sha256:" + hex_id(rng, 64)


def odd_digest(rng: random.Random) -> str:
    """A digest ECR would never send."""
    return rng.choice(
        (
            "sha256:" + hex_id(rng, 63),
            "sha256:" + hex_id(rng, 64).upper(),
            "sha512:" + hex_id(rng, 128),
            hex_id(rng, 64),
            "sha256:",
            unicode_text(rng),
            "sha256:" + "g" * 64,
            "sha256:" + hex_id(rng, rng.choice((1_100, 3_000))),  # over DynamoDB's 1 KB and 2 KB key limits
            "sha256:" + hex_id(rng, 1_100),
        )
    )


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def garbage_time(rng: random.Random) -> Any:
    """A timestamp no parser should read as a time, or one at the edges of what datetime can hold."""
    return rng.choice(
        (
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "26/Nov/2026:08:00:00 +0000",
            "0001-01-01T00:00:00+01:00",  # moves before year 1 in UTC
            "9999-12-31T23:59:59-01:00",  # moves past year 9999 in UTC
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-26T08:00:00+25:00",
            "2026-11-26T08:00:00.123456789Z",
            "2026-11-26",
            "08:00:00",
            unicode_text(rng),
            huge_text(rng, high=5_000),
            10**20,
            -(10**20),
            2**63,
            0,
            1.5,
            True,
            [],
            {},
        )
    )


def shifted(now: datetime, rng: random.Random, kind: str) -> datetime:
    """A moment relative to `now`: `fresh` (within the last hour), `edge` (exactly 72 h ago), `stale`
    (over 72 h ago, by a second up to years) or `future` (an hour up to years ahead)."""
    if kind == "fresh":
        return now - timedelta(seconds=rng.randint(0, 3600))
    if kind == "edge":
        return now - timedelta(hours=72)
    if kind == "stale":
        return now - timedelta(hours=72, seconds=rng.choice((1, 60, 3600, 86_400 * 30, 86_400 * 3650)))
    return now + timedelta(seconds=rng.choice((60, 3600, 86_400 * 365, 86_400 * 365 * 50)))


# What a change's artifact may look like (pushdeploy.domain.changes): the OCI digest grammar, and a commit
# id of letters and digits; both bounded, since they become DynamoDB keys.
_DIGEST_FORMAT = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{1,128}")
_COMMIT_FORMAT = re.compile(r"[0-9a-zA-Z]{1,128}")


def valid_digest(value: str) -> bool:
    return _DIGEST_FORMAT.fullmatch(value) is not None


def valid_commit(value: str) -> bool:
    return _COMMIT_FORMAT.fullmatch(value) is not None
