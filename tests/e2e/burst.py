"""A burst of image pushes over many App Runner services, through the local cloud: what the burst test
checks and `benchmarks/burst.py` measures (both call `run_burst`).

Twenty image services, each with one semver rule on its own ECR repository (`app-00` .. `app-19`); ten
versions per service (v1.0.1 .. v1.0.10), each service's pushed back to back and in order, several
services at a time, as fast as the CLI's `push_image` puts them: ECR PutImage, then the `ECR Image Action`
event on the local bus. Then, once nothing is in flight, the burst must have ended with:

- every service on its newest image (DescribeService shows `...@<digest of v1.0.10>`);
- no lost change: every push has its change record in the ledger, with its decision;
- never two operations at once on a service: its deployment operations (ListOperations, paged) do not
  overlap in time, and no deployment found its service busy with another operation;
- no duplicate deployment: no digest started twice on a service, and one UpdateService operation per
  deployment that ran (succeeded, failed or rolled back).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from pushdeploy.domain.deployments import Deployment, Status
from pushdeploy.installation import Target
from pushdeploy.local.sending import push_image
from tests.e2e.cloud import REGISTRY, LocalCloud

SERVICES = 20
VERSIONS = 10
# The local cloud the burst runs on: App Runner operations of 6 s, the reconciler every 2 s.
# An operation outlasts the gap between two pushes to one service, so deployments queue and supersede.
CLOUD_OPTIONS = ("--operation-seconds", "6", "--reconcile-seconds", "2")
SETTLE_TIMEOUT_SECONDS = 150.0
PUSHERS = 8  # pushes in flight at once
PUSH_FUNCTION = "ImagePushedFunction"
_RAN = frozenset({Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK})


@dataclass(frozen=True)
class Push:
    service: str  # its ARN
    repository: str
    tag: str
    digest: str


@dataclass
class BurstReport:
    services: int
    pushes: int
    push_seconds: float  # from the first push to the last one's PutEvents answer
    settle_seconds: float | None  # from the first push until the last deployment settled (the ledger's)
    started: int = 0  # deployments that App Runner ran (an operation id)
    superseded: int = 0
    refused_older: int = 0  # semver pushes not newer than what their rule had deployed already
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def pushes_per_second(self) -> float:
        return self.pushes / self.push_seconds if self.push_seconds else 0.0

    def figures(self) -> str:
        settled = "never" if self.settle_seconds is None else f"{self.settle_seconds:.1f} s"
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(self.statuses.items()))
        return "\n".join(
            [
                f"burst: {self.pushes} pushes over {self.services} services",
                f"  pushed in {self.push_seconds:.1f} s: {self.pushes_per_second:.1f} pushes/s into the "
                "local cloud (ECR PutImage + PutEvents)",
                f"  all settled {settled} after the first push",
                f"  deployments started {self.started}, superseded {self.superseded}, "
                f"refused as older {self.refused_older}",
                f"  deployments by status: {statuses or 'none'}",
                f"  problems: {len(self.problems)}",
            ]
        )


@dataclass(frozen=True)
class _ReusingTarget(Target):
    """The CLI's target, keeping one boto3 client per service (the CLI makes one per call: right for one
    command, but making clients would then be most of what a burst measures)."""

    made: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def client(self, service: str) -> Any:
        if service not in self.made:
            self.made[service] = super().client(service)
        return self.made[service]


def reusing_clients(target: Target) -> Target:
    return _ReusingTarget(**{f.name: getattr(target, f.name) for f in fields(Target)})


def run_burst(
    cloud: LocalCloud, directory: Path, services: int = SERVICES, versions: int = VERSIONS
) -> BurstReport:
    """Set up the services and rules, push the burst, wait until it settled, and check it (see the
    module docstring). Problems found are in the report's `problems`; nothing is asserted here."""
    names = {f"burst-{n:02d}": (f"app-{n:02d}", "v1.0.0") for n in range(services)}
    arns = cloud.create_image_services(names)
    repositories = {arn: repository for arn, (repository, _) in zip(arns, names.values(), strict=True)}
    cloud.apply_rules(
        directory,
        [
            {"id": name, "service": arn, "image": {"repository": repositories[arn], "semver": ">=1.0.0"}}
            for name, arn in zip(names, arns, strict=True)
        ],
    )
    target = reusing_clients(cloud.target)
    ecr = target.client("ecr")
    for repository in repositories.values():  # before the clock starts: a push creates it otherwise
        ecr.create_repository(repositoryName=repository)

    def push(arn: str, tag: str) -> Push:
        return Push(arn, repositories[arn], tag, push_image(target, repositories[arn], tag))

    pushed: list[Push] = []
    began_at = datetime.now(UTC)
    began = time.perf_counter()

    # Each service's versions back to back and in order, `PUSHERS` services at a time: a service's next
    # push then arrives while its previous deployment still runs, so deployments queue and supersede.
    def push_versions(arn: str) -> list[Push]:
        return [push(arn, f"v1.0.{version}") for version in range(1, versions + 1)]

    with ThreadPoolExecutor(max_workers=PUSHERS) as pool:
        for pushes_of_one_service in pool.map(push_versions, repositories):
            pushed.extend(pushes_of_one_service)
    push_seconds = time.perf_counter() - began

    report = BurstReport(len(arns), len(pushed), push_seconds, None)
    if not _wait_settled(cloud, SETTLE_TIMEOUT_SECONDS):
        report.problems.append(f"still in flight {SETTLE_TIMEOUT_SECONDS:g} s after the burst")
    deployments = {arn: cloud.ledger.for_service(arn, limit=None) for arn in arns}
    _check_services(cloud, pushed, deployments, report)
    _check_changes(cloud, pushed, report)
    settled = [d.settled_at for found in deployments.values() for d in found if d.settled_at is not None]
    if settled:
        report.settle_seconds = (max(settled) - began_at).total_seconds()
    return report


