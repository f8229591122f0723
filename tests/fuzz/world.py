"""The fuzz suite's cloud: the integration harness's in-process cloud (moto, the App Runner simulator, the
real handler functions), reused by every case of an episode (2,000 cases), deterministic and quiet.

- One fake clock for the controller, the webhook and App Runner (BASE plus what the run advanced), and
  the simulator's ids from a seeded generator: the same seed replays the same run.
- The webhook's real freshness window (WEBHOOK_MAX_AGE_HOURS=72, the default; the harness widens it for
  its old fixtures), so stale bodies really are stale.
- Eight watched services, one per kind of rule: image rules by exact tag, semver range, glob, regex and
  replica Region; code rules for GitHub, Bitbucket and CodeCommit.
- Quiet and fast: logging off, metrics printed nowhere, rules cached for the run (they never change),
  pushdeploy's own notifications routed nowhere, retry back-off without sleeping, and moto's DynamoDB
  transactions backed up item by item (tests/simulation/fast_moto.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import pytest
from moto import mock_aws

from pushdeploy import container, runtime
from pushdeploy.domain.deployments import Deployment
from pushdeploy.local import apprunner_sim, apprunner_sim_events
from tests.integration.harness import REGION, TABLES, Cloud, build_cloud, load_function, silence_notifications
from tests.simulation import fast_moto

BASE = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
MAX_AGE = timedelta(hours=72)  # the webhook's default freshness window
REPLICA_REGION = "eu-west-1"
GITHUB_REPOSITORY = "Codertocat/Hello-World"  # tests/fixtures/payloads/github-push.body.json
GITHUB_BRANCH = "master"
BITBUCKET_REPOSITORY = "team_name/repo_name"  # tests/fixtures/payloads/bitbucket-push.body.json
CODECOMMIT_REPOSITORY = "api"  # events/codecommit-branch-updated.json
CODECOMMIT_BRANCH = "main"
CODECOMMIT_URL = f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/{CODECOMMIT_REPOSITORY}"
IMAGE_REPOSITORY = "web"  # events/ecr-*.json
REGEX_REPOSITORY = "worker"
# The catastrophic pattern: linear on RE2, so a long tag cannot hang the function.
WORKER_TAG_REGEX = r"^v(\d+\.?)+$"
FUNCTIONS = ("webhook", "image_pushed", "commit_pushed", "operation_changed", "reconciler")

_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass(frozen=True)
class Services:
    """The watched services' ARNs, by the kind of rule that deploys them."""

    latest: str  # image web:latest, StartDeployment
    semver: str  # image web >=1.0.0,<2.0.0, UpdateService
    release: str  # image web release-*, UpdateService
    worker: str  # image worker ^v(\d+\.?)+$, UpdateService
    replica: str  # image web:stable replicated to eu-west-1, StartDeployment
    github: str  # GitHub Codertocat/Hello-World master
    bitbucket: str  # Bitbucket team_name/repo_name, any branch
    codecommit: str  # CodeCommit api main

    def all(self) -> tuple[str, ...]:
        return (
            self.latest,
            self.semver,
            self.release,
            self.worker,
            self.replica,
            self.github,
            self.bitbucket,
            self.codecommit,
        )


class _SeededUuid:
    """Stands in for the `uuid` module inside the App Runner simulator: seeded ids, same format."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


class _Discard(io.TextIOBase):
    """Where Powertools' metrics (one JSON line per invocation) go: nowhere."""

    def write(self, text: str) -> int:
        return len(text)


