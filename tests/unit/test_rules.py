"""Rules file v1: a valid file loads; an invalid one is refused whole, one line per problem."""

from __future__ import annotations

import fnmatch
import json
import textwrap

import pytest
from pydantic import ValidationError

from pushdeploy.domain.changes import Change
from pushdeploy.domain.rules import Rule, build_index, load_rules_file, parse_rules_text
from pushdeploy.errors import RulesError
from tests.conftest import DIGEST, EXAMPLE_RULES, WEB_PROD

OTHER_ACCOUNT = "444455556666"


def rules_yaml(body: str) -> str:
    return "version: 1\nrules:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def problems_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as refused:
        parse_rules_text(text)
    return list(refused.value.problems)


def image_change(repository: str = "web", account: str = "111122223333", region: str = "us-east-1") -> Change:
    return Change(
        kind="image",
        source="ecr",
        account=account,
        region=region,
        repository=repository,
        tag="v1",
        digest=DIGEST,
    )


def test_the_example_rules_file_is_valid() -> None:
    rules = load_rules_file(str(EXAMPLE_RULES))
    assert [rule.id for rule in rules][:2] == ["web-prod", "web-staging"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, tag: x, colour: red}}\n",
            "rule a1: image.colour: unknown key",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web}}\n",
            "rule a1: image: needs exactly one of tag, tag_glob, tag_regex, semver (found none)",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, tag: x, semver: '>=1.0.0'}}\n",
            "rule a1: image: needs exactly one of tag, tag_glob, tag_regex, semver (found tag, semver)",
        ),
        (
            "- id: a1\n  service: arn:aws:apprunner:us-east-1:111122223333:service/web/xyz\n"
            "  image: {repository: web, tag: x}\n",
            "rule a1: service: not an App Runner service ARN",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, tag: x, account: '1234'}}\n",
            "rule a1: image.account: account id '1234' is not 12 digits",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, tag_regex: 'v(\\d+'}}\n",
            "rule a1: image.tag_regex: invalid regex",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, semver: '>=1.2'}}\n",
            "rule a1: image.semver: '1.2' is not a full semantic version",
        ),
        (
            f"- id: Web_Prod\n  service: {WEB_PROD}\n  image: {{repository: web, tag: x}}\n",
            "rules[0]: id: lowercase letters and digits",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n",
            "rule a1: rule: needs exactly one of image, code (found none)",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n  code: {{provider: gitlab, repository: a/b, branch: main}}\n",
            "rule a1: code.provider:",
        ),
        (
            f"- id: a1\n  service: {WEB_PROD}\n  code: {{provider: github, repository: a/b, branch: m, "
            "region: us-east-1}\n",
            "rule a1: code: account and region apply to codecommit only",
        ),
    ],
)
def test_each_kind_of_mistake_is_named_with_rule_and_field(body: str, expected: str) -> None:
    problems = problems_of(rules_yaml(body))
    assert any(problem.startswith(expected) for problem in problems), problems


@pytest.mark.parametrize(
    ("value", "field", "hint"),
    [
        ("111122223333", "image.account", "as a number (111122223333): quote it"),
        ("1.10", "image.tag", "as a number (1.1): quote it"),
        ("on", "code.branch", "as a boolean (True): quote the value"),
    ],
)
def test_yaml_non_strings_are_refused_with_a_hint_to_quote(value: str, field: str, hint: str) -> None:
    if field.startswith("code"):
        code = f"{{provider: github, repository: a/b, branch: {value}}}"
        body = f"- id: a1\n  service: {WEB_PROD}\n  code: {code}\n"
    else:
        key = field.split(".")[1]
        extra = "" if key == "tag" else ", tag: x"
        body = f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, {key}: {value}{extra}}}\n"
    problems = problems_of(rules_yaml(body))
    assert len(problems) == 1
    assert problems[0].startswith(f"rule a1: {field}: must be a string; YAML read it {hint}")


