"""One episode's cloud: the integration harness's in-process cloud (moto, the App Runner simulator, the
real handler functions), made deterministic and quiet, with the services and rules the simulation drives.

What App Runner really did is read from the simulator's own state (its services and operations), not
through its API, so that the checks neither consume injected faults nor show up as calls; the simulator's
API has no call for one thing AWS does, a deleted service vanishing (ResourceNotFound from then on), so
`vanish` removes it from that state.

The sources the sweep reads: every image push lands in moto's ECR (repository `web`, under the schedule's
tag and digest) whether or not its event is delivered; CodeCommit's branch head, which moto cannot answer
(it has no GetBranch), is answered from the world's own record of the last commit pushed.

Gates: the rules of the roles the episode's `Gating` names carry its gates, their windows and freezes
placed relative to the episode's origin (the first whole minute once the services exist). A scan ends by
`record_scan` (what ECR's DescribeImageScanFindings answers from then on); its event, basic scanning's or
Inspector's, is the engine's to deliver.

Determinism: the controller's clock, the simulator's clock and ECR's push times are one fake clock (BASE
plus the time the simulation advanced), and the simulator's identifiers (service ids, operation ids, event
ids) come from a seeded generator, so the same schedule replays the same run. Speed: moto's DynamoDB is
made faster (`fast_moto`), retry back-off sleeps are skipped, the rules cache is kept for the episode (its
rules never change), pushdeploy's own notifications go nowhere, and one boto3 session and one parse of
template.yaml serve every episode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import random
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from types import ModuleType, SimpleNamespace
from typing import Any, Self

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto import mock_aws
from moto.ecr import models as moto_ecr
from moto.ecr.exceptions import ImageAlreadyExistsException

from pushdeploy import container, runtime
from pushdeploy.adapters.rules_store import VERSION_ID
from pushdeploy.local import apprunner_sim, apprunner_sim_events, inprocess
from pushdeploy.local.pushes import MANIFEST_MEDIA_TYPE
from pushdeploy.local.scanning import ScanError
from pushdeploy.local.template import load_template
from tests.integration.harness import (
    ACCOUNT,
    REGION,
    REGISTRY,
    TABLES,
    Cloud,
    build_cloud,
    load_function,
    silence_notifications,
)
from tests.simulation import fast_moto
from tests.simulation.gating import NO_GATES, GateLog, Gating, ScanRecord, origin_of, rules_file_gates
from tests.simulation.schedule import commit_of, digest_of, event_id_of

BASE = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
START_GRACE_SECONDS = 120
STUCK_AFTER_SECONDS = 900
SWEEP_GRACE_SECONDS = 120  # the product's default: a push younger than this is left to its event
IMAGE_REPOSITORY = "web"
CODE_REPOSITORY = "api"
CODE_URL = f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/{CODE_REPOSITORY}"

_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "START_GRACE_SECONDS": str(START_GRACE_SECONDS),
    "STUCK_AFTER_SECONDS": str(STUCK_AFTER_SECONDS),
    "SWEEP_GRACE_SECONDS": str(SWEEP_GRACE_SECONDS),
    "SWEEP_ROLE_ARNS": "",
    # moto's ECR registry is its account's: the rules' account, which the sweep asks DescribeImages of.
    "MOTO_ACCOUNT_ID": ACCOUNT,
}


@dataclass(frozen=True)
class RuleSpec:
    role: str
    rule_id: str
    kind: str  # semver | tag | glob | code
    action: str  # update_service | start_deployment

    def watches(self, push_kind: str) -> bool:
        return (push_kind == "commit") == (self.kind == "code")

    def matches(self, tag: str | None) -> bool:
        if self.kind == "semver":
            return tag is not None and parse_version(tag) is not None
        if self.kind == "tag":
            return tag == "latest"
        if self.kind == "glob":
            return tag is not None and tag.startswith("release-")
        return True  # code: every push is to the watched branch


RULES: dict[str, RuleSpec] = {
    "semver": RuleSpec("semver", "web-semver", "semver", "update_service"),
    "latest": RuleSpec("latest", "web-latest", "tag", "start_deployment"),
    "glob": RuleSpec("glob", "web-release", "glob", "update_service"),
    "code": RuleSpec("code", "api-main", "code", "start_deployment"),
}


def parse_version(tag: str) -> tuple[int, int, int] | None:
    """`v1.2.3` -> (1, 2, 3): the simulation's semver tags are all plain versions inside the range."""
    parts = tag.removeprefix("v").split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


