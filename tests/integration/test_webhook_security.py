"""Issue 9, "Only signed, fresh pushes deploy", proved through the real handlers.

Each test is named after one behaviour of the issue's list: a forged `Change Pushed` event deploys
nothing; a captured signed delivery replayed under a new delivery id deploys nothing new; a reused delivery
id cannot overwrite another push's audit record; rotating a leaked secret revokes it; a stale delivery is
refused and recorded; the webhook has reserved concurrency and answers 5xx when EventBridge does not take
the change; and no log line of the webhook carries a secret, a signature or a body. (The catastrophic
`tag_regex` behaviour is covered elsewhere.)

Deliveries are built from the real GitHub push fixture with `after`, `before` and `repository.pushed_at`
changed, signed with the harness's secrets, sent through the webhook's handler as Function URL requests;
what the webhook forwarded on the internal bus is handed to the commit function as EventBridge would.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

from pushdeploy import runtime
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.domain.changes import Change
from pushdeploy.local.template import load_template
from pushdeploy.sources.signatures import sign
from pushdeploy.webhook import forget_container
from tests.conftest import PAYLOADS
from tests.integration.faults import failing, operation
from tests.integration.harness import (
    ACCOUNT,
    INTERNAL_BUS,
    REGION,
    ROOT,
    TABLES,
    WEBHOOK_SECRETS,
    Cloud,
)

GITHUB_REPO = "Codertocat/Hello-World"  # the fixture's repository
FIXTURE = json.loads((PAYLOADS / "github-push.body.json").read_bytes())
NULL_COMMIT = "0" * 40
# Put into every body's head commit message: it must never reach a log line.
BODY_MARKER = "body-marker-5f0c2e9a-must-never-be-logged"
NEW_SECRET = "RotatedGitHubSecret0123456789abcdefghijk"
C1, C2 = "c1" * 20, "c2" * 20


# --- deliveries ----------------------------------------------------------------------------------------


def push_body(
    after: str,
    pushed_at: datetime,
    before: str = NULL_COMMIT,
    repository: str = GITHUB_REPO,
) -> bytes:
    """The GitHub push fixture moved to `before -> after` on master, pushed at `pushed_at`."""
    document = json.loads(json.dumps(FIXTURE))
    document["after"], document["before"] = after, before
    document["repository"]["full_name"] = repository
    document["repository"]["pushed_at"] = int(pushed_at.timestamp())
    document["head_commit"].update(
        id=after,
        message=f"Fix the thing\n\n{BODY_MARKER}",
        timestamp=pushed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return json.dumps(document).encode()


def github_headers(
    body: bytes, delivery: str, secret: str | None = WEBHOOK_SECRETS["github"], event: str = "push"
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "292430182",
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(body, secret)
    return headers


def deliver(
    cloud: Cloud, body: bytes, delivery: str, secret: str | None = WEBHOOK_SECRETS["github"]
) -> dict[str, Any]:
    """One signed delivery to /github; the HTTP answer."""
    return cloud.webhook("/github", body, github_headers(body, delivery, secret))


def status(answer: Mapping[str, Any]) -> int:
    return int(answer["statusCode"])


def body_of(answer: Mapping[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(answer["body"])
    return parsed


def decide_forwarded(cloud: Cloud) -> list[dict[str, Any]]:
    """Hand every change the webhook put on the internal bus to the commit function."""
    return [cloud.invoke("commit_pushed", event) for event in cloud.forwarded()]


def items(cloud: Cloud, table: str) -> list[dict[str, Any]]:
    return list(cloud.dynamodb.scan(TableName=TABLES[table])["Items"])


def live_commit(cloud: Cloud, service: str) -> str | None:
    live = cloud.ledger.slot(service).live
    return None if live is None else live.artifact


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def code_service(cloud: Cloud) -> str:
    """A code-based App Runner service deployed from the fixture's repository, master."""
    service = cloud.create_code_service("hello-world", f"https://github.com/{GITHUB_REPO}", "master")
    rule = {"provider": "github", "repository": GITHUB_REPO, "branch": "master"}
    cloud.apply_rules([{"id": "hello-world", "service": service, "code": rule}])
    cloud.sim.calls.clear()
    cloud.apprunner_events.clear()
    return service


