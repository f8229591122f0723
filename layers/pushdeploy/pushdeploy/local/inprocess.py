"""The whole stack in one process, for the integration tests and the benchmarks: moto (inside the caller's
`mock_aws`) for DynamoDB, SQS, EventBridge, Secrets Manager and ECR (whose scan findings a test sets with
`Cloud.record_scan`: `ecr_scans`), the App Runner simulator for App Runner, tables made from template.yaml,
and the real handler functions of functions/*/app.py, invoked directly.

Time is the caller's to move (`Cloud.advance`): App Runner's and the controller's clocks move together.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import boto3
from moto.core.botocore_stubber import BotocoreStubber

from pushdeploy import container, runtime
from pushdeploy.adapters.ledger import Ledger
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.domain.deployments import Deployment
from pushdeploy.domain.rules import Rule, validate_rules_document
from pushdeploy.local import ecr_scans, pushes
from pushdeploy.local.apprunner_sim import AppRunnerSimulator
from pushdeploy.local.scanning import Scan
from pushdeploy.local.services import code_source, image_source
from pushdeploy.local.template import load_template, table_specs

# The project (template.yaml, functions/): this package lives in layers/pushdeploy/pushdeploy/local/.
ROOT = Path(__file__).resolve().parents[4]
REGION = "us-east-1"
ACCOUNT = "111122223333"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ACCESS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/AppRunnerECRAccess"  # an image service's ECR access
CONNECTION = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:connection/github/0123456789abcdef0123456789abcdef"
INTERNAL_BUS = "test-internal"  # the stack's internal bus: the webhook forwards changes on it
TABLES = {"LedgerTable": "test-ledger", "RulesTable": "test-rules", "IdempotencyTable": "test-idempotency"}
# The webhook secrets every test cloud starts with (AWSCURRENT; no AWSPREVIOUS until rotated).
WEBHOOK_SECRETS = {
    "github": "GitHubTestSecret0123456789abcdefghijklmn",
    "bitbucket": "BitbucketTestSecret0123456789abcdefghijk",
}


@dataclass
class FakeContext:
    """What Powertools reads from a Lambda context."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/test-function"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py as its own module (every function's module is called `app`)."""
    spec = importlib.util.spec_from_file_location(f"function_{name}", ROOT / "functions" / name / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Cloud:
    sim: AppRunnerSimulator
    apprunner: Any
    dynamodb: Any
    sqs: Any
    dead_letter_url: str
    published_url: str
    clock_offset: list[float] = field(default_factory=lambda: [0.0])
    apprunner_events: list[dict[str, Any]] = field(default_factory=list)
    functions: dict[str, ModuleType] = field(default_factory=dict)
    event_counter: list[int] = field(default_factory=lambda: [0])
    forwarded_url: str = ""  # receives what the webhook forwards on the internal bus
    secretsmanager: Any = None
    webhook_secret_arns: dict[str, str] = field(default_factory=dict)

    # --- time ------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset[0])

    def advance(self, seconds: float) -> None:
        """Move App Runner's and the controller's clocks forward together."""
        self.clock_offset[0] += seconds
        self.sim.advance(seconds)

    # --- App Runner ------------------------------------------------------------------------------

    def create_image_service(self, name: str, tag: str = "latest", repository: str = "web") -> str:
        source = image_source(f"{REGISTRY}/{repository}:{tag}", ACCESS_ROLE)
        created = self.apprunner.create_service(ServiceName=name, SourceConfiguration=source)
        arn: str = created["Service"]["ServiceArn"]
        self.settle_operations()
        return arn

    def create_code_service(self, name: str, repository_url: str, branch: str = "main") -> str:
        source = code_source(repository_url, branch, CONNECTION)
        created = self.apprunner.create_service(ServiceName=name, SourceConfiguration=source)
        arn: str = created["Service"]["ServiceArn"]
        self.settle_operations()
        return arn

    def settle_operations(self, seconds: float = 60) -> None:
        """Let every running App Runner operation finish."""
        self.advance(seconds)

    def calls(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.sim.calls if name == operation]

    def configured_image(self, service: str) -> str:
        described = self.apprunner.describe_service(ServiceArn=service)["Service"]
        return str(described["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"])

    # --- rules and events ------------------------------------------------------------------------

    def apply_rules(self, rules: list[dict[str, Any]]) -> list[Rule]:
        validated = validate_rules_document({"version": 1, "rules": rules})
        store = RulesStore(self.dynamodb, TABLES["RulesTable"])
        store.apply(store.all_rules(), validated)
        return validated

    def ecr_push_event(self, tag: str | None, digest: str, repository: str = "web") -> dict[str, Any]:
        detail: dict[str, Any] = {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
        }
        if tag is not None:
            detail["image-tag"] = tag
        return self._aws_event("aws.ecr", pushes.ECR_IMAGE_ACTION, detail, [])

    def ecr_scan_event(
        self, digest: str, counts: dict[str, int], repository: str = "web", status: str = "COMPLETE"
    ) -> dict[str, Any]:
        """`ECR Image Scan`, as basic scanning sends it when the image's scan ends."""
        detail = pushes.ecr_scan_detail(repository, digest, [], status, counts)
        return self._aws_event("aws.ecr", pushes.ECR_IMAGE_SCAN, detail, [_repository_arn(repository)])

    def inspector_scan_event(
        self, digest: str, counts: dict[str, int], repository: str = "web"
    ) -> dict[str, Any]:
        """`Inspector2 Scan`, as enhanced scanning sends it after an image's first scan: the repository by
        its ARN, the counts with their TOTAL."""
        arn = _repository_arn(repository)
        detail = {
            "scan-status": "INITIAL_SCAN_COMPLETE",
            "repository-name": arn,
            "finding-severity-counts": {**counts, "TOTAL": sum(counts.values())},
            "image-digest": digest,
            "image-tags": [],
        }
        return self._aws_event("aws.inspector2", "Inspector2 Scan", detail, [arn])

    def _aws_event(
        self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]
    ) -> dict[str, Any]:
        self.event_counter[0] += 1
        return {
            "version": "0",
            "id": f"00000000-0000-0000-0000-{self.event_counter[0]:012d}",
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": resources,
            "detail": detail,
        }

    def record_scan(
        self, digest: str, counts: dict[str, int], repository: str = "web", status: str = "COMPLETE"
    ) -> None:
        """The image's scan ends: ECR's DescribeImageScanFindings answers it from now on (no event)."""
        ecr_scans.record_scan(ACCOUNT, REGION, repository, digest, Scan(status, counts, self.now()))

    def invoke(self, function: str, event: Any) -> dict[str, Any]:
        if function not in self.functions:
            self.functions[function] = load_function(function)
        result: dict[str, Any] = self.functions[function].handler(event, FakeContext(function_name=function))
        return result

    def push_image(self, tag: str | None, digest: str, repository: str = "web") -> dict[str, Any]:
        return self.invoke("image_pushed", self.ecr_push_event(tag, digest, repository))

    def deliver_apprunner_events(self) -> int:
        """Hand every status event App Runner emitted to the operation-changed function."""
        delivered = 0
        while self.apprunner_events:
            self.invoke("operation_changed", self.apprunner_events.pop(0))
            delivered += 1
        return delivered

    def finish_operations(self) -> None:
        """App Runner finishes what runs, and its events are delivered (as EventBridge would)."""
        self.settle_operations()
        self.deliver_apprunner_events()

    def reconcile(self) -> dict[str, Any]:
        return self.invoke("reconciler", {"source": "aws.events", "detail-type": "Scheduled Event"})

    # --- the ledger ------------------------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.dynamodb, TABLES["LedgerTable"])

    def deployments(self, service: str) -> list[Deployment]:
        """The service's deployments, oldest first."""
        return list(reversed(self.ledger.for_service(service, limit=None)))

    def statuses(self, service: str) -> list[str]:
        return [str(d.status) for d in self.deployments(service)]

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]

    def published(self) -> list[dict[str, Any]]:
        """Events pushdeploy published (routed by an EventBridge rule to a queue, as a user would)."""
        return self._drain(self.published_url)

    def forwarded(self) -> list[dict[str, Any]]:
        """Changes the webhook put on EventBridge (source pushdeploy.webhook), as whole events."""
        return self._drain(self.forwarded_url)

    def _drain(self, queue_url: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return events
            events.extend(json.loads(m["Body"]) for m in batch["Messages"])
            for message in batch["Messages"]:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    # --- the webhook -----------------------------------------------------------------------------

    def rotate_webhook_secret(self, provider: str, value: str) -> None:
        """A new AWSCURRENT; Secrets Manager moves the old value to AWSPREVIOUS."""
        self.secretsmanager.put_secret_value(SecretId=self.webhook_secret_arns[provider], SecretString=value)

    def webhook(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str],
        method: str = "POST",
        base64_encoded: bool = False,
    ) -> dict[str, Any]:
        """One request to the webhook's Function URL; the HTTP answer (statusCode, headers, body)."""
        return self.invoke("webhook", function_url_event(path, body, headers, method, base64_encoded))


