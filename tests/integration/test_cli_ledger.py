"""The operator CLI against a deployed stack: `rules apply|list` and `deployments list|show`, with the
stack's outputs resolved through CloudFormation (here: moto)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.cli_stack import as_stack, run
from tests.integration.harness import Cloud

LEDGER_KEYS = [
    "id",
    "service",
    "rule",
    "action",
    "status",
    "image",
    "tag",
    "digest",
    "branch",
    "commit",
    "source",
    "operation_id",
    "reason",
    "created_at",
    "started_at",
    "settled_at",
]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
DIGESTS = [f"sha256:{n:064x}" for n in range(1, 20)]


@pytest.fixture
def stack(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    """`rules apply` describes each rule's service: App Runner calls go to the simulator."""
    return as_stack(cloud, monkeypatch)


def test_rules_apply_shows_what_changes_and_installs(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = stack.create_image_service("web-staging")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"version: 1\nrules:\n  - id: web\n    service: {service}\n"
        "    image: {repository: web, tag: latest}\n"
    )
    status, out, _ = run(capsys, "rules", "apply", str(rules), "--dry-run")
    assert status == 0
    assert "would apply: 1 added" in out
    assert run(capsys, "rules", "list", "--json")[1].strip() == "[]"

    status, out, _ = run(capsys, "rules", "apply", str(rules))
    assert "  + web  " in out
    status, out, _ = run(capsys, "rules", "apply", str(rules))
    assert "no change: 1 rules already installed" in out
    listed = json.loads(run(capsys, "rules", "list", "--json")[1])
    assert [rule["id"] for rule in listed] == ["web"]


def test_an_invalid_rules_file_changes_nothing(
    stack: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - id: ok\n    service: nope\n    image: {repository: web, tag: x}\n"
    )
    status, _, err = run(capsys, "rules", "apply", str(rules))
    assert status == 2
    assert err.startswith("error: rule ok: service: not an App Runner service ARN")
    assert json.loads(run(capsys, "rules", "list", "--json")[1]) == []


def test_deployments_list_json_is_the_ledger_contract(
    stack: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    service = stack.create_image_service("web-prod", tag="v1.0.0")
    stack.apply_rules(
        [{"id": "web-prod", "service": service, "image": {"repository": "web", "semver": ">=1.0.0"}}]
    )
    stack.push_image("v1.1.0", DIGESTS[0])
    stack.finish_operations()
    stack.push_image("v1.2.0", DIGESTS[1])

    status, out, _ = run(capsys, "deployments", "list", "--json")
    assert status == 0
    listed = json.loads(out)
    assert [d["tag"] for d in listed] == ["v1.2.0", "v1.1.0"]  # newest first
    for deployment in listed:
        assert list(deployment)[: len(LEDGER_KEYS)] == LEDGER_KEYS
        assert ISO_UTC.match(deployment["created_at"])
        assert len(deployment["operation_id"]) == 36
    newest, oldest = listed
    assert (oldest["status"], newest["status"]) == ("succeeded", "in_progress")
    assert oldest["image"] == f"111122223333.dkr.ecr.us-east-1.amazonaws.com/web@{DIGESTS[0]}"
    assert ISO_UTC.match(oldest["settled_at"])
    assert newest["settled_at"] is None
    assert (oldest["source"], oldest["branch"], oldest["commit"]) == ("ecr", None, None)

    by_status = json.loads(run(capsys, "deployments", "list", "--status", "succeeded", "--json")[1])
    assert [d["tag"] for d in by_status] == ["v1.1.0"]
    by_service = json.loads(
        run(capsys, "deployments", "list", "--service", service, "--limit", "1", "--json")[1]
    )
    assert [d["tag"] for d in by_service] == ["v1.2.0"]

    status, out, _ = run(capsys, "deployments", "show", oldest["id"], "--json")
    shown = json.loads(out)
    assert shown["decisions"][0]["reason"] == "tag v1.1.0 is in semver range >=1.0.0"
    assert shown["change"]["digest"] == DIGESTS[0]


def test_show_an_unknown_deployment(stack: Cloud, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "deployments", "show", "nope")
    assert status == 1
    assert err.strip() == "error: no deployment nope"
