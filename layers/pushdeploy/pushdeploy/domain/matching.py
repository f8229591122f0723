r"""Tag and branch matchers: exact, glob, full-match regex, semver range.

Each matcher is built once when the rules are loaded and answers `(matched, reason)`, the reason being
a sentence a person can read in the ledger or in `pushdeploy explain`.

Globs and regexes run on RE2 (the `google-re2` package), whose matching time is linear in the length of
the name whatever the pattern: a user's `^v(\d+\.?)+$` cannot hang a function the way it hangs Python's
backtracking `re`. RE2 has no lookaround, backreferences, possessive quantifiers or atomic groups; such a
regex is refused when the rules are validated (`regex_problem`). Globs are translated to RE2 syntax here,
with fnmatch's semantics but none of `fnmatch.translate`'s Python-only syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

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


# --- RE2 -------------------------------------------------------------------------------------------

_LINEAR_TIME = "pushdeploy matches tags in linear time (RE2 syntax)"
_LOOKAROUND = "lookaround and backreferences are not supported"
# RE2's error for a construct it lacks (a regex on the error's text), and how to say it to the person who
# wrote the regex. Only asked of a regex Python's `re` accepts: one that neither accepts is an invalid
# regex. Compiled on the error path only, never at import (cold start).
_UNSUPPORTED: tuple[tuple[str, str], ...] = (
    (r"invalid perl operator: \(\?<?[=!]", _LOOKAROUND),
    (r"invalid perl operator: \(\?P$", _LOOKAROUND),  # `(?P=name)`
    (r"invalid escape sequence: \\[1-9]", _LOOKAROUND),
    (
        r"bad repetition operator: ([*+?]|\{.*\})\+",
        "possessive quantifiers (++, *+, ?+, {n}+) are not supported",
    ),
    (r"invalid perl operator: \(\?>", "atomic groups (?>...) are not supported"),
    (r"invalid perl operator: \(\?\(", "conditional groups (?(...)...) are not supported"),
    (r"invalid perl operator: \(\?#", "comments (?#...) are not supported"),
    (r"invalid perl operator: \(\?[-a-zA-Z]", "inline flags other than i, m, s and U are not supported"),
    (r"invalid escape sequence: \\Z", r"\Z is not supported (the regex matches the whole tag anyway)"),
    (r"invalid repetition size", "repetitions over 1000 (nested counts multiplied) are not supported"),
)


def _re2() -> Any:
    """The `re2` module, imported at first use: a function that never meets a glob or a regex rule (the
    webhook, the operation and reconciler functions) does not pay for loading it at cold start."""
    import re2

    return re2


def compile_re2(pattern: str) -> Any:
    """A compiled RE2 expression (UTF-8, case-sensitive) that answers whether it matches, without
    capturing groups (faster, and nothing here reads them). Raises `re2.error` when RE2 refuses it."""
    re2 = _re2()
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own copy of each error on stderr
    options.never_capture = True
    return re2.compile(pattern, options)


def _re2_error_text(error: BaseException) -> str:
    detail = error.args[0] if error.args else ""
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


# `a{,5}`: Python reads it as {0,5}, RE2 as the literal text "{,5}".
_EMPTY_LOWER_BOUND = re.compile(r"(?<!\\)\{,\d+\}")


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a `tag_regex`, in one line, or None when RE2 compiles it.

    A regex Python would accept but RE2 cannot run (lookaround, backreferences, possessive quantifiers,
    atomic groups...) is named as unsupported; any other refusal is an invalid regex.
    """
    if _EMPTY_LOWER_BOUND.search(pattern):
        return "a repetition {,n} is read literally by RE2: write {0,n}"
    try:
        compile_re2(pattern)
    except _re2().error as error:
        detail = _re2_error_text(error)
    else:
        return None
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return f"invalid regex: {detail}"
    for refusal, sentence in _UNSUPPORTED:
        if re.match(refusal, detail):
            return f"{sentence}: {_LINEAR_TIME}"
    return f"not supported ({detail}): {_LINEAR_TIME}"


def _re2_literal(char: str) -> str:
    """`char` as an RE2 literal, in or out of a character class."""
    if char.isascii() and (char.isalnum() or char == "_"):
        return char
    if char.isascii() and char.isprintable():
        return "\\" + char
    return f"\\x{{{ord(char):x}}}"


_NEVER = "[^\\x00-\\x{10ffff}]"  # an empty set: matches no character


