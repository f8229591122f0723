"""The command line a person expects (issue 10): `--local` anywhere, `--version`, help for a bare command,
every argument described, and no traceback on any input, a stopped local cloud included."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from pushdeploy.cli import rules_cmd
from pushdeploy.cli.main import build_parser, main
from pushdeploy.local.pushes import parse_image_reference
from tests.conftest import WEB_PROD


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command's parser (the leaves), with its words."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups and path:
        yield path, parser
    for group in groups:
        for name, command in group.choices.items():
            yield from commands(command, (*path, name))


ALL_COMMANDS = sorted(path for path, _ in commands(build_parser()))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- --local before or after the command -------------------------------------------------------------


def test_there_are_commands() -> None:
    assert ("push-image",) in ALL_COMMANDS
    assert ("simulate", "fail") in ALL_COMMANDS
    assert ("local", "env") in ALL_COMMANDS
    assert len(ALL_COMMANDS) > 20


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_takes_local_and_state_dir_after_it(path: tuple[str, ...]) -> None:
    parser = dict(commands(build_parser()))[path]
    assert "--local" in parser._option_string_actions
    assert "--state-dir" in parser._option_string_actions


@pytest.mark.parametrize(
    "argv",
    [
        ["--local", "--state-dir", "S", "simulate", "fail", WEB_PROD],
        ["simulate", "fail", WEB_PROD, "--local", "--state-dir", "S"],
        ["simulate", "--local", "fail", WEB_PROD, "--state-dir", "S"],
        ["push-image", "web:v1", "--local", "--state-dir", "S"],
        ["--state-dir", "S", "push-commit", "github", "acme/web", "main", "--local"],
        ["webhook", "secret", "github", "--state-dir", "S", "--local"],
        ["local", "env", "--local", "--state-dir", "S"],
        ["deployments", "list", "--local", "--state-dir", "S"],
        ["--local", "--state-dir", "S", "rules", "apply", "rules.yaml"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_local_and_state_dir_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.local, args.state_dir) == (True, "S")


def test_without_local_the_stack_is_meant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHDEPLOY_STATE_DIR", raising=False)
    args = build_parser().parse_args(["deployments", "list"])
    assert (args.local, args.state_dir, args.stack) == (False, ".pushdeploy", "pushdeploy")


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "fail", WEB_PROD, "--local"],
        ["local", "env", "--local"],
        ["status", "--local"],
        ["deployments", "list", "--local"],
        ["push-image", "web:v1", "--local"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_local_after_the_command_acts_on_the_local_cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .pushdeploy here
    status, _, err = run(capsys, *argv)
    assert status == 1
    assert err.startswith("error: no local cloud: .pushdeploy/local.json is missing")


# --- --version, help ---------------------------------------------------------------------------------


def test_version_is_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"pushdeploy {version('pushdeploy')}\n"


def test_bare_pushdeploy_prints_its_help_on_stdout_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys)
    assert (status, err) == (0, "")
    assert out.startswith("usage: pushdeploy ")
    for command in ("explain", "rules", "deployments", "deploy", "status", "push-image", "local"):
        assert f"\n    {command} " in out


@pytest.mark.parametrize("group", ["rules", "deployments", "changes", "webhook", "local", "simulate"])
def test_a_command_group_alone_prints_its_help(capsys: pytest.CaptureFixture[str], group: str) -> None:
    status, out, err = run(capsys, group)
    assert (status, err) == (0, "")
    assert out.startswith(f"usage: pushdeploy {group} ")


def test_a_usage_error_is_still_argparses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["rules", "apply"])
    assert exited.value.code == 2
    assert "the following arguments are required: FILE" in capsys.readouterr().err


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_positional_argument_and_json_is_described(path: tuple[str, ...]) -> None:
    parser = dict(commands(build_parser()))[path]
    for action in parser._actions:
        if not action.option_strings or "--json" in action.option_strings:
            assert action.help, f"pushdeploy {' '.join(path)}: {action.dest} has no help"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["deployments", "list", "--limit", "x"], "argument --limit: not a whole number: 'x'"),
        (["deployments", "list", "--limit", "0"], "argument --limit: must be at least 1: 0"),
        (["changes", "list", "--limit", "ten"], "argument --limit: not a whole number: 'ten'"),
        (["simulate", "fail", WEB_PROD, "--count", "1.5"], "argument --count: not a whole number: '1.5'"),
        (["local", "up", "--concurrency", "x"], "argument --concurrency: not a whole number: 'x'"),
        (
            ["local", "up", "--operation-seconds", "soon"],
            "argument --operation-seconds: not a number: 'soon'",
        ),
        (["deployments", "list", "--since", "yesterday"], "argument --since: 'yesterday' is not a duration"),
    ],
)
def test_bad_option_values_say_what_is_wrong_without_type_names(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "invalid" not in err
    assert "int" not in err.split("error:")[-1].split()


# --- no traceback on any input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            "Web:BAD TAG",
            "error: repository 'Web' is not an ECR repository name (lowercase letters and digits, "
            "separated by '.', '_', '-' or '/', 2 to 256 characters)",
        ),
        (
            "web:BAD TAG",
            "error: tag 'BAD TAG' is not an image tag (letters, digits, '_', '.' and '-', at most 128, "
            "not starting with '.' or '-')",
        ),
        (
            "web@sha256:abc",
            "error: 'web@sha256:abc': a push makes a new image, and ECR computes its digest: give "
            "REPO[:TAG], not a digest",
        ),
        ("web:v1.0.0:x", "error: 'web:v1.0.0:x' is not REPO[:TAG]: it has more than one ':'"),
        ("web:", "error: 'web:' has no tag after ':' (leave ':' out for an untagged push)"),
        (":v1", "error: ':v1' is not REPO[:TAG]: no repository before ':'"),
        ("", "error: no image given: give REPO[:TAG], e.g. web:v1.2.0"),
        (" web", "error: repository ' web' is not an ECR repository name"),
        ("web:" + "a" * 129, "error: tag 'aaaa"),
        ("web:-x", "error: tag '-x' is not an image tag"),
        (
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/web:v1",
            "error: '111122223333.dkr.ecr.us-east-1.amazonaws.com/web:v1': give the repository's name "
            "without the registry host",
        ),
    ],
)
def test_a_bad_image_reference_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reference: str, expected: str
) -> None:
    status, out, err = run(capsys, "--local", "--state-dir", str(tmp_path), "push-image", reference)
    assert (status, out) == (2, "")
    assert err.startswith(expected)
    assert err.count("\n") == 1


GOOD_DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["web:v1"], "error: 'web:v1' is not REPO@DIGEST: give the digest push-image printed"),
        (["web@sha256:abc"], "error: 'sha256:abc' is not an image digest (sha256: and 64 hex digits)"),
        ([f"Web@{GOOD_DIGEST}"], "error: repository 'Web' is not an ECR repository name"),
        ([f"web@{GOOD_DIGEST}", "--high", "-1"], "error: --high is a number of findings: 0 or more"),
        (
            [f"web@{GOOD_DIGEST}", "--failed", "--critical", "1"],
            "error: a failed scan finds nothing: leave out the counts, or --failed",
        ),
    ],
)
def test_a_bad_simulated_scan_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    status, out, err = run(capsys, "--local", "--state-dir", str(tmp_path), "simulate", "scan", *argv)
    assert (status, out) == (2, "")
    assert err.startswith(expected)
    assert err.count("\n") == 1


def test_a_simulated_scan_needs_the_local_cloud(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "simulate", "scan", f"web@{GOOD_DIGEST}")
    assert (status, err) == (1, "error: simulate scan acts on the local cloud's ECR only: add --local\n")


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [
        ("web", ("web", None)),
        ("web:v1.2.0", ("web", "v1.2.0")),
        ("team/web:latest", ("team/web", "latest")),
        ("a-b_c.d/e:V_1-rc.2", ("a-b_c.d/e", "V_1-rc.2")),
        ("web:" + "a" * 128, ("web", "a" * 128)),
    ],
)
def test_good_image_references(reference: str, parsed: tuple[str, str | None]) -> None:
    assert parse_image_reference(reference) == parsed


@pytest.fixture
def dead_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The state file of a local cloud that has stopped: nothing listens at its endpoints any more."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    services = ("apprunner", "dynamodb", "ecr", "events", "sqs", "secretsmanager")
    state = {
        "region": "us-east-1",
        "account": "111122223333",
        "endpoints": dict.fromkeys(services, url),
        "outputs": {
            "LedgerTableName": "ledger",
            "RulesTableName": "rules",
            "WebhookUrl": f"{url}/",
            "GitHubWebhookSecretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:github-abcdef",
            "BitbucketWebhookSecretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:bb-abcdef",
            "PreviousSecretHours": "24",
        },
        "webhook_url": url,
    }
    (tmp_path / "local.json").write_text(json.dumps(state))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries: the test needs one attempt
    return tmp_path


DEAD_CLOUD_COMMANDS = [
    ["deployments", "list"],
    ["deployments", "list", "--service", "web"],
    ["deployments", "show", "x"],
    ["status"],
    ["deploy", "web"],
    ["rules", "list"],
    ["changes", "list"],
    ["push-image", "web:v1"],
    ["push-commit", "codecommit", "app", "main"],
    ["push-commit", "github", "acme/web", "main"],
    ["webhook", "secret", "github"],
    ["simulate", "fail", WEB_PROD],
    ["simulate", "scan", "web@sha256:" + "a" * 64, "--critical", "1"],
]


@pytest.mark.parametrize("argv", DEAD_CLOUD_COMMANDS, ids=" ".join)
def test_a_stopped_local_cloud_is_one_line_saying_how_to_start_it(
    dead_cloud: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    expected = (
        f"error: the local cloud of {dead_cloud} is not running: start it with "
        f"`pushdeploy local up --state-dir {dead_cloud}` (a new one starts empty: the state was in memory)\n"
    )
    for placed in (
        ["--local", "--state-dir", str(dead_cloud), *argv],
        [*argv, "--local", "--state-dir", str(dead_cloud)],
    ):
        status, _, err = run(capsys, *placed)
        assert (status, err) == (1, expected)


def test_rules_apply_on_a_stopped_local_cloud(
    dead_cloud: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"version: 1\nrules:\n  - id: web\n    service: {WEB_PROD}\n    image: {{repository: web, tag: x}}\n"
    )
    status, _, err = run(capsys, "--local", "--state-dir", str(dead_cloud), "rules", "apply", str(rules))
    assert status == 1
    assert err.startswith(f"error: the local cloud of {dead_cloud} is not running")
    assert err.count("\n") == 1


def test_the_installed_command_on_a_stopped_local_cloud(dead_cloud: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "pushdeploy.cli.main", "--local", "--state-dir", str(dead_cloud), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 1
    assert "Traceback" not in finished.stderr
    assert finished.stderr.startswith(f"error: the local cloud of {dead_cloud} is not running")
    assert finished.stderr.count("\n") == 1


def test_an_unexpected_failure_is_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise AttributeError("'NoneType' object has no attribute 'id'")

    monkeypatch.setattr(rules_cmd, "run_validate", broken)
    monkeypatch.delenv("PUSHDEPLOY_DEBUG", raising=False)
    status, out, err = run(capsys, "rules", "validate", "x.yaml")
    assert (status, out) == (1, "")
    assert err.startswith("error: pushdeploy failed unexpectedly: this is a bug, please report it")
    assert err.count("\n") == 1
    assert "NoneType" not in err

    monkeypatch.setenv("PUSHDEPLOY_DEBUG", "1")
    with pytest.raises(AttributeError):
        main(["rules", "validate", "x.yaml"])


# --- no Python type name in a message ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "rules: []\n",  # no version
        f"version: 1\nrules:\n  - id: web\n    service: {WEB_PROD}\n    image: {{repository: , tag: x}}\n",
        f"version: 1\nrules:\n  - id: web\n    service: {WEB_PROD}\n    image: web\n",
    ],
    ids=["no version", "null repository", "image not a mapping"],
)
def test_rules_problems_name_no_python_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(body)
    status, _, err = run(capsys, "rules", "validate", str(rules))
    assert status == 2
    for word in ("NoneType", "None", "ImageSource", "got list", "got dict"):
        assert word not in err
