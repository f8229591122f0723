"""The in-process cloud of the integration tests: `pushdeploy.local.inprocess`, which the benchmarks use
too (they may not import the tests)."""

from pushdeploy.local.inprocess import (
    ACCESS_ROLE,
    ACCOUNT,
    CONNECTION,
    INTERNAL_BUS,
    REGION,
    REGISTRY,
    ROOT,
    TABLES,
    WEBHOOK_SECRETS,
    Cloud,
    FakeContext,
    Patcher,
    build_cloud,
    create_tables,
    create_webhook_secrets,
    function_url_event,
    load_function,
    silence_notifications,
)

__all__ = [
    "ACCESS_ROLE",
    "ACCOUNT",
    "CONNECTION",
    "INTERNAL_BUS",
    "REGION",
    "REGISTRY",
    "ROOT",
    "TABLES",
    "WEBHOOK_SECRETS",
    "Cloud",
    "FakeContext",
    "Patcher",
    "build_cloud",
    "create_tables",
    "create_webhook_secrets",
    "function_url_event",
    "load_function",
    "silence_notifications",
]
