"""A burst of image pushes over many App Runner services, on a running local cloud (a `Target` from
`installation.load_local`): what the end-to-end burst test checks and `benchmarks/burst.py` measures.

`services` image services (`burst-00`, ...), each with one semver rule on its own ECR repository
(`app-00`, ...); `versions` versions per service (v1.0.1, v1.0.2, ...), each service's pushed back to back
and in order, `PUSHERS` services at a time. A push is what ECR does on AWS: PutImage, then the
`ECR Image Action` event on the bus (as `sending.push_image`, with the repositories created before the
clock starts). Then, once nothing is in flight, the burst must have ended with:

- every service on its newest image (DescribeService shows `...@<digest of its last version>`);
- no lost change: every push has its change record in the ledger, with its decision for its service;
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
from typing import Any

from pushdeploy.adapters.ledger import Ledger
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.domain.deployments import Deployment, Status
from pushdeploy.domain.rules import Rule, validate_rules_document
from pushdeploy.installation import Target
from pushdeploy.local import pushes
from pushdeploy.local.sending import put_event, put_image
from pushdeploy.local.services import image_source

SERVICES = 20
VERSIONS = 10
# The local cloud the burst runs on: App Runner operations of 6 s, the reconciler every 2 s.
# An operation outlasts the gap between two pushes to one service, so deployments queue and supersede.
CLOUD_OPTIONS = ("--operation-seconds", "6", "--reconcile-seconds", "2")
SETTLE_TIMEOUT_SECONDS = 150.0
RUNNING_TIMEOUT_SECONDS = 60.0
PUSHERS = 8  # pushes in flight at once
PUSH_FUNCTION = "ImagePushedFunction"
DEPLOY_OPERATIONS = frozenset({"START_DEPLOYMENT", "UPDATE_SERVICE"})
_RAN = frozenset({Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK})
_ROLE = "arn:aws:iam::{account}:role/AppRunnerECRAccess"


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
    lost: int = 0  # pushes without their change record and its decision
    duplicated: int = 0  # deployments that started a digest its service had started already
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
                f"  lost {self.lost}, duplicated {self.duplicated}, problems {len(self.problems)}",
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


# ----- the scenario -----


def run_burst(target: Target, services: int = SERVICES, versions: int = VERSIONS) -> BurstReport:
    """Set up the services and rules, push the burst, wait until it settled, and check it (see the
    module docstring). Problems found are in the report's `problems`; nothing is asserted here."""
    target = reusing_clients(target)
    repositories = prepare(target, services)
    began_at = datetime.now(UTC)
    began = time.perf_counter()
    pushed = push_burst(target, repositories, versions)
    report = BurstReport(len(repositories), len(pushed), time.perf_counter() - began, None)
    if not wait_settled(target, SETTLE_TIMEOUT_SECONDS):
        report.problems.append(f"still in flight {SETTLE_TIMEOUT_SECONDS:g} s after the burst")
    check(target, pushed, began_at, report)
    return report


def prepare(target: Target, services: int) -> dict[str, str]:
    """Create the image services (manual deployment mode), their rules and their repositories, before
    the clock starts: service ARN -> its repository."""
    apprunner = target.client("apprunner")
    repositories: dict[str, str] = {}
    for n in range(services):
        source = _image_source(target, f"app-{n:02d}", "v1.0.0")
        arn = apprunner.create_service(ServiceName=f"burst-{n:02d}", SourceConfiguration=source)
        repositories[str(arn["Service"]["ServiceArn"])] = f"app-{n:02d}"
    _wait_running(target, list(repositories))
    rules = [
        {"id": f"burst-{n:02d}", "service": arn, "image": {"repository": repo, "semver": ">=1.0.0"}}
        for n, (arn, repo) in enumerate(repositories.items())
    ]
    _install_rules(target, validate_rules_document({"version": 1, "rules": rules}))
    ecr = target.client("ecr")
    for repository in repositories.values():  # a push would create it otherwise, on the clock
        ecr.create_repository(repositoryName=repository)
    return repositories


def _image_source(target: Target, repository: str, tag: str) -> dict[str, Any]:
    role = _ROLE.format(account=target.extra["account"])
    return image_source(f"{registry(target)}/{repository}:{tag}", role)


def registry(target: Target) -> str:
    return f"{target.extra['account']}.dkr.ecr.{target.region}.amazonaws.com"


def _wait_running(target: Target, arns: list[str]) -> None:
    apprunner = target.client("apprunner")
    deadline = time.monotonic() + RUNNING_TIMEOUT_SECONDS
    waiting = list(arns)
    while waiting:
        waiting = [
            a for a in waiting if apprunner.describe_service(ServiceArn=a)["Service"]["Status"] != "RUNNING"
        ]
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} services not RUNNING after {RUNNING_TIMEOUT_SECONDS:g} s")
        time.sleep(0.25 if waiting else 0)


def _install_rules(target: Target, rules: list[Rule]) -> None:
    """As `rules apply` stores them (the services were just created in manual mode: nothing to check)."""
    store = RulesStore(target.client("dynamodb"), target.output("RulesTableName"))
    store.apply(store.all_rules(), rules)


def push_burst(target: Target, repositories: dict[str, str], versions: int) -> list[Push]:
    """Each service's versions back to back and in order, `PUSHERS` services at a time: a service's next
    push then arrives while its previous deployment still runs, so deployments queue and supersede."""

    def push_versions(arn: str) -> list[Push]:
        repository = repositories[arn]
        return [push(target, arn, repository, f"v1.0.{v}") for v in range(1, versions + 1)]

    with ThreadPoolExecutor(max_workers=PUSHERS) as pool:
        return [p for pushes_of_one in pool.map(push_versions, repositories) for p in pushes_of_one]


