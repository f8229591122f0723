"""The rules file, version 1 (DESIGN 4.1): loading, whole-file validation, and the index by source.

A file is valid or refused whole: every problem is reported on its own line, naming the rule id (or its
position when the id itself is unusable) and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from pushdeploy.domain.changes import Change, SourceKey, registry_host, source_key
from pushdeploy.domain.gates import Gates, promotion_problems
from pushdeploy.domain.matching import (
    ExactMatcher,
    GlobMatcher,
    Matcher,
    RegexMatcher,
    SemverMatcher,
    glob_problem,
    regex_problem,
)
from pushdeploy.errors import RulesError

Action = Literal["start_deployment", "update_service"]

_RULE_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SERVICE_ARN = re.compile(
    r"^arn:(?P<partition>aws(?:-[a-z]+)*):apprunner:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+):"
    r"(?P<account>[0-9]{12}):service/(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{3,39})/(?P<id>[0-9a-f]{32})$"
)
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")
_ECR_REPOSITORY = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_HOSTED_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_CODECOMMIT_REPOSITORY = re.compile(r"^[\w.-]{1,100}$")
_IMAGE_SELECTORS = ("tag", "tag_glob", "tag_regex", "semver")
_CODE_SELECTORS = ("branch", "branch_glob")


@dataclass(frozen=True)
class ServiceArn:
    arn: str
    partition: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, arn: str) -> ServiceArn:
        found = _SERVICE_ARN.match(arn)
        if not found:
            raise ValueError(
                "not an App Runner service ARN "
                "(arn:<partition>:apprunner:<region>:<12 digits>:service/<name>/<32 hex>)"
            )
        return cls(arn, found["partition"], found["region"], found["account"], found["name"])


def _check_account(value: str) -> str:
    if not _ACCOUNT.match(value):
        raise ValueError(f"account id {value!r} is not 12 digits")
    return value


def _check_region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS Region name")
    return value


AccountId = Annotated[str, AfterValidator(_check_account)]
RegionName = Annotated[str, AfterValidator(_check_region)]


def _check_glob(value: str | None) -> str | None:
    problem = glob_problem(value) if value is not None else None
    if problem:
        raise ValueError(problem)
    return value


def _check_regex(value: str | None) -> str | None:
    """RE2 syntax, matched in linear time: a regex RE2 cannot run (lookaround, backreferences...) is
    refused here, with the construct named, rather than left to backtrack on a tag."""
    problem = regex_problem(value) if value is not None else None
    if problem:
        raise ValueError(problem)
    return value


Glob = Annotated[str | None, AfterValidator(_check_glob)]
Regex = Annotated[str | None, AfterValidator(_check_regex)]


def _selector_problem(values: Mapping[str, object], names: Sequence[str]) -> str | None:
    given = [name for name in names if values.get(name) is not None]
    if len(given) == 1:
        return None
    found = ", ".join(given) if given else "none"
    return f"needs exactly one of {', '.join(names)} (found {found})"


def _exactly_one(values: Mapping[str, object], names: Sequence[str]) -> None:
    problem = _selector_problem(values, names)
    if problem:
        raise ValueError(problem)


class _Strict(BaseModel):
    # strict: a YAML number or boolean where a string belongs is refused, not silently converted.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ImageSource(_Strict):
    repository: str
    account: AccountId | None = None
    region: RegionName | None = None
    tag: str | None = None
    tag_glob: Glob = None
    tag_regex: Regex = None
    semver: str | None = None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not 2 <= len(value) <= 256 or not _ECR_REPOSITORY.match(value):
            raise ValueError(f"{value!r} is not an ECR repository name")
        return value

    @field_validator("semver")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            SemverMatcher(value)  # raises ValueError with the reason
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> ImageSource:
        _exactly_one(self.__dict__, _IMAGE_SELECTORS)
        return self


class CodeSource(_Strict):
    provider: Literal["github", "bitbucket", "codecommit"]
    repository: str
    branch: str | None = None
    branch_glob: Glob = None
    account: AccountId | None = None
    region: RegionName | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CodeSource:
        _exactly_one(self.__dict__, _CODE_SELECTORS)
        if self.provider == "codecommit":
            if not _CODECOMMIT_REPOSITORY.match(self.repository):
                raise ValueError(f"repository {self.repository!r} is not a CodeCommit repository name")
        else:
            if not _HOSTED_REPOSITORY.match(self.repository):
                raise ValueError(f"repository {self.repository!r} is not owner/name")
            if self.account is not None or self.region is not None:
                raise ValueError(f"account and region apply to codecommit only, not {self.provider}")
        if self.branch is not None and not self.branch.strip():
            raise ValueError("branch is empty")
        return self


class Rule(_Strict):
    id: str
    service: str
    image: ImageSource | None = None
    code: CodeSource | None = None
    dry_run: bool = False
    gates: Gates | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _RULE_ID.match(value):
            raise ValueError("lowercase letters and digits, with inner '-' only")
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        ServiceArn.parse(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Rule:
        _exactly_one(self.__dict__, ("image", "code"))
        gates = self.gates
        if gates is not None and (gates.scan is not None or gates.after is not None):
            # The gate vouches for one digest; a tag or a branch names whatever it points to when App
            # Runner is called, which may be a later push the gate never saw.
            which = "scan" if gates.scan is not None else "after"
            if self.code is not None:
                raise ValueError(
                    f"gates.{which}: App Runner deploys a code service's branch head, whatever it is when "
                    "called; a scan or promotion gate needs a rule that pins the image: use an image rule"
                )
            if self.image is not None and self.image.tag is not None:
                raise ValueError(
                    f"gates.{which}: a `tag` rule deploys whatever the tag points to when App Runner is "
                    "called, not the digest the gate checked: use tag_glob, tag_regex or semver, which "
                    "pin the digest"
                )
        return self


@dataclass(frozen=True)
class CompiledRule:
    """A validated rule ready to decide: its source key, its matcher and what a match does."""

    rule: Rule
    service: ServiceArn
    key: SourceKey
    matcher: Matcher
    action: Action
    image_prefix: str | None  # `<registry>/<repository>` for image rules

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def is_semver(self) -> bool:
        return self.rule.image is not None and self.rule.image.semver is not None


def compile_rule(rule: Rule) -> CompiledRule:
    service = ServiceArn.parse(rule.service)
    if rule.image is not None:
        image = rule.image
        account, region = image.account or service.account, image.region or service.region
        matcher: Matcher
        action: Action
        if image.tag is not None:
            matcher, action = ExactMatcher("tag", image.tag), "start_deployment"
        elif image.tag_glob is not None:
            matcher, action = GlobMatcher("tag", image.tag_glob), "update_service"
        elif image.tag_regex is not None:
            matcher, action = RegexMatcher("tag", image.tag_regex), "update_service"
        else:
            matcher, action = SemverMatcher(image.semver or ""), "update_service"
        host = registry_host(account, region, service.partition)
        key = source_key("ecr", image.repository, account, region)
        return CompiledRule(rule, service, key, matcher, action, f"{host}/{image.repository}")
    code = rule.code
    assert code is not None  # guaranteed by Rule._one_source
    if code.branch is not None:
        matcher = ExactMatcher("branch", code.branch)
    else:
        matcher = GlobMatcher("branch", code.branch_glob or "")
    if code.provider == "codecommit":
        account, region = code.account or service.account, code.region or service.region
        key = source_key("codecommit", code.repository, account, region)
    else:
        key = source_key(code.provider, code.repository, None, None)
    return CompiledRule(rule, service, key, matcher, "start_deployment", None)


class RuleIndex:
    """Rules by the source they watch, so a change finds its rules in one lookup, never a scan."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules: tuple[CompiledRule, ...] = tuple(rules)
        self._by_key: dict[SourceKey, list[CompiledRule]] = {}
        for compiled in self.rules:
            self._by_key.setdefault(compiled.key, []).append(compiled)

    def watching(self, change: Change) -> Sequence[CompiledRule]:
        return self._by_key.get(change.key, ())

    def __len__(self) -> int:
        return len(self.rules)


