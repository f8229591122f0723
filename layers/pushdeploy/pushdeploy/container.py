"""What a Lambda container keeps for its life, whatever the function: its environment, its boto3 clients
and its clock. Light on purpose: the webhook imports it without the controller (its cold start)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.client import BaseClient

# What modules keep per container (the webhook's secrets cache, ...), forgotten by `reset()`.
_reset_hooks: list[Callable[[], None]] = []


def utc_now() -> datetime:
    return datetime.now(UTC)


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


@functools.cache
def client(service: str, region: str | None = None) -> BaseClient:
    """One boto3 client per service and Region for the life of the container."""
    return new_client(service, region, {})


def new_client(service: str, region: str | None, credentials: Mapping[str, str]) -> BaseClient:
    import boto3  # imported here: boto3's import is a good part of a cold start
    from botocore.config import Config

    # App Runner calls are retried by the deploy target itself (bounded backoff, then the reconciler), so
    # botocore must not multiply them; other services keep botocore's standard retries.
    attempts = 1 if service == "apprunner" else 3
    retries: Any = {"mode": "standard", "total_max_attempts": attempts}
    config = Config(connect_timeout=3, read_timeout=10, retries=retries)
    return boto3.client(service, region_name=region, config=config, **credentials)  # type: ignore[call-overload,no-any-return]


def on_reset(hook: Callable[[], None]) -> None:
    """Call `hook` whenever `reset()` runs: for module state built from the clients made here."""
    _reset_hooks.append(hook)


def reset() -> None:
    """Forget the container's clients and what was built from them (tests change the environment)."""
    for hook in _reset_hooks:
        hook()
    clear = getattr(client, "cache_clear", None)  # tests may have put a plain function in its place
    if clear is not None:
        clear()