def push(target: Target, service: str, repository: str, tag: str) -> Push:
    """ECR PutImage of a new manifest, then the `ECR Image Action` event: `sending.push_image` without its
    CreateRepository (the repository exists)."""
    digest = put_image(target, repository, tag, create_repository=False)
    put_event(target, pushes.ecr_push_entry(repository, tag, digest))
    return Push(service, repository, tag, digest)


def wait_settled(target: Target, timeout: float) -> bool:
    """Every push event handled and no deployment queued, starting or in progress: True, or False once
    `timeout` seconds have passed."""
    queue = target.extra["functions"][PUSH_FUNCTION]["invocation_queue_url"]
    ledger = _ledger(target)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _queue_drained(target, queue) and not ledger.in_flight():
            return True
        time.sleep(0.5)  # the settle time is the ledger's, not this poll's: no need to poll harder
    return False


def _ledger(target: Target) -> Ledger:
    return Ledger(target.client("dynamodb"), target.output("LedgerTableName"))


def _queue_drained(target: Target, queue_url: str) -> bool:
    """No message waiting, being handled, or delayed for a retry."""
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return all(int(count) == 0 for count in attributes.values())


# ----- the checks -----


def check(target: Target, pushed: list[Push], began_at: datetime, report: BurstReport) -> None:
    """Check the outcome into `report`, and take the settle time from the ledger."""
    ledger = _ledger(target)
    deployments = {
        arn: ledger.for_service(arn, limit=None) for arn in dict.fromkeys(p.service for p in pushed)
    }
    _check_services(target, pushed, deployments, report)
    _check_changes(target, pushed, report)
    settled = [d.settled_at for found in deployments.values() for d in found if d.settled_at is not None]
    if settled:
        report.settle_seconds = (max(settled) - began_at).total_seconds()


def _check_services(
    target: Target, pushed: list[Push], deployments: dict[str, list[Deployment]], report: BurstReport
) -> None:
    newest = {push.service: push for push in pushed}  # pushed in version order: the last one wins
    for arn, found in deployments.items():
        name = arn.split("/")[-2]
        problem = report.problems.append
        report.statuses.update(str(d.status) for d in found)
        report.superseded += sum(d.status is Status.SUPERSEDED for d in found)
        started = [d for d in found if d.operation_id]
        report.started += len(started)

        described = target.client("apprunner").describe_service(ServiceArn=arn)["Service"]
        image = described["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"]
        wanted = f"{registry(target)}/{newest[arn].repository}@{newest[arn].digest}"
        if image != wanted:
            problem(f"{name} runs {image}, not its newest image {newest[arn].tag} ({wanted})")

        operations = deploy_operations(target, arn)
        for before, after in pairwise(operations):
            if "EndedAt" not in before or before["EndedAt"] > after["StartedAt"]:
                problem(f"{name}: operation {after['Id']} started while {before['Id']} ran")
        busy = [d.id for d in found if "busy" in (d.detail or "")]
        if busy:
            problem(f"{name}: deployments found the service busy with another operation: {busy}")

        digests = Counter(d.digest for d in started)
        twice = {digest: count for digest, count in digests.items() if count > 1}
        if twice:
            report.duplicated += sum(count - 1 for count in twice.values())
            problem(f"{name}: digests started more than once: {sorted(map(str, twice))}")
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


def deploy_operations(target: Target, service: str) -> list[dict[str, Any]]:
    """The service's StartDeployment and UpdateService operations, oldest first (ListOperations, paged:
    it has no paginator)."""
    apprunner = target.client("apprunner")
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {"ServiceArn": service, "MaxResults": 20}
    while True:
        page = apprunner.list_operations(**request)
        found.extend(op for op in page["OperationSummaryList"] if op["Type"] in DEPLOY_OPERATIONS)
        if not page.get("NextToken"):
            return sorted(found, key=lambda op: op["StartedAt"])
        request["NextToken"] = page["NextToken"]


def _check_changes(target: Target, pushed: list[Push], report: BurstReport) -> None:
    by_digest: dict[str, list[dict[str, Any]]] = {}
    for change in change_records(target):
        by_digest.setdefault(str(change["change"]["digest"]), []).append(change)
    for push in pushed:
        recorded = by_digest.get(push.digest, [])
        what = f"{push.repository}:{push.tag} ({push.digest})"
        if len(recorded) != 1:
            report.lost += not recorded
            report.problems.append(f"{what}: {len(recorded)} change records, not 1")
            continue
        decisions = recorded[0].get("decisions") or []
        if [d.get("service") for d in decisions] != [push.service]:
            report.lost += 1
            report.problems.append(f"{what}: decisions {decisions}, not one for its service")
            continue
        decision = decisions[0]
        if decision["deployment"] is None and not decision.get("note"):
            report.problems.append(f"{what}: no deployment and no reason why")
        if "is not newer than" in str(decision.get("note")):
            report.refused_older += 1


def change_records(target: Target) -> list[dict[str, Any]]:
    """Every change record of the ledger: a scan, not the ledger's index, so that a record missing from
    the index is still found."""
    from boto3.dynamodb.types import TypeDeserializer

    dynamodb = target.client("dynamodb")
    request: dict[str, Any] = {
        "TableName": target.output("LedgerTableName"),
        "FilterExpression": "kind = :change",
        "ExpressionAttributeValues": {":change": {"S": "change"}},
    }
    decode = TypeDeserializer().deserialize
    found: list[dict[str, Any]] = []
    while True:
        page = dynamodb.scan(**request)
        found.extend({name: decode(value) for name, value in item.items()} for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return found
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
