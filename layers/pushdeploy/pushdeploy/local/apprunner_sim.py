"""An in-memory AWS App Runner that keeps App Runner's rules, for tests and the local cloud.

moto has no App Runner, so this simulator speaks App Runner's JSON 1.0 protocol itself
(`X-Amz-Target: AppRunner.<Operation>`, error bodies `{"__type": ..., "Message": ...}`), checks requests
against botocore's model of the API, and behaves as App Runner does where pushdeploy depends on it:

- Operations take time: an operation is IN_PROGRESS (its service OPERATION_IN_PROGRESS) for
  `operation_seconds` of the simulator's clock, then SUCCEEDED, or ROLLBACK_SUCCEEDED when it fails (the
  service keeps its old configuration and is RUNNING again). A failed CREATE_SERVICE ends FAILED with the
  service CREATE_FAILED. Nothing moves until `tick()` runs: every request ticks first, and `serve()`
  also ticks in the background.
- A service runs one operation at a time: any mutating call while one runs raises InvalidStateException.
  So does a call the service's status forbids (StartDeployment on a PAUSED service, ...).
- UpdateService changes the configured source only when its operation succeeds.
- Every operation start and end emits an `AppRunner Service Operation Status Change` event to
  `event_sink`, outside the lock (the sink may call back into the simulator).

Deployment mode (`SourceConfiguration.AutoDeploymentsEnabled`), as the API reference documents it:
- Omitted on CreateService, it is true for a code repository and for an Amazon ECR image in the service's
  own account, false for an ECR Public image and for an ECR image in another account. DescribeService
  shows the effective value. Omitted on UpdateService, the service keeps its mode (as it keeps its
  AuthenticationConfiguration), unless the new image cannot deploy automatically: then it is false.
- true is refused (InvalidRequestException) for ECR Public ("App Runner doesn't support automatic
  deployments for an image in an ECR Public repository.", App Runner's own message) and for an ECR image
  in another account, which App Runner refuses too.
- The simulator has no registry or repository to watch: it learns of pushes from `image_pushed(account,
  region, repository, tag, digest)` and `code_pushed(repository_url, branch, commit)` (the local cloud
  calls them for each ECR PutImage and each commit push it sees). A push deploys each service in
  automatic mode that it changes, as a START_DEPLOYMENT operation (ListOperations' OperationType has no
  other kind of deployment) with the usual `Deployment*` events; the source configuration is unchanged.
  - An image service is watching `<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>` (no tag
    means `latest`) and deploys on a push of that tag to that repository, in that account and in the
    service's own Region (App Runner does not deploy automatically from another Region's repository).
    An image pinned by digest (`repo@sha256:...`) never deploys automatically.
  - A code service deploys on a push to its branch (`SourceCodeVersion` of Type BRANCH) of its
    `RepositoryUrl` (compared without a trailing `/` or `.git`, the host case-insensitively). When the
    push says which paths it changed and the service has a `SourceDirectory` other than the repository
    root, only changes under that directory deploy, as App Runner documents.
  - A push that changes nothing (the tag already names that digest, the branch is already at that
    commit: a duplicate notification) deploys nothing.
  - Not queued: a push that arrives while the service runs an operation, or while the service is not
    RUNNING (PAUSED, CREATE_FAILED, ...), is not deployed, then or later. This is the gap App Runner's
    own automatic deployment leaves; the push stays undeployed until the next push or a manual deploy.
  Each call returns what the push did to each service configured for it, deployed or not and why, and
  tells `push_listener` (the local cloud prints it).

Fault injection:
- `fail_next(service_arn, count)`: the next `count` StartDeployment/UpdateService operations on that
  service (automatic deployments included) fail and roll back.
- An image whose reference (after the registry host) has a label `fail`, split on `/ : @ . _ -`
  (`web:fail`, `web:v1.2.0-fail`, `fail-demo/web:latest`), fails every operation that deploys it; so
  does a code-based service's branch with such a label (`fail/x`). A service created with one ends
  CREATE_FAILED.
- `throttle_next(count, operation)`: the next `count` requests (of that operation, or any) answer
  HTTP 400 ThrottlingException, which botocore's retry modes treat as throttling.
- `error_next(count, operation)`: the next `count` requests answer HTTP 500 InternalServiceErrorException.
- `lose_events(service_arn, count)`: the next `count` status events of that service are never sent.
The same controls are reachable over HTTP as targets `PushdeploySim.FailNext` (ServiceArn, Count),
`PushdeploySim.LoseEvents` (ServiceArn, Count), `PushdeploySim.ThrottleNext` and
`PushdeploySim.ErrorNext` (Count, Operation), for a simulator that runs in another process; so are the
pushes: `PushdeploySim.ImagePushed` (Repository, Tag, Digest; Account and Region default to the
simulator's) and `PushdeploySim.CodePushed` (RepositoryUrl, Branch, Commit; Paths optional), which
answer `{"Services": [{"ServiceArn", "OperationId"} or {"ServiceArn", "NotDeployed": reason}]}`.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from pushdeploy.domain.changes import partition_of_region
from pushdeploy.local import apprunner_sim_events as events
from pushdeploy.local.apprunner_sim_model import (
    AppRunnerError,
    decode_token,
    encode_token,
    invalid_request,
    invalid_state,
    not_found,
    operation_names,
    validate_input,
)

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest
    from botocore.client import BaseClient

_log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]
Json = dict[str, Any]
# Told of each push that concerns a service: the push ("push of web:latest (sha256:...)") and what it did.
PushListener = Callable[[str, "list[AutoDeployment]"], None]

TARGET_PREFIX = "AppRunner."
CONTROL_PREFIX = "PushdeploySim."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_TICK_INTERVAL = 0.05
_DEPLOY_TYPES = frozenset({"START_DEPLOYMENT", "UPDATE_SERVICE"})
# The service status an operation leaves behind when it succeeds.
_STATUS_AFTER = {"PAUSE_SERVICE": "PAUSED", "DELETE_SERVICE": "DELETED"}
_ECR_PRIVATE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+)|@(?P<digest>.+))?$"
)
_ECR_PUBLIC = re.compile(r"^public\.ecr\.aws/(?P<ref>.+)$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LABEL_SEPARATORS = re.compile(r"[/:@._-]")
_DEFAULT_HEALTH_CHECK: Json = {
    "Protocol": "TCP",
    "Path": "/",
    "Interval": 10,
    "Timeout": 5,
    "HealthyThreshold": 1,
    "UnhealthyThreshold": 5,
}
_DEFAULT_NETWORK: Json = {
    "EgressConfiguration": {"EgressType": "DEFAULT"},
    "IngressConfiguration": {"IsPubliclyAccessible": True},
    "IpAddressType": "IPV4",
}


@dataclass
class _Operation:
    id: str
    type: str
    started_at: float
    due_at: float
    prior_status: str
    fails: bool = False
    pending: Json | None = None  # the configuration UpdateService applies when it succeeds
    status: str = "IN_PROGRESS"
    ended_at: float | None = None


@dataclass
class _Service:
    arn: str
    name: str
    id: str
    url: str
    created_at: float
    config: Json
    status: str = "OPERATION_IN_PROGRESS"
    updated_at: float = 0.0
    deleted_at: float | None = None
    operations: list[_Operation] = field(default_factory=list)  # oldest first, append-only
    fail_next: int = 0
    lose_events: int = 0

    @property
    def active(self) -> _Operation | None:
        last = self.operations[-1] if self.operations else None
        return last if last is not None and last.ended_at is None else None


@dataclass(frozen=True)
class AutoDeployment:
    """What one push did to one service configured for it: the automatic deployment it started
    (`operation_id`), or why it started none (`reason`)."""

    service_arn: str
    operation_id: str | None = None
    reason: str | None = None
    automatic: bool = True  # whether the service is in automatic deployment mode

    @property
    def service_name(self) -> str:
        return self.service_arn.split("/")[-2] if self.service_arn.count("/") >= 2 else self.service_arn

    def to_json(self) -> Json:
        if self.operation_id is not None:
            return {"ServiceArn": self.service_arn, "OperationId": self.operation_id}
        return {"ServiceArn": self.service_arn, "NotDeployed": self.reason}


@dataclass
class _Fault:
    error: AppRunnerError
    operation: str | None
    remaining: int


class AppRunnerSimulator:
    """App Runner services in memory; thread-safe (one lock). See the module docstring for the rules."""

    def __init__(
        self,
        *,
        account: str = "111122223333",
        region: str = "us-east-1",
        operation_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        event_sink: EventSink | None = None,
        epoch: float | None = None,
        push_listener: PushListener | None = None,
    ) -> None:
        self.account = account
        self.region = region
        self.operation_seconds = operation_seconds
        self.event_sink = event_sink
        self.push_listener = push_listener
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._clock = clock
        self._offset = 0.0
        self._clock0 = clock()
        # Wall time at the clock's start, so a fake clock still yields plausible timestamps.
        self._epoch0 = time.time() if epoch is None else epoch
        self._partition = partition_of_region(region)
        self._lock = threading.Lock()
        self._services: dict[str, _Service] = {}
        self._faults: list[_Fault] = []
        # What each watched tag and branch points at, from the pushes seen: a push that changes
        # nothing is not a change.
        self._heads: dict[tuple[str, ...], str] = {}
        self._outbox: list[Json] = []
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._handlers: dict[str, Callable[[Json], Json]] = {
            "CreateService": self._create_service,
            "DescribeService": self._describe_service,
            "ListServices": self._list_services,
            "StartDeployment": self._start_deployment,
            "UpdateService": self._update_service,
            "ListOperations": self._list_operations,
            "PauseService": self._pause_service,
            "ResumeService": self._resume_service,
            "DeleteService": self._delete_service,
        }

    # ----- time -----

    def tick(self) -> None:
        """Settle every operation whose time has come, then send the events that produced."""
        with self._lock:
            now = self._now()
            for service in self._services.values():
                operation = service.active
                if operation is not None and operation.due_at <= now:
                    self._settle(service, operation)
        self._flush()

    def advance(self, seconds: float) -> None:
        """Move the simulator's time forward (on top of its clock), then tick."""
        with self._lock:
            self._offset += seconds
        self.tick()

    def _now(self) -> float:
        return self._clock() + self._offset

    def _epoch(self, instant: float) -> float:
        return round(self._epoch0 + (instant - self._clock0), 3)

    # ----- fault injection -----

    def fail_next(self, service_arn: str, count: int = 1) -> None:
        """The next `count` StartDeployment/UpdateService operations on the service fail and roll back."""
        with self._lock:
            self._service(service_arn).fail_next += _positive(count)

    def lose_events(self, service_arn: str, count: int = 1) -> None:
        """The next `count` operation status events of the service are never sent."""
        with self._lock:
            self._service(service_arn).lose_events += _positive(count)

    def throttle_next(self, count: int = 1, operation: str | None = None) -> None:
        """The next `count` requests (of `operation`, e.g. "StartDeployment", or any) are throttled."""
        error = AppRunnerError("ThrottlingException", "Rate exceeded", 400)
        self._add_fault(error, count, operation)

    def error_next(self, count: int = 1, operation: str | None = None) -> None:
        """The next `count` requests (of `operation`, or any) fail with HTTP 500."""
        message = "An internal service error occurred. Try again later."
        self._add_fault(AppRunnerError("InternalServiceErrorException", message, 500), count, operation)

    def _add_fault(self, error: AppRunnerError, count: int, operation: str | None) -> None:
        if operation is not None and operation not in operation_names():
            raise ValueError(f"unknown App Runner operation: {operation}")
        with self._lock:
            self._faults.append(_Fault(error, operation, _positive(count)))

    def _raise_injected_fault(self, operation: str) -> None:
        for fault in self._faults:
            if fault.operation in (None, operation):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                raise AppRunnerError(fault.error.code, fault.error.message, fault.error.status)

    # ----- pushes (automatic deployment) -----

    def image_pushed(
        self, account: str, region: str, repository: str, tag: str | None, digest: str
    ) -> list[AutoDeployment]:
        """An image was pushed to ECR: start the automatic deployment of each service in automatic mode
        watching that tag (see the module docstring). What the push did to each service watching it."""
        if _DIGEST.match(digest) is None:
            raise ValueError(f"not an image digest (sha256:<64 hex digits>): {digest}")
        if tag is None:
            return []  # an untagged push: nothing is configured by tag for it
        self.tick()
        with self._lock:
            # A repository in another Region never deploys here, whatever the service's image says.
            services = [
                s
                for s in self._live()
                if region == self.region and _watches_image(s, account, region, repository, tag)
            ]
            head = ("image", account, region, repository, tag)
            unchanged = self._heads.get(head) == digest
            self._heads[head] = digest
            what = f"push of {repository}:{tag} ({digest[:19]}...)"
            done = [self._auto_deploy(s, what, unchanged=unchanged) for s in services]
        self._flush()
        self._tell_listener(what, done)
        return done

    def code_pushed(
        self, repository_url: str, branch: str, commit: str, paths: list[str] | None = None
    ) -> list[AutoDeployment]:
        """Commits were pushed to a branch: start the automatic deployment of each code service in
        automatic mode on that branch (see the module docstring). `paths`, when known, are the paths the
        push changed. What the push did to each service watching the branch."""
        if not commit:
            raise ValueError("a push names its commit")
        url = _normalized_url(repository_url)
        self.tick()
        with self._lock:
            services = [s for s in self._live() if _watches_branch(s, url, branch)]
            head = ("code", url, branch)
            unchanged = self._heads.get(head) == commit
            self._heads[head] = commit
            what = f"push of {commit[:12]} to {repository_url} {branch}"
            done = [
                self._auto_deploy(s, what, unchanged=unchanged, outside=_outside_source(s, paths))
                for s in services
            ]
        self._flush()
        self._tell_listener(what, done)
        return done

    def _tell_listener(self, what: str, done: list[AutoDeployment]) -> None:
        if self.push_listener is None or not done:
            return
        try:
            self.push_listener(what, done)
        except Exception:
            _log.exception("push listener failed on the %s", what)

    def _live(self) -> list[_Service]:
        return [s for s in self._services.values() if s.status != "DELETED"]

    def _auto_deploy(
        self, service: _Service, what: str, *, unchanged: bool, outside: str | None = None
    ) -> AutoDeployment:
        """Start the automatic deployment of a service that `what` concerns, if App Runner would."""
        source = service.config["SourceConfiguration"]
        active = service.active
        if not source.get("AutoDeploymentsEnabled"):
            reason = "automatic deployment is off (AutoDeploymentsEnabled is false)"
            return AutoDeployment(service.arn, reason=reason, automatic=False)
        if unchanged:
            reason = f"the {what} changes nothing: it is already there"
        elif outside is not None:
            reason = outside
        elif active is not None:
            reason = (
                f"operation {active.id} ({active.type}) was in progress: App Runner does not queue an "
                "automatic deployment"
            )
        elif service.status != "RUNNING":
            reason = f"the service is {service.status}"
        else:
            fails = self._consume_failure(service, source)
            operation = self._start(service, "START_DEPLOYMENT", fails=fails)
            _log.info("automatic deployment %s of %s: %s", operation.id, service.name, what)
            return AutoDeployment(service.arn, operation_id=operation.id)
        _log.info("no automatic deployment of %s on the %s: %s", service.name, what, reason)
        return AutoDeployment(service.arn, reason=reason)

    # ----- protocol -----

    def handle(self, target: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Answer one JSON 1.0 request: (HTTP status, headers, body)."""
        self.tick()
        try:
            params = _decode_body(body)
            if target.startswith(CONTROL_PREFIX):
                result = self._control(target.removeprefix(CONTROL_PREFIX), params)
            else:
                result = self._call(_operation_of(target), params)
        except AppRunnerError as error:
            response = _response(error.status, {"__type": error.code, "Message": error.message}, error.code)
        else:
            response = _response(200, result)
        self._flush()
        return response

    def _call(self, operation: str, params: Json) -> Json:
        handler = self._handlers.get(operation)
        with self._lock:
            self.calls.append((operation, copy.deepcopy(params)))
            self._raise_injected_fault(operation)
            if handler is None:
                message = f"The App Runner simulator does not implement {operation}."
                raise AppRunnerError("UnknownOperationException", message)
            validate_input(operation, params)
            return handler(params)

    def _control(self, command: str, params: Json) -> Json:
        try:
            if command in ("ImagePushed", "CodePushed"):
                return {"Services": [done.to_json() for done in self._push_control(command, params)]}
            count = int(params.get("Count", 1))
            if command in ("FailNext", "LoseEvents"):
                inject = self.fail_next if command == "FailNext" else self.lose_events
                inject(str(params["ServiceArn"]), count)
            elif command in ("ThrottleNext", "ErrorNext"):
                inject_all = self.throttle_next if command == "ThrottleNext" else self.error_next
                inject_all(count, params.get("Operation"))
            else:
                raise AppRunnerError("UnknownOperationException", f"Unknown control {command}.")
        except (KeyError, TypeError, ValueError) as error:
            raise invalid_request(f"Bad {command} request: {error}") from None
        return {}

    def _push_control(self, command: str, params: Json) -> list[AutoDeployment]:
        if command == "ImagePushed":
            tag = params.get("Tag")
            return self.image_pushed(
                str(params.get("Account") or self.account),
                str(params.get("Region") or self.region),
                str(params["Repository"]),
                None if tag is None else str(tag),
                str(params["Digest"]),
            )
        paths = params.get("Paths")
        if paths is not None and not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
            raise TypeError("Paths is a list of strings")
        return self.code_pushed(
            str(params["RepositoryUrl"]), str(params["Branch"]), str(params["Commit"]), paths
        )

    def attach(self, client: BaseClient) -> None:
        """Answer `client`'s requests in-process: botocore still serializes, validates and parses."""
        if client.meta.service_model.service_name != "apprunner":
            raise ValueError("attach() needs an App Runner client")
        # botocore sends the first non-None answer of a before-send handler instead of the request;
        # its stubs type every handler as returning None.
        handler = cast("Callable[..., None]", self._before_send)
        client.meta.events.register("before-send.apprunner", handler)

    def _before_send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        target = _text(request.headers.get("X-Amz-Target") or "")
        status, headers, payload = self.handle(target, _body_bytes(request.body))
        return AWSResponse(request.url, status, HTTPHeaders.from_dict(headers), _RawBody(payload))

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
        """Serve the protocol on loopback HTTP from daemon threads, ticking in the background."""
        if self._server is not None:
            raise RuntimeError("the simulator is already serving")
        server = ThreadingHTTPServer((host, port), _request_handler(self))
        server.daemon_threads = True
        self._server = server
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=server.serve_forever, name="apprunner-sim-http", daemon=True),
            threading.Thread(target=self._tick_until_stopped, name="apprunner-sim-ticker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return server, f"http://{host}:{server.server_port}"

    def stop(self) -> None:
        """Stop serving (a no-op when not serving)."""
        server, self._server = self._server, None
        self._stopping.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _tick_until_stopped(self) -> None:
        while not self._stopping.wait(_TICK_INTERVAL):
            self.tick()

    # ----- operations (called with the lock held) -----

    def _create_service(self, params: Json) -> Json:
        name = params["ServiceName"]
        if any(s.name == name and s.status != "DELETED" for s in self._services.values()):
            raise invalid_request(f"Service with the provided name already exists: {name}")
        source = copy.deepcopy(params["SourceConfiguration"])
        _check_source(source, creating=True, account=self.account)
        service_id = uuid.uuid4().hex
        arn = f"arn:{self._partition}:apprunner:{self.region}:{self.account}:service/{name}/{service_id}"
        now = self._now()
        service = _Service(
            arn=arn,
            name=name,
            id=service_id,
            url=f"{secrets.token_hex(5)}.{self.region}.awsapprunner.com",
            created_at=now,
            config=self._new_config(params, _with_defaults(source, self.account)),
        )
        self._services[arn] = service
        operation = self._start(service, "CREATE_SERVICE", fails=_source_fails(source))
        return {"Service": self._describe(service), "OperationId": operation.id}

    def _describe_service(self, params: Json) -> Json:
        return {"Service": self._describe(self._service(params["ServiceArn"]))}

    def _list_services(self, params: Json) -> Json:
        live = [s for s in self._services.values() if s.status != "DELETED"]
        start = decode_token(params["NextToken"]) if "NextToken" in params else 0
        stop = start + params.get("MaxResults", len(live) or 1)
        page = [self._summary(s) for s in live[start:stop]]
        return {"ServiceSummaryList": page, **({"NextToken": encode_token(stop)} if stop < len(live) else {})}

    def _start_deployment(self, params: Json) -> Json:
        service = self._service(params["ServiceArn"])
        self._require(service, "deploy", {"RUNNING"})
        fails = self._consume_failure(service, service.config["SourceConfiguration"])
        return {"OperationId": self._start(service, "START_DEPLOYMENT", fails=fails).id}

    def _update_service(self, params: Json) -> Json:
        service = self._service(params["ServiceArn"])
        self._require(service, "update", {"RUNNING", "CREATE_FAILED"})
        config = self._updated_config(service.config, params)
        fails = self._consume_failure(service, config["SourceConfiguration"])
        operation = self._start(service, "UPDATE_SERVICE", fails=fails, pending=config)
        # As App Runner does, the answer shows the configuration being applied.
        return {"Service": self._describe(service, config), "OperationId": operation.id}

    def _list_operations(self, params: Json) -> Json:
        service = self._service(params["ServiceArn"])
        newest = len(service.operations) - 1
        first = min(decode_token(params["NextToken"]), newest) if "NextToken" in params else newest
        last = max(first - params.get("MaxResults", 20), -1)
        page = [self._operation_summary(service, service.operations[i]) for i in range(first, last, -1)]
        more = {"NextToken": encode_token(last)} if last >= 0 else {}
        return {"OperationSummaryList": page, **more}

    def _pause_service(self, params: Json) -> Json:
        return self._lifecycle(params, "PAUSE_SERVICE", "pause", {"RUNNING"})

    def _resume_service(self, params: Json) -> Json:
        return self._lifecycle(params, "RESUME_SERVICE", "resume", {"PAUSED"})

    def _delete_service(self, params: Json) -> Json:
        allowed = {"RUNNING", "PAUSED", "CREATE_FAILED", "DELETE_FAILED"}
        return self._lifecycle(params, "DELETE_SERVICE", "delete", allowed)

    def _lifecycle(self, params: Json, operation_type: str, verb: str, allowed: set[str]) -> Json:
        service = self._service(params["ServiceArn"])
        self._require(service, verb, allowed)
        operation = self._start(service, operation_type)
        return {"Service": self._describe(service), "OperationId": operation.id}

    # ----- state machine -----

    def _service(self, arn: str) -> _Service:
        service = self._services.get(arn)
        if service is None:
            raise not_found(f"Service not found: {arn}")
        return service

    def _require(self, service: _Service, verb: str, allowed: set[str]) -> None:
        active = service.active
        if active is not None:
            raise invalid_state(
                f"Can't {verb} service {service.name}: operation {active.id} ({active.type}) is in "
                "progress. Wait for it to complete and try again."
            )
        if service.status not in allowed:
            raise invalid_state(
                f"Can't {verb} service {service.name} in its current state: {service.status}."
            )

    def _consume_failure(self, service: _Service, source: Json) -> bool:
        if service.fail_next > 0:
            service.fail_next -= 1
            return True
        return _source_fails(source)

    def _start(
        self, service: _Service, operation_type: str, *, fails: bool = False, pending: Json | None = None
    ) -> _Operation:
        now = self._now()
        operation = _Operation(
            id=str(uuid.uuid4()),
            type=operation_type,
            started_at=now,
            due_at=now + self.operation_seconds,
            prior_status=service.status,
            fails=fails,
            pending=pending,
        )
        service.operations.append(operation)
        service.status = "OPERATION_IN_PROGRESS"
        service.updated_at = now
        self._emit(service, operation, "Started", now)
        return operation

    def _settle(self, service: _Service, operation: _Operation) -> None:
        end = operation.due_at  # when it ended, however late the tick
        if not operation.fails:
            operation.status = "SUCCEEDED"
            service.config = operation.pending or service.config
            service.status = _STATUS_AFTER.get(operation.type, "RUNNING")
        elif operation.type == "CREATE_SERVICE" or operation.prior_status == "CREATE_FAILED":
            operation.status = "FAILED"  # nothing to roll back to
            service.status = "CREATE_FAILED"
        else:
            operation.status = "ROLLBACK_SUCCEEDED"
            service.status = operation.prior_status
        if service.status == "DELETED":
            service.deleted_at = end
        operation.ended_at = end
        service.updated_at = end
        self._emit(service, operation, "Failed" if operation.fails else "CompletedSuccessfully", end)

    def _emit(self, service: _Service, operation: _Operation, phase: events.Phase, instant: float) -> None:
        if service.lose_events > 0:
            service.lose_events -= 1
            return
        event = events.operation_status_event(
            account=self.account,
            region=self.region,
            service_arn=service.arn,
            service_name=service.name,
            service_id=service.id,
            status=events.operation_status(operation.type, phase),
            epoch_seconds=self._epoch(instant),
        )
        self._outbox.append(event)

    def _flush(self) -> None:
        with self._lock:
            outbox, self._outbox = self._outbox, []
        if self.event_sink is None:
            return
        for event in outbox:
            try:
                self.event_sink(event)
            except Exception:
                # A failing consumer must not fail App Runner's API, as EventBridge's failures don't.
                _log.exception("event sink failed on %s", event["detail"]["operationStatus"])

    # ----- configuration -----

    def _new_config(self, params: Json, source: Json) -> Json:
        config: Json = {
            "SourceConfiguration": source,
            "InstanceConfiguration": {
                "Cpu": "1024",
                "Memory": "2048",
                **params.get("InstanceConfiguration", {}),
            },
            "HealthCheckConfiguration": {
                **_DEFAULT_HEALTH_CHECK,
                **params.get("HealthCheckConfiguration", {}),
            },
            "NetworkConfiguration": {
                **copy.deepcopy(_DEFAULT_NETWORK),
                **params.get("NetworkConfiguration", {}),
            },
            "ObservabilityConfiguration": params.get(
                "ObservabilityConfiguration", {"ObservabilityEnabled": False}
            ),
            "AutoScalingConfigurationSummary": self._autoscaling(params.get("AutoScalingConfigurationArn")),
        }
        if "EncryptionConfiguration" in params:
            config["EncryptionConfiguration"] = params["EncryptionConfiguration"]
        return copy.deepcopy(config)

    def _updated_config(self, current: Json, params: Json) -> Json:
        config = copy.deepcopy(current)
        if "SourceConfiguration" in params:
            config["SourceConfiguration"] = _merged_source(
                config["SourceConfiguration"], params, self.account
            )
        for key in ("InstanceConfiguration", "HealthCheckConfiguration", "NetworkConfiguration"):
            config[key] = {**config[key], **copy.deepcopy(params.get(key, {}))}
        if "ObservabilityConfiguration" in params:
            config["ObservabilityConfiguration"] = copy.deepcopy(params["ObservabilityConfiguration"])
        if "AutoScalingConfigurationArn" in params:
            config["AutoScalingConfigurationSummary"] = self._autoscaling(
                params["AutoScalingConfigurationArn"]
            )
        return config

    def _autoscaling(self, arn: str | None) -> Json:
        default = f"arn:{self._partition}:apprunner:{self.region}:{self.account}:autoscalingconfiguration"
        arn = arn or f"{default}/DefaultConfiguration/1/{uuid.uuid4().hex}"
        parts = arn.split("/")
        revision = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
        return {
            "AutoScalingConfigurationArn": arn,
            "AutoScalingConfigurationName": parts[1] if len(parts) > 1 else "DefaultConfiguration",
            "AutoScalingConfigurationRevision": revision,
            "Status": "ACTIVE",
            "CreatedAt": self._epoch(self._clock0),
            "HasAssociatedService": True,
            "IsDefault": arn.startswith(f"{default}/DefaultConfiguration/"),
        }

    # ----- JSON views -----

    def _describe(self, service: _Service, config: Json | None = None) -> Json:
        described = {**self._summary(service), **copy.deepcopy(config or service.config)}
        if service.deleted_at is not None:
            described["DeletedAt"] = self._epoch(service.deleted_at)
        return described

    def _summary(self, service: _Service) -> Json:
        return {
            "ServiceName": service.name,
            "ServiceId": service.id,
            "ServiceArn": service.arn,
            "ServiceUrl": service.url,
            "CreatedAt": self._epoch(service.created_at),
            "UpdatedAt": self._epoch(service.updated_at),
            "Status": service.status,
        }

    def _operation_summary(self, service: _Service, operation: _Operation) -> Json:
        updated = operation.ended_at if operation.ended_at is not None else operation.started_at
        summary = {
            "Id": operation.id,
            "Type": operation.type,
            "Status": operation.status,
            "TargetArn": service.arn,
            "StartedAt": self._epoch(operation.started_at),
            "UpdatedAt": self._epoch(updated),
        }
        if operation.ended_at is not None:
            summary["EndedAt"] = self._epoch(operation.ended_at)
        return summary


def _check_source(source: Json, *, creating: bool, account: str) -> None:
    """App Runner's rules for a SourceConfiguration beyond its shape."""
    if ("ImageRepository" in source) == ("CodeRepository" in source):
        raise invalid_request("Specify exactly one of ImageRepository or CodeRepository.")
    auth = source.get("AuthenticationConfiguration", {})
    if "ImageRepository" in source:
        _check_image(source["ImageRepository"], auth)
    else:
        code = source["CodeRepository"]
        if "ConnectionArn" not in auth:
            raise invalid_request("A code repository needs AuthenticationConfiguration.ConnectionArn.")
        if creating and "CodeConfiguration" not in code:
            raise invalid_request("CodeRepository.CodeConfiguration is required to create a service.")
    unsupported = _no_automatic_deployment(source, account)
    if source.get("AutoDeploymentsEnabled") and unsupported is not None:
        raise invalid_request(unsupported)


def _no_automatic_deployment(source: Json, account: str) -> str | None:
    """Why App Runner can't deploy this source automatically, or None when it can."""
    image = source.get("ImageRepository")
    if image is None:
        return None
    if image["ImageRepositoryType"] == "ECR_PUBLIC":
        return "App Runner doesn't support automatic deployments for an image in an ECR Public repository."
    match = _ECR_PRIVATE.match(image["ImageIdentifier"])
    if match is not None and match.group("account") != account:
        return (
            "App Runner doesn't support automatic deployments for an image in an ECR repository in "
            f"another AWS account ({match.group('account')})."
        )
    return None


def _check_image(image: Json, auth: Json) -> None:
    identifier: str = image["ImageIdentifier"]
    if image["ImageRepositoryType"] == "ECR_PUBLIC":
        if _ECR_PUBLIC.match(identifier) is None:
            raise invalid_request(f"ImageIdentifier is not an Amazon ECR Public image: {identifier}")
        return
    match = _ECR_PRIVATE.match(identifier)
    if match is None:
        raise invalid_request(f"ImageIdentifier is not an Amazon ECR image: {identifier}")
    digest = match.group("digest")
    if digest is not None and _DIGEST.match(digest) is None:
        raise invalid_request(f"Image digest is not valid (expected sha256:<64 hex digits>): {digest}")
    if "AccessRoleArn" not in auth:
        raise invalid_request("An Amazon ECR image needs AuthenticationConfiguration.AccessRoleArn.")


def _merged_source(current: Json, params: Json, account: str) -> Json:
    update: Json = copy.deepcopy(params["SourceConfiguration"])
    switched = ("ImageRepository" in update and "CodeRepository" in current) or (
        "CodeRepository" in update and "ImageRepository" in current
    )
    if switched:
        raise invalid_request("You can't switch a service between a code and an image repository.")
    merged = {**current, **update}
    if update.get("AutoDeploymentsEnabled") is None:
        # The service keeps its mode, unless the new image can't deploy automatically: then false,
        # its default.
        merged.pop("AutoDeploymentsEnabled", None)
        try:
            supported = _no_automatic_deployment(merged, account) is None
        except (KeyError, TypeError):
            supported = False  # a malformed source: _check_source says what is wrong with it
        merged["AutoDeploymentsEnabled"] = bool(current.get("AutoDeploymentsEnabled")) and supported
    _check_source(merged, creating=False, account=account)
    return _with_defaults(merged, account)


def _with_defaults(source: Json, account: str) -> Json:
    """App Runner's defaults: AutoDeploymentsEnabled as the API reference documents it (see the module
    docstring) and the image's port."""
    if source.get("AutoDeploymentsEnabled") is None:
        source["AutoDeploymentsEnabled"] = _no_automatic_deployment(source, account) is None
    # An ImageRepository block replaces the old one whole: leaving out ImageConfiguration resets it,
    # which is why callers must send the block as DescribeService shows it.
    if "ImageRepository" in source:
        source["ImageRepository"].setdefault("ImageConfiguration", {"Port": "8080"})
    return source


def _watches_image(service: _Service, account: str, region: str, repository: str, tag: str) -> bool:
    """Whether the service is configured with that tag of that repository (not pinned by digest)."""
    image = service.config["SourceConfiguration"].get("ImageRepository")
    if image is None or image["ImageRepositoryType"] != "ECR":
        return False
    match = _ECR_PRIVATE.match(image["ImageIdentifier"])
    if match is None or match.group("digest") is not None:
        return False
    configured = (match.group("account"), match.group("region"), match.group("repository"))
    return configured == (account, region, repository) and (match.group("tag") or "latest") == tag


def _watches_branch(service: _Service, url: str, branch: str) -> bool:
    code = service.config["SourceConfiguration"].get("CodeRepository")
    if code is None:
        return False
    version = code["SourceCodeVersion"]
    return (
        _normalized_url(code["RepositoryUrl"]) == url
        and version["Type"] == "BRANCH"
        and version["Value"] == branch
    )


def _normalized_url(url: str) -> str:
    """A repository URL to compare: no trailing `/` or `.git`, the scheme and host in lower case."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def _outside_source(service: _Service, paths: list[str] | None) -> str | None:
    """Why a push of `paths` does not concern the service's source directory, or None if it does."""
    directory = str(service.config["SourceConfiguration"]["CodeRepository"].get("SourceDirectory", ""))
    directory = directory.strip("/")
    if paths is None or directory in ("", "."):
        return None
    prefix = f"{directory}/"
    if any(path.lstrip("/").startswith(prefix) for path in paths):
        return None
    return f"the push changes nothing under the source directory {directory}/"


def _source_fails(source: Json) -> bool:
    """Whether the source carries the `fail` label (see the module docstring)."""
    if "CodeRepository" in source:
        reference = str(source["CodeRepository"]["SourceCodeVersion"]["Value"])
    else:
        identifier = str(source["ImageRepository"]["ImageIdentifier"])
        reference = identifier.split("/", 1)[1] if "/" in identifier else identifier
    return "fail" in (label.lower() for label in _LABEL_SEPARATORS.split(reference))


def _positive(count: int) -> int:
    if count < 1:
        raise ValueError("count must be at least 1")
    return count


def _operation_of(target: str) -> str:
    operation = target.removeprefix(TARGET_PREFIX)
    if not target.startswith(TARGET_PREFIX) or operation not in operation_names():
        raise AppRunnerError("UnknownOperationException", f"Unknown operation: {target or '(none)'}")
    return operation


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _body_bytes(body: str | bytes | bytearray | IO[bytes] | IO[str] | None) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray | str):
        return body.encode() if isinstance(body, str) else bytes(body)
    data = body.read()
    return data.encode() if isinstance(data, str) else data


def _decode_body(body: bytes) -> Json:
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise AppRunnerError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise AppRunnerError("SerializationException", "The request body must be a JSON object.")
    return params


def _response(status: int, payload: Json, error_type: str | None = None) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": _CONTENT_TYPE,
        "Content-Length": str(len(body)),
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    if error_type is not None:
        headers["x-amzn-ErrorType"] = error_type
    return status, headers, body


class _RawBody:
    """The `raw` botocore's AWSResponse reads its content from."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> list[bytes]:
        return [self._payload]


def _request_handler(simulator: AppRunnerSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload = simulator.handle(self.headers.get("X-Amz-Target", ""), body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the local cloud has its own log."""

    return Handler
