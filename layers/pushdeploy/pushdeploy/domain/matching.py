"""Tag and branch matchers: exact, glob, full-match regex, semver range.

Each matcher is compiled once when the rules are loaded and answers `(matched, reason)`, the reason being
a sentence a person can read in the ledger or in `pushdeploy explain`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Protocol

import semver

_COMPARATOR = re.compile(r"\s*(>=|<=|>|<|=)?\s*v?([^\s,<>=]+)\s*(?:,|\s|$)")
_OPERATORS = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "=": lambda c: c == 0,
}


class Matcher(Protocol):
    """Answers whether a tag or branch name matches, and why."""

    def match(self, name: str) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class ExactMatcher:
    subject: str
    expected: str

    def match(self, name: str) -> tuple[bool, str]:
        if name == self.expected:
            return True, f"{self.subject} {name} is the tracked {self.subject}"
        return False, f"{self.subject} {name} is not {self.expected}"


class GlobMatcher:
    """Case-sensitive shell pattern; `*` also matches `/` (as fnmatch does)."""

    def __init__(self, subject: str, pattern: str) -> None:
        self.subject = subject
        self.pattern = pattern
        self._compiled = re.compile(fnmatch.translate(pattern))

    def match(self, name: str) -> tuple[bool, str]:
        if self._compiled.match(name):
            return True, f"{self.subject} {name} matches glob {self.pattern}"
        return False, f"{self.subject} {name} does not match glob {self.pattern}"


class RegexMatcher:
    """The whole tag must match: `v1` does not match `v1.2` by prefix. Raises re.error when invalid."""

    def __init__(self, subject: str, pattern: str) -> None:
        self.subject = subject
        self.pattern = pattern
        self._compiled = re.compile(pattern)

    def match(self, name: str) -> tuple[bool, str]:
        if self._compiled.fullmatch(name):
            return True, f"{self.subject} {name} matches regex {self.pattern}"
        return False, f"{self.subject} {name} does not match regex {self.pattern}"


def parse_version(tag: str) -> semver.Version | None:
    """A full semantic version, a single leading `v` allowed; `1.4` or `latest` are not versions."""
    text = tag[1:] if tag.startswith("v") else tag
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Comparator:
    operator: str
    version: semver.Version

    def admits(self, version: semver.Version) -> bool:
        return bool(_OPERATORS[self.operator](version.compare(self.version)))


def parse_range(text: str) -> tuple[Comparator, ...]:
    """Comparators separated by commas or spaces; a bare version means `=`. Raises ValueError."""
    comparators: list[Comparator] = []
    position = 0
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty semver range")
    while position < len(stripped):
        found = _COMPARATOR.match(stripped, position)
        if not found or found.end() == position:
            raise ValueError(f"cannot read semver range at {stripped[position:]!r}")
        operator, version_text = found.group(1) or "=", found.group(2)
        version = parse_version(version_text)
        if version is None:
            raise ValueError(f"{version_text!r} is not a full semantic version (major.minor.patch)")
        comparators.append(Comparator(operator, version))
        position = found.end()
    return tuple(comparators)


class SemverMatcher:
    """Tags inside a semver range. A pre-release matches only when a comparator names a pre-release of the
    same major.minor.patch, as npm's semver does, so `>=1.2.0` never picks up `1.5.0-rc.1` by accident.
    Raises ValueError when the range is invalid."""

    subject = "tag"

    def __init__(self, range_text: str) -> None:
        self.range_text = range_text
        self.comparators = parse_range(range_text)

    def match(self, name: str) -> tuple[bool, str]:
        version = parse_version(name)
        if version is None:
            return False, f"tag {name} is not a semantic version"
        release = version.to_tuple()[:3]
        if version.prerelease and not any(
            c.version.prerelease and c.version.to_tuple()[:3] == release for c in self.comparators
        ):
            return (
                False,
                f"tag {name} is a pre-release and range {self.range_text} names no pre-release of it",
            )
        if all(c.admits(version) for c in self.comparators):
            return True, f"tag {name} is in semver range {self.range_text}"
        return False, f"tag {name} is outside semver range {self.range_text}"
