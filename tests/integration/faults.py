"""Fault injection at the AWS client layer, for tests that drive the real handlers.

Nothing here patches pushdeploy's own functions: faults are botocore event handlers registered on the
boto3 clients the handlers use, so they keep working however the controller is organised inside.

- `intercept(client, before=..., after=...)`: see every call a client makes, with its API parameters,
  and act before it is sent (raise: the call never reaches AWS) or after it took effect (raise: the caller
  crashes although AWS acted, as a Lambda that times out or dies after a write does).
- `crash_after(clients, where, error, nth)` / `crash_before(...)`: the nth call matching `where` takes
  effect and then the caller crashes, or fails before it is sent.
- `crash_after_ledger_write(cloud, index, error)`: the `index`-th write to the ledger table (0-based)
  takes effect, then the handler crashes with `error`.
- `count_ledger_writes(cloud)`: how many ledger writes a block makes (for reports and sanity checks).
- `run_inside(client, operation, callback)`: on the first matching call, run `callback` synchronously
  (before the call is sent, or after it returned), then let the caller continue: a deterministic way to
  interleave a whole second invocation into the middle of a first one.
- `failing(client, operation, error)`: every matching call fails with `error` while the block runs.
- Errors with the codes AWS really answers: `throughput_exceeded`, `throttled`, `server_error`,
  `not_found`, and `LambdaCrash` for a crash or timeout that is no AWS error at all.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from pushdeploy import runtime
from tests.integration.harness import TABLES, Cloud

LEDGER_TABLE = TABLES["LedgerTable"]
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
_CALL_KEY = "pushdeploy_tests_call"
_ids = itertools.count()


class LambdaCrash(Exception):
    """The Lambda died or timed out mid-invocation: no AWS error, the invocation just ends."""


@dataclass
class Call:
    """One API call as the caller made it: operation name and API parameters (before serialization)."""

    operation: str
    params: Mapping[str, Any]
    thread: threading.Thread = field(default_factory=threading.current_thread)


Before = Callable[[Call], None]
After = Callable[[Call, int], None]  # the call and its HTTP status


# --- errors ----------------------------------------------------------------------------------------


def client_error(code: str, message: str, operation: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "fault-injected"},
    }
    return ClientError(response, operation)


def throughput_exceeded(operation: str = "TransactWriteItems") -> ClientError:
    message = "The level of configured provisioned throughput for the table was exceeded."
    return client_error("ProvisionedThroughputExceededException", message, operation, 400)


def throttled(operation: str) -> ClientError:
    return client_error("ThrottlingException", "Rate exceeded", operation, 400)


def server_error(operation: str) -> ClientError:
    message = "An internal service error occurred. Try again later."
    return client_error("InternalServiceErrorException", message, operation, 500)


def not_found(operation: str, service_arn: str) -> ClientError:
    return client_error("ResourceNotFoundException", f"Service not found: {service_arn}", operation, 400)


# --- which clients ---------------------------------------------------------------------------------


def ledger_clients(cloud: Cloud) -> list[Any]:
    """The DynamoDB clients the handlers may write the ledger with: the one the runtime hands out to
    every function (cached per container) and the harness's own, if they differ."""
    clients = [runtime.client("dynamodb"), cloud.dynamodb]
    return [c for position, c in enumerate(clients) if all(c is not o for o in clients[:position])]


def writes_ledger(call: Call) -> bool:
    """A write (put, update, delete, transaction, batch) that touches the ledger table."""
    params = call.params
    if call.operation not in WRITE_OPERATIONS:
        return False
    if call.operation == "TransactWriteItems":
        return any(
            action.get("TableName") == LEDGER_TABLE
            for item in params.get("TransactItems", [])
            for action in item.values()
        )
    if call.operation == "BatchWriteItem":
        return LEDGER_TABLE in params.get("RequestItems", {})
    return params.get("TableName") == LEDGER_TABLE


def puts_deployment(call: Call) -> bool:
    """A ledger write that creates a deployment item (`DEPLOYMENT#...`)."""
    if not writes_ledger(call):
        return False
    items: list[Mapping[str, Any]] = []
    if call.operation == "TransactWriteItems":
        items = [item["Put"]["Item"] for item in call.params.get("TransactItems", []) if "Put" in item]
    elif call.operation == "PutItem":
        items = [call.params.get("Item", {})]
    return any(str(item.get("pk", {}).get("S", "")).startswith("DEPLOYMENT#") for item in items)


def for_service(service_arn: str) -> Callable[[Call], bool]:
    def matches(call: Call) -> bool:
        return call.params.get("ServiceArn") == service_arn

    return matches


# --- hooks -----------------------------------------------------------------------------------------