@dataclass(frozen=True)
class OperationView:
    """One App Runner operation as the simulator holds it; `index` is its position on its service."""

    index: int
    id: str
    type: str
    status: str
    started_at: float
    ended_at: float | None


@dataclass(frozen=True)
class ServiceView:
    status: str
    image: str | None  # the configured ImageIdentifier (None for a code service)
    operations: tuple[OperationView, ...]


class _SeededUuid:
    """Stands in for the `uuid` module inside the App Runner simulator: seeded ids, same format."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


_FUNCTIONS: dict[str, ModuleType] = {}
_SESSIONS: list[boto3.Session] = []


def _functions() -> dict[str, ModuleType]:
    """The handler modules, loaded once per process: reloading them per episode costs and changes nothing."""
    for name in ("image_pushed", "commit_pushed", "operation_changed", "reconciler", "sweeper"):
        if name not in _FUNCTIONS:
            _FUNCTIONS[name] = load_function(name)
    return _FUNCTIONS


def _shared_session() -> boto3.Session:
    """One boto3 session for every episode: a new one would load botocore's service models again. Made
    after moto is imported, so moto's request interception is among its handlers."""
    if not _SESSIONS:
        _SESSIONS.append(boto3.Session(region_name=REGION))
    return _SESSIONS[0]


_cached_template = functools.cache(load_template)


