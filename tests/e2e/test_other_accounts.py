"""Never miss a push, from any account or Region (issue 12), end to end on the local cloud: a push in
another account comes through the forwarder and deploys by a rule that names that account, never by one
that names the local cloud's own; an account pushdeploy's bus does not admit is refused; and a push whose
event was lost is deployed by the next sweep.

This module runs a local cloud of its own: account 222233334444 in SourceAccountIds, and a sweep every two
seconds that looks at pushes at once (no grace period), so that a lost event is found within the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushdeploy.local import accounts, pushes, sending, services
from tests.conftest import ROOT
from tests.e2e.cloud import REGION, ROLE, LocalCloud, running_local_cloud, wait_until

pytestmark = pytest.mark.e2e

ACCOUNT_B = "222233334444"  # in SourceAccountIds
ACCOUNT_C = "777788889999"  # not
REGISTRY_B = f"{ACCOUNT_B}.dkr.ecr.{REGION}.amazonaws.com"
FOUND_BY_SWEEP = "found by the sweep: its event was lost"
needs_the_sweeper = pytest.mark.skipif(
    not (ROOT / "functions" / "sweeper" / "app.py").is_file(), reason="no sweeper function yet"
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    options = (
        *("--operation-seconds", "1", "--reconcile-seconds", "2", "--sweep-seconds", "2"),
        *("--parameter", f"SourceAccountIds={ACCOUNT_B}", "--env", "SWEEP_GRACE_SECONDS=0"),
    )
    with running_local_cloud(tmp_path_factory.mktemp("accounts-cloud"), *options) as running:
        yield running


def push(cloud: LocalCloud, image: str, *options: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(cloud.cli("push-image", image, *options, "--json"))
    return shown


def change_of(cloud: LocalCloud, digest: str) -> dict[str, Any]:
    """The ledger's change record of the push of `digest`, once there is one."""

    def recorded() -> dict[str, Any] | None:
        found = [c for c in cloud.changes() if c["change"].get("digest") == digest]
        return found[0] if found else None

    return wait_until(recorded, timeout=30)


def test_the_schedules_line_says_both_intervals(cloud: LocalCloud) -> None:
    (line,) = [line for line in cloud.output if "schedules every" in line]
    assert "every 2 s: pushdeploy-reconciler" in line
    if (ROOT / "functions" / "sweeper" / "app.py").is_file():
        assert "pushdeploy-sweeper" in line


def test_an_image_pushed_in_another_account_deploys_by_a_rule_naming_that_account(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    source = services.image_source(f"{REGISTRY_B}/e2e-b-web:v1.0.0", ROLE)
    service = cloud.client("apprunner").create_service(ServiceName="e2e-b-web", SourceConfiguration=source)
    arn: str = service["Service"]["ServiceArn"]
    rule = {"repository": "e2e-b-web", "account": ACCOUNT_B, "semver": ">=1.0.0"}
    cloud.apply_rules(tmp_path, [{"id": "e2e-b-web", "service": arn, "image": rule}])

    shown = push(cloud, "e2e-b-web:v1.1.0", "--account", ACCOUNT_B)
    assert (shown["account"], shown["event"], shown["watched_by"]) == (ACCOUNT_B, "forwarded", ["e2e-b-web"])

    deployment = cloud.settled_deployment(arn)
    assert (deployment["status"], deployment["digest"]) == ("succeeded", shown["digest"])
    assert deployment["trigger"] == "push"  # by its forwarded event: the sweep has no role into B
    configured = cloud.client("apprunner").describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]
    assert configured["ImageRepository"]["ImageIdentifier"] == f"{REGISTRY_B}/e2e-b-web@{shown['digest']}"
    assert change_of(cloud, shown["digest"])["change"]["account"] == ACCOUNT_B