# === 1. a forged event deploys nothing ===================================================================


def change_pushed_event(detail: Mapping[str, Any]) -> dict[str, Any]:
    """A `Change Pushed` event as EventBridge hands it to a target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Change Pushed",
        "source": "pushdeploy.webhook",
        "account": ACCOUNT,
        "time": "2026-11-26T08:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": dict(detail),
    }


def forged_detail(change: Mapping[str, Any], provider: str) -> dict[str, Any]:
    return {
        "change": dict(change),
        "delivery_id": f"forged-{uuid.uuid4()}",
        "provider": provider,
        "position": 0,
        "pushed_at": None,
        "previous_commit": None,
    }


FORGED_IMAGE = {  # a release nobody made: it would poison the semver order
    "kind": "image",
    "source": "ecr",
    "account": ACCOUNT,
    "region": REGION,
    "repository": "web",
    "tag": "v1.999.0",
    "digest": "sha256:" + "66" * 32,
}
FORGED_CODECOMMIT = {
    "kind": "commit",
    "source": "codecommit",
    "account": ACCOUNT,
    "region": REGION,
    "repository": "app",
    "branch": "main",
    "commit": "f0" * 20,
}
FORGED_GITHUB = {
    "kind": "commit",
    "source": "github",
    "repository": GITHUB_REPO,
    "branch": "master",
    "commit": C1,
}
FORGED: dict[str, dict[str, Any]] = {
    "an image change": forged_detail(FORGED_IMAGE, "github"),
    "an image change as provider ecr": forged_detail(FORGED_IMAGE, "ecr"),
    "a codecommit change": forged_detail(FORGED_CODECOMMIT, "codecommit"),
    "a codecommit change as provider github": forged_detail(FORGED_CODECOMMIT, "github"),
    "a github change forwarded as provider bitbucket": forged_detail(FORGED_GITHUB, "bitbucket"),
}


@pytest.fixture
def every_kind_of_service(cloud: Cloud, code_service: str) -> dict[str, str]:
    """Services and rules that WOULD deploy each forged change if it were accepted."""
    image = cloud.create_image_service("web-prod", tag="v1.0.0")
    codecommit = cloud.create_code_service(
        "app-code", "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app", "main"
    )
    cloud.apply_rules(
        [
            {"id": "web-prod", "service": image, "image": {"repository": "web", "semver": ">=1.0.0"}},
            {
                "id": "app",
                "service": codecommit,
                "code": {"provider": "codecommit", "repository": "app", "branch": "main"},
            },
            {
                "id": "hello-world",
                "service": code_service,
                "code": {"provider": "github", "repository": GITHUB_REPO, "branch": "master"},
            },
        ]
    )
    cloud.sim.calls.clear()
    cloud.apprunner_events.clear()
    return {"image": image, "codecommit": codecommit, "github": code_service}


@pytest.fixture
def commit_pushed_path(cloud: Cloud) -> str:
    """Every EventBridge rule of template.yaml, on the bus the template puts it on (the default bus, or the
    internal bus), each targeting its function's queue; returns the commit function's queue URL."""
    template = load_template(ROOT / "template.yaml")
    events: Any = runtime.client("events")
    queues: dict[str, str] = {}
    for function, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for name, event in resource["Properties"].get("Events", {}).items():
            if event.get("Type") != "EventBridgeRule":
                continue
            properties = event["Properties"]
            bus = properties.get("EventBusName")
            assert bus in (None, {"Ref": "InternalEventBus"}), f"{function}.{name} on an unknown bus {bus}"
            bus_name = "default" if bus is None else INTERNAL_BUS
            if function not in queues:
                queues[function] = cloud.sqs.create_queue(QueueName=f"path-{function}")["QueueUrl"]
            arn = cloud.sqs.get_queue_attributes(QueueUrl=queues[function], AttributeNames=["QueueArn"])
            rule = f"template-{function}-{name}"
            events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=json.dumps(properties["Pattern"]))
            events.put_targets(
                Rule=rule,
                EventBusName=bus_name,
                Targets=[{"Id": "path", "Arn": arn["Attributes"]["QueueArn"]}],
            )
    return queues["CommitPushedFunction"]


def drain(cloud: Cloud, queue_url: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while True:
        batch = cloud.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        if not batch.get("Messages"):
            return received
        for message in batch["Messages"]:
            received.append(json.loads(message["Body"]))
            cloud.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.parametrize("forged", sorted(FORGED))
def test_a_forged_change_pushed_event_on_the_default_bus_reaches_no_pushdeploy_rule(
    cloud: Cloud, commit_pushed_path: str, forged: str
) -> None:
    """Anyone with events:PutEvents may put `pushdeploy.webhook` / `Change Pushed` on the default bus;
    no pushdeploy rule listens for it there. The same event on the internal bus does reach the commit
    function's path (so the rules are really in place), which is why only the webhook's role may put there."""
    events: Any = runtime.client("events")
    entry = {
        "Source": "pushdeploy.webhook",
        "DetailType": "Change Pushed",
        "Detail": json.dumps(FORGED[forged]),
    }

    put = events.put_events(Entries=[{**entry, "EventBusName": "default"}])
    assert put["FailedEntryCount"] == 0  # the default bus takes it: it just goes nowhere
    assert drain(cloud, commit_pushed_path) == []
    assert cloud.forwarded() == []
    assert cloud.published() == []

    # Control: the template's rule does match it, but only on the internal bus.
    events.put_events(Entries=[{**entry, "EventBusName": INTERNAL_BUS}])
    assert [event["detail"] for event in drain(cloud, commit_pushed_path)] == [FORGED[forged]]


@pytest.mark.parametrize("forged", sorted(FORGED))
def test_a_forged_change_that_reaches_the_commit_function_is_dead_lettered_and_deploys_nothing(
    cloud: Cloud, every_kind_of_service: dict[str, str], forged: str
) -> None:
    """Even put straight into the commit function, a forwarded change is only a GitHub or Bitbucket
    commit matching the path it came in on: anything else deploys nothing, calls no App Runner API and
    is parked in the dead-letter queue."""
    detail = FORGED[forged]
    # Not vacuous: some rule watches the forged change, so accepting it would deploy.
    rules = RulesStore(cloud.dynamodb, TABLES["RulesTable"])
    assert rules.watching(Change.model_validate(detail["change"]))

    event = change_pushed_event(detail)
    result = cloud.invoke("commit_pushed", event)

    assert result["status"] == "rejected"
    assert cloud.sim.calls == []
    for service in every_kind_of_service.values():
        assert cloud.deployments(service) == []
    assert items(cloud, "LedgerTable") == []
    (parked,) = cloud.dead_letters()
    assert parked["event"] == event
    assert "forwarded" in parked["error"]


# === 2. a captured signed delivery, replayed under a new delivery id, deploys nothing new ================


def test_a_signed_delivery_replayed_with_a_new_delivery_id_deploys_nothing_new(
    cloud: Cloud, code_service: str
) -> None:
    body = push_body(C1, cloud.now() - timedelta(minutes=5))
    first = deliver(cloud, body, "delivery-1")
    assert status(first) == 202
    decide_forwarded(cloud)
    assert cloud.calls("StartDeployment") == [{"ServiceArn": code_service}]
    assert cloud.statuses(code_service) == ["in_progress"]

    # Replayed while the first deploys, and again once it has succeeded.
    for delivery in ("captured-replay-1", "captured-replay-2"):
        replay = deliver(cloud, body, delivery)
        assert status(replay) == 202
        assert body_of(replay)["changes"] == body_of(first)["changes"]
        decide_forwarded(cloud)
        assert len(cloud.calls("StartDeployment")) == 1
        assert len(cloud.deployments(code_service)) == 1
        cloud.finish_operations()
    assert cloud.statuses(code_service) == ["succeeded"]


def test_alternating_two_old_deliveries_never_redeploys_or_records_the_older_commit_as_live(
    cloud: Cloud, code_service: str
) -> None:
    """C1, then C2 pushed on C1; then the captured C1 and C2 deliveries replayed alternately under new
    delivery ids: two deployments in all, and C2 stays live."""
    pushed = cloud.now() - timedelta(minutes=30)
    c1 = push_body(C1, pushed)
    c2 = push_body(C2, pushed + timedelta(minutes=1), before=C1)

    first = deliver(cloud, c1, "delivery-c1")
    assert status(first) == 202
    decide_forwarded(cloud)
    cloud.finish_operations()
    assert live_commit(cloud, code_service) == C1
    (c1_id,) = body_of(first)["changes"]
    c1_record = cloud.ledger.change(c1_id)
    assert status(deliver(cloud, c2, "delivery-c2")) == 202
    decide_forwarded(cloud)
    cloud.finish_operations()
    assert live_commit(cloud, code_service) == C2
    assert len(cloud.calls("StartDeployment")) == 2

    for round_, body in enumerate([c1, c2, c1, c1, c2, c1]):
        replay = deliver(cloud, body, f"replay-{round_}")
        assert status(replay) == 202
        if body == c1:
            assert body_of(replay)["changes"] == [c1_id]  # the same change, whatever the delivery id
        decide_forwarded(cloud)
        cloud.finish_operations()
        assert live_commit(cloud, code_service) == C2, f"after replay {round_}"
        assert len(cloud.calls("StartDeployment")) == 2, f"after replay {round_}"

    assert [(d.commit, str(d.status)) for d in cloud.deployments(code_service)] == [
        (C1, "succeeded"),
        (C2, "succeeded"),
    ]
    assert cloud.ledger.change(c1_id) == c1_record  # decided once, never again


# === 3. a delivery id cannot name another push's audit record ==========================================


@pytest.mark.parametrize("watched", [True, False], ids=["decided-by-the-controller", "noted-as-no-rule"])
def test_a_reused_delivery_id_cannot_overwrite_another_pushs_audit_record(
    cloud: Cloud, watched: bool, request: pytest.FixtureRequest
) -> None:
    service = request.getfixturevalue("code_service") if watched else None
    pushed = cloud.now() - timedelta(minutes=10)
    first_body = push_body(C1, pushed)
    second_body = push_body(C2, pushed + timedelta(minutes=1), before=C1)

    first = deliver(cloud, first_body, "same-delivery-id")
    assert status(first) == 202
    decide_forwarded(cloud)
    (first_id,) = body_of(first)["changes"]
    before = cloud.ledger.change(first_id)
    assert before is not None
    assert before["change"]["commit"] == C1

    second = deliver(cloud, second_body, "same-delivery-id")
    assert status(second) == 202
    decide_forwarded(cloud)
    (second_id,) = body_of(second)["changes"]

    assert second_id != first_id
    assert cloud.ledger.change(first_id) == before
    if service is None:  # both noted by the webhook, each under its own id
        noted = cloud.ledger.change(second_id)
        assert noted is not None
        assert noted["change"]["commit"] == C2


def test_a_different_push_under_a_reused_delivery_id_is_never_answered_forwarded_and_dropped(
    cloud: Cloud, code_service: str
) -> None:
    """Either the second push is handed over (the commit function then records and decides it) or it is
    refused; it is not answered "forwarded" while nothing was forwarded."""
    pushed = cloud.now() - timedelta(minutes=10)
    assert status(deliver(cloud, push_body(C1, pushed), "same-delivery-id")) == 202
    decide_forwarded(cloud)

    second = deliver(cloud, push_body(C2, pushed + timedelta(minutes=1), before=C1), "same-delivery-id")
    decided = decide_forwarded(cloud)

    if 200 <= status(second) < 300 and body_of(second).get("forwarded"):
        (second_id,) = body_of(second)["changes"]
        assert [result["changes"] for result in decided] == [[second_id]]
        assert cloud.ledger.change(second_id) is not None
    else:
        assert status(second) >= 400
        assert decided == []


# === 4. rotating a leaked secret revokes it ============================================================


def new_container() -> None:
    """A container started now (or one whose 60-second secret cache has expired)."""
    forget_container()


@pytest.mark.parametrize("window_hours", [None, 2], ids=["default-24-h", "PREVIOUS_SECRET_HOURS-2"])
def test_a_rotated_out_secret_is_accepted_only_within_the_window(
    cloud: Cloud, code_service: str, monkeypatch: pytest.MonkeyPatch, window_hours: int | None
) -> None:
    hours = 24 if window_hours is None else window_hours
    if window_hours is not None:
        monkeypatch.setenv("PREVIOUS_SECRET_HOURS", str(window_hours))
    old = WEBHOOK_SECRETS["github"]
    body = push_body(C1, cloud.now())
    assert status(deliver(cloud, body, "before-rotation", old)) == 202  # a warm container

    cloud.rotate_webhook_secret("github", NEW_SECRET)
    new_container()
    assert status(deliver(cloud, body, "old-secret-just-after", old)) == 202
    cloud.advance((hours - 1) * 3600)
    new_container()
    assert status(deliver(cloud, body, "old-secret-inside-the-window", old)) == 202
    assert len(cloud.forwarded()) == 3

    cloud.advance(2 * 3600)  # the window has closed
    new_container()
    refused = deliver(cloud, body, "old-secret-after-the-window", old)
    assert (status(refused), body_of(refused)) == (401, {"message": "invalid signature"})
    assert cloud.forwarded() == []
    # A warm container too, once the window has closed.
    refused = deliver(cloud, body, "old-secret-warm-container", old)
    assert status(refused) == 401
    assert status(deliver(cloud, body, "new-secret", NEW_SECRET)) == 202
    assert len(cloud.forwarded()) == 1


def test_revoking_the_previous_secret_refuses_it_at_once(cloud: Cloud, code_service: str) -> None:
    """`pushdeploy webhook rotate --revoke-previous` removes the AWSPREVIOUS stage: once the function's
    cache has expired (a minute), the old value is refused although the window is still open."""
    old = WEBHOOK_SECRETS["github"]
    body = push_body(C1, cloud.now())
    cloud.rotate_webhook_secret("github", NEW_SECRET)
    new_container()
    assert status(deliver(cloud, body, "old-secret-before-revocation", old)) == 202

    arn = cloud.webhook_secret_arns["github"]
    (previous,) = [
        version
        for version in cloud.secretsmanager.list_secret_version_ids(SecretId=arn)["Versions"]
        if "AWSPREVIOUS" in version.get("VersionStages", [])
    ]
    cloud.secretsmanager.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSPREVIOUS", RemoveFromVersionId=previous["VersionId"]
    )
    new_container()

    refused = deliver(cloud, body, "old-secret-after-revocation", old)
    assert (status(refused), body_of(refused)) == (401, {"message": "invalid signature"})
    assert status(deliver(cloud, body, "new-secret-after-revocation", NEW_SECRET)) == 202
    assert len(cloud.forwarded()) == 2


# === 5. a stale delivery is refused and recorded ======================================================


@pytest.fixture
def max_age_72_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_MAX_AGE_HOURS", "72")
    forget_container()


def test_a_stale_delivery_is_refused_422_recorded_and_not_forwarded(
    cloud: Cloud, code_service: str, max_age_72_hours: None
) -> None:
    pushed = cloud.now() - timedelta(hours=73)
    answer = deliver(cloud, push_body(C1, pushed), "stale-delivery")

    assert status(answer) == 422
    (change_id,) = body_of(answer)["changes"]
    assert body_of(answer)["forwarded"] == 0
    assert body_of(answer)["message"].startswith(
        f"refused: pushed at {pushed.strftime('%Y-%m-%dT%H:%M:%SZ')}, more than 72 h ago"
    )
    assert cloud.forwarded() == []
    assert items(cloud, "IdempotencyTable") == []
    recorded = cloud.ledger.change(change_id)
    assert recorded is not None
    assert recorded["note"] == body_of(answer)["message"]
    assert recorded["decisions"] == []
    assert recorded["change"]["commit"] == C1
    expected = (cloud.now() + timedelta(days=90)).timestamp()
    assert abs(int(recorded["expires_at"]) - expected) < 300
    assert cloud.calls("StartDeployment") == []


def test_a_fresh_delivery_inside_the_window_is_accepted(
    cloud: Cloud, code_service: str, max_age_72_hours: None
) -> None:
    answer = deliver(cloud, push_body(C1, cloud.now() - timedelta(hours=71)), "fresh-delivery")

    assert status(answer) == 202
    decide_forwarded(cloud)
    assert cloud.calls("StartDeployment") == [{"ServiceArn": code_service}]


def test_a_captured_delivery_replayed_after_the_window_is_refused_422(
    cloud: Cloud, code_service: str, max_age_72_hours: None
) -> None:
    """The same bytes, accepted when fresh, are refused once 72 hours have passed (by the handlers'
    clock, which the harness moves)."""
    body = push_body(C1, cloud.now())
    assert status(deliver(cloud, body, "fresh")) == 202
    decide_forwarded(cloud)

    cloud.advance(73 * 3600)
    replay = deliver(cloud, body, "captured-and-replayed-later")
    assert status(replay) == 422
    assert cloud.forwarded() == []
    assert len(cloud.calls("StartDeployment")) == 1


# === 7. reserved concurrency, and a 5xx when EventBridge does not take the change ======================


def test_the_webhook_has_reserved_concurrency_and_an_alarm_on_its_failures() -> None:
    template = load_template(ROOT / "template.yaml")
    webhook = template["Resources"]["WebhookFunction"]["Properties"]
    assert webhook["ReservedConcurrentExecutions"] == {"Ref": "WebhookReservedConcurrency"}
    assert template["Parameters"]["WebhookReservedConcurrency"]["Default"] == 10
    alarm = template["Resources"]["WebhookFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("pushdeploy", "WebhookFailed")


def _refuse_every_entry(params: Mapping[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """A before-call handler that answers for EventBridge: HTTP 200, and not one entry taken. (`params`
    is the serialized request here: its body is the JSON PutEvents request.)"""
    entries = json.loads(params["body"])["Entries"]
    failed = [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"} for _entry in entries]
    http = AWSResponse("https://events.us-east-1.amazonaws.com/", 200, HTTPHeaders(), None)
    return http, {"FailedEntryCount": len(failed), "Entries": failed}


@contextmanager
def put_events_fault(kind: str) -> Iterator[None]:
    """PutEvents of the webhook's events client fails: with an AWS error before it is sent, or with an
    answer in which EventBridge took no entry."""
    events: Any = runtime.client("events")
    if kind == "error":
        error = ClientError(
            {"Error": {"Code": "InternalException", "Message": "EventBridge is down"}}, "PutEvents"
        )
        with failing(events, operation("PutEvents"), lambda _call: error):
            yield
        return
    name = "before-call.eventbridge.PutEvents"
    events.meta.events.register(name, _refuse_every_entry, unique_id="test-refuse-every-entry")
    try:
        yield
    finally:
        events.meta.events.unregister(name, unique_id="test-refuse-every-entry")


def emitted_metrics(output: str) -> dict[str, float]:
    """The metrics of the Embedded Metric Format lines Powertools printed."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    found[metric["Name"]] = sum(value) if isinstance(value, list) else float(value)
    return found


