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


# --- semver ----------------------------------------------------------------------------------------


def parse_version(tag: str) -> semver.Version | None:
    """A full semantic version, a single leading `v` allowed; `1.4` or `latest` are not versions."""
    text = tag[1:] if tag.startswith("v") else tag
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


_OPERATORS = {
    ">=": lambda c: c >= 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    "<": lambda c: c < 0,
    "=": lambda c: c == 0,
}


@dataclass(frozen=True)
class Comparator:
    """A primitive comparator: every range form desugars to these (npm's node-semver does the same)."""

    operator: str  # >=, <=, >, <, =
    version: semver.Version

    def admits(self, version: semver.Version) -> bool:
        return bool(_OPERATORS[self.operator](version.compare(self.version)))

    def names_prerelease_of(self, version: semver.Version) -> bool:
        """Whether this comparator names a pre-release of `version`'s major.minor.patch: what lets a
        pre-release `version` into a range at all."""
        mine = self.version
        return bool(mine.prerelease) and (mine.major, mine.minor, mine.patch) == (
            version.major,
            version.minor,
            version.patch,
        )

    def __str__(self) -> str:
        return f"{self.operator}{self.version}"


# A version as a range may write it (npm's `partial`): `1`, `1.2`, `1.2.3`, `1.x`, `1.2.*`, `*`; a
# pre-release on a full one; build metadata (ignored, as npm ignores it) and a leading `v` on any.
# Pre-release identifiers are checked for leading zeros apart (`_identifier_ok`), which keeps every
# pattern here linear.
_PART = r"0|[1-9][0-9]*|[xX*]"
_WORD = r"[0-9A-Za-z-]+"
_PARTIAL = re.compile(
    rf"v?(?P<major>{_PART})(?:\.(?P<minor>{_PART})(?:\.(?P<patch>{_PART})"
    rf"(?:-(?P<prerelease>{_WORD}(?:\.{_WORD})*))?)?)?(?:\+{_WORD}(?:\.{_WORD})*)?"
)
# One comparator of a comparator set: an operator (or none), then what it applies to, up to the next
# space or comma. Spaces after the operator are allowed (`>= 1.2.0`, `^ 1.2`), as npm allows them.
_TOKEN = re.compile(r"(?P<operator>>=|<=|>|<|=|\^|~>|~)?\s*(?P<version>[^\s,]*)")
_SEPARATOR = re.compile(r"\s*,\s*|\s+")
_OPERATOR_CHARACTERS = "<>=^~"
_MAX_NUMBER = 2**53 - 1  # npm's largest major, minor or patch (Number.MAX_SAFE_INTEGER)
_LOWEST = "0"  # the lowest pre-release: `<2.0.0-0` is below 2.0.0 and every pre-release of it


@dataclass(frozen=True)
class _Partial:
    """Major, minor and patch as written, None where `x`, `X`, `*` or nothing stands."""

    major: int | None
    minor: int | None
    patch: int | None
    prerelease: str | None

    @property
    def full(self) -> bool:
        return self.patch is not None

    def version(self) -> semver.Version:
        if self.major is None or self.minor is None or self.patch is None:
            raise ValueError(f"{self} is not a full version")  # callers ask `full` first
        return semver.Version(self.major, self.minor, self.patch, self.prerelease)


def _identifier_ok(identifier: str) -> bool:
    return not (identifier.isdigit() and len(identifier) > 1 and identifier.startswith("0"))


def _partial(text: str, token: str) -> _Partial:
    """`text` (a partial version) read; ValueError naming `token` (what the user wrote) when it is none."""
    found = _PARTIAL.fullmatch(text)
    if not found or not all(map(_identifier_ok, (found.group("prerelease") or "").split("."))):
        raise ValueError(f"{token!r} is not a version or range")
    numbers: list[int | None] = []
    for name in ("major", "minor", "patch"):
        part = found.group(name)
        if part is None or part in ("x", "X", "*"):
            numbers.append(None)
            continue
        if int(part) > _MAX_NUMBER:
            raise ValueError(f"{token!r} is not a version or range: {part} is above {_MAX_NUMBER}")
        if numbers and numbers[-1] is None:  # `x.1`, `1.x.2`: a number after a wildcard
            raise ValueError(f"{token!r} is not a version or range: a number follows a wildcard")
        numbers.append(int(part))
    major, minor, patch = numbers
    prerelease = found.group("prerelease")
    if prerelease is not None and patch is None:  # `1.2.x-rc.1`
        raise ValueError(f"{token!r} is not a version or range: a pre-release needs a full version")
    return _Partial(major, minor, patch, prerelease)


