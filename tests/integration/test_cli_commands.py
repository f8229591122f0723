"""The CLI a person expects, against moto and the App Runner simulator with the real functions deciding:
`deployments list --service NAME --since DURATION`, `deployments show` (the change and its timeline),
`push-image` and `push-commit` saying when no rule watches the repository, `push-commit --json`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from pushdeploy import installation
from pushdeploy.cli import context
from pushdeploy.local import pushes, sending
from tests.integration.cli_stack import as_stack, run, run_json
from tests.integration.harness import ACCOUNT, REGION, TABLES, WEBHOOK_SECRETS, Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 20)]
UNKNOWN = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/nowhere/{'e' * 32}"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def stack(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    return as_stack(cloud, monkeypatch)


@pytest.fixture
def services(stack: Cloud) -> dict[str, str]:
    """web-prod on a semver rule, web-staging on a tag rule, api-svc on a GitHub rule."""
    prod = stack.create_image_service("web-prod", tag="v1.0.0")
    staging = stack.create_image_service("web-staging")
    api = stack.create_code_service("api-svc", "https://github.com/acme/api", "main")
    stack.apply_rules(
        [
            {"id": "web-prod", "service": prod, "image": {"repository": "web", "semver": ">=1.0.0"}},
            {"id": "web-staging", "service": staging, "image": {"repository": "web", "tag": "latest"}},
            {
                "id": "api",
                "service": api,
                "code": {"provider": "github", "repository": "acme/api", "branch": "main"},
            },
        ]
    )
    return {"prod": prod, "staging": staging, "api": api}


@pytest.fixture
def local(stack: Cloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    """`--local` acts on the test cloud too, as a local cloud of account ACCOUNT; webhook deliveries go to
    the webhook function."""
    outputs = {
        "LedgerTableName": TABLES["LedgerTable"],
        "RulesTableName": TABLES["RulesTable"],
        "WebhookUrl": "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/",
        "GitHubWebhookSecretArn": stack.webhook_secret_arns["github"],
        "BitbucketWebhookSecretArn": stack.webhook_secret_arns["bitbucket"],
    }
    target = installation.Target(
        outputs=outputs, region=REGION, local=True, description="the test cloud", extra={"account": ACCOUNT}
    )
    monkeypatch.setattr(context, "load_local", lambda state_dir: target)

    def post(url: str, delivery: pushes.Delivery) -> tuple[int, str]:
        answer = stack.webhook(urlsplit(url).path, delivery.body, delivery.headers)
        return int(answer["statusCode"]), str(answer["body"])

    monkeypatch.setattr(sending, "post", post)
    return stack


# --- deployments list --------------------------------------------------------------------------------


def test_list_takes_a_service_name(
    stack: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.1.0", DIGESTS[0])
    stack.push_image("latest", DIGESTS[1])
    status, listed, _ = run_json(capsys, "deployments", "list", "--service", "web-prod", "--json")
    assert status == 0
    assert [(d["service"], d["tag"]) for d in listed] == [(services["prod"], "v1.1.0")]
    status, out, _ = run(capsys, "deployments", "list", "--service", "web-staging")
    assert status == 0
    assert out.splitlines()[0].split() == ["CREATED", "STATUS", "RULE", "SERVICE", "WHAT", "ID"]
    assert "web-staging" in out.splitlines()[1]


def test_list_says_when_the_service_matches_none(
    stack: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "deployments", "list", "--service", "nope")
    assert (status, out) == (1, "")
    assert err == "error: no known service is named nope: give its ARN, or apply a rule that names it\n"

    status, out, err = run(capsys, "deployments", "list", "--service", UNKNOWN, "--json")
    assert (status, out) == (1, "")
    assert err.startswith(f"error: no known service {UNKNOWN}: no rule names it and pushdeploy never")
    assert err.count("\n") == 1

    # A service a rule names, with no deployment yet: that is "no deployments", and of which.
    status, out, _ = run(capsys, "deployments", "list", "--service", "api-svc")
    assert (status, out) == (0, "no deployments of api-svc\n")
    status, listed, _ = run_json(capsys, "deployments", "list", "--service", services["api"], "--json")
    assert (status, listed) == (0, [])


def test_list_since_a_duration(
    stack: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.1.0", DIGESTS[2])
    stack.finish_operations()
    stack.advance(3 * 3600)
    stack.push_image("v1.2.0", DIGESTS[3])

    def tags(*options: str) -> list[str]:
        status, listed, err = run_json(capsys, "deployments", "list", *options, "--json")
        assert status == 0, err
        return [d["tag"] for d in listed]

    assert tags("--since", "1h") == ["v1.2.0"]
    assert tags("--since", "4h") == ["v1.2.0", "v1.1.0"]
    assert tags("--since", "4h", "--limit", "1") == ["v1.2.0"]
    assert tags("--since", "1h", "--service", "web-prod") == ["v1.2.0"]
    assert tags("--since", "4h", "--status", "succeeded") == ["v1.1.0"]
    assert tags("--since", "1d", "--service", "web-prod", "--status", "in_progress") == ["v1.2.0"]

    stack.advance(2 * 3600)
    status, out, _ = run(capsys, "deployments", "list", "--since", "1h")
    assert (status, out) == (0, "no deployments in the last 1h\n")
    status, out, _ = run(capsys, "deployments", "list", "--since", "90m", "--status", "failed")
    assert out == "no deployments with status failed in the last 90m\n"


# --- deployments show --------------------------------------------------------------------------------


def test_show_an_image_deployment_with_its_change_and_timeline(
    stack: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack.push_image("v1.1.0", DIGESTS[4])
    stack.advance(5)
    stack.finish_operations()
    (deployment,) = stack.deployments(services["prod"])

    status, out, _ = run(capsys, "deployments", "show", deployment.id)
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"deployment  {deployment.id}"
    assert f"service     web-prod  {services['prod']}" in lines
    assert "status      succeeded" in [line.split("  (")[0] for line in lines]
    assert f"change      ecr web ({ACCOUNT}, {REGION})  tag v1.1.0  digest {DIGESTS[4]}" in lines, out
    assert "decisions" in lines
    assert "  web-prod: update_service: tag v1.1.0 is in semver range >=1.0.0" in lines
    timeline = lines[lines.index("timeline") + 1 : lines.index("decisions")]
    assert [line.split()[0] for line in timeline] == ["pushed", "decided", "started", "settled", "total"]
    assert all(ISO_UTC.match(line.split()[1]) for line in timeline[:4])
    assert all(re.fullmatch(r"\+\d+(ms|s|m\d\ds)", line.split()[2]) for line in timeline[1:4])
    assert re.fullmatch(r"\d+(ms|s|m\d\ds)", timeline[4].split()[1])

    status, shown, _ = run_json(capsys, "deployments", "show", deployment.id, "--json")
    assert status == 0
    assert shown["change"]["digest"] == DIGESTS[4]
    assert shown["change"]["repository"] == "web"
    timeline_json = shown["timeline"]
    assert list(timeline_json) == ["pushed", "decided", "started", "settled", "seconds"]
    assert all(ISO_UTC.match(timeline_json[name]) for name in ("pushed", "decided", "started", "settled"))
    seconds = timeline_json["seconds"]
    assert list(seconds) == ["pushed_to_decided", "decided_to_started", "started_to_settled", "total"]
    assert seconds["started_to_settled"] >= 5
    assert seconds["total"] == pytest.approx(
        seconds["pushed_to_decided"] + seconds["decided_to_started"] + seconds["started_to_settled"], abs=0.01
    )


def test_show_a_code_deployment_in_flight(
    stack: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    commit = "c0ffee" + "0" * 34
    delivery = pushes.github_push("acme/api", "main", commit, WEBHOOK_SECRETS["github"])
    assert stack.webhook("/github", delivery.body, delivery.headers)["statusCode"] == 202
    (event,) = stack.forwarded()
    stack.invoke("commit_pushed", event)
    (deployment,) = stack.deployments(services["api"])
    status, out, _ = run(capsys, "deployments", "show", deployment.id)
    assert status == 0
    lines = out.splitlines()
    assert f"change      github acme/api  branch main  commit {commit}" in lines
    assert "  settled   not yet" in lines
    assert [line.split()[0] for line in lines[lines.index("timeline") + 1 :][:4]] == [
        "pushed",
        "decided",
        "started",
        "settled",
    ]


def test_show_an_operators_deployment(
    stack: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, deployed, _ = run_json(capsys, "deploy", "web-staging", "--reason", "restart", "--json")
    assert status == 0
    status, out, _ = run(capsys, "deployments", "show", deployed["id"])
    assert status == 0
    lines = out.splitlines()
    assert "action      start_deployment  (rule -, trigger manual)" in lines
    assert any(line.startswith("actor       arn:aws:") for line in lines)
    assert any(line.startswith("  asked     ") for line in lines)
    assert "  settled   not yet" in lines
    assert "None" not in out


# --- push-image and push-commit ------------------------------------------------------------------------


def said(err: str) -> list[str]:
    """What the CLI said on stderr (the in-process webhook's logging may complain there too: its handler
    keeps the stream of the test that first created it)."""
    return [line for line in err.splitlines() if line.startswith(("error:", "note:", "warning:"))]


def test_push_image_says_when_no_rule_watches_the_repository(
    local: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "--local", "push-image", "orphan:v1")
    assert status == 0
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    assert err == (
        f"note: no rule watches ECR repository orphan ({ACCOUNT}, {REGION}): nothing will deploy this push "
        "(`pushdeploy rules list` shows the rules)\n"
    )

    status, out, err = run(capsys, "push-image", "web:v1.3.0", "--local")
    assert (status, err) == (0, "")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)

    status, shown, err = run_json(capsys, "--local", "push-image", "orphan:v2", "--json")
    assert (status, err) == (0, "")
    assert shown["watched_by"] == []
    status, shown, _ = run_json(capsys, "--local", "push-image", "web:v1.4.0", "--json")
    assert (shown["repository"], shown["tag"], shown["watched_by"]) == (
        "web",
        "v1.4.0",
        ["web-prod", "web-staging"],
    )


def test_push_commit_json_is_one_object_with_the_webhooks_answer_as_an_object(
    local: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, shown, err = run_json(capsys, "--local", "push-commit", "github", "acme/api", "main", "--json")
    assert status == 0
    assert not said(err)
    assert isinstance(shown, dict)
    assert (shown["provider"], shown["repository"], shown["branch"], shown["status"]) == (
        "github",
        "acme/api",
        "main",
        202,
    )
    assert isinstance(shown["answer"], dict)
    assert shown["answer"]["message"] == "forwarded 1 of 1 changes"

    status, out, _ = run(capsys, "--local", "push-commit", "github", "acme/nothing", "main")
    assert status == 0
    commit, answer = out.splitlines()[-2:]  # after the in-process webhook's log lines
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert answer == "HTTP 202 no rule watches github acme/nothing"


def test_push_commit_codecommit_says_when_no_rule_watches(
    local: Cloud, services: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, shown, err = run_json(capsys, "--local", "push-commit", "codecommit", "app", "main", "--json")
    assert status == 0
    assert not said(err)
    assert (shown["provider"], shown["repository"], shown["watched_by"]) == ("codecommit", "app", [])
    status, out, err = run(capsys, "--local", "push-commit", "codecommit", "app", "main", "abc123")
    assert (status, out) == (0, "abc123\n")
    assert err.startswith(f"note: no rule watches CodeCommit repository app ({ACCOUNT}, {REGION})")
