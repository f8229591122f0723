"""`rules apply`'s service checks and field diff, on ServiceViews as DescribeService would give them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pushdeploy.adapters.apprunner import ServiceView, TargetGone
from pushdeploy.cli.deployments_cmd import _duration
from pushdeploy.cli.rules_cmd import check_services, expected_repository_url, field_changes, same_repository
from pushdeploy.domain.rules import Rule

ARN = "arn:aws:apprunner:us-east-1:111122223333:service/web-prod/0123456789abcdef0123456789abcdef"
CN_ARN = "arn:aws-cn:apprunner:cn-north-1:111122223333:service/web-cn/0123456789abcdef0123456789abcdef"
REGISTRY = "111122223333.dkr.ecr.us-east-1.amazonaws.com"


def rule(service: str = ARN, **source: Any) -> Rule:
    return Rule.model_validate({"id": "web", "service": service, **source})


def image_view(identifier: str, *, auto: bool = False, status: str = "RUNNING") -> ServiceView:
    return ServiceView(status=status, configured=identifier, auto_deployments=auto, image=identifier)


def code_view(url: str, branch: str, *, auto: bool = False) -> ServiceView:
    return ServiceView(
        status="RUNNING",
        configured=f"{url}#{branch}",
        auto_deployments=auto,
        repository_url=url,
        branch=branch,
    )


def problems(view: ServiceView, *rules: Rule, take_over: bool = False) -> list[str]:
    return check_services(rules, lambda arn: view, take_over=take_over).problems


@pytest.mark.parametrize(
    ("identifier", "tag", "fits"),
    [
        (f"{REGISTRY}/web:latest", "latest", True),
        (f"{REGISTRY}/web", "latest", True),  # no tag means latest
        (f"{REGISTRY}/web:v1", "latest", False),
        (f"{REGISTRY}/team/web:v1", "v1", False),  # another repository
        ("222233334444.dkr.ecr.us-east-1.amazonaws.com/web:v1", "v1", False),  # another account
        (f"{REGISTRY}/web@sha256:{'0' * 64}", "latest", False),
        ("public.ecr.aws/acme/web:latest", "latest", False),
    ],
)
def test_an_exact_tag_rule_fits_only_the_tag_the_service_is_configured_with(
    identifier: str, tag: str, fits: bool
) -> None:
    found = problems(image_view(identifier), rule(image={"repository": "web", "tag": tag}))
    assert (found == []) is fits, found


def test_other_image_selectors_do_not_look_at_the_configured_tag() -> None:
    view = image_view(f"{REGISTRY}/api:v9")
    for selector in ({"semver": "^1"}, {"tag_glob": "v*"}, {"tag_regex": "^v.*$"}):
        assert problems(view, rule(image={"repository": "web", **selector})) == []


def test_a_service_that_never_came_up_or_is_gone() -> None:
    gone = problems(
        image_view(f"{REGISTRY}/web:latest", status="CREATE_FAILED"),
        rule(image={"repository": "web", "tag": "latest"}),
    )
    assert gone == [
        "rule web: service: the App Runner service web-prod is CREATE_FAILED: it will never deploy again"
    ]

    def missing(arn: str) -> ServiceView:
        raise TargetGone("DescribeService: ResourceNotFoundException")

    checked = check_services([rule(image={"repository": "web", "tag": "x"})], missing)
    assert checked.problems == [
        f"rule web: service: no App Runner service {ARN}: is the ARN right, and was the service created?"
    ]


def test_each_service_is_described_once() -> None:
    described: list[str] = []

    def describe(arn: str) -> ServiceView:
        described.append(arn)
        return image_view(f"{REGISTRY}/web:latest", auto=True)

    first = rule(image={"repository": "web", "tag": "latest"})
    second = first.model_copy(update={"id": "web-two"})
    checked = check_services([first, second], describe, take_over=True)
    assert described == [ARN]
    assert (checked.problems, checked.automatic) == ([], [ARN])


@pytest.mark.parametrize(
    ("provider", "repository", "url", "same"),
    [
        ("github", "acme/web", "https://github.com/acme/web", True),
        ("github", "Acme/Web", "https://github.com/acme/web.git", True),
        ("github", "acme/web", "https://GitHub.com/ACME/web/", True),
        ("github", "acme/web", "https://github.com/acme/web-2", False),
        ("bitbucket", "acme/web", "https://bitbucket.org/Acme/Web", True),
        ("bitbucket", "acme/web", "https://github.com/acme/web", False),
        ("codecommit", "app", "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app", True),
        ("codecommit", "app", "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/App", False),
        ("codecommit", "app", "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/app", False),
    ],
)
def test_code_repositories_compare_as_their_hosts_do(
    provider: str, repository: str, url: str, same: bool
) -> None:
    code = rule(code={"provider": provider, "repository": repository, "branch": "main"})
    assert same_repository(url, expected_repository_url(code), provider) is same
    assert (problems(code_view(url, "main"), code) == []) is same


def test_codecommit_urls_follow_the_rules_region_and_partition() -> None:
    code = {"provider": "codecommit", "repository": "app", "branch": "main"}
    assert expected_repository_url(rule(CN_ARN, code=code)) == (
        "https://git-codecommit.cn-north-1.amazonaws.com.cn/v1/repos/app"
    )
    assert expected_repository_url(rule(code={**code, "region": "eu-west-1"})) == (
        "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/app"
    )


def test_automatic_mode_is_a_problem_unless_taken_over() -> None:
    view = code_view("https://github.com/acme/web", "main", auto=True)
    code = rule(code={"provider": "github", "repository": "acme/web", "branch_glob": "ma*"})
    (problem,) = problems(view, code)
    assert problem.startswith("rule web: service: web-prod is in automatic deployment mode")
    assert problems(view, code, take_over=True) == []


def test_field_changes_name_each_field() -> None:
    old = rule(image={"repository": "web", "tag": "latest"})
    new = rule(image={"repository": "web", "tag": "stable"})
    assert field_changes(old, new) == ["image.tag: latest -> stable"]
    code = rule(code={"provider": "github", "repository": "acme/web", "branch": "main"}, dry_run=True)
    assert field_changes(old, code) == [
        "code.provider: (none) -> github",
        "code.repository: (none) -> acme/web",
        "code.branch: (none) -> main",
        "dry_run: false -> true",
        "image.repository: web -> (none)",
        "image.tag: latest -> (none)",
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.25, "250ms"), (12, "12s"), (65, "1m05s"), (3720, "1h02m"), (-3, "-3s")],
)
def test_durations(seconds: float, shown: str) -> None:
    assert _duration(timedelta(seconds=seconds)) == shown
