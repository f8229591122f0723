"""Exactly once, in order, and true (issue 8): the controller under faults, through the real handlers.

Every test drives the Lambda handlers against moto and the App Runner simulator, injects faults at the
AWS client layer only (tests/integration/faults.py), and asserts what a user would see: deployment
statuses, the image App Runner is configured with, how many operations App Runner ran, and what the
ledger's change records say.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pushdeploy.sources.signatures import sign
from tests.conftest import PAYLOADS
from tests.integration.faults import (
    Call,
    LambdaCrash,
    crash_after,
    crash_after_ledger_write,
    crash_before,
    failing,
    for_service,
    intercept,
    ledger_clients,
    not_found,
    operation,
    puts_deployment,
    run_inside,
    server_error,
    throughput_exceeded,
    writes_ledger,
)
from tests.integration.harness import ACCOUNT, REGION, REGISTRY, WEBHOOK_SECRETS, Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 40)]
START_GRACE = 120  # seconds a deployment may sit in `starting` before the reconciler acts on it
IN_FLIGHT = frozenset({"queued", "starting", "in_progress"})
HOTFIX = f"{REGISTRY}/web:hotfix-7"
CODECOMMIT_URL = "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app"


# --- helpers ---------------------------------------------------------------------------------------


def pinned(digest: str, repository: str = "web") -> str:
    return f"{REGISTRY}/{repository}@{digest}"


def event_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def settle(cloud: Cloud, services: list[str], rounds: int = 8) -> None:
    """Let time pass: App Runner finishes what runs, its events arrive, the reconciler runs past the start
    grace, until nothing on `services` is in flight (or `rounds` runs out)."""
    for _ in range(rounds):
        cloud.finish_operations()
        if not any(status in IN_FLIGHT for service in services for status in cloud.statuses(service)):
            return
        cloud.advance(START_GRACE + 10)
        cloud.reconcile()


def operations(cloud: Cloud, service: str, kind: str | None = None) -> list[dict[str, Any]]:
    """App Runner's own list of the service's operations (newest first), of one type if given."""
    listed = cloud.apprunner.list_operations(ServiceArn=service, MaxResults=20)["OperationSummaryList"]
    return [op for op in listed if kind is None or op["Type"] == kind]


def updates_to(cloud: Cloud, service: str) -> list[str]:
    """The images of every UpdateService request App Runner received for the service, oldest first."""
    return [
        params["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"]
        for params in cloud.calls("UpdateService")
        if params["ServiceArn"] == service
    ]


def decision(cloud: Cloud, change_id: str, rule: str) -> dict[str, Any]:
    change = cloud.ledger.change(change_id)
    assert change is not None, f"change {change_id} is not recorded"
    (found,) = [d for d in change["decisions"] if d["rule"] == rule]
    return dict(found)


def operator_sets_image(cloud: Cloud, service: str, image: str) -> str:
    """Someone runs UpdateService by hand, as the console does: the source as DescribeService shows it,
    with another image. Returns the operation id."""
    source = cloud.apprunner.describe_service(ServiceArn=service)["Service"]["SourceConfiguration"]
    repository = {**source["ImageRepository"], "ImageIdentifier": image}
    update: dict[str, Any] = {"ImageRepository": repository}
    for key in ("AuthenticationConfiguration", "AutoDeploymentsEnabled"):
        if key in source:
            update[key] = source[key]
    answer = cloud.apprunner.update_service(ServiceArn=service, SourceConfiguration=update)
    return str(answer["OperationId"])


def semver_services(cloud: Cloud, count: int, prefix: str) -> list[tuple[str, str]]:
    """`count` image services, each with its own repository and a semver rule on it: fresh ground for
    one fault each. Returns (service ARN, repository) pairs."""
    made = [
        (cloud.create_image_service(f"{prefix}-{n}", "v1.0.0", f"{prefix}{n}"), f"{prefix}{n}")
        for n in range(count)
    ]
    cloud.apply_rules(
        [
            {"id": f"{prefix}-{n}", "service": arn, "image": {"repository": repository, "semver": ">=1.0.0"}}
            for n, (arn, repository) in enumerate(made)
        ]
    )
    cloud.sim.calls.clear()
    cloud.apprunner_events.clear()
    return made


def start_while_app_runner_fails(
    cloud: Cloud, tag: str, digest: str, repository: str = "web"
) -> dict[str, Any]:
    """A push whose UpdateService calls all answer HTTP 500 until the handler gives up: the deployment is
    left in `starting` for the reconciler. App Runner never acted on those calls."""
    with failing(cloud.apprunner, operation("UpdateService"), lambda call: server_error(call.operation)):
        return cloud.push_image(tag, digest, repository)


def codecommit_event(commit: str, previous: str, time: datetime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit",
        "account": ACCOUNT,
        "time": event_time(time),
        "region": REGION,
        "resources": [f"arn:aws:codecommit:{REGION}:{ACCOUNT}:app"],
        "detail": {
            "callerUserArn": f"arn:aws:iam::{ACCOUNT}:user/Mary_Major",
            "commitId": commit,
            "event": "referenceUpdated",
            "oldCommitId": previous,
            "referenceFullName": "refs/heads/main",
            "referenceName": "main",
            "referenceType": "branch",
            "repositoryId": "b7fe9986-858d-48e3-a75e-5ef46809cbbe",
            "repositoryName": "app",
        },
    }


def github_push(cloud: Cloud, before: str, after: str, pushed_at: datetime, delivery: str) -> dict[str, Any]:
    """A signed GitHub push of `master` (before -> after) through the webhook; returns the event the
    webhook put on EventBridge for the controller."""
    payload = json.loads((PAYLOADS / "github-push.body.json").read_bytes())
    payload["before"], payload["after"] = before, after
    payload["repository"]["pushed_at"] = int(pushed_at.timestamp())
    payload["head_commit"] = {
        **(payload.get("head_commit") or {}),
        "id": after,
        "timestamp": event_time(pushed_at),
    }
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": sign(body, WEBHOOK_SECRETS["github"]),
    }
    answer = cloud.webhook("/github", body, headers)
    assert answer["statusCode"] == 202, answer
    (event,) = cloud.forwarded()
    return event


# --- 1. a release is not lost on a transient fault ------------------------------------------------

FAULTS: dict[str, Callable[[Call], BaseException]] = {
    "throughput-exceeded": lambda call: throughput_exceeded(call.operation),
    "lambda-timeout": lambda call: LambdaCrash(f"Lambda timed out after {call.operation} took effect"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_release_survives_a_dynamodb_fault_and_the_lambda_retry(cloud: Cloud, fault: str) -> None:
    """The push handler fails right after its n-th ledger write took effect, for every n the handler
    makes (counted by the run where no fault fires), and Lambda retries the same event: the release
    deploys, exactly once, and its change record says so."""
    releases = semver_services(cloud, 12, "rel")
    problems: list[str] = []
    clean_run_writes: int | None = None
    for index, (service, repository) in enumerate(releases):
        event = cloud.ecr_push_event("v1.5.0", DIGESTS[index], repository)
        with (
            crash_after_ledger_write(cloud, index, FAULTS[fault]) as seen,
            contextlib.suppress(ClientError, LambdaCrash),
        ):
            cloud.invoke("image_pushed", event)
        if not seen.fired:
            clean_run_writes = len(seen.calls)
        retried = cloud.invoke("image_pushed", event)  # Lambda's retry of the same event
        settle(cloud, [service])

        where = (
            f"crash after ledger write {index} ({seen.crashed_on.operation})"
            if seen.crashed_on
            else "no crash"
        )
        deployments = cloud.deployments(service)
        if [str(d.status) for d in deployments] != ["succeeded"]:
            problems.append(f"{where}: statuses {[str(d.status) for d in deployments]}")
        started = operations(cloud, service, "UPDATE_SERVICE")
        if len(started) != 1:
            problems.append(f"{where}: App Runner ran {len(started)} UpdateService operations")
        if cloud.configured_image(service) != pinned(DIGESTS[index], repository):
            problems.append(f"{where}: App Runner runs {cloud.configured_image(service)}")
        change = cloud.ledger.change(deployments[0].change_id) if deployments else None
        if change is None:
            problems.append(f"{where}: no change record (the retry answered {retried})")
        else:
            (recorded,) = [d for d in change["decisions"] if d["rule"] == f"rel-{index}"]
            if recorded["deployment"] != deployments[0].id:
                problems.append(f"{where}: change record names {recorded['deployment']}: {recorded['note']}")
            if change.get("expires_at") is not None:
                problems.append(f"{where}: change record of a deployed push expires")
        if clean_run_writes is not None:
            break

    assert clean_run_writes is not None, "the push made more ledger writes than the test has services for"
    assert clean_run_writes >= 2, "a push that deploys writes the ledger more than once"
    assert not problems, "\n".join(problems)


# --- 2. two concurrent semver pushes end on the newer one ------------------------------------------


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the nested push flushed them
def test_concurrent_semver_pushes_end_on_the_newer_version(cloud: Cloud, services: dict[str, str]) -> None:
    """v1.5.0's handler is paused just before its first ledger transaction while v1.6.0's whole push
    runs: the service ends on v1.6.0, and v1.5.0 is refused (or superseded), never deployed after it."""
    prod = services["prod"]
    older_event = cloud.ecr_push_event("v1.5.0", DIGESTS[15])
    newer_event = cloud.ecr_push_event("v1.6.0", DIGESTS[16])
    ledger_transaction = operation("TransactWriteItems", writes_ledger)
    with run_inside(
        ledger_clients(cloud), ledger_transaction, lambda: cloud.invoke("image_pushed", newer_event)
    ) as newer_push:
        older = cloud.invoke("image_pushed", older_event)
    assert newer_push.fired
    settle(cloud, [prod])

    assert cloud.configured_image(prod) == pinned(DIGESTS[16])
    images = updates_to(cloud, prod)
    assert images.count(pinned(DIGESTS[16])) == 1
    assert pinned(DIGESTS[15]) not in images[images.index(pinned(DIGESTS[16])) :]
    by_digest = {d.digest: d for d in cloud.deployments(prod)}
    assert by_digest[DIGESTS[16]].status == "succeeded"
    refused = decision(cloud, older["changes"][0], "web-prod")
    if refused["deployment"] is None:
        assert refused["note"].startswith("not deployed:")
        assert "older than" in refused["note"]
    else:
        assert by_digest[DIGESTS[15]].status == "superseded"


# --- 3. a rolled-back version blocks neither later fixes nor a rebuild ---------------------------


def test_a_rolled_back_release_does_not_block_later_fixes_or_a_rebuild(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """v1.7.0 rolls back while v1.5.0 stays live: v1.6.5 deploys, then v1.7.0 rebuilt (a new digest)."""
    prod = services["prod"]
    cloud.push_image("v1.5.0", DIGESTS[5])
    cloud.finish_operations()
    cloud.sim.fail_next(prod)
    cloud.push_image("v1.7.0", DIGESTS[7])
    cloud.finish_operations()
    assert cloud.statuses(prod) == ["succeeded", "rolled_back"]
    assert cloud.configured_image(prod) == pinned(DIGESTS[5])

    fix = cloud.push_image("v1.6.5", DIGESTS[6])
    assert fix["deployments"], decision(cloud, fix["changes"][0], "web-prod")["note"]
    settle(cloud, [prod])
    assert cloud.configured_image(prod) == pinned(DIGESTS[6])

    rebuilt = cloud.push_image("v1.7.0", DIGESTS[8])  # the same tag, rebuilt: a new digest
    assert rebuilt["deployments"], decision(cloud, rebuilt["changes"][0], "web-prod")["note"]
    settle(cloud, [prod])
    assert cloud.statuses(prod) == ["succeeded", "rolled_back", "succeeded", "succeeded"]
    assert cloud.configured_image(prod) == pinned(DIGESTS[8])
    assert updates_to(cloud, prod) == [pinned(DIGESTS[n]) for n in (5, 7, 6, 8)]


@pytest.mark.parametrize("tag", ["v1.7.0", "v1.8.0"])
def test_a_digest_that_rolled_back_is_not_deployed_there_again(
    cloud: Cloud, services: dict[str, str], tag: str
) -> None:
    """The failed artifact pushed again (same digest, a new event; under its tag or a newer one) is
    refused because it failed, although it would be newer than what is live."""
    prod = services["prod"]
    cloud.push_image("v1.5.0", DIGESTS[5])
    cloud.finish_operations()
    cloud.sim.fail_next(prod)
    cloud.push_image("v1.7.0", DIGESTS[7])
    cloud.finish_operations()

    again = cloud.push_image(tag, DIGESTS[7])
    settle(cloud, [prod])
    assert again["deployments"] == []
    note = decision(cloud, again["changes"][0], "web-prod")["note"]
    assert note.startswith("not deployed:")
    assert "rolled back" in note or "failed" in note
    assert updates_to(cloud, prod) == [pinned(DIGESTS[5]), pinned(DIGESTS[7])]
    assert cloud.configured_image(prod) == pinned(DIGESTS[5])


# --- 4. out-of-order pushes never replace newer ones -----------------------------------------------


@pytest.mark.parametrize("newer_is", ["in_progress", "live", "pending"])
def test_an_older_release_tag_delivered_late_never_runs(cloud: Cloud, newer_is: str) -> None:
    """release-3 (pushed at T+10) reaches pushdeploy before release-2 (pushed at T): release-2 never runs,
    whether release-3 is deploying, live, or waiting behind release-1. release-2's digest sorts after
    release-3's, so only the push time orders them."""
    service = cloud.create_image_service("web-release", tag="release-0")
    cloud.apply_rules(
        [{"id": "web-release", "service": service, "image": {"repository": "web", "tag_glob": "release-*"}}]
    )
    pushed_at = cloud.now()
    first = cloud.ecr_push_event("release-1", DIGESTS[1])
    first["time"] = event_time(pushed_at - timedelta(seconds=10))
    newer = cloud.ecr_push_event("release-3", DIGESTS[3])
    newer["time"] = event_time(pushed_at + timedelta(seconds=10))
    older = cloud.ecr_push_event("release-2", DIGESTS[30])
    older["time"] = event_time(pushed_at)

    if newer_is == "pending":
        cloud.invoke("image_pushed", first)
    cloud.invoke("image_pushed", newer)
    if newer_is == "live":
        cloud.finish_operations()
    late = cloud.invoke("image_pushed", older)
    settle(cloud, [service])

    before = [("release-1", "succeeded")] if newer_is == "pending" else []
    assert [(d.tag, str(d.status)) for d in cloud.deployments(service)] == [
        *before,
        ("release-3", "succeeded"),
    ]
    assert pinned(DIGESTS[30]) not in updates_to(cloud, service)
    assert cloud.configured_image(service) == pinned(DIGESTS[3])
    refused = decision(cloud, late["changes"][0], "web-release")
    assert refused["deployment"] is None
    assert refused["note"].startswith("not deployed:")
    assert "older than" in refused["note"]