ANSWER_WHEN = {  # the 500 answers: both tell the sender to deliver again
    "error": "internal error: deliver again later",
    "failed-entries": "could not hand the changes over: deliver again",
}


@pytest.mark.parametrize("fault", sorted(ANSWER_WHEN))
def test_the_webhook_answers_5xx_when_eventbridge_does_not_take_the_change(
    cloud: Cloud, code_service: str, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    body = push_body(C1, cloud.now())
    capsys.readouterr()
    with put_events_fault(fault):
        answer = deliver(cloud, body, "delivery-during-the-fault")

    assert (status(answer), body_of(answer)) == (500, {"message": ANSWER_WHEN[fault]})
    assert emitted_metrics(capsys.readouterr().out).get("WebhookFailed") == 1
    assert cloud.forwarded() == []
    assert items(cloud, "IdempotencyTable") == []
    assert items(cloud, "LedgerTable") == []

    # Redelivered once EventBridge is back: accepted, not answered as a replay of the failure.
    again = deliver(cloud, body, "delivery-during-the-fault")
    assert status(again) == 202
    assert "replayed" not in body_of(again)
    assert emitted_metrics(capsys.readouterr().out).get("WebhookAccepted") == 1
    decide_forwarded(cloud)
    assert cloud.calls("StartDeployment") == [{"ServiceArn": code_service}]


# === 8. no log line carries a secret, a signature or a body ============================================


def logs_to_this_tests_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools' JSON log lines into this test's captured stdout (call it in the test body, where
    `capsys` has replaced `sys.stdout`): the `pushdeploy` logger's stream handler still holds the
    `sys.stdout` of whichever test first made that logger."""
    for name in ["pushdeploy", *logging.Logger.manager.loggerDict]:
        if not name.startswith("pushdeploy"):
            continue
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is not sys.stdout:
                monkeypatch.setattr(handler, "stream", sys.stdout)


def test_no_log_line_of_the_webhook_carries_a_secret_a_signature_or_a_body(
    cloud: Cloud,
    code_service: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs_to_this_tests_stdout(monkeypatch)
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("WEBHOOK_MAX_AGE_HOURS", "72")
    old = WEBHOOK_SECRETS["github"]
    cloud.rotate_webhook_secret("github", NEW_SECRET)  # both a current and a previous secret in play
    new_container()
    now = cloud.now()
    signatures: list[str] = []

    def send(body: bytes, delivery: str, secret: str | None, event: str = "push") -> int:
        headers = github_headers(body, delivery, secret, event)
        if "X-Hub-Signature-256" in headers:
            signatures.append(headers["X-Hub-Signature-256"])
        return status(cloud.webhook("/github", body, headers))

    ping = json.loads((PAYLOADS / "github-ping.body.json").read_bytes())
    ping["hook"]["config"]["note"] = BODY_MARKER
    flows = {
        "ping": send(json.dumps(ping).encode(), "ping", NEW_SECRET, event="ping"),
        "accepted (previous secret)": send(push_body(C1, now), "accepted", old),
        "redelivered": send(push_body(C1, now), "accepted", old),
        "replayed under a new id": send(push_body(C1, now), "replay", NEW_SECRET),
        "forged": send(push_body(C2, now), "forged", "a-guessed-secret"),
        "unsigned": send(push_body(C2, now), "unsigned", None),
        "stale": send(push_body(C2, now - timedelta(hours=80)), "stale", NEW_SECRET),
        "no rule": send(push_body(C2, now, repository="someone/else"), "no-rule", NEW_SECRET),
    }
    with put_events_fault("error"):
        flows["failed"] = send(push_body(C2, now, before=C1), "failed", NEW_SECRET)
    decide_forwarded(cloud)

    assert flows == {
        "ping": 200,
        "accepted (previous secret)": 202,
        "redelivered": 202,
        "replayed under a new id": 202,
        "forged": 401,
        "unsigned": 401,
        "stale": 422,
        "no rule": 202,
        "failed": 500,
    }
    captured = capsys.readouterr()
    lines = [
        *captured.out.splitlines(),
        *captured.err.splitlines(),
        *(record.getMessage() for record in caplog.records),
        *(str(vars(record)) for record in caplog.records),
        *(caplog.text.splitlines()),
    ]
    # Not vacuous: the flows did log, and the log names deliveries.
    text = "\n".join(lines)
    for expected in ("delivery accepted", "delivery refused", "nothing to forward", "webhook failed"):
        assert expected in text, expected
    assert "forged" in text  # a delivery id may appear
    assert '"message":"delivery accepted"' in captured.out  # Powertools' JSON lines on stdout
    assert caplog.records

    forbidden = {
        "the current secret": NEW_SECRET,
        "the previous secret": old,
        "the bitbucket secret": WEBHOOK_SECRETS["bitbucket"],
        "the body": BODY_MARKER,
        **{f"signature {n}": s for n, s in enumerate(signatures)},
        **{f"signature {n} (hex)": s.removeprefix("sha256=") for n, s in enumerate(signatures)},
    }
    leaks = [(what, line) for line in lines for what, value in forbidden.items() if value in line]
    assert leaks == []
