"""Each function's role grants exactly what its code calls: no more (least privilege), no less (a missing
grant is an AccessDenied in production that moto would never show).

Every AWS call the real handlers make while they go through their paths (pushes deployed, queued,
refused as already live, held for their scan, settled, reconciled, a webhook delivery forwarded or noted,
an unreadable event dead-lettered) is recorded as an IAM action on a resource of the stack, and compared
with the `Policies` statements of the function in template.yaml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pushdeploy import container, runtime
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.local.inprocess import put_image, tag_image
from pushdeploy.local.template import load_template
from pushdeploy.sources.signatures import sign
from tests.conftest import PAYLOADS
from tests.integration.harness import (
    ACCOUNT,
    INTERNAL_BUS,
    REGION,
    ROOT,
    TABLES,
    WEBHOOK_SECRETS,
    Cloud,
    function_url_event,
)

OTHER_ACCOUNT = "222233334444"

Grant = tuple[str, str]  # (IAM action, the stack resource it is on)

FUNCTIONS = {
    "image_pushed": "ImagePushedFunction",
    "commit_pushed": "CommitPushedFunction",
    "operation_changed": "OperationChangedFunction",
    "reconciler": "ReconcilerFunction",
    "sweeper": "SweeperFunction",
    "webhook": "WebhookFunction",
}
ASYNC_FUNCTIONS = {"image_pushed", "commit_pushed", "operation_changed", "reconciler", "sweeper"}
DEAD_LETTER_QUEUES = {
    "image_pushed": "ImagePushedDeadLetterQueue",
    "commit_pushed": "CommitPushedDeadLetterQueue",
    "operation_changed": "OperationChangedDeadLetterQueue",
    "reconciler": "ReconcilerDeadLetterQueue",
    "sweeper": "SweeperDeadLetterQueue",
}
TABLE_RESOURCES = {name: logical for logical, name in TABLES.items()}
DIGESTS = [f"sha256:{n:064x}" for n in range(1, 12)]
# Rules with a scan gate: one for pushes whose events come, one for a push only the sweep finds (on a
# service with nothing live, whose ordering would refuse an image ECR dates by the wall clock).
GATED_REPOSITORY, SWEPT_REPOSITORY = "gated", "gated-swept"
PROMOTED_REPOSITORY, PROMOTED_SWEPT_REPOSITORY = "promoted", "promoted-swept"
SCAN_GATE = {"scan": {"max": {"critical": 0}}}
# Needed on a path no test here can reach: the webhook's Powertools idempotency reads an existing record
# with GetItem when the Lambda runtime's boto3 predates ReturnValuesOnConditionCheckFailure (its
# documented grants). The push functions keep no idempotency records: nothing of theirs is listed here.
UNREACHABLE_HERE: dict[str, set[Grant]] = {"webhook": {("dynamodb:GetItem", "IdempotencyTable")}}


class CallRecorder:
    """Which function made which AWS call: a botocore hook on every client the handlers use."""

    def __init__(self) -> None:
        self.function: str | None = None
        self.calls: dict[str, set[Grant]] = {name: set() for name in FUNCTIONS}

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.function is None:
            return
        service = model.service_model.signing_name
        self.calls[self.function] |= grants_of(service, model.name, params)

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        self.function = function
        try:
            yield
        finally:
            self.function = None


def grants_of(service: str, operation: str, params: dict[str, Any]) -> set[Grant]:
    """The IAM actions and resources one API call needs."""
    if service == "dynamodb" and operation == "TransactWriteItems":
        needed = {
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
        }
        return {
            (f"dynamodb:{needed[kind]}", TABLE_RESOURCES[item["TableName"]])
            for entry in params["TransactItems"]
            for kind, item in entry.items()
        }
    if service == "dynamodb" and operation == "TransactGetItems":  # each Get needs GetItem on its table
        return {
            ("dynamodb:GetItem", TABLE_RESOURCES[entry["Get"]["TableName"]])
            for entry in params["TransactItems"]
        }
    if service == "dynamodb":
        table = TABLE_RESOURCES[params["TableName"]]
        index = params.get("IndexName")
        return {(f"dynamodb:{operation}", f"{table}/index/{index}" if index else table)}
    if service == "events":
        buses = {entry.get("EventBusName", "default") for entry in params["Entries"]}
        return {
            ("events:PutEvents", "InternalEventBus" if bus == INTERNAL_BUS else "DefaultBus") for bus in buses
        }
    if service == "sqs":
        return {("sqs:SendMessage", "DeadLetterQueue")}
    if service == "secretsmanager":
        return {(f"secretsmanager:{operation}", "WebhookSecrets")}
    if service == "ecr":
        return {(f"ecr:{operation}", "EcrRepositories")}
    if service == "codecommit":
        return {(f"codecommit:{operation}", "CodeCommitRepositories")}
    if service == "sts" and operation == "AssumeRole":
        return {("sts:AssumeRole", "SweepRoles")}
    if service == "apprunner":
        found = {(f"apprunner:{operation}", "AppRunnerServices")}
        if operation == "UpdateService":
            found.add(("iam:PassRole", "AppRunnerAccessRoles"))  # App Runner takes the access role
        return found
    return {(f"{service}:{operation}", "?")}


def template_grants(logical_id: str) -> set[Grant]:
    template = load_template(ROOT / "template.yaml")
    function = template["Resources"][logical_id]
    granted: set[Grant] = set()
    for policy in function["Properties"].get("Policies", []):
        for statement in map(_when_configured, policy["Statement"]):
            assert statement["Effect"] == "Allow", statement.get("Sid")
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for action in actions:
                for resource in resources:
                    granted.add((action, _resource_name(resource)))
    return granted


def _when_configured(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement present only under a condition (`!If [Cond, statement, !Ref AWS::NoValue]`) as it is
    when the parameter behind the condition is set: the paths below exercise it."""
    if "Fn::If" in statement:
        _condition, present, _absent = statement["Fn::If"]
        return dict(present)
    return statement