# C1's push time relative to C2's: the commit chain orders them whatever the clocks say.
PUSH_CLOCKS = {"in order": 10, "same second": 0, "skewed": -10}


@pytest.mark.parametrize("clock", sorted(PUSH_CLOCKS))
@pytest.mark.parametrize("newer_is", ["in_progress", "live"])
def test_a_stale_codecommit_push_delivered_late_is_refused(cloud: Cloud, newer_is: str, clock: str) -> None:
    """C1 then C2 (whose previous commit is C1), delivered C2 first: one deployment, of C2; C1 is refused
    and the ledger never names it as live. C1's id sorts after C2's, so only the chain orders them when
    the push times do not."""
    service = cloud.create_code_service("app-code", CODECOMMIT_URL, "main")
    code = {"provider": "codecommit", "repository": "app", "branch": "main"}
    cloud.apply_rules([{"id": "app", "service": service, "code": code}])
    cloud.sim.calls.clear()
    c0, c1, c2 = "c0" * 20, "e1" * 20, "a2" * 20
    pushed_at = cloud.now()

    cloud.invoke("commit_pushed", codecommit_event(c2, c1, pushed_at + timedelta(seconds=PUSH_CLOCKS[clock])))
    if newer_is == "live":
        cloud.finish_operations()
    stale = cloud.invoke("commit_pushed", codecommit_event(c1, c0, pushed_at))
    assert [d.commit for d in cloud.deployments(service)] == [c2]
    settle(cloud, [service])

    assert cloud.calls("StartDeployment") == [{"ServiceArn": service}]
    assert [(d.commit, str(d.status)) for d in cloud.deployments(service)] == [(c2, "succeeded")]
    refused = decision(cloud, stale["changes"][0], "app")
    assert refused["deployment"] is None
    assert refused["note"].startswith("not deployed:")
    assert "older than" in refused["note"]


