"""`rules apply` checks each rule against its service as App Runner describes it (DESIGN 4.6), through the
CLI against moto and the App Runner simulator: each misconfiguration refuses the whole file with one line
per problem naming the rule; `--take-over` switches automatic services to manual through their queue.

Services in automatic deployment mode are created in the simulator itself (`AutoDeploymentsEnabled:
true` on CreateService, which it accepts as App Runner does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pushdeploy.local.services import code_source, image_source
from tests.integration.cli_stack import as_stack, run
from tests.integration.harness import ACCESS_ROLE, ACCOUNT, CONNECTION, REGION, REGISTRY, Cloud

MISSING = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/web-gone/{'f' * 32}"
CODECOMMIT = f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/app"


@pytest.fixture
def stack(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    return as_stack(cloud, monkeypatch)


def rules_file(directory: Path, *rules: dict[str, Any]) -> str:
    path = directory / "rules.yaml"
    path.write_text(json.dumps({"version": 1, "rules": list(rules)}), encoding="utf-8")  # JSON is YAML
    return str(path)


def image_rule(rule_id: str, service: str, **selector: str) -> dict[str, Any]:
    return {"id": rule_id, "service": service, "image": {"repository": "web", **selector}}


def code_rule(rule_id: str, service: str, provider: str, repository: str, **branch: str) -> dict[str, Any]:
    code = {"provider": provider, "repository": repository, **branch}
    return {"id": rule_id, "service": service, "code": code}


def installed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    status, out, _ = run(capsys, "rules", "list", "--json")
    assert status == 0
    return [rule["id"] for rule in json.loads(out)]


def automatic_image_service(cloud: Cloud, name: str, tag: str = "latest") -> str:
    source = image_source(f"{REGISTRY}/web:{tag}", ACCESS_ROLE, automatic=True)
    created = cloud.apprunner.create_service(ServiceName=name, SourceConfiguration=source)
    cloud.settle_operations()
    arn: str = created["Service"]["ServiceArn"]
    return arn


def automatic_code_service(cloud: Cloud, name: str, url: str, branch: str = "main") -> str:
    source = code_source(url, branch, CONNECTION, automatic=True)
    created = cloud.apprunner.create_service(ServiceName=name, SourceConfiguration=source)
    cloud.settle_operations()
    arn: str = created["Service"]["ServiceArn"]
    return arn


def auto_deployments(cloud: Cloud, service: str) -> bool:
    described = cloud.apprunner.describe_service(ServiceArn=service)["Service"]
    return bool(described["SourceConfiguration"].get("AutoDeploymentsEnabled"))


def refused(capsys: pytest.CaptureFixture[str], path: str, *options: str) -> list[str]:
    """Apply a file that must be refused: its error lines (nothing on stdout, nothing installed)."""
    before = installed(capsys)
    status, out, err = run(capsys, "rules", "apply", path, *options)
    assert status == 2, out + err
    assert out == ""
    assert "Traceback" not in err
    assert installed(capsys) == before
    lines = err.splitlines()
    assert all(line.startswith("error: rule ") for line in lines), lines
    return lines


# --- each refusal ----------------------------------------------------------------------------------


def test_a_service_that_does_not_exist_refuses_the_whole_file(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = stack.create_image_service("web-staging")
    path = rules_file(tmp_path, image_rule("web", good, tag="latest"), image_rule("gone", MISSING, tag="x"))
    (line,) = refused(capsys, path)
    assert line == (
        f"error: rule gone: service: no App Runner service {MISSING}: is the ARN right, and was the "
        "service created?"
    )


def test_a_deleted_service_is_refused(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = stack.create_image_service("web-old")
    stack.apprunner.delete_service(ServiceArn=service)
    stack.settle_operations()
    (line,) = refused(capsys, rules_file(tmp_path, image_rule("old", service, tag="latest")))
    assert line.startswith("error: rule old: service: ")
    assert "web-old" in line


def test_an_image_rule_on_a_code_service_and_a_code_rule_on_an_image_service(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = stack.create_code_service("api-svc", "https://github.com/acme/api", "main")
    image = stack.create_image_service("web-prod", tag="v1.0.0")
    path = rules_file(
        tmp_path,
        image_rule("image-on-code", code, semver=">=1.0.0"),
        code_rule("code-on-image", image, "github", "acme/api", branch="main"),
    )
    lines = refused(capsys, path)
    assert lines == [
        "error: rule image-on-code: image: api-svc deploys from code (https://github.com/acme/api, branch "
        "main): a rule for it needs a code source",
        f"error: rule code-on-image: code: web-prod runs an image ({REGISTRY}/web:v1.0.0): a rule for it "
        "needs an image source",
    ]


def test_a_service_in_automatic_deployment_mode_is_refused_without_take_over(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = automatic_image_service(stack, "web-auto")
    (line,) = refused(capsys, rules_file(tmp_path, image_rule("web-auto", service, tag="latest")))
    assert line.startswith("error: rule web-auto: service: web-auto is in automatic deployment mode")
    assert "--take-over" in line
    assert auto_deployments(stack, service)
    assert stack.calls("UpdateService") == []


def test_an_exact_tag_the_service_is_not_configured_with_is_refused(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: `tag: latest` on a service configured with web:v1.0.0 would record `succeeded`
    while the service still runs v1.0.0."""
    service = stack.create_image_service("web-prod", tag="v1.0.0")
    (line,) = refused(capsys, rules_file(tmp_path, image_rule("web-prod", service, tag="latest")))
    assert line == (
        "error: rule web-prod: image.tag: web-prod is configured with web:v1.0.0, not web:latest: a push of "
        "latest would redeploy v1.0.0 (use tag: v1.0.0, or tag_glob, tag_regex or semver to deploy the "
        "pushed digest)"
    )
    # The same service takes a rule that deploys the pushed digest, and the tag it is configured with.
    path = rules_file(tmp_path, image_rule("web-prod", service, semver=">=1.0.0"))
    assert run(capsys, "rules", "apply", path)[0] == 0
    path = rules_file(tmp_path, image_rule("web-prod", service, tag="v1.0.0"))
    assert run(capsys, "rules", "apply", path)[0] == 0