def test_several_problems_are_all_reported_at_once() -> None:
    text = "version: 2\nextra: true\nrules:\n" + textwrap.indent(
        textwrap.dedent(f"""\
        - id: web-prod
          service: {WEB_PROD}
          image: {{repository: web, tag: x}}
        - id: web-prod
          service: {WEB_PROD}
          image: {{repository: web, tag_regex: '('}}
        - id: api
          service: not-an-arn
          code: {{provider: codecommit, repository: api}}
        """),
        "  ",
    )
    problems = problems_of(text)
    assert "rules file: extra: unknown key" in problems
    assert "rules file: version: must be 1 (found 2)" in problems
    assert "rule web-prod: id: duplicate id" in problems
    assert any(p.startswith("rule web-prod: image.tag_regex: invalid regex") for p in problems)
    assert any(p.startswith("rule api: service: not an App Runner service ARN") for p in problems)
    assert "rule api: code: needs exactly one of branch, branch_glob (found none)" in problems


def test_broken_yaml_is_one_problem_with_its_line() -> None:
    problems = problems_of("version: 1\nrules:\n  - id: [unclosed\n")
    assert len(problems) == 1
    assert problems[0].startswith("rules file: YAML error at line")


def test_missing_file_is_a_rules_error(tmp_path: object) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules_file("/nonexistent/rules.yaml")


def test_account_and_region_default_to_the_service_arn() -> None:
    index = build_index(
        parse_rules_text(
            rules_yaml(f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, tag: x}}\n")
        )
    )
    assert [rule.id for rule in index.watching(image_change())] == ["a1"]
    assert index.watching(image_change(account=OTHER_ACCOUNT)) == ()
    assert index.watching(image_change(region="eu-west-1")) == ()


def test_a_rule_naming_another_account_watches_only_that_account() -> None:
    index = build_index(
        parse_rules_text(
            rules_yaml(
                f"- id: a1\n  service: {WEB_PROD}\n"
                f"  image: {{repository: web, tag: x, account: '{OTHER_ACCOUNT}', region: eu-west-1}}\n"
            )
        )
    )
    assert index.watching(image_change()) == ()
    assert [r.id for r in index.watching(image_change(account=OTHER_ACCOUNT, region="eu-west-1"))] == ["a1"]


def test_hosted_repository_names_compare_case_insensitively_and_ecr_names_exactly() -> None:
    index = build_index(load_rules_file(str(EXAMPLE_RULES)))
    github = Change(
        kind="commit", source="github", repository="Codertocat/Hello-World", branch="master", commit="a" * 40
    )
    assert [rule.id for rule in index.watching(github)] == ["hello-github"]
    assert index.watching(image_change(repository="Web")) == ()


def test_registry_host_follows_the_partition() -> None:
    arn = "arn:aws-cn:apprunner:cn-north-1:111122223333:service/web-cn/0123456789abcdef0123456789abcdef"
    index = build_index(
        parse_rules_text(
            rules_yaml(f"- id: cn\n  service: {arn}\n  image: {{repository: web, tag_glob: '*'}}\n")
        )
    )
    assert index.rules[0].image_prefix == "111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn/web"


LINEAR_TIME = "pushdeploy matches tags in linear time (RE2 syntax)"


@pytest.mark.parametrize(
    ("regex", "sentence"),
    [
        (r"^v\d+(?=-rc)", "lookaround and backreferences are not supported"),
        (r"^(?!dev-)v\d+$", "lookaround and backreferences are not supported"),
        (r"(?<=v)\d+", "lookaround and backreferences are not supported"),
        (r"^(\d+)\.\1$", "lookaround and backreferences are not supported"),
        (r"^v\d++$", "possessive quantifiers (++, *+, ?+, {n}+) are not supported"),
        (r"^(?>v\d+)$", "atomic groups (?>...) are not supported"),
    ],
)
def test_a_regex_re2_cannot_run_is_refused_with_one_clear_line(regex: str, sentence: str) -> None:
    body = f"- id: web-prod\n  service: {WEB_PROD}\n  image:\n    repository: web\n    tag_regex: '{regex}'\n"
    assert problems_of(rules_yaml(body)) == [f"rule web-prod: image.tag_regex: {sentence}: {LINEAR_TIME}"]