def test_a_stale_github_push_delivered_late_is_refused(cloud: Cloud) -> None:
    """The same through the webhook: two GitHub pushes of master (C0 -> C1, then C1 -> C2) whose
    forwarded events reach the controller newest first: C2 deploys once, C1 is refused."""
    service = cloud.create_code_service("hello-world", "https://github.com/Codertocat/Hello-World", "master")
    code = {"provider": "github", "repository": "Codertocat/Hello-World", "branch": "master"}
    cloud.apply_rules([{"id": "hello-world", "service": service, "code": code}])
    cloud.sim.calls.clear()
    c0, c1, c2 = (f"{n:040x}" for n in (0xC0, 0xC1, 0xC2))
    pushed_at = cloud.now()
    first = github_push(cloud, c0, c1, pushed_at, "aaaaaaaa-0000-4000-8000-000000000001")
    second = github_push(
        cloud, c1, c2, pushed_at + timedelta(seconds=10), "aaaaaaaa-0000-4000-8000-000000000002"
    )

    cloud.invoke("commit_pushed", second)
    stale = cloud.invoke("commit_pushed", first)
    settle(cloud, [service])

    assert cloud.calls("StartDeployment") == [{"ServiceArn": service}]
    assert [(d.commit, str(d.status)) for d in cloud.deployments(service)] == [(c2, "succeeded")]
    refused = decision(cloud, stale["changes"][0], "hello-world")
    assert refused["deployment"] is None
    assert refused["note"].startswith("not deployed:")
    assert "older than" in refused["note"]