class FuzzWorld:
    """The cloud of one episode of a fuzz run. Use as a context manager: everything is undone on exit."""

    def __init__(self, seed: int, start_seconds: float = 0.0) -> None:
        self.seed = seed
        self.start_seconds = start_seconds
        self._stack = contextlib.ExitStack()
        self._patch = pytest.MonkeyPatch()
        self.cloud: Cloud
        self.services: Services

    def __enter__(self) -> FuzzWorld:
        stack, patch = self._stack, self._patch
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        previous_disable = logging.root.manager.disable
        logging.disable(logging.CRITICAL)
        stack.callback(logging.disable, previous_disable)
        stack.enter_context(contextlib.redirect_stdout(_Discard()))
        stack.callback(runtime.reset)
        stack.callback(patch.undo)  # undone before runtime.reset: the real client factory again
        for variable, value in _ENVIRONMENT.items():
            patch.setenv(variable, value)
        stack.enter_context(mock_aws())
        seeded = _SeededUuid(self.seed)
        patch.setattr(apprunner_sim, "uuid", seeded)
        patch.setattr(apprunner_sim_events, "uuid", seeded)
        patch.setattr(random, "uniform", lambda low, high: low)  # retry jitter, deterministic
        patch.setattr(time, "sleep", lambda seconds: None)  # retry back-off, without waiting
        fast_moto.install(patch)
        self.cloud = build_cloud(patch)
        self._freeze_clocks()
        silence_notifications()
        self.services = self._create_services()
        # The clock goes on where the last episode's cloud left it.
        self.cloud.advance(max(0.0, self.start_seconds - self.cloud.clock_offset[0]))
        # The real freshness window; rules never change during a run, so they are read once.
        patch.setenv("WEBHOOK_MAX_AGE_HOURS", str(int(MAX_AGE.total_seconds() // 3600)))
        patch.setenv("RULES_CACHE_SECONDS", "86400")
        runtime.reset()  # containers start afresh with this environment
        for name in FUNCTIONS:
            self.cloud.functions[name] = load_function(name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()

    # --- setup -------------------------------------------------------------------------------------

    def _freeze_clocks(self) -> None:
        sim = self.cloud.sim
        frozen = sim._clock0
        sim._clock = lambda: frozen
        sim._epoch0 = BASE.timestamp()
        self._patch.setattr(container, "utc_now", self.now)  # every handler's clock
        self._patch.setattr(self.cloud, "now", self.now)

    def _create_services(self) -> Services:
        cloud = self.cloud
        services = Services(
            latest=cloud.create_image_service("web-latest", tag="latest"),
            semver=cloud.create_image_service("web-semver", tag="v1.0.0"),
            release=cloud.create_image_service("web-release", tag="release-0"),
            worker=cloud.create_image_service("worker-svc", tag="v1", repository=REGEX_REPOSITORY),
            replica=cloud.create_image_service("web-replica", tag="stable"),
            github=cloud.create_code_service(
                "hello-world", f"https://github.com/{GITHUB_REPOSITORY}", GITHUB_BRANCH
            ),
            bitbucket=cloud.create_code_service("team-repo", f"https://bitbucket.org/{BITBUCKET_REPOSITORY}"),
            codecommit=cloud.create_code_service("api-main", CODECOMMIT_URL, CODECOMMIT_BRANCH),
        )
        web = IMAGE_REPOSITORY
        cloud.apply_rules(
            [
                {
                    "id": "web-latest",
                    "service": services.latest,
                    "image": {"repository": web, "tag": "latest"},
                },
                {
                    "id": "web-semver",
                    "service": services.semver,
                    "image": {"repository": web, "semver": ">=1.0.0,<2.0.0"},
                },
                {
                    "id": "web-release",
                    "service": services.release,
                    "image": {"repository": web, "tag_glob": "release-*"},
                },
                {
                    "id": "worker-regex",
                    "service": services.worker,
                    "image": {"repository": REGEX_REPOSITORY, "tag_regex": WORKER_TAG_REGEX},
                },
                {
                    "id": "web-replica",
                    "service": services.replica,
                    "image": {"repository": web, "region": REPLICA_REGION, "tag": "stable"},
                },
                {
                    "id": "hello-world",
                    "service": services.github,
                    "code": {"provider": "github", "repository": GITHUB_REPOSITORY, "branch": GITHUB_BRANCH},
                },
                {
                    "id": "team-repo",
                    "service": services.bitbucket,
                    "code": {"provider": "bitbucket", "repository": BITBUCKET_REPOSITORY, "branch_glob": "*"},
                },
                {
                    "id": "api-main",
                    "service": services.codecommit,
                    "code": {
                        "provider": "codecommit",
                        "repository": CODECOMMIT_REPOSITORY,
                        "branch": CODECOMMIT_BRANCH,
                    },
                },
            ]
        )
        cloud.sim.calls.clear()
        cloud.apprunner_events.clear()
        return services

    # --- time --------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return BASE + timedelta(seconds=self.cloud.clock_offset[0])

    def tick(self) -> None:
        """A second passes (for App Runner too): every case happens at its own moment."""
        self.cloud.advance(1)

    # --- invoking ----------------------------------------------------------------------------------

    def invoke(self, function: str, event: Any) -> dict[str, Any]:
        return self.cloud.invoke(function, event)

    def forwarded(self) -> list[dict[str, Any]]:
        """What the webhook put on the internal bus since the last call (whole EventBridge events)."""
        return self._drain(self.cloud.forwarded_url)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every message in the functions' dead-letter queue since the last call."""
        return self._drain(self.cloud.dead_letter_url)

    def _drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message of a queue, deleted as read: a receive returns at most 10, so until none."""
        sqs, found = self.cloud.sqs, list[dict[str, Any]]()
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            found.extend(json.loads(message["Body"]) for message in messages)
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )

    def deploy_calls(self, since: int) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """App Runner's StartDeployment and UpdateService calls after the first `since` calls."""
        calls = self.cloud.sim.calls
        made = [
            (name, params) for name, params in calls[since:] if name in ("StartDeployment", "UpdateService")
        ]
        return len(calls), made

    def active_deployment(self, service: str) -> Deployment | None:
        """The deployment holding the service's slot (the one App Runner was just asked to run)."""
        slot = self.cloud.ledger.slot(service)
        if slot.active is None:
            return None
        return self.cloud.ledger.deployment(slot.active.id)

    def all_deployments(self) -> list[Deployment]:
        """Every deployment the ledger holds (a scan: for the checks at the end of a batch)."""
        found: list[Deployment] = []
        for service in self.services.all():
            found.extend(self.cloud.ledger.for_service(service, limit=None))
        return found

    def finish_operations(self) -> None:
        """App Runner finishes what runs and its status events go to the operation function."""
        self.cloud.finish_operations()

    def ledger_size(self) -> int:
        scanned = self.cloud.dynamodb.scan(TableName=TABLES["LedgerTable"], Select="COUNT")
        return int(scanned["Count"])


def shorten(value: Any, limit: int = 300) -> str:
    """A failing input as one readable line: long strings cut in the middle, with their length."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr, ensure_ascii=True)
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    half = (limit - 30) // 2
    return f"{text[:half]} ...<{len(text)} chars>... {text[-half:]}"