def test_a_rule_naming_the_local_account_never_deploys_another_accounts_push_of_the_same_name(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    service = cloud.create_image_service("e2e-same", "e2e-same", "latest")
    rule = {"repository": "e2e-same", "tag": "latest"}  # the service's account: the local cloud's
    cloud.apply_rules(tmp_path, [{"id": "e2e-same", "service": service, "image": rule}])

    out, err = cloud.cli_streams("push-image", "e2e-same:latest", "--account", ACCOUNT_B)
    digest_b = out.strip()
    assert err == (
        f"note: no rule watches ECR repository e2e-same ({ACCOUNT_B}, {REGION}): nothing will deploy this "
        "push (`pushdeploy rules list` shows the rules)\n"
    )
    record = change_of(cloud, digest_b)  # it arrived, and was decided: no rule watches it
    assert (record["change"]["account"], record["decisions"]) == (ACCOUNT_B, [])
    assert "no rule watches this repository" in cloud.cli("changes", "show", record["change_id"])

    digest_a = push(cloud, "e2e-same:latest")["digest"]  # the same name in the rule's own account
    deployment = cloud.settled_deployment(service)
    assert (deployment["status"], deployment["digest"]) == ("succeeded", digest_a)
    assert [d["digest"] for d in cloud.deployments(service)] == [digest_a]


def test_an_account_the_bus_policy_does_not_admit_is_refused(cloud: LocalCloud) -> None:
    out, err = cloud.cli_streams("push-image", "e2e-c-web:v1", "--account", ACCOUNT_C, expect=1)
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: pushdeploy's bus refuses events from account {ACCOUNT_C}")
    assert err.rstrip().endswith(f"--parameter SourceAccountIds={ACCOUNT_C}")
    ecr_c = accounts.in_account(cloud.target, ACCOUNT_C, REGION).client("ecr")
    assert ecr_c.describe_repositories()["repositories"] == []  # refused before anything was pushed


def test_a_codecommit_push_in_another_account_is_recorded_as_that_accounts(cloud: LocalCloud) -> None:
    shown = json.loads(
        cloud.cli("push-commit", "codecommit", "e2e-b-api", "main", "--account", ACCOUNT_B, "--json")
    )
    assert shown["event"] == "forwarded"

    def recorded() -> dict[str, Any] | None:
        found = [c for c in cloud.changes() if c["change"].get("commit") == shown["commit"]]
        return found[0] if found else None

    record = wait_until(recorded, timeout=30)
    assert (record["change"]["account"], record["change"]["repository"]) == (ACCOUNT_B, "e2e-b-api")


@needs_the_sweeper
def test_a_push_whose_event_was_lost_is_deployed_by_the_next_sweep(cloud: LocalCloud, tmp_path: Path) -> None:
    service = _watched(cloud, tmp_path, "e2e-lost")
    out, err = cloud.cli_streams("push-image", "e2e-lost:latest", "--lose-event")
    digest = out.strip()
    assert "was not sent (--lose-event)" in err

    deployment = cloud.settled_deployment(service, timeout=45)
    assert (deployment["status"], deployment["digest"], deployment["trigger"]) == (
        "succeeded",
        digest,
        "sweep",
    )
    record = change_of(cloud, digest)
    assert (record["trigger"], record["note"]) == ("sweep", FOUND_BY_SWEEP)


@needs_the_sweeper
def test_the_late_event_of_a_swept_push_deploys_nothing_more(cloud: LocalCloud, tmp_path: Path) -> None:
    service = _watched(cloud, tmp_path, "e2e-late")
    digest = cloud.cli("push-image", "e2e-late:latest", "--lose-event").strip()
    deployment = cloud.settled_deployment(service, timeout=45)
    assert deployment["trigger"] == "sweep"

    sending.put_event(cloud.target, pushes.ecr_push_entry("e2e-late", "latest", digest))  # it was late only

    def both_recorded() -> list[dict[str, Any]] | None:
        found = [c for c in cloud.changes() if c["change"].get("digest") == digest]
        return found if len(found) == 2 else None

    wait_until(both_recorded, timeout=30)
    time.sleep(2.5)  # a sweep more, too
    assert [d["id"] for d in cloud.deployments(service)] == [deployment["id"]]
    assert len(cloud.deploy_operations(service)) == 1


def _watched(cloud: LocalCloud, directory: Path, name: str) -> str:
    """An image service following `NAME:latest` in the local cloud's account, and a rule for it."""
    service = cloud.create_image_service(name, name)
    cloud.apply_rules(
        directory, [{"id": name, "service": service, "image": {"repository": name, "tag": "latest"}}]
    )
    # The sweep looks at images pushed since the rule was applied; ECR's push times are to the second.
    time.sleep(1.1)
    return service