def _repository_arn(repository: str) -> str:
    return f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"


def put_image(tag: str, repository: str = "web", ecr: Any = None) -> str:
    """ECR PutImage of a new image (its repository made if need be), without the event ECR would send:
    the test's or benchmark's to send, or lost. The digest."""
    ecr = ecr or boto3.client("ecr", region_name=REGION)
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    manifest = pushes.image_manifest(repository, tag)
    ecr.put_image(
        repositoryName=repository,
        imageManifest=manifest.text,
        imageManifestMediaType=pushes.MANIFEST_MEDIA_TYPE,
        imageTag=tag,
        imageDigest=manifest.digest,
    )
    return manifest.digest


def tag_image(digest: str, tag: str, source: str = "web", repository: str | None = None) -> None:
    """Put the tag on an image already in ECR, without the event: a re-tag in `source`, or the same
    image (same manifest, same digest) pushed to `repository`."""
    ecr = boto3.client("ecr", region_name=REGION)
    target = repository or source
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=target)
    (image,) = ecr.batch_get_image(repositoryName=source, imageIds=[{"imageDigest": digest}])["images"]
    ecr.put_image(
        repositoryName=target,
        imageManifest=image["imageManifest"],
        imageManifestMediaType=pushes.MANIFEST_MEDIA_TYPE,
        imageTag=tag,
        imageDigest=digest,
    )