@contextmanager
def intercept(client: Any, before: Before | None = None, after: After | None = None) -> Iterator[None]:
    """Call `before(call)` before each call of `client` is sent and `after(call, http_status)` once it
    answered (success or error), while the block runs. Either may raise to fail the call."""
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    unique = f"pushdeploy-tests-{next(_ids)}"

    def remember(params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context[_CALL_KEY] = Call(model.name, params)

    def on_before(context: dict[str, Any], **_: Any) -> None:
        call = context.get(_CALL_KEY)
        if before is not None and call is not None:
            before(call)

    def on_after(http_response: Any, context: dict[str, Any], **_: Any) -> None:
        call = context.get(_CALL_KEY)
        if after is not None and call is not None:
            after(call, int(http_response.status_code))

    hooks = [
        (f"before-parameter-build.{service}", remember, f"{unique}-params"),
        (f"before-call.{service}", on_before, f"{unique}-before"),
        (f"after-call.{service}", on_after, f"{unique}-after"),
    ]
    for name, handler, unique_id in hooks:
        events.register(name, handler, unique_id=unique_id)
    try:
        yield
    finally:
        for name, handler, unique_id in hooks:
            events.unregister(name, handler, unique_id=unique_id)


@dataclass
class CallLog:
    """What a counting or crashing block saw: the matching calls, up to and including the one it crashed
    on (if it did)."""

    calls: list[Call] = field(default_factory=list)
    crashed_on: Call | None = None

    @property
    def fired(self) -> bool:
        return self.crashed_on is not None


@contextmanager
def count_ledger_writes(cloud: Cloud) -> Iterator[CallLog]:
    seen = CallLog()

    def after(call: Call, status: int) -> None:
        if status < 300 and writes_ledger(call):
            seen.calls.append(call)

    with ExitStack() as stack:
        for client in ledger_clients(cloud):
            stack.enter_context(intercept(client, after=after))
        yield seen


@contextmanager
def crash_after(
    clients: Any | list[Any],
    where: Callable[[Call], bool],
    error: Callable[[Call], BaseException],
    nth: int = 0,
) -> Iterator[CallLog]:
    """The `nth` (0-based) call matching `where` that succeeds takes effect, then the caller gets
    `error(call)` instead of the answer. Other calls pass untouched. `calls` lists the matching calls
    that succeeded, up to the crash."""
    seen = CallLog()

    def after(call: Call, status: int) -> None:
        if seen.fired or status >= 300 or not where(call):
            return
        seen.calls.append(call)
        if len(seen.calls) == nth + 1:
            seen.crashed_on = call
            raise error(call)

    with ExitStack() as stack:
        for client in clients if isinstance(clients, list) else [clients]:
            stack.enter_context(intercept(client, after=after))
        yield seen


@contextmanager
def crash_before(
    clients: Any | list[Any],
    where: Callable[[Call], bool],
    error: Callable[[Call], BaseException],
    nth: int = 0,
) -> Iterator[CallLog]:
    """The `nth` (0-based) call matching `where` is never sent: the caller gets `error(call)`. Other
    calls pass untouched."""
    seen = CallLog()

    def before(call: Call) -> None:
        if seen.fired or not where(call):
            return
        seen.calls.append(call)
        if len(seen.calls) == nth + 1:
            seen.crashed_on = call
            raise error(call)

    with ExitStack() as stack:
        for client in clients if isinstance(clients, list) else [clients]:
            stack.enter_context(intercept(client, before=before))
        yield seen


@contextmanager
def crash_after_ledger_write(
    cloud: Cloud, index: int, error: Callable[[Call], BaseException]
) -> Iterator[CallLog]:
    """The ledger write number `index` (0-based, counting only writes DynamoDB accepted) takes effect,
    then the handler gets `error(call)`. Later writes are not touched."""
    with crash_after(ledger_clients(cloud), writes_ledger, error, nth=index) as seen:
        yield seen


@dataclass
class Interruption:
    """What a `run_inside` block saw: the call that was interrupted, and the callback's result."""

    call: Call | None = None
    result: Any = None

    @property
    def fired(self) -> bool:
        return self.call is not None


@contextmanager
def run_inside(
    clients: Any | list[Any],
    where: Callable[[Call], bool],
    callback: Callable[[], Any],
    when: str = "before",
    only_success: bool = True,
) -> Iterator[Interruption]:
    """On the first call matching `where` (of any of `clients`), run `callback()` synchronously, then let
    the interrupted call go on. `when="before"`: before the call is sent; `"after"`: once it answered
    (with `only_success`, only a successful answer counts). The hook is disarmed before `callback` runs,
    so the callback's own calls pass untouched."""
    if when not in ("before", "after"):
        raise ValueError("when is 'before' or 'after'")
    interruption = Interruption()
    lock = threading.Lock()

    def claim(call: Call) -> bool:
        with lock:
            if interruption.fired or not where(call):
                return False
            interruption.call = call
            return True

    def before(call: Call) -> None:
        if when == "before" and claim(call):
            interruption.result = callback()

    def after(call: Call, status: int) -> None:
        if when == "after" and (status < 300 or not only_success) and claim(call):
            interruption.result = callback()

    with ExitStack() as stack:
        for client in clients if isinstance(clients, list) else [clients]:
            stack.enter_context(intercept(client, before=before, after=after))
        yield interruption


@contextmanager
def failing(
    clients: Any | list[Any],
    where: Callable[[Call], bool],
    error: Callable[[Call], BaseException],
) -> Iterator[list[Call]]:
    """Every call matching `where` fails with `error(call)` before it is sent, while the block runs.
    Yields the list of calls refused so far."""
    refused: list[Call] = []

    def before(call: Call) -> None:
        if where(call):
            refused.append(call)
            raise error(call)

    with ExitStack() as stack:
        for client in clients if isinstance(clients, list) else [clients]:
            stack.enter_context(intercept(client, before=before))
        yield refused


def operation(name: str, also: Callable[[Call], bool] | None = None) -> Callable[[Call], bool]:
    """A `where` predicate: calls of operation `name` (and matching `also`, if given)."""

    def matches(call: Call) -> bool:
        return call.operation == name and (also is None or also(call))

    return matches
