"""The command line as a user meets it: exit codes, the explain contract's JSON, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushdeploy.cli.main import main
from tests.conftest import EVENTS, EXAMPLE_RULES, PAYLOADS, WEB_PROD

CHANGE_KEYS = [
    "kind",
    "source",
    "account",
    "region",
    "repository",
    "tag",
    "digest",
    "branch",
    "commit",
    "decisions",
]
DECISION_KEYS = ["rule", "service", "action", "image", "dry_run", "reason"]


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["explain", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_explain_json_has_exactly_the_contract_shape(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = explain(
        capsys, str(EVENTS / "ecr-image-push.json"), "--rules", str(EXAMPLE_RULES), "--json"
    )
    assert (status, err) == (0, "")
    result = json.loads(out)
    assert list(result) == ["changes", "ignored", "signature", "operation"]
    (change,) = result["changes"]
    assert list(change) == CHANGE_KEYS
    assert all(list(decision) == DECISION_KEYS for decision in change["decisions"])
    assert (result["ignored"], result["signature"], result["operation"]) == (None, None, None)


def test_explain_a_signed_github_delivery(capsys: pytest.CaptureFixture[str]) -> None:
    body = PAYLOADS / "github-push.body.json"
    from pushdeploy.sources.signatures import sign

    signature = sign(body.read_bytes(), "s3cret")
    status, out, _ = explain(
        capsys,
        str(body),
        "--rules",
        str(EXAMPLE_RULES),
        "--json",
        "--secret",
        "s3cret",
        "--header",
        "X-GitHub-Event: push",
        "--header",
        f"X-Hub-Signature-256: {signature}",
    )
    result = json.loads(out)
    assert status == 0
    assert result["signature"] == "valid"
    (change,) = result["changes"]
    assert (change["source"], change["branch"], change["account"]) == ("github", "master", None)
    assert change["decisions"][0]["action"] == "start_deployment"


def test_explain_an_operation_event(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = explain(
        capsys, str(EVENTS / "apprunner-operation-failed.json"), "--rules", str(EXAMPLE_RULES), "--json"
    )
    result = json.loads(out)
    assert status == 0
    assert result["changes"] == []
    assert result["ignored"] is None
    assert result["operation"]["outcome"] == "failed"


def test_explain_an_ignored_event(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = explain(
        capsys, str(EVENTS / "ecr-image-delete.json"), "--rules", str(EXAMPLE_RULES), "--json"
    )
    result = json.loads(out)
    assert status == 0
    assert result["changes"] == []
    assert "not a push" in result["ignored"]


@pytest.mark.parametrize("sample", ["ecr-image-scan.json", "inspector2-scan.json"])
def test_explain_a_scan_result_is_ignored_not_a_push(capsys: pytest.CaptureFixture[str], sample: str) -> None:
    """A scan (ECR basic or Inspector enhanced) opens a scan gate but carries no change (DESIGN 4.2)."""
    status, out, _ = explain(capsys, str(EVENTS / sample), "--rules", str(EXAMPLE_RULES), "--json")
    result = json.loads(out)
    assert status == 0
    assert (result["changes"], result["operation"]) == ([], None)
    assert result["ignored"].endswith("scan result, not a push")


def test_explain_readable_output(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", str(EXAMPLE_RULES))
    assert status == 0
    assert "web-prod: update_service: tag v1.4.0 is in semver range >=1.2.0,<2.0.0" in out


def test_invalid_rules_exit_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - id: A\n    service: x\n")
    status, out, err = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", str(rules))
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) >= 3
    assert all(line.startswith("error: rules[0]: ") for line in lines)


@pytest.mark.parametrize(
    "content", [b"", b"not json", b"[1, 2]", b'{"source": "aws.s3", "detail-type": "x"}', b"\xff\xfe"]
)
def test_unreadable_events_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    event = tmp_path / "event.json"
    event.write_bytes(content)
    status, out, err = explain(capsys, str(event), "--rules", str(EXAMPLE_RULES))
    assert status == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_garbage_never_gives_a_traceback(tmp_path: Path, content: bytes) -> None:
    event = tmp_path / "garbage.json"
    event.write_bytes(content)
    status = main(["explain", str(event), "--rules", str(EXAMPLE_RULES), "--json"])
    assert status in (0, 2)


def test_rules_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(EXAMPLE_RULES)]) == 0
    assert "7 rules watching 5 sources: valid" in capsys.readouterr().out


def test_the_installed_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text("{")
    finished = subprocess.run(
        [sys.executable, "-m", "pushdeploy.cli.main", "explain", str(event), "--rules", str(EXAMPLE_RULES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    assert finished.stderr.strip() == "error: the event is not JSON"


def test_missing_files_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = explain(capsys, "/nonexistent.json", "--rules", str(EXAMPLE_RULES))
    assert status == 2
    assert err.strip() == "error: cannot read /nonexistent.json: No such file or directory"
    status, _, err = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", "/nonexistent.yaml")
    assert status == 2
    assert "cannot read /nonexistent.yaml" in err


def test_local_commands_without_a_local_cloud_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--local", "--state-dir", str(tmp_path), "deployments", "list"])
    assert status == 1
    assert "no local cloud" in capsys.readouterr().err


def test_explain_a_tag_longer_than_the_registry_allows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = json.loads((EVENTS / "ecr-image-push.json").read_text())
    event["detail"]["image-tag"] = "v1.4.0-" + "a" * 293
    path = tmp_path / "long-tag.json"
    path.write_text(json.dumps(event))
    reason = "tag is 300 characters long, longer than the registry's limit of 128: ignored"

    status, out, err = explain(capsys, str(path), "--rules", str(EXAMPLE_RULES))
    assert (status, err) == (0, "")
    assert f"web-prod: none: {reason}" in out

    status, out, _ = explain(capsys, str(path), "--rules", str(EXAMPLE_RULES), "--json")
    (change,) = json.loads(out)["changes"]
    assert change["decisions"]
    assert all((d["action"], d["reason"]) == ("none", reason) for d in change["decisions"])


def test_a_regex_re2_cannot_run_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"version: 1\nrules:\n  - id: web-prod\n    service: {WEB_PROD}\n"
        "    image: {repository: web, tag_regex: '^v\\d+(?!-rc)'}\n"
    )
    status = main(["rules", "validate", str(rules)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.splitlines() == [
        "error: rule web-prod: image.tag_regex: lookaround and backreferences are not supported: "
        "pushdeploy matches tags in linear time (RE2 syntax)"
    ]


def semver_rules(tmp_path: Path, semver_range: str) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"version: 1\nrules:\n  - id: web-prod\n    service: {WEB_PROD}\n"
        f"    image: {{repository: web, semver: {json.dumps(semver_range)}}}\n"
    )
    return rules


def test_explain_a_caret_rule_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = str(semver_rules(tmp_path, "^1.2.0"))  # the event pushes web:v1.4.0
    status, out, err = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", rules, "--json")
    assert (status, err) == (0, "")
    (change,) = json.loads(out)["changes"]
    (decision,) = change["decisions"]
    digest = change["digest"]
    assert decision == {
        "rule": "web-prod",
        "service": WEB_PROD,
        "action": "update_service",
        "image": f"111122223333.dkr.ecr.us-east-1.amazonaws.com/web@{digest}",
        "dry_run": False,
        "reason": "tag v1.4.0 is in semver range ^1.2.0",
    }
    status, out, _ = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", rules)
    assert status == 0
    assert "web-prod: update_service: tag v1.4.0 is in semver range ^1.2.0" in out


@pytest.mark.parametrize(
    ("semver_range", "action", "reason"),
    [
        ("~1.4", "update_service", "tag v1.4.0 is in semver range ~1.4"),
        ("1.x || ^3", "update_service", "tag v1.4.0 is in semver range 1.x || ^3"),
        ("1.2 - 1.4", "update_service", "tag v1.4.0 is in semver range 1.2 - 1.4"),
        ("^0.4.0", "none", "tag v1.4.0 is outside semver range ^0.4.0"),
        ("~1.3.0", "none", "tag v1.4.0 is outside semver range ~1.3.0"),
    ],
)
def test_explain_other_npm_ranges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], semver_range: str, action: str, reason: str
) -> None:
    rules = str(semver_rules(tmp_path, semver_range))
    status, out, _ = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", rules, "--json")
    (decision,) = json.loads(out)["changes"][0]["decisions"]
    assert (status, decision["action"], decision["reason"]) == (0, action, reason)


def test_an_invalid_caret_range_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = str(semver_rules(tmp_path, "^1.2.x.5"))
    status, out, err = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", rules)
    assert (status, out) == (2, "")
    assert err.splitlines() == ["error: rule web-prod: image.semver: '^1.2.x.5' is not a version or range"]


def test_explain_shows_the_gates_a_deploying_decision_would_wait_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "gated.yaml"
    rules.write_text(
        f"version: 1\nrules:\n  - id: web-prod\n    service: {WEB_PROD}\n"
        "    image: {repository: web, semver: '^1.2.0'}\n"
        "    gates:\n      scan: {max: {critical: 0}}\n      approval: {required: true, timeout: 4h}\n"
    )
    status, out, _ = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", str(rules), "--json")
    assert status == 0
    (decision,) = json.loads(out)["changes"][0]["decisions"]
    assert [gate["gate"] for gate in decision["gates"]] == ["scan", "approval"]
    assert decision["gates"][1]["waits_for"] == "`pushdeploy approve` within 4h"
    status, text, _ = explain(capsys, str(EVENTS / "ecr-image-push.json"), "--rules", str(rules))
    assert "    waits for scan: the image's scan: critical <= 0 (waits up to 30m, then hold)" in text