def silence_notifications() -> None:
    """Drop the default bus's rules: pushdeploy's own events go to queues only some tests read, and a
    long run (the simulation, the fuzz suite) would fill them for nothing."""
    events = boto3.client("events", region_name=REGION)
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        if targets:
            events.remove_targets(Rule=rule["Name"], Ids=[target["Id"] for target in targets])
        events.delete_rule(Name=rule["Name"])


def function_url_event(
    path: str, body: bytes, headers: dict[str, str], method: str = "POST", base64_encoded: bool = False
) -> dict[str, Any]:
    """A Lambda Function URL request (payload format 2.0), as Lambda builds it: header names lower-cased,
    a text body as is, anything else base64-encoded."""
    url_id = "abcdefghijklmnopqrstuvwxyz012345"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": f"{url_id}.lambda-url.{REGION}.on.aws",
            "domainPrefix": url_id,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": headers.get("User-Agent", "test"),
            },
            "requestId": "11111111-2222-3333-4444-555555555555",
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795680000000,
        },
        "body": base64.b64encode(body).decode() if base64_encoded else body.decode(),
        "isBase64Encoded": base64_encoded,
    }


def create_webhook_secrets(secretsmanager: Any) -> dict[str, str]:
    return {
        provider: secretsmanager.create_secret(Name=f"test/webhook/{provider}", SecretString=value)["ARN"]
        for provider, value in WEBHOOK_SECRETS.items()
    }


def create_tables(dynamodb: Any) -> None:
    for spec in table_specs(load_template(ROOT / "template.yaml")):
        name = TABLES[spec.logical_id]
        dynamodb.create_table(TableName=name, **spec.create_args)
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
            )


class Patcher(Protocol):
    """What `build_cloud` changes and the caller undoes: `pytest.MonkeyPatch` is one."""

    def setenv(self, name: str, value: str) -> None: ...

    def setattr(self, target: object, name: str, value: object) -> None: ...


