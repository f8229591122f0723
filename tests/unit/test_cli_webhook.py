"""`pushdeploy webhook url|secret`: what a user pastes into GitHub or Bitbucket, read from the outputs
(here a local cloud's state file) and Secrets Manager (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pushdeploy.cli.main import main
from pushdeploy.cli.webhook_cmd import webhook_url

BASE = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/"
SECRETS = {"github": "GitHubSecret0123456789abcdefghijklmnopqrs", "bitbucket": "BitbucketSecret0123456789"}


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A local cloud's state file naming the webhook's outputs, with the secrets in moto."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arns = {p: client.create_secret(Name=f"w/{p}", SecretString=v)["ARN"] for p, v in SECRETS.items()}
        outputs = {
            "WebhookUrl": BASE,
            "GitHubWebhookSecretArn": arns["github"],
            "BitbucketWebhookSecretArn": arns["bitbucket"],
            "PreviousSecretHours": "24",
        }
        state = {"outputs": outputs, "region": "us-east-1", "endpoints": {}}
        (tmp_path / "local.json").write_text(json.dumps(state))
        yield tmp_path


def run(capsys: pytest.CaptureFixture[str], state_dir: Path, *args: str) -> tuple[int, str, str]:
    status = main(["--local", "--state-dir", str(state_dir), "webhook", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (BASE, f"{BASE}github"),
        (BASE.rstrip("/"), f"{BASE}github"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/github"),
    ],
)
def test_the_url_joins_without_doubling_the_slash(base: str, expected: str) -> None:
    assert webhook_url(base, "github") == expected


def test_url_for_one_provider_prints_only_the_url(
    capsys: pytest.CaptureFixture[str], state_dir: Path
) -> None:
    assert run(capsys, state_dir, "url", "bitbucket") == (0, f"{BASE}bitbucket\n", "")


def test_url_without_a_provider_prints_both(capsys: pytest.CaptureFixture[str], state_dir: Path) -> None:
    status, out, _ = run(capsys, state_dir, "url")
    assert status == 0
    assert out.splitlines() == [f"github     {BASE}github", f"bitbucket  {BASE}bitbucket"]


@pytest.mark.parametrize("provider", ["github", "bitbucket"])
def test_secret_prints_the_current_value(
    capsys: pytest.CaptureFixture[str], state_dir: Path, provider: str
) -> None:
    assert run(capsys, state_dir, "secret", provider) == (0, SECRETS[provider] + "\n", "")


def test_secret_after_a_rotation_prints_the_new_value(
    capsys: pytest.CaptureFixture[str], state_dir: Path
) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    client.put_secret_value(SecretId="w/github", SecretString="rotated")
    assert run(capsys, state_dir, "secret", "github")[1] == "rotated\n"


def test_a_missing_secret_is_a_one_line_error(capsys: pytest.CaptureFixture[str], state_dir: Path) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId="w/github", ForceDeleteWithoutRecovery=True
    )
    status, out, err = run(capsys, state_dir, "secret", "github")
    assert (status, out) == (1, "")
    assert err.startswith("error: cannot read the github webhook secret")
    assert len(err.splitlines()) == 1


def test_an_older_stack_without_the_webhook_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "local.json").write_text(json.dumps({"outputs": {}, "region": "us-east-1"}))
    status, _, err = run(capsys, tmp_path, "url")
    assert status == 1
    assert "no output WebhookUrl" in err


def test_the_provider_must_be_github_or_bitbucket(
    capsys: pytest.CaptureFixture[str], state_dir: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(capsys, state_dir, "secret", "gitlab")
    assert exited.value.code == 2


def _stages(provider: str) -> dict[str, str]:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    versions = client.list_secret_version_ids(SecretId=f"w/{provider}")["Versions"]
    values = {}
    for version in versions:
        for stage in version["VersionStages"]:
            found = client.get_secret_value(SecretId=f"w/{provider}", VersionStage=stage)
            values[stage] = found["SecretString"]
    return values


def test_rotate_prints_a_new_secret_and_until_when_the_old_one_is_accepted(
    capsys: pytest.CaptureFixture[str], state_dir: Path
) -> None:
    status, out, err = run(capsys, state_dir, "rotate", "github")

    new_secret = out.strip()
    assert status == 0
    assert len(new_secret) == 40
    assert new_secret.isalnum()
    assert _stages("github") == {"AWSCURRENT": new_secret, "AWSPREVIOUS": SECRETS["github"]}
    assert "accepted until " in err
    assert new_secret not in err  # the secret goes to stdout only, for a pipe


def test_rotate_with_revoke_previous_leaves_no_previous_secret(
    capsys: pytest.CaptureFixture[str], state_dir: Path
) -> None:
    status, out, err = run(capsys, state_dir, "rotate", "bitbucket", "--revoke-previous")

    assert status == 0
    assert _stages("bitbucket") == {"AWSCURRENT": out.strip()}
    assert "refused from now on" in err