# --- loading and validation -----------------------------------------------------------------------


def _describe_value(value: object) -> str:
    if isinstance(value, bool):
        return f"YAML read it as a boolean ({value}): quote the value"
    if isinstance(value, int | float):
        return f"YAML read it as a number ({value}): quote it as written"
    if value is None:
        return "it is empty"
    if isinstance(value, list):
        return "got a list"
    if isinstance(value, dict):
        return "got a mapping"
    return "got something else"


def _problem_text(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "string_type":
        return f"must be a string; {_describe_value(error['input'])}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "value_error":
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping (keys and values)"
    if kind == "list_type":
        return "must be a list"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    return error["msg"]


def _field_path(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location) or "rule"


def _rule_label(raw: object, position: int) -> str:
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(raw_id, str) and _RULE_ID.match(raw_id):
        return f"rule {raw_id}"
    return f"rules[{position}]"


def _validate_rule(raw: object, position: int) -> tuple[Rule | None, list[str]]:
    label = _rule_label(raw, position)
    if not isinstance(raw, dict):
        return None, [f"{label}: must be a mapping of rule fields"]
    try:
        return Rule.model_validate(raw), []
    except ValidationError as invalid:
        problems = [f"{label}: {_field_path(e['loc'])}: {_problem_text(e)}" for e in invalid.errors()]
    # Selector counts only run once fields validate; check them on the raw mapping too so that one
    # pass reports every problem.
    for path, problem in _raw_selector_problems(raw):
        line = f"{label}: {path}: {problem}"
        if line not in problems:
            problems.append(line)
    return None, problems


def _raw_selector_problems(raw: Mapping[str, object]) -> Iterable[tuple[str, str]]:
    checks: list[tuple[str, object, Sequence[str]]] = [
        ("rule", raw, ("image", "code")),
        ("image", raw.get("image"), _IMAGE_SELECTORS),
        ("code", raw.get("code"), _CODE_SELECTORS),
    ]
    for path, values, names in checks:
        if isinstance(values, Mapping):
            problem = _selector_problem(values, names)
            if problem:
                yield path, problem


def _duplicate_problems(raw_rules: Sequence[object]) -> list[str]:
    seen: set[str] = set()
    problems: list[str] = []
    for raw in raw_rules:
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(rule_id, str):
            if rule_id in seen:
                problems.append(f"rule {rule_id}: id: duplicate id")
            seen.add(rule_id)
    return problems


def validate_rules_document(document: object) -> list[Rule]:
    """Validate a parsed rules document whole. Raises RulesError listing every problem."""
    if not isinstance(document, dict):
        raise RulesError(["rules file: must be a mapping with `version: 1` and `rules:`"])
    problems = [f"rules file: {key}: unknown key" for key in document if key not in ("version", "rules")]
    version = document.get("version")
    if version is None:
        problems.append("rules file: version: required: write `version: 1`")
    elif version != 1 or isinstance(version, bool):
        problems.append(f"rules file: version: must be 1 (found {version!r})")
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list):
        raise RulesError([*problems, "rules file: rules: must be a list of rules"])
    rules: list[Rule] = []
    for position, raw in enumerate(raw_rules):
        rule, rule_problems = _validate_rule(raw, position)
        problems.extend(rule_problems)
        if rule is not None:
            rules.append(rule)
    problems.extend(_duplicate_problems(raw_rules))
    promotions = {
        rule.id: rule.gates.after.rule if rule.gates and rule.gates.after else None for rule in rules
    }
    problems.extend(promotion_problems(promotions))
    if problems:
        raise RulesError(problems)
    return rules


def parse_rules_text(text: str) -> list[Rule]:
    import yaml  # only the CLI reads YAML; keep it off the Lambda cold-start path

    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise RulesError([f"rules file: YAML error{line}: {problem}"]) from None
    return validate_rules_document(document)


def load_rules_file(path: str) -> list[Rule]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise RulesError([f"rules file: cannot read {path}: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise RulesError([f"rules file: {path} is not UTF-8 text"]) from None
    return parse_rules_text(text)


def build_index(rules: Iterable[Rule]) -> RuleIndex:
    return RuleIndex(compile_rule(rule) for rule in rules)
