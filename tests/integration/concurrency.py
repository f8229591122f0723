"""Two deliveries at once, as two Lambda containers run them: each invocation on a controller of its own
(the same AWS clients), in threads of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from pushdeploy import runtime
from tests.integration.harness import Cloud, load_function

T = TypeVar("T")


def separate_containers(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every invocation on a controller of its own, as in two Lambda containers (same AWS clients)."""
    cloud.functions.setdefault("image_pushed", load_function("image_pushed"))  # loaded before the threads
    monkeypatch.setattr(runtime, "controller", lambda metrics=None: runtime.make_controller(metrics))


def in_two_threads(invoke: Callable[[], T]) -> list[T]:
    """`invoke` in two threads at once; their answers, after both ended (an error in either fails)."""
    answers: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            answers.append(invoke())
        except BaseException as error:  # reported by the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return answers


def both_read_before_either_writes() -> set[int]:
    """From now on, each thread's first ledger write waits until the other thread reaches its own: both
    have read everything they read before writing. The threads that waited (to check both got there)."""
    barrier = threading.Barrier(2, timeout=20)
    waited: set[int] = set()

    def first_write_waits(**_: Any) -> None:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()

    dynamodb = runtime.client("dynamodb")
    for write in ("TransactWriteItems", "PutItem", "UpdateItem"):
        dynamodb.meta.events.register(f"before-call.dynamodb.{write}", first_write_waits)
    return waited