def _at_least(major: int, minor: int, patch: int, prerelease: str | None = None) -> Comparator:
    return Comparator(">=", semver.Version(major, minor, patch, prerelease))


def _below(major: int, minor: int, patch: int) -> Comparator:
    """`<major.minor.patch-0`: below that release and all its pre-releases, as npm's upper bounds are."""
    return Comparator("<", semver.Version(major, minor, patch, _LOWEST))


def _x_range(p: _Partial) -> tuple[Comparator, ...]:
    """`*` (any), `1` or `1.x` (>=1.0.0 <2.0.0-0), `1.2` or `1.2.x` (>=1.2.0 <1.3.0-0), `1.2.3` (=1.2.3)."""
    if p.major is None:
        return ()
    if p.minor is None:
        return _at_least(p.major, 0, 0), _below(p.major + 1, 0, 0)
    if p.patch is None:
        return _at_least(p.major, p.minor, 0), _below(p.major, p.minor + 1, 0)
    return (Comparator("=", p.version()),)


def _tilde(p: _Partial) -> tuple[Comparator, ...]:
    """Patch-level changes when a minor is given, minor-level otherwise: `~1.2.3` is >=1.2.3 <1.3.0-0."""
    if p.major is None:
        return ()
    if p.minor is None:
        return _at_least(p.major, 0, 0), _below(p.major + 1, 0, 0)
    if p.patch is None:
        return _at_least(p.major, p.minor, 0), _below(p.major, p.minor + 1, 0)
    return _at_least(p.major, p.minor, p.patch, p.prerelease), _below(p.major, p.minor + 1, 0)


def _caret(p: _Partial) -> tuple[Comparator, ...]:
    """Changes that keep the left-most non-zero number: `^1.2.3` is >=1.2.3 <2.0.0-0, `^0.2.3`
    >=0.2.3 <0.3.0-0, `^0.0.3` >=0.0.3 <0.0.4-0; a missing number desugars to 0 but may vary."""
    if p.major is None:
        return ()
    if p.minor is None:
        return _at_least(p.major, 0, 0), _below(p.major + 1, 0, 0)
    if p.patch is None:
        upper = _below(0, p.minor + 1, 0) if p.major == 0 else _below(p.major + 1, 0, 0)
        return _at_least(p.major, p.minor, 0), upper
    if p.major > 0:
        upper = _below(p.major + 1, 0, 0)
    elif p.minor > 0:
        upper = _below(0, p.minor + 1, 0)
    else:
        upper = _below(0, 0, p.patch + 1)
    return _at_least(p.major, p.minor, p.patch, p.prerelease), upper


def _hyphen(low: _Partial, high: _Partial) -> tuple[Comparator, ...]:
    """`1.2.3 - 2.3.4` is >=1.2.3 <=2.3.4; a partial low end is filled with zeros (`1.2 - ...` is
    >=1.2.0), a partial high end takes every version that starts with it (`... - 2.3` is <2.4.0-0)."""
    lower: tuple[Comparator, ...] = ()
    if low.major is not None:
        lower = (_at_least(low.major, low.minor or 0, low.patch or 0, low.prerelease),)
    if high.major is None:
        return lower
    if high.minor is None:
        return (*lower, _below(high.major + 1, 0, 0))
    if high.patch is None:
        return (*lower, _below(high.major, high.minor + 1, 0))
    return (*lower, Comparator("<=", high.version()))


def _desugar(operator: str, text: str, token: str) -> tuple[Comparator, ...]:
    """One comparator as written (`token`: its operator, then `text`) as primitive comparators."""
    if operator == "^":
        return _caret(_partial(text, token))
    if operator in ("~", "~>"):
        return _tilde(_partial(text, token))
    if operator in ("", "="):  # a bare version, full (`=`) or partial (an x-range)
        return _x_range(_partial(text, token))
    partial = _partial(text, token)
    if not partial.full:
        # npm reads `>1.2` as >=1.3.0 and `<=1.2` as <1.3.0-0: refused here rather than guessed at.
        raise ValueError(
            f"{text!r} is not a full semantic version (major.minor.patch): {operator} needs all three "
            "numbers (or write a caret, tilde or x-range)"
        )
    return (Comparator(operator, partial.version()),)


