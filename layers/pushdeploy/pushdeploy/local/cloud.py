"""The local cloud: the whole controller on one machine, with no Docker and no AWS account.

Pieces, all on 127.0.0.1 at free ports:
- moto's server: DynamoDB, ECR, EventBridge, SQS, Secrets Manager and STS (`moto_server`);
- the App Runner simulator (`apprunner_sim`), whose status events are put on moto's default bus, where
  the template's own rule routes them to the operation-changed function; it is told of each push (an ECR
  PutImage or a CodeCommit event moto takes, a push delivery to the webhook), so that a service in
  automatic deployment mode deploys by itself, as on AWS (`apprunner_sim_pushes`);
- what `template.yaml` declares, provisioned from the template itself (`provision`);
- the functions: per function, `concurrency` worker processes (`worker`), each a Lambda execution
  environment with the function's own environment, fed by the function's invocation queue (behind its
  EventBridge rules), or by its Function URL (a listening socket the workers share);
- the schedules, as a timer that queues a `Scheduled Event` for their function every few seconds: each
  function at its own interval (`CloudOptions.schedule_seconds`, else `reconcile_seconds`).

`LocalCloud.start()` brings it all up and writes the state file; `stop()` takes it all down, children
first, and removes the state file.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

import boto3

from pushdeploy.errors import PushdeployError
from pushdeploy.local import moto_accounts
from pushdeploy.local.apprunner_sim import AppRunnerSimulator, AutoDeployment
from pushdeploy.local.apprunner_sim_pushes import PushWatch, WsgiApp, report_lines
from pushdeploy.local.intrinsics import StackIdentity
from pushdeploy.local.moto_server import MotoServer
from pushdeploy.local.provision import Clients, LocalStack, provision
from pushdeploy.local.stack import FunctionSpec
from pushdeploy.local.state import running_pid, sdk_environment, state_path, write_state
from pushdeploy.local.template import load_template, resources_of_type
from pushdeploy.local.worker import WorkerSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# STS too: credentials of another account come from AssumeRole (`moto_accounts`), for the CLI and the
# functions (the sweeper's roles into other accounts) alike.
MOTO_SERVICES = ("dynamodb", "ecr", "events", "sqs", "secretsmanager", "sts")
READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 5.0
_RESPAWN_AFTER_SECONDS = 2.0  # a worker that keeps dying is restarted at most this often
# Local overrides of the template's environment, for every function: rules applied a moment ago must be
# seen by the next push (the runtime's cache suits AWS, where rules change rarely and nobody waits on them).
LOCAL_ENVIRONMENT = {"RULES_CACHE_SECONDS": "0"}
# Variables of the caller that must not leak into a function (credentials, profiles, endpoints, ...).
_PRIVATE_PREFIXES = ("AWS_", "POWERTOOLS_", "PUSHDEPLOY_", "MOTO_", "LAMBDA_", "_HANDLER")


class CloudError(PushdeployError):
    """The local cloud cannot start. Exit status 1."""

    exit_status = 1


@dataclass(frozen=True)
class CloudOptions:
    state_dir: Path
    template: Path
    region: str = "us-east-1"
    account: str = "111122223333"
    stack_name: str = "pushdeploy"
    operation_seconds: float = 3.0
    reconcile_seconds: float = 5.0  # the interval of every schedule, unless `schedule_seconds` names it
    schedule_seconds: dict[str, float] = field(default_factory=dict)  # function logical id -> interval
    concurrency: int = 2
    retry_seconds: float = 1.0
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # on top of LOCAL_ENVIRONMENT


@dataclass
class _Worker:
    spec: FunctionSpec
    spec_path: Path
    env: dict[str, str]
    listen_fd: int | None  # set: serves the Function URL; None: consumes the invocation queue
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0


class LocalCloud:
    """See the module docstring. Not reentrant: one `start()`, then one `stop()`."""

    def __init__(self, options: CloudOptions, out: TextIO = sys.stdout) -> None:
        self.options = options
        self.out = out
        self.identity = StackIdentity(options.stack_name, options.region, options.account)
        self.moto: MotoServer | None = None
        self.simulator: AppRunnerSimulator | None = None
        self.stack: LocalStack | None = None
        self.endpoints: dict[str, str] = {}
        self.webhook_url: str | None = None
        self._listener: socket.socket | None = None
        self._workers: list[_Worker] = []
        self._logs: dict[str, IO[bytes]] = {}
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None
        self._clients: Clients | None = None
        self._state_written = False

    # ----- start -----

    def start(self) -> float:
        """Bring everything up, write the state file, and return how long it took (seconds)."""
        began = time.monotonic()
        self._check_not_running()
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        self._start_moto()
        self._open_function_url()
        self.stack = provision(
            self.options.template,
            self.identity,
            self._moto_clients(),
            function_url=None if self.webhook_url is None else f"{self.webhook_url}/",
            parameters=self.options.parameters,
        )
        self._start_simulator()
        self._start_workers(self.stack)
        self._start_timer(self.stack)
        write_state(self.options.state_dir, self.state())
        self._state_written = True
        return time.monotonic() - began

    def _check_not_running(self) -> None:
        pid = running_pid(self.options.state_dir)
        if pid is not None and pid != os.getpid():
            raise CloudError(f"a local cloud already runs with state in {self.options.state_dir} (pid {pid})")
        # A state file left by a local cloud that was killed points at nothing: it must not be used.
        state_path(self.options.state_dir).unlink(missing_ok=True)
        if not self.options.template.is_file():
            raise CloudError(f"no template at {self.options.template}: give one with --template")

    def _start_moto(self) -> None:
        # Requests with the local test credentials are the simulator's account, so that ECR events, App
        # Runner ARNs and rules agree on one account; credentials of an STS AssumeRole of a role in another
        # account are that account, as on AWS (`moto_accounts`; not MOTO_ACCOUNT_ID, which pins them all).
        moto_accounts.install(self.options.account)
        self.moto = MotoServer(middleware=self._watch_pushes)
        self.moto.start()
        self.endpoints.update(dict.fromkeys(MOTO_SERVICES, self.moto.url))
        self._say(f"moto {self.moto.url} ({', '.join(MOTO_SERVICES)})")

    def _watch_pushes(self, app: WsgiApp) -> WsgiApp:
        """On AWS App Runner watches the repositories; here image and CodeCommit pushes go through moto,
        which tells the simulator (webhook pushes are told by the webhook's workers)."""
        return PushWatch(
            app, lambda: self.simulator, account=self.options.account, region=self.options.region
        )

    def _open_function_url(self) -> None:
        """Listen for the Function URL now: its address is an output the template evaluates."""
        functions = resources_of_type(load_template(self.options.template), "AWS::Serverless::Function")
        if not any("FunctionUrlConfig" in f.get("Properties", {}) for f in functions.values()):
            return
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        # Non-blocking and shared by the function's workers: see `worker.serve_url`.
        listener.setblocking(False)
        listener.set_inheritable(True)
        self._listener = listener
        self.webhook_url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def _moto_clients(self) -> Clients:
        """boto3 clients of moto's services (thread-safe: the simulator's threads share them)."""
        if self._clients is None:

            def client(service: str) -> Any:
                return boto3.client(
                    service,  # type: ignore[call-overload]
                    region_name=self.options.region,
                    endpoint_url=self.endpoints[service],
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",  # noqa: S106 - moto's
                )

            self._clients = Clients(
                client("dynamodb"), client("sqs"), client("secretsmanager"), client("events")
            )
        return self._clients

    def _start_simulator(self) -> None:
        self.simulator = AppRunnerSimulator(
            account=self.options.account,
            region=self.options.region,
            operation_seconds=self.options.operation_seconds,
            event_sink=self._put_on_bus,
            push_listener=self._report_push,
        )
        _server, url = self.simulator.serve()
        self.endpoints["apprunner"] = url
        self._say(f"App Runner simulator {url} (an operation takes {self.options.operation_seconds:g} s)")

    def _report_push(self, what: str, done: list[AutoDeployment]) -> None:
        """Say what a push did to the services in automatic deployment mode."""
        for line in report_lines(what, done):
            self._say(line)

    def _put_on_bus(self, event: dict[str, Any]) -> None:
        """App Runner's status events go to the default bus, as AWS sends them."""
        answer = self._moto_clients().events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event["resources"],
                    "Time": datetime.fromisoformat(event["time"]),
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            raise CloudError(f"EventBridge refused an App Runner event: {answer['Entries']}")

    # ----- workers -----

    def _start_workers(self, stack: LocalStack) -> None:
        functions_dir = self.options.state_dir / "functions"
        logs_dir = self.options.state_dir / "logs"
        functions_dir.mkdir(exist_ok=True)
        logs_dir.mkdir(exist_ok=True)
        pending: dict[int, _Worker] = {}
        for function in stack.functions:
            spec_path = functions_dir / f"{function.logical_id}.json"
            spec_path.write_text(self._worker_spec(stack, function).to_json(), encoding="utf-8")
            self._logs[function.logical_id] = (logs_dir / f"{function.function_name}.log").open("ab")
            env = self._function_env(function)
            for listen_fd in self._invocation_sources(stack, function):
                for _ in range(self.options.concurrency):
                    worker = _Worker(function, spec_path, env, listen_fd)
                    pending[self._spawn(worker, with_ready_pipe=True)] = worker
                    self._workers.append(worker)
        self._await_ready(pending)
        functions = len(stack.functions)
        self._say(f"{functions} functions, {len(self._workers)} workers; their logs in {logs_dir}")
        if self.webhook_url is not None:
            self._say(f"webhook {self.webhook_url} (the Function URL of the webhook function)")

    def _invocation_sources(self, stack: LocalStack, function: FunctionSpec) -> list[int | None]:
        """How the function is invoked: its Function URL (the listening socket), its invocation queue
        (None), or both; each gets its own workers."""
        sources: list[int | None] = []
        if function.has_url and self._listener is not None:
            sources.append(self._listener.fileno())
        if function.logical_id in stack.event_queues:
            sources.append(None)
        return sources

    def _worker_spec(self, stack: LocalStack, function: FunctionSpec) -> WorkerSpec:
        log_group = stack.resources.get(f"{function.logical_id}LogGroup")
        return WorkerSpec(
            logical_id=function.logical_id,
            function_name=function.function_name,
            function_arn=stack.resources[function.logical_id].attributes["Arn"],
            code_dir=str(function.code_dir),
            handler=function.handler,
            timeout=function.timeout,
            memory=function.memory,
            log_group=log_group.ref if log_group else f"/aws/lambda/{function.function_name}",
            queue_url=stack.event_queues.get(function.logical_id),
            max_retries=function.max_retries,
            max_event_age=function.max_event_age,
            on_failure_url=stack.on_failure_queue(function),
            retry_delay=self.options.retry_seconds,
            url_id=uuid.uuid4().hex if function.has_url else None,
            region=self.options.region,
            # A push delivery to the webhook is a push App Runner sees too (`apprunner_sim_pushes`).
            push_watch_url=self.endpoints.get("apprunner") if function.has_url else None,
        )

    def _function_env(self, function: FunctionSpec) -> dict[str, str]:
        """A clean environment, as Lambda gives a function: its reserved variables, the SDK pointed at
        the local cloud, then the function's variables from the template and the local overrides."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_PREFIXES)}
        reserved = {
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "_HANDLER": function.handler,
            "PYTHONUNBUFFERED": "1",  # the log files show what happens as it happens
        }
        return {
            **inherited,
            **reserved,
            **sdk_environment(self.options.region, self.endpoints),
            **function.environment,
            **LOCAL_ENVIRONMENT,
            **self.options.environment,
        }

    def _spawn(self, worker: _Worker, with_ready_pipe: bool = False) -> int:
        """Start the worker's process; with a pipe, return the pipe's read end, else -1."""
        command = [sys.executable, "-m", "pushdeploy.local.worker", str(worker.spec_path)]
        fds: list[int] = []
        read_end, write_end = os.pipe() if with_ready_pipe else (-1, -1)
        if with_ready_pipe:
            command += ["--ready-fd", str(write_end)]
            fds.append(write_end)
        if worker.listen_fd is not None:
            command += ["--listen-fd", str(worker.listen_fd)]
            fds.append(worker.listen_fd)
        worker.process = subprocess.Popen(
            command,
            env=worker.env,
            stdin=subprocess.DEVNULL,
            stdout=self._logs[worker.spec.logical_id],
            stderr=subprocess.STDOUT,
            pass_fds=fds,
            # A session of its own: Ctrl-C reaches `local up` only, which stops the workers in order.
            start_new_session=True,
        )
        worker.started_at = time.monotonic()
        if with_ready_pipe:
            os.close(write_end)  # the worker holds it now: EOF on the read end means it died
        return read_end

    def _await_ready(self, pending: dict[int, _Worker]) -> None:
        """Wait until every worker has loaded its function (its cold start), or fail with its log."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = sorted({w.spec.function_name for w in pending.values()})
                raise CloudError(f"functions not ready after {READY_TIMEOUT_SECONDS:g} s: {', '.join(names)}")
            readable, _, _ = select.select(list(pending), [], [], remaining)
            for fd in readable:
                said = os.read(fd, 64)
                os.close(fd)
                worker = pending.pop(fd)
                if not said.startswith(b"ready"):
                    raise CloudError(
                        f"{worker.spec.function_name} failed to start:\n{self._log_tail(worker)}"
                    )

    def _log_tail(self, worker: _Worker, lines: int = 15) -> str:
        path = self.options.state_dir / "logs" / f"{worker.spec.function_name}.log"
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def supervise(self, stop: threading.Event) -> None:
        """Until `stop` is set: restart a worker that died, as Lambda replaces a crashed environment."""
        while not stop.wait(0.5):
            for worker in self._workers:
                process = worker.process
                if process is None or process.poll() is None:
                    continue
                if time.monotonic() - worker.started_at < _RESPAWN_AFTER_SECONDS:
                    continue
                self._say(f"{worker.spec.function_name} worker exited ({process.returncode}): restarting it")
                self._spawn(worker)
                write_state(self.options.state_dir, self.state())

    # ----- schedules -----

    def _start_timer(self, stack: LocalStack) -> None:
        scheduled = [f for f in stack.functions if any(s.enabled for s in f.schedules)]
        if not scheduled:
            return
        clock = ScheduleClock(schedule_intervals(self.options, scheduled), time.monotonic())
        sqs = self._moto_clients().sqs
        self._timer = threading.Thread(
            target=self._tick_schedules, args=(stack, scheduled, clock, sqs), name="schedules", daemon=True
        )
        self._timer.start()
        self._say(f"schedules {describe_intervals(scheduled, clock.intervals)}")

    def _tick_schedules(
        self, stack: LocalStack, functions: list[FunctionSpec], clock: ScheduleClock, sqs: SQSClient
    ) -> None:
        by_id = {function.logical_id: function for function in functions}
        while not self._stopping.wait(clock.wait_seconds(time.monotonic())):
            for logical_id in clock.due(time.monotonic()):
                function = by_id[logical_id]
                for schedule in (s for s in function.schedules if s.enabled):
                    event = self._scheduled_event(schedule.rule_name)
                    try:
                        sqs.send_message(QueueUrl=stack.event_queues[logical_id], MessageBody=event)
                    except Exception as error:  # moto is stopping: the next tick will tell
                        self._say(f"schedule {schedule.rule_name}: {error}")

    def _scheduled_event(self, rule_name: str) -> str:
        """The event an EventBridge schedule delivers."""
        identity = self.identity
        rule_arn = f"arn:{identity.partition}:events:{identity.region}:{identity.account}:rule/{rule_name}"
        return json.dumps(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": identity.account,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": identity.region,
                "resources": [rule_arn],
                "detail": {},
            }
        )

    # ----- state -----

    def state(self) -> dict[str, Any]:
        assert self.stack is not None
        return {
            "region": self.options.region,
            "account": self.options.account,
            "stack": self.options.stack_name,
            "endpoints": dict(sorted(self.endpoints.items())),
            "outputs": self.stack.outputs,
            "webhook_url": self.webhook_url,
            "template": str(self.options.template),
            "operation_seconds": self.options.operation_seconds,
            "reconcile_seconds": self.options.reconcile_seconds,
            "schedule_seconds": schedule_intervals(self.options, self.stack.functions),
            "functions": {
                f.logical_id: {
                    "name": f.function_name,
                    "invocation_queue_url": self.stack.event_queues.get(f.logical_id),
                    "log": str(self.options.state_dir / "logs" / f"{f.function_name}.log"),
                }
                for f in self.stack.functions
            },
            "pids": {
                "local": os.getpid(),
                "workers": {
                    f.logical_id: [
                        w.process.pid for w in self._workers if w.spec is f and w.process is not None
                    ]
                    for f in self.stack.functions
                },
            },
        }

    def environment(self) -> dict[str, str]:
        """What `pushdeploy local env` exports."""
        return sdk_environment(self.options.region, self.endpoints)

    # ----- stop -----

    def stop(self) -> None:
        """Stop everything, children first (they talk to moto until the end), then the state file."""
        if self.moto is None:
            return  # nothing was started
        self._stopping.set()
        self._stop_workers()
        self._report_in_flight()
        if self._timer is not None:
            self._timer.join(timeout=STOP_GRACE_SECONDS)
        if self.simulator is not None:
            self.simulator.stop()
        self.moto.stop()
        if self._listener is not None:
            self._listener.close()
        for log in self._logs.values():
            log.close()
        if self._state_written:
            state_path(self.options.state_dir).unlink(missing_ok=True)
        self._say("stopped: the local cloud keeps its state in memory, so its ledger and services are gone")

    def _report_in_flight(self) -> None:
        """Deployments still queued, starting or in progress are lost with the memory: say which."""
        if self.stack is None or "LedgerTableName" not in self.stack.outputs:
            return
        from pushdeploy.adapters.ledger import Ledger

        try:
            ledger = Ledger(self._moto_clients().dynamodb, self.stack.outputs["LedgerTableName"])
            in_flight = ledger.in_flight()
        except Exception as error:  # stopping must not fail on a report
            self._say(f"could not list the deployments in flight: {error}")
            return
        for deployment in in_flight:
            name = (
                deployment.service.split("/")[1] if deployment.service.count("/") == 2 else deployment.service
            )
            self._say(
                f"was in flight when the local cloud stopped: {deployment.id} on {name} ({deployment.status})"
            )

    def _stop_workers(self) -> None:
        running = [w.process for w in self._workers if w.process is not None and w.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _say(self, message: str) -> None:
        print(f"local cloud: {message}", file=self.out, flush=True)


# ----- schedules -----


def schedule_intervals(options: CloudOptions, functions: list[FunctionSpec]) -> dict[str, float]:
    """Each scheduled function's interval, by logical id: its own if `schedule_seconds` names it, else
    `reconcile_seconds`."""
    return {
        function.logical_id: options.schedule_seconds.get(function.logical_id, options.reconcile_seconds)
        for function in functions
        if any(schedule.enabled for schedule in function.schedules)
    }


def describe_intervals(functions: list[FunctionSpec], intervals: dict[str, float]) -> str:
    """`every 2 s: pushdeploy-reconciler; every 30 s: pushdeploy-sweeper`, shortest interval first."""
    names: dict[float, list[str]] = {}
    for function in functions:
        names.setdefault(intervals[function.logical_id], []).append(function.function_name)
    return "; ".join(f"every {every:g} s: {', '.join(named)}" for every, named in sorted(names.items()))


class ScheduleClock:
    """When each scheduled function is due: every `intervals[logical id]` seconds from `start`, on a
    monotonic clock. A tick that came late is not made up for (as a schedule skips, never bunches)."""

    def __init__(self, intervals: dict[str, float], start: float) -> None:
        self.intervals = dict(intervals)
        self._next = {logical_id: start + every for logical_id, every in intervals.items()}

    def wait_seconds(self, now: float) -> float:
        """How long until the next function is due (0 if one is)."""
        return max(0.0, min(self._next.values()) - now)

    def due(self, now: float) -> list[str]:
        """The functions due at `now`, each moved on to its next time after `now`."""
        due = [logical_id for logical_id, at in self._next.items() if at <= now]
        for logical_id in due:
            every = self.intervals[logical_id]
            missed = (now - self._next[logical_id]) // every
            self._next[logical_id] += every * (missed + 1)
        return due


def default_template() -> Path:
    """`template.yaml` of the working directory, else the project's own (next to this package)."""
    here = Path.cwd() / "template.yaml"
    if here.is_file():
        return here
    return Path(__file__).resolve().parents[4] / "template.yaml"