def _wait_settled(cloud: LocalCloud, timeout: float) -> bool:
    """Every push event handled and no deployment queued, starting or in progress: True, or False once
    `timeout` seconds have passed."""
    queue = cloud.invocation_queue(PUSH_FUNCTION)
    ledger = cloud.ledger
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cloud.queue_drained(queue) and not ledger.in_flight():
            return True
        time.sleep(0.5)  # the settle time is the ledger's, not this poll's: no need to poll harder
    return False


def _check_services(
    cloud: LocalCloud, pushed: list[Push], deployments: dict[str, list[Deployment]], report: BurstReport
) -> None:
    newest = {push.service: push for push in pushed}  # pushed in version order: the last one wins
    for arn, found in deployments.items():
        name = arn.split("/")[-2]
        problem = report.problems.append
        report.statuses.update(str(d.status) for d in found)
        report.superseded += sum(d.status is Status.SUPERSEDED for d in found)
        started = [d for d in found if d.operation_id]
        report.started += len(started)

        described = cloud.client("apprunner").describe_service(ServiceArn=arn)["Service"]
        image = described["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"]
        wanted = f"{REGISTRY}/{newest[arn].repository}@{newest[arn].digest}"
        if image != wanted:
            problem(f"{name} runs {image}, not its newest image {newest[arn].tag} ({wanted})")

        operations = cloud.deploy_operations(arn)
        for before, after in pairwise(operations):
            if "EndedAt" not in before or before["EndedAt"] > after["StartedAt"]:
                problem(f"{name}: operation {after['Id']} started while {before['Id']} ran")
        busy = [d.id for d in found if "busy" in (d.detail or "")]
        if busy:
            problem(f"{name}: deployments found the service busy with another operation: {busy}")

        digests = Counter(d.digest for d in started)
        twice = [digest for digest, count in digests.items() if count > 1]
        if twice:
            problem(f"{name}: digests started more than once: {twice}")
        updates = [op for op in operations if op["Type"] == "UPDATE_SERVICE"]
        ran = [d for d in found if d.status in _RAN]
        if len(updates) != len(ran) or len(updates) != len(operations):
            problem(
                f"{name}: {len(operations)} deployment operations ({len(updates)} UpdateService) "
                f"for {len(ran)} deployments that ran"
            )
        unknown = {str(d.operation_id) for d in started} ^ {str(op["Id"]) for op in operations}
        if unknown:
            problem(f"{name}: the ledger and App Runner disagree on these operations: {sorted(unknown)}")


def _check_changes(cloud: LocalCloud, pushed: list[Push], report: BurstReport) -> None:
    by_digest: dict[str, list[dict[str, Any]]] = {}
    for change in cloud.changes():
        by_digest.setdefault(str(change["change"]["digest"]), []).append(change)
    for push in pushed:
        recorded = by_digest.get(push.digest, [])
        what = f"{push.repository}:{push.tag} ({push.digest})"
        if len(recorded) != 1:
            report.problems.append(f"{what}: {len(recorded)} change records, not 1")
            continue
        decisions = recorded[0].get("decisions") or []
        if [d.get("service") for d in decisions] != [push.service]:
            report.problems.append(f"{what}: decisions {decisions}, not one for its service")
            continue
        decision = decisions[0]
        if decision["deployment"] is None and not decision.get("note"):
            report.problems.append(f"{what}: no deployment and no reason why")
        if "is not newer than" in str(decision.get("note")):
            report.refused_older += 1