def test_a_regex_that_backtracks_catastrophically_elsewhere_is_valid() -> None:
    body = (
        f"- id: web-prod\n  service: {WEB_PROD}\n  image: {{repository: web, tag_regex: '^v(\\d+\\.?)+$'}}\n"
    )
    (rule,) = parse_rules_text(rules_yaml(body))
    assert rule.image is not None
    assert rule.image.tag_regex == r"^v(\d+\.?)+$"


def test_unsupported_and_invalid_regexes_are_reported_with_every_other_problem() -> None:
    text = rules_yaml(f"""\
        - id: web-prod
          service: {WEB_PROD}
          image: {{repository: web, tag_regex: '(?<!rc)$'}}
        - id: web-staging
          service: {WEB_PROD}
          image: {{repository: web, tag_regex: 'v(\\d+'}}
        - id: api
          service: {WEB_PROD}
          code: {{provider: github, repository: a/b, branch_glob: 'release/*', branch: main}}
        """)
    assert problems_of(text) == [
        f"rule web-prod: image.tag_regex: lookaround and backreferences are not supported: {LINEAR_TIME}",
        "rule web-staging: image.tag_regex: invalid regex: missing ): v(\\d+",
        "rule api: code: needs exactly one of branch, branch_glob (found branch, branch_glob)",
    ]


@pytest.mark.parametrize("glob", ["release/*", "[!a-z]*", "release/?", "a[b", "[z-a]", "(?=x)", "**/\\1"])
def test_any_glob_is_valid_and_keeps_its_shell_meaning(glob: str) -> None:
    code = f"{{provider: github, repository: a/b, branch_glob: '{glob}'}}"
    index = build_index(parse_rules_text(rules_yaml(f"- id: a1\n  service: {WEB_PROD}\n  code: {code}\n")))
    for branch in ("release/1", "a[b", "(?=x)", "x/\\1"):
        assert index.rules[0].matcher.match(branch)[0] is fnmatch.fnmatchcase(branch, glob)


def test_stored_rules_are_checked_when_read_back_too() -> None:
    # The functions read rules back from the table with Rule.model_validate_json: the same check applies.
    stored = json.dumps(
        {"id": "web-prod", "service": WEB_PROD, "image": {"repository": "web", "tag_regex": "(?=v)v1"}}
    )
    with pytest.raises(ValidationError, match="lookaround and backreferences are not supported"):
        Rule.model_validate_json(stored)


@pytest.mark.parametrize(
    "semver_range",
    [
        "^1.2.0",
        "^0.2.3",
        "^0.0.3",
        "^1.2",
        "^1",
        "^v1.2.0",
        "~1.2.3",
        "~1.2",
        "~1",
        "1.x",
        "1.2.*",
        "*",
        "1.X",
        "1.2",
        "1.2.0 - 1.4.0",
        "1.2 - 1.4",
        ">=1.2.0 <1.5.0 || ^2.0.0",
        ">=1.2.0,<2.0.0",
    ],
)
def test_npm_style_semver_ranges_are_valid(semver_range: str) -> None:
    text = rules_yaml(
        f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, semver: '{semver_range}'}}\n"
    )
    (rule,) = parse_rules_text(text)
    assert rule.image is not None
    assert rule.image.semver == semver_range  # kept as written: reasons quote it


@pytest.mark.parametrize(
    ("semver_range", "problem"),
    [
        ("^1.2.x.5", "'^1.2.x.5' is not a version or range"),
        ("~1.2.3.4", "'~1.2.3.4' is not a version or range"),
        ("1.x ||", "empty alternative in semver range '1.x ||': write a range on each side of ||"),
        (
            "1.2.0 - 1.4.0 <1.3.0",
            "'1.2.0 - 1.4.0 <1.3.0' is not a hyphen range: write LOW - HIGH, alone between ||",
        ),
        (">1.2 || ^2", "'1.2' is not a full semantic version"),
        ("1.x.2", "'1.x.2' is not a version or range: a number follows a wildcard"),
    ],
)
def test_invalid_npm_style_ranges_are_one_line_naming_rule_and_field(semver_range: str, problem: str) -> None:
    text = rules_yaml(
        f"- id: a1\n  service: {WEB_PROD}\n  image: {{repository: web, semver: '{semver_range}'}}\n"
    )
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith(f"rule a1: image.semver: {problem}"), problems
    assert "\n" not in problems[0]