class World:
    """The cloud of one episode. Use as a context manager: everything is undone on exit."""

    def __init__(self, uuid_seed: str, roles: tuple[str, ...], gating: Gating = NO_GATES) -> None:
        self.uuid_seed = uuid_seed
        self.roles = roles
        self.gating = gating
        self.gate_log: GateLog  # made once the services exist: its origin is the episode's
        self.services: dict[str, str] = {}
        self.vanished: set[str] = set()  # deleted services App Runner no longer knows
        self.branch_head: int | None = None  # the commit `main` points to (None: no push yet)
        self._views: dict[str, ServiceView] = {}
        self._first_pushed: dict[int, int] = {}  # digest number -> when ECR first held it (epoch seconds)
        self._stack = contextlib.ExitStack()
        self._patch = pytest.MonkeyPatch()
        self.cloud: Cloud

    def __enter__(self) -> World:
        try:
            self._set_up()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _set_up(self) -> None:
        stack = self._stack
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        previous_disable = logging.root.manager.disable
        logging.disable(logging.CRITICAL)
        stack.callback(logging.disable, previous_disable)
        stack.callback(runtime.reset)
        stack.callback(self._patch.undo)  # undone before runtime.reset: the real client factory again
        patch = self._patch
        for variable, value in _ENVIRONMENT.items():
            patch.setenv(variable, value)
        stack.enter_context(mock_aws())
        boto3.DEFAULT_SESSION = _shared_session()  # moto puts its own value back when it stops
        patch.setattr(inprocess, "load_template", _cached_template)
        fast_moto.install(patch)
        seeded = _SeededUuid(self.uuid_seed)
        patch.setattr(apprunner_sim, "uuid", seeded)
        patch.setattr(apprunner_sim_events, "uuid", seeded)
        # Retry back-off and jitter: deterministic and without real sleeping.
        patch.setattr(random, "uniform", lambda low, high: low)
        patch.setattr(time, "sleep", lambda seconds: None)
        self.cloud = build_cloud(patch)
        patch.setenv("RULES_CACHE_SECONDS", "86400")
        self._freeze_clocks()
        silence_notifications()
        self.cloud.functions = dict(_functions())
        self._create_sources()
        self._create_services()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # --- setup -------------------------------------------------------------------------------------

    def _freeze_clocks(self) -> None:
        cloud, sim = self.cloud, self.cloud.sim
        frozen = sim._clock0
        sim._clock = lambda: frozen
        sim._epoch0 = BASE.timestamp()
        self._patch.setattr(container, "utc_now", self.now)  # every handler's clock
        self._patch.setattr(cloud, "now", self.now)
        # moto stamps imagePushedAt with datetime.now(): the world's time instead, so that the sweep's
        # marks (the controller's clock) and the images' push times are on one clock.
        self._patch.setattr(moto_ecr, "datetime", _clock_class(self.now))

    def _create_sources(self) -> None:
        """ECR's `web` repository, and the sweep's CodeCommit client answering GetBranch from the world."""
        self._ecr = boto3.client("ecr", region_name=REGION)
        self._ecr.create_repository(repositoryName=IMAGE_REPOSITORY)
        # The client the sweeper's own-account reader gets (runtime.client caches one per service and
        # Region for the episode).
        codecommit = runtime.client("codecommit", REGION)
        answer: Callable[..., Any] = self._answer_get_branch  # an answer from before-call replaces the call
        codecommit.meta.events.register("before-call.codecommit.GetBranch", answer)

    def _create_services(self) -> None:
        cloud = self.cloud
        rules: list[dict[str, Any]] = []
        for role in self.roles:
            spec = RULES[role]
            if role == "code":
                arn = cloud.create_code_service(f"{role}-svc", CODE_URL, "main")
                body: dict[str, Any] = {
                    "code": {"provider": "codecommit", "repository": CODE_REPOSITORY, "branch": "main"}
                }
            else:
                initial = {"semver": "v1.0.0", "latest": "latest", "glob": "release-0"}[role]
                arn = cloud.create_image_service(f"{role}-svc", tag=initial)
                selector = {"semver": {"semver": ">=1.0.0,<2.0.0"}, "latest": {"tag": "latest"}}
                body = {"image": {"repository": "web", **selector.get(role, {"tag_glob": "release-*"})}}
            self.services[role] = arn
            rules.append({"id": spec.rule_id, "service": arn, **body})
        self.gate_log = GateLog(origin_of(self.now()))
        rule_ids = {role: RULES[role].rule_id for role in self.roles}
        for role, rule in zip(self.roles, rules, strict=True):
            gates = self.gating.of(role)
            if gates is not None:
                rule["gates"] = rules_file_gates(gates, self.gate_log.origin, rule_ids)
        cloud.apply_rules(rules)
        self._stamp_rules()
        cloud.sim.calls.clear()
        cloud.apprunner_events.clear()

    def rules_applied(self) -> None:
        """`rules apply` rewrote every source's rules: each source's version moves, so every container's
        cached rules are stale. The rules themselves stay as they were (what the checks expect of them)."""
        dynamodb, table = self.cloud.dynamodb, TABLES["RulesTable"]
        for item in dynamodb.scan(TableName=table)["Items"]:
            if item["rule_id"]["S"] == VERSION_ID:
                dynamodb.update_item(
                    TableName=table,
                    Key={"source_key": item["source_key"], "rule_id": item["rule_id"]},
                    UpdateExpression="ADD version :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )

    def _stamp_rules(self) -> None:
        """`rules apply` stamps each rule with the wall clock; the sweep looks for pushes only from then
        on, so the rules are stamped with the world's time instead (the episode's start)."""
        stamp = self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        dynamodb, table = self.cloud.dynamodb, TABLES["RulesTable"]
        for item in dynamodb.scan(TableName=table)["Items"]:
            dynamodb.update_item(
                TableName=table,
                Key={"source_key": item["source_key"], "rule_id": item["rule_id"]},
                UpdateExpression="SET updated_at = :at",
                ExpressionAttributeValues={":at": {"S": stamp}},
            )

    # --- the sources -------------------------------------------------------------------------------

    def put_image(self, tag: str, digest: int) -> None:
        """ECR PutImage of the schedule's digest under `tag` (the push itself, whatever its event's fate).
        The same digest number is the same manifest, so ECR moves the tag onto the image it holds."""
        # Straight into moto's backend (what its PutImage calls), without a request: the push is the
        # world's doing, not a call under test. The same tag on the same image again: ECR holds it already.
        backend = moto_ecr.ecr_backends[ACCOUNT][REGION]
        with contextlib.suppress(ImageAlreadyExistsException):
            backend.put_image(
                IMAGE_REPOSITORY, _manifest(digest), tag, MANIFEST_MEDIA_TYPE, digest_of(digest)
            )
        self._keep_first_push_time(digest)

    def _keep_first_push_time(self, number: int) -> None:
        """moto deletes an image whose last tag moved to another; ECR keeps it, untagged, with its push
        time. An image pushed again keeps its first push time here too: the sweep sees what ECR shows."""
        first = self._first_pushed.setdefault(number, int(self.now().timestamp()))
        repository = moto_ecr.ecr_backends[ACCOUNT][REGION].repositories[IMAGE_REPOSITORY]
        for image in repository.images:
            if image.get_image_digest() == digest_of(number):
                image.image_pushed_at = first

    def record_scan(self, digest: int, status: str, counts: tuple[tuple[str, int], ...]) -> bool:
        """The image's scan ends: ECR answers it from now on. False when ECR no longer holds the image
        (moto drops an image whose last tag moved on: there is nothing to scan)."""
        try:
            self.cloud.record_scan(digest_of(digest), dict(counts), IMAGE_REPOSITORY, status)
        except ScanError:
            return False
        record = ScanRecord(self.now(), status, counts)
        self.gate_log.scans.setdefault(digest_of(digest), []).append(record)
        return True

    def scan_event(
        self, digest: int, status: str, counts: tuple[tuple[str, int], ...], event: int
    ) -> dict[str, Any]:
        """The scan's event: Inspector's for enhanced scanning (ACTIVE), else ECR's `ECR Image Scan`; its
        id from the schedule's numbering, apart from every push's."""
        cloud = self.cloud
        if status == "ACTIVE":
            built = cloud.inspector_scan_event(digest_of(digest), dict(counts), IMAGE_REPOSITORY)
        else:
            built = cloud.ecr_scan_event(digest_of(digest), dict(counts), IMAGE_REPOSITORY, status)
        return {**built, "id": event_id_of(event)}

    def ecr_images(self) -> set[tuple[str, str]]:
        """(tag, digest) of every tagged image ECR holds now."""
        described = self._ecr.describe_images(repositoryName=IMAGE_REPOSITORY)
        return {
            (tag, str(image["imageDigest"]))
            for image in described["imageDetails"]
            for tag in image.get("imageTags", [])
        }

    def commit_pushed(self, commit: int) -> None:
        """The branch moves to `commit` (the push itself, whatever its event's fate)."""
        self.branch_head = commit

    def _answer_get_branch(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        """CodeCommit's answer to GetBranch, in place of a request moto cannot serve."""
        if self.branch_head is None:
            error = {"Code": "BranchDoesNotExistException", "Message": "main does not exist"}
            return AWSResponse("", 400, HTTPHeaders(), None), {"Error": error, "ResponseMetadata": {}}
        branch = {"branchName": "main", "commitId": commit_of(self.branch_head)}
        return AWSResponse("", 200, HTTPHeaders(), None), {"branch": branch, "ResponseMetadata": {}}

    # --- time --------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return BASE + timedelta(seconds=self.cloud.clock_offset[0])

    def advance(self, seconds: float) -> None:
        self.cloud.advance(seconds)

    def moment(self, instant: float) -> datetime:
        """The controller's time of a simulator instant (an operation's start, say)."""
        return BASE + timedelta(seconds=instant - self.cloud.sim._clock0)

    # --- events ------------------------------------------------------------------------------------

    def image_event(self, tag: str, digest: int, event: int) -> dict[str, Any]:
        return {
            "version": "0",
            "id": event_id_of(event),
            "detail-type": "ECR Image Action",
            "source": "aws.ecr",
            "account": ACCOUNT,
            "time": self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [],
            "detail": {
                "result": "SUCCESS",
                "repository-name": "web",
                "image-digest": digest_of(digest),
                "action-type": "PUSH",
                "image-tag": tag,
            },
        }

    def commit_event(self, commit: int, previous: int | None, event: int) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "callerUserArn": f"arn:aws:iam::{ACCOUNT}:user/developer",
            "commitId": commit_of(commit),
            "event": "referenceCreated" if previous is None else "referenceUpdated",
            "referenceFullName": "refs/heads/main",
            "referenceName": "main",
            "referenceType": "branch",
            "repositoryId": "b7fe9986-858d-48e3-a75e-5ef46809cbbe",
            "repositoryName": CODE_REPOSITORY,
        }
        if previous is not None:
            detail["oldCommitId"] = commit_of(previous)
        return {
            "version": "0",
            "id": event_id_of(event),
            "detail-type": "CodeCommit Repository State Change",
            "source": "aws.codecommit",
            "account": ACCOUNT,
            "time": self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:codecommit:{REGION}:{ACCOUNT}:{CODE_REPOSITORY}"],
            "detail": detail,
        }

    # --- what App Runner really did (read from the simulator, which fault injection does not touch) --

    def service_view(self, role: str) -> ServiceView:
        """The service as App Runner holds it; once vanished, as it was last seen."""
        if role in self.vanished:
            return dataclasses.replace(self._views[role], status="VANISHED")
        sim = self.cloud.sim
        with sim._lock:
            service = sim._services[self.services[role]]
            source = service.config["SourceConfiguration"]
            image = source.get("ImageRepository", {}).get("ImageIdentifier")
            operations = tuple(
                OperationView(index, op.id, op.type, op.status, op.started_at, op.ended_at)
                for index, op in enumerate(service.operations)
            )
            self._views[role] = ServiceView(service.status, image, operations)
            return self._views[role]

    def vanish(self, role: str) -> bool:
        """A deleted service drops out of App Runner: every call about it answers ResourceNotFound."""
        sim = self.cloud.sim
        if role in self.vanished:
            return False
        self.service_view(role)
        with sim._lock:
            arn = self.services[role]
            if sim._services[arn].status != "DELETED":
                return False
            del sim._services[arn]
        self.vanished.add(role)
        return True

    def operator_update(self, role: str, tag: str) -> str:
        """What an operator does by hand: UpdateService to another tag, with the rest of the image block
        as DescribeService shows it. Returns the operation id."""
        apprunner = self.cloud.apprunner
        arn = self.services[role]
        source = apprunner.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]
        repository = dict(source["ImageRepository"])
        repository["ImageIdentifier"] = f"{REGISTRY}/web:{tag}"
        updated = apprunner.update_service(
            ServiceArn=arn,
            SourceConfiguration={
                "ImageRepository": repository,
                "AuthenticationConfiguration": source["AuthenticationConfiguration"],
                "AutoDeploymentsEnabled": False,
            },
        )
        return str(updated["OperationId"])