def _comparator_set(text: str) -> tuple[Comparator, ...]:
    """One `||` alternative: a hyphen range alone, or comparators separated by commas or spaces."""
    words = text.split()
    if "-" in words:
        if len(words) != 3 or words[1] != "-":
            raise ValueError(f"{text!r} is not a hyphen range: write LOW - HIGH, alone between ||")
        for end in (words[0], words[2]):
            if end[0] in _OPERATOR_CHARACTERS:
                raise ValueError(
                    f"{end!r} in hyphen range {text!r}: the ends of LOW - HIGH are bare versions"
                )
        return _hyphen(_partial(words[0], words[0]), _partial(words[2], words[2]))
    comparators: list[Comparator] = []
    position = 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        assert found is not None  # every part of the pattern may be empty
        operator, version = found.group("operator") or "", found.group("version")
        token = text[position : found.end()]
        if not operator and not version:
            raise ValueError(f"cannot read semver range at {text[position:]!r}")
        if operator and (not version or version[0] in _OPERATOR_CHARACTERS):
            if version and token == operator + version:  # `=>1.2.0`, `>>1.2.0`
                raise ValueError(f"{token!r} is not a version or range")
            raise ValueError(f"{operator!r} is not followed by a version in {text!r}")
        if "-" in (version[:1], version[-1:]) and not _PARTIAL.fullmatch(version):  # `1.2.0 -1.4.0`
            raise ValueError(
                f"{token!r} is not a version or range: a hyphen range needs a space each side of -"
            )
        comparators.extend(_desugar(operator, version, token))
        position = found.end()
        separator = _SEPARATOR.match(text, position)
        if separator:
            position = separator.end()
    return tuple(comparators)


def parse_alternatives(text: str) -> tuple[tuple[Comparator, ...], ...]:
    """A semver range as its `||` alternatives, each a set of primitive comparators that must all
    admit a version; an empty set admits any release (`*`). Raises ValueError with a one-line reason.

    The forms are npm's (node-semver) and desugar as it does: comparators (`>=1.2.0`; a bare version
    means `=`) separated by commas or spaces, caret (`^1.2.0`), tilde (`~1.2`), x-ranges (`1.x`,
    `1.2.*`, `*`, `1.2`), hyphen ranges (`1.2.0 - 1.4`), alternatives joined by `||`.

    Refused where npm would guess: `>`, `>=`, `<` and `<=` with a partial version (npm reads `>1.2` as
    >=1.3.0), an empty range or alternative (npm reads `""` and `1.x ||` as any version), a number after
    a wildcard (`1.x.2`) and a pre-release on a partial version (`1.2.x-rc.1`). And `||` is a plain
    union: npm drops the other alternatives when one is `*`, and with them the pre-releases they name
    (`* || ^1.0.0-rc.1` refuses 1.0.0-rc.2 there, admits it here)."""
    if not text.strip():
        raise ValueError("empty semver range")
    alternatives = []
    for alternative in text.split("||"):
        if not alternative.strip():
            raise ValueError(
                f"empty alternative in semver range {text.strip()!r}: write a range on each side of ||"
            )
        alternatives.append(_comparator_set(alternative.strip()))
    return tuple(alternatives)


def parse_range(text: str) -> tuple[Comparator, ...]:
    """The primitive comparators of a range without `||` (`^1.2.0` gives >=1.2.0 and <2.0.0-0).
    Raises ValueError; a range with alternatives is read by `parse_alternatives`."""
    alternatives = parse_alternatives(text)
    if len(alternatives) != 1:
        raise ValueError(f"semver range {text.strip()!r} has alternatives (||)")
    return alternatives[0]


def _admits(comparators: tuple[Comparator, ...], version: semver.Version) -> bool:
    """npm's rule for one comparator set: every comparator admits the version, and a pre-release only
    when a comparator of the same set names a pre-release of the same major.minor.patch."""
    if not all(c.admits(version) for c in comparators):
        return False
    return not version.prerelease or any(c.names_prerelease_of(version) for c in comparators)


class SemverMatcher:
    """Tags inside a semver range, with npm's semantics (see `parse_alternatives`). A pre-release matches
    only when a comparator of the same `||` alternative names a pre-release of the same
    major.minor.patch, as npm's semver does, so `>=1.2.0` or `^1.2.0` never picks up `1.5.0-rc.1` by
    accident. Reasons quote the range as written. Raises ValueError when the range is invalid."""

    subject = "tag"

    def __init__(self, range_text: str) -> None:
        self.range_text = range_text
        self.alternatives = parse_alternatives(range_text)

    def admits(self, version: semver.Version) -> bool:
        return any(_admits(comparators, version) for comparators in self.alternatives)

    def match(self, name: str) -> tuple[bool, str]:
        version = parse_version(name)
        if version is None:
            return False, f"tag {name} is not a semantic version"
        if self.admits(version):
            return True, f"tag {name} is in semver range {self.range_text}"
        named = any(c.names_prerelease_of(version) for set_ in self.alternatives for c in set_)
        if version.prerelease and not named:
            return (
                False,
                f"tag {name} is a pre-release and range {self.range_text} names no pre-release of it",
            )
        return False, f"tag {name} is outside semver range {self.range_text}"
