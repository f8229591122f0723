"""One Lambda execution environment of the local cloud: `python -m pushdeploy.local.worker SPEC ...`.

`pushdeploy local up` starts one or more of these per function, each in its own process with the
function's own environment variables (they are process-global, and DEAD_LETTER_QUEUE_URL differs per
function), like Lambda's containers. Each loads the function's real handler (`CodeUri` on `sys.path`,
then `Handler`) and runs one invocation at a time, within the function's timeout:

- Asynchronous invocations (EventBridge rules, schedules) come from the function's invocation queue: a
  message is the event. Success deletes it. An error leaves it for a retry after a short delay; after
  `MaximumRetryAttempts` retries, or once older than `MaximumEventAgeInSeconds`, the event goes to the
  function's on-failure destination as Lambda's invocation record, and is deleted.
- Synchronous invocations over the Function URL: the worker accepts connections on the listening socket
  `local up` opened and handed down (every worker of the function shares it, so the kernel spreads
  requests over them), turns each request into a Function URL event and answers with the function's
  result, or 502 when it raises. With `push_watch_url` (the local cloud sets it to its App Runner
  simulator), each request is first shown to `apprunner_sim_pushes.tell_of_delivery`: a GitHub or
  Bitbucket push delivery stands for the push, which App Runner sees by itself on AWS.

A worker exits on SIGTERM (after the invocation in progress), and by itself when `local up` is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import resource
import signal
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from pushdeploy.local.function_url import FUNCTION_ERROR, HttpRequest, UrlIdentity, http_answer, request_event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

_RECEIVE_WAIT_SECONDS = 2  # long polling: short enough to notice a stop or a vanished parent quickly
_MAX_CONNECTION_FAILURES = 30  # the local cloud is gone: stop polling it
_HTTP_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class WorkerSpec:
    """What `local up` tells a worker about its function (written as JSON, see `to_json`)."""

    logical_id: str
    function_name: str
    function_arn: str
    code_dir: str
    handler: str
    timeout: int
    memory: int
    log_group: str
    queue_url: str | None = None  # asynchronous invocations
    max_retries: int = 2
    max_event_age: int = 21600
    on_failure_url: str | None = None
    retry_delay: float = 1.0  # seconds before the first retry; Lambda waits about a minute
    url_id: str | None = None  # Function URL invocations
    region: str = "us-east-1"
    push_watch_url: str | None = None  # the App Runner simulator, told of the pushes the URL receives

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


class FunctionTimeout(BaseException):
    """The invocation ran past the function's timeout. A BaseException, so that the function's own
    `except Exception` cannot swallow it: Lambda stops a timed-out invocation whatever its code does."""


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as `context`."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Outcome:
    result: Any = None
    error: BaseException | None = None

    def error_payload(self, request_id: str) -> dict[str, Any]:
        """The `responsePayload` Lambda records for a function error."""
        error = self.error
        assert error is not None
        return {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_tb(error.__traceback__),
        }


class Invoker:
    """The function's handler, invoked one event at a time as Lambda does it."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        module_name, _, function = spec.handler.rpartition(".")
        sys.path.insert(0, spec.code_dir)  # as Lambda puts the function's code first on the path
        self._handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module_name), function)
        stamp = time.strftime("%Y/%m/%d", time.gmtime())
        self._log_stream = f"{stamp}/[$LATEST]{uuid.uuid4().hex}"

    def invoke(self, event: Any) -> tuple[str, Outcome]:
        """Run the handler once: (request id, outcome). Logs as Lambda does: START, END, REPORT."""
        request_id = str(uuid.uuid4())
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        started = time.monotonic()
        context = self._context(request_id, started)
        try:
            with _time_limit(self.spec.timeout):
                outcome = Outcome(result=self._handler(event, context))
        except (Exception, FunctionTimeout) as error:
            traceback.print_exc(file=sys.stdout)
            outcome = Outcome(error=error)
        duration = (time.monotonic() - started) * 1000
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"END RequestId: {request_id}", flush=True)
        print(
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Memory Size: {self.spec.memory} MB\tMax Memory Used: {memory} MB",
            flush=True,
        )
        return request_id, outcome

    def _context(self, request_id: str, started: float) -> LambdaContext:
        return LambdaContext(
            function_name=self.spec.function_name,
            invoked_function_arn=self.spec.function_arn,
            memory_limit_in_mb=self.spec.memory,
            aws_request_id=request_id,
            log_group_name=self.spec.log_group,
            log_stream_name=self._log_stream,
            deadline=started + self.spec.timeout,
        )


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise FunctionTimeout(f"Task timed out after {seconds:.2f} seconds")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Lifecycle:
    """When to stop: on SIGTERM (right away when idle, else after the invocation in progress), or when
    the parent `local up` is gone (it may have been killed without a chance to stop its workers)."""

    def __init__(self) -> None:
        self._parent = os.getppid()
        self._busy = False
        self._stopping = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_terminate)

    def _on_terminate(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        if not self._busy:
            exit_now()

    @property
    def should_stop(self) -> bool:
        return self._stopping or os.getppid() != self._parent

    @contextlib.contextmanager
    def invocation(self) -> Iterator[None]:
        self._busy = True
        try:
            yield
        finally:
            self._busy = False


# ----- asynchronous invocations -----


class QueueConsumer:
    """Lambda's asynchronous invocation, with its invocation queue played by an SQS queue."""

    def __init__(self, spec: WorkerSpec, invoker: Invoker, sqs: SQSClient, lifecycle: Lifecycle) -> None:
        assert spec.queue_url is not None
        self.spec = spec
        self.queue_url: str = spec.queue_url
        self.invoker = invoker
        self.sqs = sqs
        self.lifecycle = lifecycle

    def run(self) -> None:
        failures = 0
        while not self.lifecycle.should_stop:
            try:
                messages = self.receive()
            except Exception as error:  # the local cloud may be stopping: a few misses are normal
                failures += 1
                if failures >= _MAX_CONNECTION_FAILURES:
                    print(f"giving up: the invocation queue is unreachable: {error}", flush=True)
                    return
                time.sleep(0.5)
                continue
            failures = 0
            for message in messages:
                with self.lifecycle.invocation():
                    self._handle_safely(message)

    def _handle_safely(self, message: MessageTypeDef) -> None:
        try:
            self.handle(message)
        except Exception:
            # The queue, not the function, failed (the local cloud may be stopping): the message comes
            # back after its visibility timeout, as it would after a crashed execution environment.
            traceback.print_exc(file=sys.stdout)

    def receive(self, wait_seconds: int = _RECEIVE_WAIT_SECONDS) -> list[MessageTypeDef]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=1,  # one invocation at a time, as in one execution environment
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        return answer.get("Messages", [])

    def handle(self, message: MessageTypeDef) -> None:
        attributes = message.get("Attributes", {})
        attempt = int(attributes.get("ApproximateReceiveCount", "1"))
        age = time.time() - int(attributes.get("SentTimestamp", "0")) / 1000
        event = _event_of(message.get("Body", ""))
        if age > self.spec.max_event_age:
            self._give_up(message, event, "EventAgeExceeded", attempt - 1, None)
            return
        request_id, outcome = self.invoker.invoke(event)
        if outcome.error is None:
            self._delete(message)
        elif attempt > self.spec.max_retries:
            self._give_up(message, event, "RetriesExhausted", attempt, (request_id, outcome))
        else:
            # Lambda retries after a delay that grows; the local cloud keeps the delays short.
            delay = round(self.spec.retry_delay * attempt)
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
            )

    def _give_up(
        self,
        message: MessageTypeDef,
        event: Any,
        condition: str,
        invocations: int,
        failure: tuple[str, Outcome] | None,
    ) -> None:
        if self.spec.on_failure_url is None:
            print(f"event dropped ({condition}): the function has no on-failure destination", flush=True)
        else:
            record = invocation_record(self.spec, event, condition, invocations, failure)
            self.sqs.send_message(QueueUrl=self.spec.on_failure_url, MessageBody=json.dumps(record))
        self._delete(message)

    def _delete(self, message: MessageTypeDef) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _event_of(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body  # EventBridge only sends JSON; anything else reaches the handler as it is


def invocation_record(
    spec: WorkerSpec, event: Any, condition: str, invocations: int, failure: tuple[str, Outcome] | None
) -> dict[str, Any]:
    """What Lambda sends to an SQS on-failure destination of an asynchronous invocation."""
    request_id = failure[0] if failure else str(uuid.uuid4())
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{spec.function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "requestPayload": event,
    }
    if failure is not None:
        record["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        }
        record["responsePayload"] = failure[1].error_payload(request_id)
    return record


# ----- synchronous invocations over the Function URL -----


def url_server(
    spec: WorkerSpec, invoker: Invoker, listening: socket.socket, lifecycle: Lifecycle
) -> HTTPServer:
    """An HTTP server on the shared listening socket that answers one request at a time."""
    assert spec.url_id is not None
    url = UrlIdentity(spec.url_id, spec.region)
    on_request = _push_watcher(spec.push_watch_url)

    class FunctionUrlHandler(BaseHTTPRequestHandler):
        timeout = 10  # a client that stalls must not hold the execution environment forever

        def handle_one_request(self) -> None:
            self.close_connection = True  # one request per connection: the worker is single-threaded
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline or not self.parse_request():
                return
            length = int(self.headers.get("Content-Length") or 0)
            request = HttpRequest(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=self.rfile.read(length) if length else b"",
                source_ip=self.client_address[0],
            )
            with lifecycle.invocation():
                if on_request is not None:
                    on_request(request)
                _request_id, outcome = invoker.invoke(request_event(request, url))
            status, headers, body = FUNCTION_ERROR if outcome.error else http_answer(outcome.result)
            self._answer(status, headers, body)

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.client_address[0]} {format % args}", flush=True)

    server = HTTPServer(listening.getsockname(), FunctionUrlHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = listening
    server.timeout = _HTTP_POLL_SECONDS
    return server


def _push_watcher(simulator_url: str | None) -> Callable[[HttpRequest], None] | None:
    if simulator_url is None:
        return None
    from pushdeploy.local.apprunner_sim_pushes import tell_of_delivery

    return lambda request: tell_of_delivery(simulator_url, request.headers, request.body)


def serve_url(server: HTTPServer, lifecycle: Lifecycle) -> None:
    # The socket is non-blocking and shared: when another worker wins a connection, accept() fails with
    # BlockingIOError, which socketserver ignores, and this worker waits for the next one.
    while not lifecycle.should_stop:
        server.handle_request()


# ----- entry point -----


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pushdeploy.local.worker")
    parser.add_argument("spec", type=Path, help="the function's worker spec (JSON), written by local up")
    parser.add_argument("--ready-fd", type=int, help="write 'ready' to this file descriptor when loaded")
    parser.add_argument("--listen-fd", type=int, help="the Function URL's listening socket")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    spec = WorkerSpec.from_json(args.spec.read_text(encoding="utf-8"))
    lifecycle = Lifecycle()
    lifecycle.install()
    invoker = Invoker(spec)  # the cold start: an import error ends the worker before it says ready
    if args.listen_fd is not None:
        server = url_server(spec, invoker, socket.socket(fileno=args.listen_fd), lifecycle)
        run: Callable[[], None] = lambda: serve_url(server, lifecycle)  # noqa: E731
    else:
        import boto3

        sqs: SQSClient = boto3.client("sqs", region_name=spec.region)
        run = QueueConsumer(spec, invoker, sqs, lifecycle).run
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ready\n")
        os.close(args.ready_fd)
    with contextlib.suppress(KeyboardInterrupt):
        run()
    exit_now()


def exit_now() -> NoReturn:
    """Exit without the interpreter's teardown: nothing is in progress and the log is flushed, and
    tearing down boto3, pydantic and Powertools takes a good fraction of a second per worker."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