def _glob_set(pattern: str, start: int, end: int) -> str:
    """The set `pattern[start:end]` (between `[` and `]`) as an RE2 class, read exactly as fnmatch reads it:
    a leading `!` negates, a `]` first is a member, `-` between two members is a range (a `-` first or last
    is a member), a range whose ends are reversed is dropped with both its ends."""
    stuff = pattern[start:end]
    if "-" not in stuff:
        chunks = [stuff]
    else:
        chunks = []
        i, k = start, start + (2 if stuff[0] == "!" else 1)
        while True:
            k = pattern.find("-", k, end)
            if k < 0:
                break
            chunks.append(pattern[i:k])
            i, k = k + 1, k + 3
        last = pattern[i:end]
        if last:
            chunks.append(last)
        else:
            chunks[-1] += "-"
        for k in range(len(chunks) - 1, 0, -1):
            if chunks[k - 1][-1] > chunks[k][0]:
                chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
                del chunks[k]
    # The `!` is read after reversed ranges are dropped, as fnmatch reads it: `[a--!]` is `[!]`, any
    # character, and `[a--!-z]` is `[!-z]`, whose `-` is then a member.
    negated = chunks[0].startswith("!")
    if negated:
        chunks[0] = chunks[0][1:]
        if not chunks[0] and len(chunks) > 1:
            chunks[0:2] = ["-" + chunks[1]]
    if chunks == [""]:
        return "." if negated else _NEVER
    # Between two chunks is a range from the last character of one to the first of the next.
    members = [_re2_literal(c) for c in (chunks[0][:-1] if len(chunks) > 1 else chunks[0])]
    for k in range(1, len(chunks)):
        low, high = chunks[k - 1][-1], chunks[k][0]
        members.append(f"{_re2_literal(low)}-{_re2_literal(high)}")
        inner = chunks[k][1:-1] if k < len(chunks) - 1 else chunks[k][1:]
        members.extend(_re2_literal(c) for c in inner)
    return f"[{'^' if negated else ''}{''.join(members)}]"


def glob_to_re2(pattern: str) -> str:
    """A shell pattern as an RE2 expression to full-match: `*` any run of characters (`/` and newlines
    too), `?` one character, `[...]` a set; everything else literal. Same answers as fnmatch.fnmatchcase."""
    parts: list[str] = []
    i, n = 0, len(pattern)
    star = False
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            if not star:  # `**` is `*`
                parts.append(".*")
            star = True
            continue
        star = False
        if char == "?":
            parts.append(".")
        elif char == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing `]`: the `[` is a literal
                parts.append(_re2_literal("["))
            else:
                parts.append(_glob_set(pattern, i, j))
                i = j + 1
        else:
            parts.append(_re2_literal(char))
    return f"(?s:{''.join(parts)})"


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a glob (RE2 cannot hold it: too large), or None."""
    try:
        compile_re2(glob_to_re2(pattern))
    except _re2().error as error:
        return f"glob cannot be compiled: {_re2_error_text(error)}"
    return None


class _Re2Matcher:
    """Full match of the name on RE2, compiled at the first name it is asked about."""

    kind = ""

    def __init__(self, subject: str, pattern: str, expression: str) -> None:
        self.subject = subject
        self.pattern = pattern
        self._expression = expression
        self._compiled: Any = None

    def matches(self, name: str) -> bool:
        """Raises UnicodeEncodeError for a name that is not valid Unicode (a lone surrogate)."""
        if self._compiled is None:
            self._compiled = compile_re2(self._expression)
        return self._compiled.fullmatch(name.encode("utf-8")) is not None

    def match(self, name: str) -> tuple[bool, str]:
        try:
            matched = self.matches(name)
        except UnicodeEncodeError:
            return False, f"{self.subject} is not valid Unicode text: no {self.kind} matches it"
        if matched:
            return True, f"{self.subject} {name} matches {self.kind} {self.pattern}"
        return False, f"{self.subject} {name} does not match {self.kind} {self.pattern}"


class GlobMatcher(_Re2Matcher):
    """Case-sensitive shell pattern; `*` also matches `/` (as fnmatch does)."""

    kind = "glob"

    def __init__(self, subject: str, pattern: str) -> None:
        super().__init__(subject, pattern, glob_to_re2(pattern))


class RegexMatcher(_Re2Matcher):
    """The whole tag must match: `v1` does not match `v1.2` by prefix. RE2 syntax, validated by
    `regex_problem`; an expression RE2 refuses raises `re2.error` at the first match."""

    kind = "regex"

    def __init__(self, subject: str, pattern: str) -> None:
        super().__init__(subject, pattern, pattern)


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