# --- 5. overlapping reconciler runs deploy once -----------------------------------------------------


def test_a_reconciler_run_inside_another_deploys_the_digest_once(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """A deployment left in `starting` (App Runner answered 500s); past the grace, run R1 calls
    UpdateService and, before it records the answer, a whole run R2 happens; then R1 goes on. App Runner
    runs one UpdateService, the deployment succeeds with it, and nothing runs again later."""
    prod = services["prod"]
    start_while_app_runner_fails(cloud, "v1.5.0", DIGESTS[5])
    assert cloud.statuses(prod) == ["starting"]
    cloud.advance(START_GRACE + 10)

    ours = operation("UpdateService", for_service(prod))
    with run_inside(cloud.apprunner, ours, cloud.reconcile, when="after") as second_run:
        cloud.reconcile()
    assert second_run.fired
    settle(cloud, [prod])
    for _ in range(3):
        cloud.advance(START_GRACE + 10)
        cloud.reconcile()
        cloud.finish_operations()

    (started,) = operations(cloud, prod, "UPDATE_SERVICE")
    (deployment,) = cloud.deployments(prod)
    assert (deployment.status, deployment.operation_id) == ("succeeded", started["Id"])
    assert cloud.configured_image(prod) == pinned(DIGESTS[5])


def overlap_runs(cloud: Cloud, service: str, r2_call: int) -> bool:
    """Two reconciler runs on two threads, interleaved so that R1's UpdateService lands just before R2's
    App Runner call number `r2_call`, and R1 records its answer only after R2 finished. False when R2
    made fewer App Runner calls than that (the interleaving does not exist)."""
    main = threading.current_thread()
    r1_called, r2_done = threading.Event(), threading.Event()
    r1_thread: list[threading.Thread] = []
    r2_calls = [0]
    errors: list[BaseException] = []

    def run_r1() -> None:
        try:
            cloud.reconcile()
        except BaseException as error:  # reported after the join
            errors.append(error)
        finally:
            r1_called.set()  # never leave R2 waiting

    def before(call: Call) -> None:
        if threading.current_thread() is not main:
            return
        if r2_calls[0] == r2_call and not r1_thread:
            r1_thread.append(threading.Thread(target=run_r1, name="reconciler-r1"))
            r1_thread[0].start()
            if not r1_called.wait(timeout=30):  # an assertion here would be swallowed by the reconciler
                errors.append(TimeoutError("R1 neither called UpdateService nor finished"))
        r2_calls[0] += 1

    def after(call: Call, status: int) -> None:
        in_r1 = bool(r1_thread) and threading.current_thread() is r1_thread[0]
        if (
            in_r1
            and status < 300
            and call.operation == "UpdateService"
            and call.params["ServiceArn"] == service
        ):
            r1_called.set()
            if not r2_done.wait(timeout=30):
                errors.append(TimeoutError("R2 did not finish while R1 waited"))

    with intercept(cloud.apprunner, before=before, after=after):
        try:
            cloud.reconcile()  # R2
        finally:
            r2_done.set()
            if r1_thread:
                r1_thread[0].join(timeout=30)
    if r1_thread and r1_thread[0].is_alive():
        errors.append(TimeoutError("R1 did not finish"))
    if errors:
        raise errors[0]
    return bool(r1_thread)


def test_overlapping_reconciler_runs_deploy_the_digest_once(cloud: Cloud) -> None:
    """Two overlapping runs on a deployment left in `starting`: R1's UpdateService lands just before R2's
    n-th App Runner call, for every n R2 makes, and R1 records its answer only once R2 is done. One of
    these is the issue's race: R2 looked for an operation, found none, then got "busy" and requeued
    while R1's start record lost. However the runs interleave, App Runner runs one UpdateService, the
    deployment succeeds with that operation, and nothing runs again later."""
    targets = semver_services(cloud, 8, "ovl")
    problems: list[str] = []
    realised = 0
    for r2_call, (service, repository) in enumerate(targets):
        start_while_app_runner_fails(cloud, "v1.5.0", DIGESTS[r2_call], repository)
        assert cloud.statuses(service) == ["starting"]
        cloud.advance(START_GRACE + 10)
        if not overlap_runs(cloud, service, r2_call):
            break
        realised += 1
        settle(cloud, [service])
        for _ in range(3):
            cloud.advance(START_GRACE + 10)
            cloud.reconcile()
            cloud.finish_operations()

        where = f"R1's UpdateService before R2's App Runner call {r2_call}"
        started = operations(cloud, service, "UPDATE_SERVICE")
        deployments = cloud.deployments(service)
        if len(started) != 1:
            problems.append(f"{where}: App Runner ran {len(started)} UpdateService operations")
        if [(str(d.status), d.operation_id) for d in deployments] != [("succeeded", started[-1]["Id"])]:
            seen = [(str(d.status), d.operation_id, d.detail) for d in deployments]
            problems.append(f"{where}: deployments {seen}")
        if cloud.configured_image(service) != pinned(DIGESTS[r2_call], repository):
            problems.append(f"{where}: App Runner runs {cloud.configured_image(service)}")

    assert realised >= 2, "R2 calls App Runner at least to look for operations and to deploy"
    assert not problems, "\n".join(problems)


# --- 6. someone else's operation is never adopted -----------------------------------------------


def test_an_operators_manual_update_is_recorded_as_outside_pushdeploy_not_adopted(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """The deployment waits in `starting` (App Runner answered 500s); an operator deploys web:hotfix-7
    by hand; it finishes. pushdeploy records it as a change made outside pushdeploy, never as its own,
    then deploys the pushed version with its own operation."""
    prod = services["prod"]
    start_while_app_runner_fails(cloud, "v1.5.0", DIGESTS[5])
    assert cloud.statuses(prod) == ["starting"]
    hotfix = operator_sets_image(cloud, prod, HOTFIX)
    cloud.finish_operations()
    assert cloud.configured_image(prod) == HOTFIX

    cloud.advance(START_GRACE + 10)
    cloud.reconcile()
    (deployment,) = cloud.deployments(prod)
    assert deployment.operation_id != hotfix, deployment.detail
    settle(cloud, [prod])

    (deployment,) = cloud.deployments(prod)
    assert deployment.status == "succeeded"
    assert deployment.operation_id != hotfix
    ours = [op["Id"] for op in operations(cloud, prod, "UPDATE_SERVICE") if op["Id"] != hotfix]
    assert ours == [deployment.operation_id]
    assert cloud.configured_image(prod) == pinned(DIGESTS[5])
    assert deployment.image == cloud.configured_image(prod)  # the ledger's live is what App Runner runs
    outside = {o["operation_id"]: o for o in cloud.ledger.outside_operations(prod)}
    assert outside[hotfix]["type"] == "UPDATE_SERVICE"
    assert deployment.operation_id not in outside


def test_an_operation_found_running_when_called_is_never_adopted_by_a_later_call(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """Someone runs StartDeployment by hand; a push of :latest is answered "busy" and records that
    operation as outside pushdeploy. The reconciler's next call then dies before its answer is recorded,
    within the clocks' skew of the hand-made operation's start. Once that ends, timing alone must not
    make it pushdeploy's: the deployment runs its own operation (a seed-7 soak found this)."""
    staging = services["staging"]
    by_hand = str(cloud.apprunner.start_deployment(ServiceArn=staging)["OperationId"])
    cloud.push_image("latest", DIGESTS[1])
    assert cloud.statuses(staging) == ["queued"]
    assert by_hand in {o["operation_id"] for o in cloud.ledger.outside_operations(staging)}

    # The reconciler claims an attempt, finds the service busy (DescribeService), and dies before the
    # ledger hears how its attempt ended: as far as the ledger knows, that call may have started something.
    described: list[Call] = []
    crash = LambdaCrash("the reconciler timed out after App Runner answered")
    with (
        intercept(cloud.apprunner, before=described.append),
        crash_before(
            ledger_clients(cloud), lambda call: bool(described) and writes_ledger(call), lambda _: crash
        ),
        contextlib.suppress(LambdaCrash),
    ):
        cloud.reconcile()
    assert cloud.statuses(staging) == ["starting"]  # its call may have started something
    settle(cloud, [staging])

    (deployment,) = cloud.deployments(staging)
    assert deployment.status == "succeeded"
    assert deployment.operation_id != by_hand
    ours = [op["Id"] for op in operations(cloud, staging, "START_DEPLOYMENT") if op["Id"] != by_hand]
    assert ours == [deployment.operation_id]


def test_its_own_update_is_adopted_though_someone_elses_failed_later_in_the_same_window(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """The push's UpdateService is accepted but its answer is lost (the Lambda dies); the operation
    succeeds. Within that call's window someone's UpdateService to web:hotfix-7 fails and rolls back.
    The reconciler adopts the operation App Runner shows to be the deployment's (its image configured,
    nothing succeeded after it), not the later failure (a seed-424242 soak found this)."""
    prod = services["prod"]
    crash = LambdaCrash("the push handler timed out after App Runner accepted UpdateService")
    with (
        crash_after(cloud.apprunner, operation("UpdateService"), lambda _: crash),
        contextlib.suppress(LambdaCrash),
    ):
        cloud.push_image("v1.5.0", DIGESTS[5])
    assert cloud.statuses(prod) == ["starting"]
    cloud.finish_operations()
    (own,) = [op["Id"] for op in operations(cloud, prod, "UPDATE_SERVICE")]
    cloud.sim.fail_next(prod)
    by_hand = operator_sets_image(cloud, prod, HOTFIX)
    settle(cloud, [prod])

    (deployment,) = cloud.deployments(prod)
    assert (deployment.status, deployment.operation_id) == ("succeeded", own), deployment.detail
    assert cloud.configured_image(prod) == pinned(DIGESTS[5])
    assert by_hand != own
    assert updates_to(cloud, prod) == [pinned(DIGESTS[5]), HOTFIX]  # never deployed a second time


# --- 7. "already live" asks App Runner; StartDeployment records what App Runner deploys -------------


def test_repushing_the_live_release_after_a_manual_change_deploys_it_again(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """v1.5.0 is live; an operator switches the service to web:hotfix-7 by hand; v1.5.0 pushed again (the
    same digest, a new event) is not refused as "already live": App Runner no longer runs it."""
    prod = services["prod"]
    cloud.push_image("v1.5.0", DIGESTS[5])
    cloud.finish_operations()
    assert cloud.statuses(prod) == ["succeeded"]
    operator_sets_image(cloud, prod, HOTFIX)
    cloud.finish_operations()
    assert cloud.configured_image(prod) == HOTFIX

    again = cloud.push_image("v1.5.0", DIGESTS[5])  # the same image, a new push event
    assert again["deployments"], decision(cloud, again["changes"][0], "web-prod")["note"]
    settle(cloud, [prod])
    assert cloud.configured_image(prod) == pinned(DIGESTS[5])
    assert updates_to(cloud, prod) == [pinned(DIGESTS[5]), HOTFIX, pinned(DIGESTS[5])]
    assert cloud.statuses(prod) == ["succeeded", "succeeded"]


def test_a_latest_push_records_the_image_app_runner_deploys(cloud: Cloud, services: dict[str, str]) -> None:
    """StartDeployment deploys what the service is configured with: that is the deployment's image."""
    staging = services["staging"]
    cloud.push_image("latest", DIGESTS[1])
    (deployment,) = cloud.deployments(staging)
    assert deployment.image == cloud.configured_image(staging) == f"{REGISTRY}/web:latest"
    settle(cloud, [staging])
    (deployment,) = cloud.deployments(staging)
    assert deployment.status == "succeeded"
    assert deployment.image == cloud.configured_image(staging)


def test_a_latest_push_after_a_manual_retag_records_what_app_runner_really_deploys(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """An operator pointed the staging service at web:hotfix-7; a push of `latest` makes StartDeployment
    redeploy hotfix-7, and the ledger says so instead of claiming the pushed digest is live."""
    staging = services["staging"]
    operator_sets_image(cloud, staging, HOTFIX)
    cloud.finish_operations()
    cloud.push_image("latest", DIGESTS[2])
    settle(cloud, [staging])
    (deployment,) = cloud.deployments(staging)
    assert deployment.status == "succeeded"
    assert deployment.image == cloud.configured_image(staging) == HOTFIX


# --- 8. a retried event never rewrites its own audit record ----------------------------------------

CRASH_POINTS: dict[str, Callable[[Cloud], list[Any]]] = {
    "after the deployment's commit": ledger_clients,
    "after the App Runner call": lambda cloud: [cloud.apprunner],
}
CRASH_WHERE: dict[str, Callable[[Call], bool]] = {
    "after the deployment's commit": puts_deployment,
    "after the App Runner call": operation("StartDeployment"),
}


@pytest.mark.parametrize("crash_point", sorted(CRASH_POINTS))
def test_a_retried_push_keeps_its_audit_record_after_a_crash_past_the_commit(
    cloud: Cloud, services: dict[str, str], crash_point: str
) -> None:
    """The handler dies once the deployment is committed (or once App Runner accepted the call), and
    Lambda retries the event: the retry reports its own deployment, and the change record lists it,
    never expires, and is not rewritten as "already being deployed as <itself>"."""
    staging = services["staging"]
    event = cloud.ecr_push_event("latest", DIGESTS[1])
    crash = CRASH_WHERE[crash_point]
    with (
        crash_after(
            CRASH_POINTS[crash_point](cloud), crash, lambda call: LambdaCrash(call.operation)
        ) as seen,
        pytest.raises(LambdaCrash),
    ):
        cloud.invoke("image_pushed", event)
    assert seen.fired
    (deployment,) = cloud.deployments(staging)
    change_id = deployment.change_id
    recorded_before_retry = cloud.ledger.change(change_id)

    retried = cloud.invoke("image_pushed", event)  # Lambda's retry of the same event
    assert retried["changes"] == [change_id]
    assert retried["deployments"] == [deployment.id]
    record = cloud.ledger.change(change_id)
    assert record is not None
    assert record.get("expires_at") is None
    (ours,) = [d for d in record["decisions"] if d["rule"] == "web-staging"]
    assert ours["deployment"] == deployment.id
    assert "already being deployed" not in (ours["note"] or "")
    if recorded_before_retry is not None:
        assert record == recorded_before_retry  # written once, never rewritten

    settle(cloud, [staging])
    assert cloud.statuses(staging) == ["succeeded"]
    assert len(operations(cloud, staging, "START_DEPLOYMENT")) == 1
    assert cloud.ledger.change(change_id) == record


# --- 9. a service that vanished does not wedge its slot -------------------------------------------

VANISHED: dict[str, Callable[[str], Callable[[Call], bool]]] = {
    "ListOperations answers ResourceNotFound": lambda arn: operation("ListOperations", for_service(arn)),
    "every call answers ResourceNotFound": for_service,
}


@pytest.mark.parametrize("vanished", sorted(VANISHED))
def test_a_deployment_whose_service_vanished_settles_as_an_error_and_frees_the_slot(
    cloud: Cloud, services: dict[str, str], vanished: str
) -> None:
    """A deployment in progress, another queued behind it, and the service vanishes (App Runner answers
    ResourceNotFound): the deployment settles `error` saying why, the slot is freed, and the queued
    one settles too instead of waiting forever."""
    prod = services["prod"]
    cloud.sim.lose_events(prod, count=10)  # nothing settles it but the reconciler
    cloud.push_image("v1.5.0", DIGESTS[5])
    cloud.push_image("v1.6.0", DIGESTS[6])
    assert cloud.statuses(prod) == ["in_progress", "queued"]

    with failing(cloud.apprunner, VANISHED[vanished](prod), lambda call: not_found(call.operation, prod)):
        cloud.reconcile()
        first = cloud.deployments(prod)[0]
        assert first.status == "error"
        assert "service" in (first.detail or "").lower()
        for _ in range(4):
            cloud.advance(START_GRACE + 10)
            cloud.reconcile()
        assert not IN_FLIGHT.intersection(cloud.statuses(prod)), cloud.statuses(prod)
        assert cloud.ledger.slot(prod).active is None


def test_the_live_release_pushed_again_after_its_service_was_deleted_is_refused_not_deployed_again(
    cloud: Cloud, services: dict[str, str]
) -> None:
    """v1.5.0 is live; the service is deleted; v1.5.0's event comes again under a new id (a late event
    after the sweep found the push, say). App Runner runs nothing there any more, so "still live" cannot
    be confirmed, and nothing can be deployed: the push is refused with why, and no second deployment of
    the same release is made only to end in error (found by the 50,000-step soak, seed 7)."""
    prod = services["prod"]
    cloud.push_image("v1.5.0", DIGESTS[5])
    cloud.finish_operations()
    assert cloud.statuses(prod) == ["succeeded"]

    with failing(cloud.apprunner, for_service(prod), lambda call: not_found(call.operation, prod)):
        again = cloud.push_image("v1.5.0", DIGESTS[5])
    assert again["deployments"] == []
    assert "no longer exists" in decision(cloud, again["changes"][0], "web-prod")["note"]
    assert cloud.statuses(prod) == ["succeeded"]


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # the nested twin flushed them
def test_a_delivery_racing_its_twin_reports_the_twins_deployment_never_refuses_itself(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one event at once. The first one's commit loses to another writer on the service
    (a conflict), and meanwhile its twin admits the change's deployment and records the change. Planning
    again, the first finds that deployment in the slot: it is its own, reported as the change's, never a
    refusal "already being deployed as <its own id>" (which, written first, would say the push deployed
    nothing and expire)."""
    from pushdeploy.adapters.ledger import Ledger, SlotConflict

    staging = services["staging"]
    event = cloud.ecr_push_event("latest", DIGESTS[1])
    commit = Ledger.commit
    twin_ran: list[bool] = []

    def commit_after_the_twin(ledger: Ledger, *args: Any, **kwargs: Any) -> None:
        if not twin_ran:
            twin_ran.append(True)
            cloud.invoke("image_pushed", event)  # the twin, from start to end
            raise SlotConflict(staging)
        commit(ledger, *args, **kwargs)

    monkeypatch.setattr(Ledger, "commit", commit_after_the_twin)
    answer = cloud.invoke("image_pushed", event)
    monkeypatch.undo()

    (deployment,) = cloud.deployments(staging)
    assert answer["deployments"] == [deployment.id]
    assert cloud.invoke("image_pushed", event)["deployments"] == [deployment.id]  # and from the record


def test_a_push_one_rule_deploys_is_recorded_with_its_deployment_even_if_the_lambda_dies_next(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change's record is committed in the admission's own transaction: a Lambda that dies before it
    calls App Runner leaves no deployment the ledger cannot explain, and its retry answers from the
    record."""
    from pushdeploy.runner import Runner

    staging = services["staging"]
    event = cloud.ecr_push_event("latest", DIGESTS[1])

    def dies(self: Runner, claimed: Any) -> None:
        raise RuntimeError("the Lambda timed out before calling App Runner")

    with monkeypatch.context() as patch:
        patch.setattr(Runner, "_call_claimed", dies)
        with pytest.raises(RuntimeError):
            cloud.invoke("image_pushed", event)
    (deployment,) = cloud.deployments(staging)
    assert deployment.change_id is not None
    recorded = decision(cloud, deployment.change_id, "web-staging")
    assert recorded["deployment"] == deployment.id
    assert cloud.calls("StartDeployment") == []
    assert cloud.invoke("image_pushed", event)["deployments"] == [deployment.id]  # Lambda's retry
    settle(cloud, [staging])  # the reconciler starts what the dead Lambda claimed, once
    assert cloud.statuses(staging) == ["succeeded"]
    assert len(cloud.calls("StartDeployment")) == 1


def test_a_delivery_whose_twin_recorded_the_push_first_deploys_nothing_and_reports_the_twins_record(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of one event decide differently (App Runner answered the twin's "still live?" check
    otherwise, say): the twin refused the push and recorded that while this one admitted it. This one's
    admission, which carries the change's record, is cancelled whole: one change, one record, and no
    deployment the record does not list."""
    from pushdeploy.adapters.ledger import Ledger, Put

    staging = services["staging"]
    event = cloud.ecr_push_event("latest", DIGESTS[1])
    commit = Ledger.commit
    refusal = "not deployed: the twin found it live already"

    def twin_records_first(
        ledger: Ledger, service: str, expected: Any, new: Any, transitions: Any, created: Any, puts: list[Put]
    ) -> None:
        (draft,) = [put for put in puts if put.item.get("sk") == "CHANGE"]
        decisions = [{**d, "deployment": None, "note": refusal} for d in draft.item["decisions"]]
        ledger.record_change(str(draft.item["change_id"]), {**draft.item, "decisions": decisions}, None)
        commit(ledger, service, expected, new, transitions, created, puts)

    with monkeypatch.context() as patch:
        patch.setattr(Ledger, "commit", twin_records_first)
        answer = cloud.invoke("image_pushed", event)
    assert answer["deployments"] == []
    assert cloud.deployments(staging) == []
    assert cloud.calls("StartDeployment") == []
    (change_id,) = answer["changes"]
    assert decision(cloud, change_id, "web-staging")["note"] == refusal