def build_cloud(monkeypatch: Patcher) -> Cloud:
    """Inside moto's mock_aws: everything a handler needs, wired through the environment."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    create_tables(dynamodb)
    dead_letter_url = sqs.create_queue(QueueName="test-dead-letter")["QueueUrl"]
    published_url = sqs.create_queue(QueueName="test-published")["QueueUrl"]
    published_arn = sqs.get_queue_attributes(QueueUrl=published_url, AttributeNames=["QueueArn"])
    events.put_rule(Name="pushdeploy-events", EventPattern=json.dumps({"source": ["pushdeploy"]}))
    events.put_targets(
        Rule="pushdeploy-events", Targets=[{"Id": "queue", "Arn": published_arn["Attributes"]["QueueArn"]}]
    )
    forwarded_url = sqs.create_queue(QueueName="test-forwarded")["QueueUrl"]
    forwarded_arn = sqs.get_queue_attributes(QueueUrl=forwarded_url, AttributeNames=["QueueArn"])
    events.create_event_bus(Name=INTERNAL_BUS)
    events.put_rule(
        Name="webhook-changes",
        EventBusName=INTERNAL_BUS,
        EventPattern=json.dumps({"source": ["pushdeploy.webhook"]}),
    )
    events.put_targets(
        Rule="webhook-changes",
        EventBusName=INTERNAL_BUS,
        Targets=[{"Id": "queue", "Arn": forwarded_arn["Attributes"]["QueueArn"]}],
    )
    secretsmanager = boto3.client("secretsmanager", region_name=REGION)
    secret_arns = create_webhook_secrets(secretsmanager)

    emitted: list[dict[str, Any]] = []
    sim = AppRunnerSimulator(account=ACCOUNT, region=REGION, operation_seconds=30, event_sink=emitted.append)
    apprunner = boto3.client("apprunner", region_name=REGION)
    sim.attach(apprunner)
    cloud = Cloud(
        sim,
        apprunner,
        dynamodb,
        sqs,
        dead_letter_url,
        published_url,
        apprunner_events=emitted,
        forwarded_url=forwarded_url,
        secretsmanager=secretsmanager,
        webhook_secret_arns=secret_arns,
    )

    for variable, value in {
        "LEDGER_TABLE": TABLES["LedgerTable"],
        "RULES_TABLE": TABLES["RulesTable"],
        "IDEMPOTENCY_TABLE": TABLES["IdempotencyTable"],
        "EVENT_BUS_NAME": "default",
        "FORWARD_BUS_NAME": INTERNAL_BUS,
        "DEAD_LETTER_QUEUE_URL": dead_letter_url,
        "RULES_CACHE_SECONDS": "0",
        "POWERTOOLS_METRICS_NAMESPACE": "pushdeploy-test",
        "POWERTOOLS_SERVICE_NAME": "pushdeploy",
        "GITHUB_WEBHOOK_SECRET_ARN": secret_arns["github"],
        "BITBUCKET_WEBHOOK_SECRET_ARN": secret_arns["bitbucket"],
        # The fixtures are real deliveries, pushed in 2015 and 2019: far outside the default 72 h window.
        # Tests of freshness set it back.
        "WEBHOOK_MAX_AGE_HOURS": str(24 * 365 * 20),
    }.items():
        monkeypatch.setenv(variable, value)

    real_client: Callable[..., Any] = runtime.client

    def client(service: str, region: str | None = None) -> Any:
        return apprunner if service == "apprunner" else real_client(service, region or REGION)

    runtime.reset()
    for module in (runtime, container):  # the webhook's clients are the container's
        monkeypatch.setattr(module, "client", client)
    monkeypatch.setattr(container, "utc_now", cloud.now)  # every handler's clock
    for owner, name, value in ecr_scans.patches():  # scans recorded by `Cloud.record_scan` are ECR's answer
        monkeypatch.setattr(owner, name, value)
    monkeypatch.setattr(BotocoreStubber, "__call__", _one_request_at_a_time(BotocoreStubber.__call__))
    return cloud


def _one_request_at_a_time(answer: Callable[..., Any]) -> Callable[..., Any]:
    """moto's in-process backends answer one request at a time, as the local cloud's server does: DynamoDB
    applies each write to an item atomically, and moto's in-process backend, which checks a condition and
    then changes the item in place, would otherwise let two threads' writes interleave (tests and
    benchmarks run concurrent Lambdas as threads). Reentrant: a backend may call another."""
    lock = threading.RLock()

    def locked(self: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return answer(self, *args, **kwargs)

    return locked