def _as_granted(grant: Grant, granted: set[Grant]) -> Grant:
    """A query of one index, as the role grants it: that index by name, or every index (`index/*`)."""
    action, resource = grant
    table, _, index = resource.partition("/index/")
    if index and (action, f"{table}/index/*") in granted:
        return action, f"{table}/index/*"
    return grant


def _resource_name(resource: Any) -> str:
    text = json.dumps(resource)
    for table in TABLES:
        if table in text:
            index = re.search(r"/index/([A-Za-z*]+)", text)
            return f"{table}/index/{index.group(1)}" if index else table
    for name, fragment in {
        "InternalEventBus": "InternalEventBus",
        "DefaultBus": "event-bus/default",
        "DeadLetterQueue": "DeadLetterQueue",
        "WebhookSecrets": "WebhookSecret",
        "AppRunnerServices": "AppRunnerServiceArns",
        "AppRunnerAccessRoles": "AppRunnerAccessRoleArns",
        "EcrRepositories": ":repository/*",
        "CodeCommitRepositories": ":codecommit:",
        "SweepRoles": "SweepRoleArns",
    }.items():
        if fragment in text:
            return name
    return text


@pytest.fixture
def recorder(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> CallRecorder:
    recording = CallRecorder()
    clients = {runtime.client(name) for name in ("dynamodb", "events", "sqs", "secretsmanager")}
    for client in (*clients, cloud.apprunner):
        client.meta.events.register("before-parameter-build.*.*", recording)
    made_by_runtime = container.new_client

    def recorded(service: str, region: str | None, credentials: Any) -> Any:
        made = made_by_runtime(service, region, credentials)
        # A client with another account's role acts with that role's grants, not the function's.
        if not credentials:
            made.meta.events.register("before-parameter-build.*.*", recording)
        return made

    monkeypatch.setattr(container, "new_client", recorded)
    return recording


def exercise_every_path(cloud: Cloud, recorder: CallRecorder) -> None:
    """Drive each function through the paths that call AWS differently."""
    staging = cloud.create_image_service("web-staging", tag="latest")
    prod = cloud.create_image_service("web-prod", tag="v1.0.0")
    code = cloud.create_code_service("hello-world", "https://github.com/Codertocat/Hello-World", "master")
    cloud.apply_rules(
        [
            {"id": "web-staging", "service": staging, "image": {"repository": "web", "tag": "latest"}},
            {"id": "web-prod", "service": prod, "image": {"repository": "web", "semver": ">=1.0.0"}},
            {
                "id": "hello-world",
                "service": code,
                "code": {"provider": "github", "repository": "Codertocat/Hello-World", "branch": "master"},
            },
        ]
    )
    with recorder.running("image_pushed"):
        first = cloud.ecr_push_event("latest", DIGESTS[0])
        cloud.sim.fail_next(staging)  # it rolls back: settling it marks the digest failed (PutItem)
        cloud.invoke("image_pushed", first)  # DescribeService + StartDeployment
        cloud.invoke("image_pushed", first)  # the same event again: answered from its change's record
        cloud.push_image("latest", DIGESTS[3])  # the service is busy: queued
        cloud.push_image("v1.1.0", DIGESTS[1])  # DescribeService + UpdateService (PassRole)
        cloud.push_image("v1.2.0", DIGESTS[2])  # the service is busy: queued
        cloud.invoke("image_pushed", {"source": "aws.ecr", "id": "x"})  # unreadable: dead-lettered
    cloud.settle_operations()
    with recorder.running("operation_changed"):
        cloud.deliver_apprunner_events()  # ListOperations, settle, start the queued ones
        cloud.invoke("operation_changed", {"source": "aws.apprunner", "id": "y"})  # dead-lettered
    cloud.settle_operations()
    cloud.apprunner_events.clear()
    # App Runner fails every call for a while: the push leaves its deployment `starting`.
    cloud.sim.error_next(count=4, operation="UpdateService")
    cloud.push_image("v1.4.0", DIGESTS[5])
    cloud.push_image("latest", DIGESTS[6])  # staging is free: started now, settled below
    cloud.advance(180)  # past the start grace
    cloud.sim.fail_next(prod)  # v1.4.0 rolls back: the reconciler's settling marks the digest (PutItem)
    with recorder.running("reconciler"):
        cloud.reconcile()  # settles staging, calls App Runner again for prod
    cloud.settle_operations()
    cloud.apprunner_events.clear()
    with recorder.running("reconciler"):
        cloud.reconcile()
    with recorder.running("image_pushed"):
        cloud.push_image("latest", DIGESTS[6])  # the live digest again: App Runner is asked

    deliveries = [_github_push(cloud, delivery_id, pushed) for delivery_id, pushed in (("d1", 0), ("d2", 60))]
    other = _github_push(cloud, "d3", 0, repository="someone/else")
    # Its repository again: the container remembers no rule watches it, and confirms that (GetItem).
    other_again = _github_push(cloud, "d5", 30, repository="someone/else")
    with recorder.running("webhook"):
        for body, headers in (*deliveries, other, other_again):
            cloud.invoke("webhook", function_url_event("/github", body, headers))
        body, headers = deliveries[0]
        cloud.invoke("webhook", function_url_event("/github", body, headers))  # a replay: idempotency GetItem
        with _failing_put_events(cloud):
            cloud.invoke("webhook", function_url_event("/github", *_github_push(cloud, "d4", 120)))
    first_push, second_push = cloud.forwarded()
    with recorder.running("commit_pushed"):
        cloud.invoke("commit_pushed", first_push)  # DescribeService + StartDeployment
    cloud.finish_operations()
    with recorder.running("commit_pushed"):
        cloud.invoke("commit_pushed", second_push)  # the live commit, pushed again: App Runner is asked
        cloud.invoke("commit_pushed", {"source": "aws.codecommit", "id": "z"})  # dead-lettered
    exercise_a_gated_code_rule(cloud, recorder)
    exercise_the_scan_gate(cloud, recorder)
    exercise_the_sweep(cloud, recorder, staging, prod)


def exercise_a_gated_code_rule(cloud: Cloud, recorder: CallRecorder) -> None:
    """A CodeCommit push to a rule that needs an approval: held, after looking at the rule's held and
    rejected deployments (ByArtifact, ByStatus)."""
    stored = RulesStore(cloud.dynamodb, TABLES["RulesTable"]).all_rules()
    service = cloud.create_code_service(
        "gated-app", "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/gated"
    )
    code = {"provider": "codecommit", "repository": "gated", "branch": "main"}
    approval = {"approval": {"required": True, "timeout": "1h"}}
    gated = {"id": "gated-app", "service": service, "code": code, "gates": approval}
    cloud.apply_rules([*(rule.model_dump(exclude_none=True) for rule in stored), gated])
    event = {
        "version": "0",
        "id": "codecommit-gated-1",
        "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit",
        "account": ACCOUNT,
        "time": cloud.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:codecommit:{REGION}:{ACCOUNT}:gated"],
        "detail": {
            "commitId": "c" * 40,
            "oldCommitId": "b" * 40,
            "event": "referenceUpdated",
            "referenceFullName": "refs/heads/main",
            "referenceName": "main",
            "referenceType": "branch",
            "repositoryName": "gated",
        },
    }
    with recorder.running("commit_pushed"):
        cloud.invoke("commit_pushed", event)


def exercise_the_scan_gate(cloud: Cloud, recorder: CallRecorder) -> None:
    """Rules with a scan gate: a push waits for its image's scan (DescribeImageScanFindings), the scan's
    event opens it (DescribeImageScanFindings again), and the reconciler looks at one still waiting."""
    stored = RulesStore(cloud.dynamodb, TABLES["RulesTable"]).all_rules()
    gated = [
        {
            "id": repository,
            "service": cloud.create_image_service(f"web-{repository}", tag="latest", repository=repository),
            "image": {"repository": repository, "tag_glob": "*"},
            "gates": SCAN_GATE,
        }
        for repository in (GATED_REPOSITORY, SWEPT_REPOSITORY)
    ]
    # Promotions from the gated rule, of the same image pushed to other repositories: one decided on
    # its event, one found by the sweep (each reads the previous stage's history: ByService).
    promoted = [
        {
            "id": repository,
            "service": cloud.create_image_service(f"web-{repository}", tag="latest", repository=repository),
            "image": {"repository": repository, "tag_glob": "*"},
            "gates": {"after": {"rule": GATED_REPOSITORY, "bake": "0s"}},
        }
        for repository in (PROMOTED_REPOSITORY, PROMOTED_SWEPT_REPOSITORY)
    ]
    cloud.apply_rules([*(rule.model_dump(exclude_none=True) for rule in stored), *gated, *promoted])
    first = put_image("latest", GATED_REPOSITORY)
    with recorder.running("image_pushed"):
        cloud.push_image("latest", first, GATED_REPOSITORY)  # no scan yet: held
        cloud.record_scan(first, {}, repository=GATED_REPOSITORY)
        cloud.invoke("image_pushed", cloud.ecr_scan_event(first, {}, repository=GATED_REPOSITORY))  # started
    cloud.finish_operations()
    with recorder.running("image_pushed"):
        cloud.push_image("v1", first, PROMOTED_REPOSITORY)  # succeeded on the gated rule's service: promoted
    tag_image(first, "v1", GATED_REPOSITORY, PROMOTED_SWEPT_REPOSITORY)  # its event lost: the sweep's
    second = put_image("latest", GATED_REPOSITORY)
    cloud.push_image("latest", second, GATED_REPOSITORY)  # held
    with recorder.running("reconciler"):
        cloud.reconcile()  # its scan is asked for again


@pytest.fixture(autouse=True)
def sweep_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the cloud is built: ECR's registry is the rules' account; the sweeper may assume a role in
    another account and takes a push as lost at once."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("SWEEP_GRACE_SECONDS", "0")
    monkeypatch.setenv("SWEEP_ROLE_ARNS", f"arn:aws:iam::{OTHER_ACCOUNT}:role/pushdeploy-sweep")


def exercise_the_sweep(cloud: Cloud, recorder: CallRecorder, staging: str, prod: str) -> None:
    """The sweeper finds lost pushes: in this account's ECR (a busy service: ListOperations; a semver
    tag: UpdateService), in another account's (through its role), and in CodeCommit (a branch pattern)."""
    cloud.finish_operations()
    cloud.reconcile()
    put_image("latest")
    put_image("v1.9.0")
    put_image("latest", SWEPT_REPOSITORY)  # held for its scan, asked for
    code = cloud.create_code_service(
        "app-code", "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app"
    )
    stored = RulesStore(cloud.dynamodb, TABLES["RulesTable"]).all_rules()
    codecommit_rule = {"provider": "codecommit", "repository": "app", "branch_glob": "*"}
    theirs = {"repository": "web", "tag": "x", "account": OTHER_ACCOUNT}
    cloud.apply_rules(
        [
            *(rule.model_dump(exclude_none=True) for rule in stored),
            {"id": "app", "service": code, "code": codecommit_rule},
            {"id": "theirs", "service": prod, "image": theirs},
        ]
    )
    cloud.apprunner.start_deployment(ServiceArn=staging)  # by hand: App Runner answers the sweep "busy"
    codecommit = boto3.client("codecommit", region_name=REGION)
    codecommit.meta.events.register("before-parameter-build.*.*", recorder)
    with Stubber(codecommit) as stubber, _sweeper_codecommit(codecommit):
        for head in ("a" * 40, "b" * 40):  # a baseline, then a head whose event was lost
            stubber.add_response("list_branches", {"branches": ["main"]}, {"repositoryName": "app"})
            for repository in ("app", "gated"):  # the watched repositories, in the sweep's order
                stubber.add_response(
                    "get_branch",
                    {"branch": {"branchName": "main", "commitId": head}},
                    {"repositoryName": repository, "branchName": "main"},
                )
            with recorder.running("sweeper"):
                cloud.invoke("sweeper", {"source": "aws.events", "detail-type": "Scheduled Event"})
            cloud.settle_operations()


@contextmanager
def _sweeper_codecommit(codecommit: Any) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        others = runtime.client
        patch.setattr(
            runtime,
            "client",
            lambda service, region=None: codecommit if service == "codecommit" else others(service, region),
        )
        yield


def _github_push(
    cloud: Cloud, delivery_id: str, seconds: int, repository: str = "Codertocat/Hello-World"
) -> tuple[bytes, dict[str, str]]:
    body = json.loads((PAYLOADS / "github-push.body.json").read_bytes())
    body["repository"]["full_name"] = repository
    body["repository"]["pushed_at"] = int(cloud.now().timestamp()) + seconds
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": sign(raw, WEBHOOK_SECRETS["github"]),
    }
    return raw, headers


@contextmanager
def _failing_put_events(cloud: Cloud) -> Iterator[None]:
    events = runtime.client("events")

    def refuse(**_: Any) -> None:
        raise RuntimeError("EventBridge is down")

    events.meta.events.register_first("before-call.events.PutEvents", refuse)
    try:
        yield
    finally:
        events.meta.events.unregister("before-call.events.PutEvents", refuse)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_role_grants_exactly_what_its_code_calls(
    cloud: Cloud, recorder: CallRecorder, function: str
) -> None:
    exercise_every_path(cloud, recorder)
    called = set(recorder.calls[function])
    if function in ASYNC_FUNCTIONS:
        # Lambda sends a failed invocation to the on-failure destination with the function's own role.
        called.add(("sqs:SendMessage", "DeadLetterQueue"))
    called |= UNREACHABLE_HERE.get(function, set())
    granted = template_grants(FUNCTIONS[function])
    called = {_as_granted(grant, granted) for grant in called}

    unused, missing = sorted(granted - called), sorted(called - granted)
    assert not unused, f"{function}: granted but never called: {unused}"
    assert not missing, f"{function}: called without a grant: {missing}"