@contextlib.contextmanager
def separate_container() -> Iterator[None]:
    """Run an overlapping invocation as another Lambda container would: its own controller (same AWS
    clients, so the hooks still see its calls)."""
    saved = {name: getattr(runtime, name) for name in ("_controller",) if hasattr(runtime, name)}
    for name in saved:
        setattr(runtime, name, None)
    sweepers = getattr(runtime, "_sweepers", None)  # the container's sweeper holds its controller
    if isinstance(sweepers, dict):
        saved["_sweepers"] = sweepers
        runtime._sweepers = {}
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(runtime, name, value)


def _clock_class(now: Callable[[], datetime]) -> type[datetime]:
    """A `datetime` whose now() is `now()`: put in place of the name moto's ECR module reads the time from."""

    class WorldTime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls.fromtimestamp(now().timestamp(), tz)

    return WorldTime


def _manifest(number: int) -> str:
    """The image manifest of the schedule's digest number: its own text for each number (moto tells
    images apart by their manifest text)."""
    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1024}
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2}
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {**config, "digest": digest_of(number)},
            "layers": [{**layer, "digest": digest_of(number)}],
        }
    )


def handler_clients(cloud: Cloud) -> SimpleNamespace:
    """The AWS clients the handlers use: the runtime's cached DynamoDB client (not the harness's own)
    and the App Runner client the harness wired to the simulator."""
    return SimpleNamespace(dynamodb=runtime.client("dynamodb"), apprunner=cloud.apprunner)


LEDGER_TABLE = TABLES["LedgerTable"]