def test_an_exact_tag_rule_of_another_repository_or_a_pinned_digest_is_refused(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = stack.create_image_service("api-prod", repository="api")
    pinned = stack.create_image_service("web-pinned", tag="latest")
    source = stack.apprunner.describe_service(ServiceArn=pinned)["Service"]["SourceConfiguration"]
    source["ImageRepository"]["ImageIdentifier"] = f"{REGISTRY}/web@sha256:{'a' * 64}"
    stack.apprunner.update_service(ServiceArn=pinned, SourceConfiguration=source)
    stack.settle_operations()
    path = rules_file(
        tmp_path, image_rule("api", other, tag="latest"), image_rule("pinned", pinned, tag="latest")
    )
    first, second = refused(capsys, path)
    assert first.startswith(
        f"error: rule api: image.repository: api-prod is configured with {REGISTRY}/api:latest, not web "
        f"({ACCOUNT}, {REGION})"
    )
    assert second.startswith("error: rule pinned: image.tag: web-pinned is pinned to web@sha256:aaaa")


def test_a_code_rule_of_another_repository_or_branch_is_refused(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github = stack.create_code_service("api-svc", "https://github.com/acme/api", "main")
    bitbucket = stack.create_code_service("bb-svc", "https://bitbucket.org/acme/site", "release/2")
    codecommit = stack.create_code_service("cc-svc", CODECOMMIT, "main")
    path = rules_file(
        tmp_path,
        code_rule("other-repo", github, "github", "acme/web", branch="main"),
        code_rule("other-branch", github, "github", "acme/api", branch="develop"),
        code_rule("glob", bitbucket, "bitbucket", "acme/site", branch_glob="release/1*"),
        code_rule("provider", bitbucket, "github", "acme/site", branch="release/2"),
        code_rule("cc-name", codecommit, "codecommit", "App", branch="main"),
    )
    lines = refused(capsys, path)
    assert lines == [
        "error: rule other-repo: code.repository: api-svc deploys https://github.com/acme/api, not "
        "https://github.com/acme/web: a push to acme/web would redeploy the service's own repository",
        "error: rule other-branch: code.branch: api-svc deploys branch main, not develop: App Runner deploys "
        "the head of the service's branch, whatever was pushed",
        "error: rule glob: code.branch_glob: bb-svc deploys branch release/2, which release/1* does not "
        "match: App Runner deploys the head of the service's branch, whatever was pushed",
        "error: rule provider: code.repository: bb-svc deploys https://bitbucket.org/acme/site, not "
        "https://github.com/acme/site: a push to acme/site would redeploy the service's own repository",
        f"error: rule cc-name: code.repository: cc-svc deploys {CODECOMMIT}, not "
        f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/App: a push to App would redeploy the "
        "service's own repository",
    ]


def test_code_rules_that_fit_are_installed(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GitHub and Bitbucket names compare in any case (as those hosts do); a `.git` or `/` at the end of
    the service's URL is the same repository; a branch glob that matches the service's branch fits."""
    github = stack.create_code_service("api-svc", "https://github.com/Acme/API.git", "main")
    bitbucket = stack.create_code_service("bb-svc", "https://bitbucket.org/acme/site/", "release/2")
    codecommit = stack.create_code_service("cc-svc", CODECOMMIT, "main")
    path = rules_file(
        tmp_path,
        code_rule("api", github, "github", "acme/api", branch="main"),
        code_rule("site", bitbucket, "bitbucket", "ACME/Site", branch_glob="release/*"),
        code_rule("cc", codecommit, "codecommit", "app", branch="main"),
    )
    status, out, err = run(capsys, "rules", "apply", path)
    assert (status, err) == (0, "")
    assert "applied: 3 added" in out
    assert installed(capsys) == ["api", "cc", "site"]


def test_every_problem_of_every_rule_is_one_line_and_nothing_is_installed(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fine = stack.create_image_service("web-staging")
    code = stack.create_code_service("api-svc", "https://github.com/acme/api", "main")
    automatic = automatic_image_service(stack, "web-auto", tag="v2")
    path = rules_file(
        tmp_path,
        image_rule("fine", fine, tag="latest"),
        code_rule("code", code, "github", "acme/web", branch="dev"),
        image_rule("auto", automatic, tag="latest"),
        image_rule("gone", MISSING, semver="^1"),
    )
    lines = refused(capsys, path)
    assert [line.split(":")[1].strip() for line in lines] == [
        "rule code",
        "rule code",
        "rule auto",
        "rule auto",
        "rule gone",
    ]
    assert [line.split(": ")[2] for line in lines] == [
        "code.repository",
        "code.branch",
        "service",
        "image.tag",
        "service",
    ]


def test_a_dry_run_checks_too_and_changes_nothing(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = stack.create_image_service("web-prod", tag="v1.0.0")
    refused(capsys, rules_file(tmp_path, image_rule("web-prod", service, tag="latest")), "--dry-run")
    status, out, _ = run(
        capsys,
        "rules",
        "apply",
        rules_file(tmp_path, image_rule("web-prod", service, tag="v1.0.0")),
        "--dry-run",
    )
    assert status == 0
    assert out.splitlines() == [
        f"  + web-prod  {service}",
        "would apply: 1 added, 0 changed, 0 removed, 0 unchanged",
    ]
    assert installed(capsys) == []


# --- --take-over -----------------------------------------------------------------------------------


def test_take_over_switches_an_automatic_service_to_manual_through_its_queue(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = automatic_image_service(stack, "web-auto")
    code = automatic_code_service(stack, "api-auto", "https://github.com/acme/api")
    path = rules_file(
        tmp_path,
        image_rule("web", image, tag="latest"),
        image_rule("web-again", image, tag_glob="*"),  # one service, two rules: one take-over
        code_rule("api", code, "github", "acme/api", branch="main"),
    )

    status, out, _ = run(capsys, "rules", "apply", path, "--take-over", "--dry-run")
    assert status == 0
    assert "would take over web-auto: switch it to manual deployment, through its queue" in out
    assert "would take over api-auto" in out
    assert installed(capsys) == []
    assert stack.calls("UpdateService") == []

    status, out, err = run(capsys, "rules", "apply", path, "--take-over")
    assert (status, err) == (0, "")
    assert "applied: 3 added" in out
    assert installed(capsys) == ["api", "web", "web-again"]
    taking = [line for line in out.splitlines() if line.startswith("taking over ")]
    assert [line.split(":")[0] for line in taking] == ["taking over web-auto", "taking over api-auto"]

    for service in (image, code):
        (deployment,) = stack.deployments(service)
        assert deployment.trigger == "take-over"
        assert deployment.actor is not None
        assert deployment.actor.startswith("arn:aws:")
        assert deployment.id in out
        assert str(deployment.status) == "in_progress"
    updates = stack.calls("UpdateService")
    assert [u["SourceConfiguration"]["AutoDeploymentsEnabled"] for u in updates] == [False, False]

    stack.finish_operations()
    stack.finish_operations()
    for service in (image, code):
        assert not auto_deployments(stack, service)
        assert stack.statuses(service) == ["succeeded"]
    # Now in manual mode, the same file applies as it is, without --take-over.
    status, out, _ = run(capsys, "rules", "apply", path)
    assert (status, out.strip()) == (0, "no change: 3 rules already installed")


def test_take_over_does_not_excuse_the_other_problems(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = automatic_image_service(stack, "web-auto", tag="v2")
    (line,) = refused(capsys, rules_file(tmp_path, image_rule("web", service, tag="latest")), "--take-over")
    assert line.startswith("error: rule web: image.tag: web-auto is configured with web:v2, not web:latest")
    assert stack.calls("UpdateService") == []
    assert auto_deployments(stack, service)


# --- the diff and the empty file -------------------------------------------------------------------


def test_the_diff_shows_each_changed_field(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prod = stack.create_image_service("web-prod", tag="v1.0.0")
    staging = stack.create_image_service("web-staging")
    first = rules_file(
        tmp_path,
        image_rule("web-prod", prod, semver=">=1.0.0"),
        image_rule("web-staging", staging, tag="latest"),
    )
    assert run(capsys, "rules", "apply", first)[0] == 0
    second = rules_file(
        tmp_path,
        {**image_rule("web-prod", prod, tag_glob="v1.*"), "dry_run": True},
        image_rule("web-staging", staging, tag="latest"),
    )
    status, out, _ = run(capsys, "rules", "apply", second, "--dry-run")
    assert status == 0
    assert out.splitlines() == [
        "  ~ web-prod  image.tag_glob: (none) -> v1.*",
        "  ~ web-prod  dry_run: false -> true",
        "  ~ web-prod  image.semver: >=1.0.0 -> (none)",
        "would apply: 0 added, 1 changed, 0 removed, 1 unchanged",
    ]
    status, out, _ = run(capsys, "rules", "apply", second)
    assert out.splitlines()[-1] == "applied: 0 added, 1 changed, 0 removed, 1 unchanged"


def test_a_file_that_would_remove_every_rule_needs_allow_empty(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = stack.create_image_service("web-staging")
    assert (
        run(capsys, "rules", "apply", rules_file(tmp_path, image_rule("web", service, tag="latest")))[0] == 0
    )
    empty = rules_file(tmp_path)

    status, out, err = run(capsys, "rules", "apply", empty)
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        "error: rules file: rules: the file has no rules: applying it would remove all 1 installed rules; "
        "add --allow-empty to do that"
    ]
    assert installed(capsys) == ["web"]

    status, out, _ = run(capsys, "rules", "apply", empty, "--allow-empty")
    assert status == 0
    assert out.splitlines() == [f"  - web  {service}", "applied: 0 added, 0 changed, 1 removed, 0 unchanged"]
    assert installed(capsys) == []
    # With nothing installed, an empty file changes nothing and needs no option.
    assert run(capsys, "rules", "apply", empty)[1].strip() == "no change: 0 rules already installed"
