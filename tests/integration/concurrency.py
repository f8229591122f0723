"""Two deliveries at once, as two Lambda containers run them: each invocation on a controller of its own
(the same AWS clients), in threads of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

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
