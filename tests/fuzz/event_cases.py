"""Generated EventBridge events, one function per family of mutation, all drawn from a seeded generator.
Events start from the repository's samples (events/*.json) and from a forwarded webhook change; each goes
to the function its source and detail-type reach (image_pushed, commit_pushed, operation_changed,
reconciler).

What an event may lead to is decided by `event_reference.expect_event` on the final event, never by the
family that made it; the `valid`, `inert` and `operations` families' events are well-formed, so they must
never be dead-lettered.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pushdeploy.domain.changes import Change
from pushdeploy.sources.forwarded import ForwardedChange
from tests.conftest import EVENTS
from tests.fuzz import mutate, values
from tests.fuzz.event_reference import EventExpectation, expect_event
from tests.fuzz.world import (
    BITBUCKET_REPOSITORY,
    CODECOMMIT_BRANCH,
    CODECOMMIT_REPOSITORY,
    GITHUB_BRANCH,
    GITHUB_REPOSITORY,
    IMAGE_REPOSITORY,
    REGEX_REPOSITORY,
    REPLICA_REGION,
    Services,
    shorten,
)
from tests.integration.harness import ACCOUNT, REGION

SEEDS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_bytes())
    for path in sorted(EVENTS.glob("*.json"))
    if path.stem != "webhook-github-push"
}
FUNCTION_OF_SOURCE = {
    "aws.ecr": "image_pushed",
    "aws.inspector2": "image_pushed",  # scans: the scan gate
    "aws.codecommit": "commit_pushed",
    "aws.apprunner": "operation_changed",
    "aws.events": "reconciler",
    "pushdeploy.webhook": "commit_pushed",
}
MAX_EVENT_BYTES = 256 * 1024  # EventBridge's largest event
UNWATCHED = "someone/unwatched"  # a GitHub repository no rule watches
OPERATION_STATUSES = (
    "DeploymentStarted",
    "DeploymentCompletedSuccessfully",
    "DeploymentFailed",
    "UpdateServiceStarted",
    "UpdateServiceCompletedSuccessfully",
    "UpdateServiceFailed",
    "PauseServiceCompletedSuccessfully",
    "SomethingElse",
)


@dataclass
class EventCase:
    index: int
    family: str
    function: str
    event: Any
    expectation: EventExpectation
    must_accept: bool = False  # well-formed: never dead-lettered
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        notes = f" [{'; '.join(self.notes)}]" if self.notes else ""
        return f"event #{self.index} {self.family}{notes} -> {self.function}: {shorten(self.event, 400)}"


Built = tuple[str, Any, list[str]]  # function, event, notes
Family = Callable[["EventGenerator", datetime], Built]


class EventGenerator:
    """EventBridge events, case by case, from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"eventbridge:{seed}")
        self.services: Services | None = None  # the current cloud's
        self.semver_minor = 0
        self.release_number = 0
        self.codecommit_head: str | None = None
        self.history: list[tuple[str, Any]] = []  # earlier cases, redelivered by the redelivery family
        self.families: list[tuple[Family, float]] = [
            (EventGenerator.valid, 14),
            (EventGenerator.inert, 10),
            (EventGenerator.operations, 4),
            (EventGenerator.envelope, 13),
            (EventGenerator.detail, 13),
            (EventGenerator.formats, 6),
            (EventGenerator.sources, 4),
            (EventGenerator.non_objects, 3),
            (EventGenerator.huge, 3),
            (EventGenerator.times, 3),
            (EventGenerator.digests, 3),
            (EventGenerator.forged_forwarded, 8),
            (EventGenerator.random_mutations, 15),
            (EventGenerator.redelivery, 4),
        ]

    # --- the loop ----------------------------------------------------------------------------------

    def case(self, index: int, now: datetime, services: Services) -> EventCase:
        self.services = services
        families, weights = zip(*self.families, strict=True)
        while True:
            family = self.rng.choices(families, weights)[0]
            function, event, notes = family(self, now)
            if _utf8_size(event) <= MAX_EVENT_BYTES:
                break  # EventBridge delivers no bigger event: draw again
        expectation = expect_event(function, event)
        name = family.__name__
        if name == "forged_forwarded" and notes[0].startswith("forged"):
            expectation = replace(expectation, refused=True)  # a forgery pushdeploy must refuse
        must_accept = name in ("valid", "inert", "operations")
        self.history = [*self.history[-199:], (function, copy.deepcopy(event))]
        return EventCase(index, name, function, event, expectation, must_accept, notes)

    # --- building blocks ---------------------------------------------------------------------------

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def seed(self, name: str, now: datetime) -> dict[str, Any]:
        """A sample event as EventBridge would deliver it now: a new id, this moment's time."""
        event = copy.deepcopy(SEEDS[name])
        event["id"] = self.event_id()
        event["time"] = values.iso(now)
        return event

    def image_push(self, now: datetime, tag: str, repository: str = IMAGE_REPOSITORY) -> dict[str, Any]:
        event = self.seed("ecr-image-push", now)
        event["detail"].update(
            {"image-tag": tag, "image-digest": values.digest(self.rng), "repository-name": repository}
        )
        return event

    def replication(self, now: datetime, tag: str = "stable") -> dict[str, Any]:
        event = self.seed("ecr-replication-success", now)
        event["detail"].update({"image-tag": tag, "image-digest": values.digest(self.rng)})
        return event

    def branch_update(self, now: datetime, branch: str = CODECOMMIT_BRANCH) -> dict[str, Any]:
        event = self.seed("codecommit-branch-updated", now)
        commit = values.hex_id(self.rng)
        event["detail"].update(
            {
                "commitId": commit,
                "oldCommitId": self.codecommit_head or values.hex_id(self.rng),
                "referenceName": branch,
                "referenceFullName": f"refs/heads/{branch}",
            }
        )
        return event

    def forwarded(self, now: datetime, change: dict[str, Any], provider: str) -> dict[str, Any]:
        """A `Change Pushed` event as the internal bus delivers it, carrying `change` as given."""
        return {
            "version": "0",
            "id": self.event_id(),
            "detail-type": "Change Pushed",
            "source": "pushdeploy.webhook",
            "account": ACCOUNT,
            "time": values.iso(now),
            "region": REGION,
            "resources": [],
            "detail": {
                "change": change,
                "delivery_id": self.event_id(),
                "provider": provider,
                "position": 0,
                "pushed_at": now.isoformat(),
                "previous_commit": None,
            },
        }

    def github_change(self, repository: str = GITHUB_REPOSITORY) -> dict[str, Any]:
        change = Change(
            kind="commit",
            source="github",
            repository=repository,
            branch=GITHUB_BRANCH,
            commit=values.hex_id(self.rng),
        )
        detail = ForwardedChange.of(change, "d", "github", 0).model_dump(mode="json")
        return dict(detail["change"])

    def deployable(self, now: datetime) -> dict[str, Any]:
        """A well-formed event that a rule selects: it deploys."""
        rng = self.rng
        kind = rng.choice(("latest", "semver", "release", "worker", "replica", "codecommit"))
        if kind == "latest":
            return self.image_push(now, "latest")
        if kind == "semver":
            self.semver_minor += 1
            return self.image_push(now, rng.choice(("v", "")) + f"1.{self.semver_minor}.0")
        if kind == "release":
            self.release_number += 1
            return self.image_push(now, f"release-{self.release_number}")
        if kind == "worker":
            return self.image_push(
                now,
                "v" + ".".join(str(rng.randint(0, 99)) for _ in range(rng.randint(1, 6))),
                REGEX_REPOSITORY,
            )
        if kind == "replica":
            return self.replication(now)
        event = self.branch_update(now)
        self.codecommit_head = event["detail"]["commitId"]
        return event

    def inert_event(self, now: datetime) -> dict[str, Any]:
        """A well-formed event that deploys nothing."""
        rng = self.rng
        choices: list[Callable[[], dict[str, Any]]] = [
            lambda: self.seed(
                rng.choice(
                    ("ecr-image-delete", "ecr-image-scan", "inspector2-scan", "codecommit-tag-created")
                ),
                now,
            ),
            lambda: self.seed("apprunner-service-status-change", now),
            lambda: self.image_push(now, values.ascii_text(rng, 1, 20)),  # a tag no rule selects
            lambda: self.image_push(
                now, "latest", values.ascii_text(rng, 2, 20).lower().strip("-_./") or "zz"
            ),
            lambda: self.image_push(now, "release-" + "9" * rng.choice((121, 200, 5_000))),  # over 128
            lambda: self.image_push(now, "v" + "1" * rng.choice((40, 127, 5_000)) + "!", REGEX_REPOSITORY),
            lambda: self.branch_update(
                now, rng.choice(("develop", "feature/x", "a" * 300, values.unicode_text(rng)))
            ),
            lambda: _with(self.image_push(now, "latest"), ("detail", "result"), "FAILURE"),
            lambda: _with(self.image_push(now, "latest"), ("detail", "action-type"), "DELETE"),
            lambda: _without(self.image_push(now, "latest"), ("detail", "image-tag")),
            lambda: _without(self.image_push(now, "latest"), ("detail", "image-digest")),
            lambda: _with(self.image_push(now, "latest"), ("account",), "444455556666"),
            lambda: _with(self.image_push(now, "latest"), ("region",), "ap-southeast-2"),
            lambda: _with(self.branch_update(now), ("detail", "referenceType"), "tag"),
            lambda: _with(self.branch_update(now), ("detail", "event"), "referenceDeleted"),
            lambda: _with(self.branch_update(now), ("detail", "event"), "commentOnCommitCreated"),
            lambda: _with(self.image_push(now, "latest"), ("detail-type",), "ECR Image Copy"),
            lambda: self.forwarded(now, self.github_change(UNWATCHED), "github"),
        ]
        return rng.choice(choices)()

    # --- families ----------------------------------------------------------------------------------

    def valid(self, now: datetime) -> Built:
        """A fresh push a rule selects, with harmless variations: it may deploy and is never refused."""
        rng = self.rng
        event = self.deployable(now)
        notes: list[str] = []
        if rng.random() < 0.2:
            event["x-" + values.ascii_text(rng, 2, 8)] = values.json_value(rng)
            notes.append("an unknown key")
        if rng.random() < 0.2:
            event["detail"]["x-" + values.ascii_text(rng, 2, 8)] = values.unicode_text(rng)
            notes.append("an unknown detail key")
        if rng.random() < 0.1:
            event["version"] = values.scalar(rng)
            notes.append("another version")
        if rng.random() < 0.1:
            event = dict(reversed(list(event.items())))
            notes.append("keys in another order")
        return _function(event), event, notes

    def inert(self, now: datetime) -> Built:
        """A well-formed event that deploys nothing: another action, result, tag, branch or repository."""
        event = self.inert_event(now)
        return _function(event), event, []

    def operations(self, now: datetime) -> Built:
        """An App Runner operation status event for one of the watched services or an unknown one."""
        rng = self.rng
        event = self.seed(
            rng.choice(
                (
                    "apprunner-operation-succeeded",
                    "apprunner-operation-failed",
                    "apprunner-operation-pascalcase",
                )
            ),
            now,
        )
        if rng.random() < 0.8 and self.services is not None:
            event["resources"] = [rng.choice(self.services.all())]
        key = next(k for k in ("operationStatus", "Status") if k in event["detail"])
        event["detail"][key] = rng.choice(OPERATION_STATUSES)
        return "operation_changed", event, []

    def envelope(self, now: datetime) -> Built:
        """One envelope key dropped, mistyped, null, empty, unicode, huge or a list."""
        rng = self.rng
        event = self.any_seed(now)
        key = rng.choice(
            ("id", "source", "detail-type", "account", "region", "resources", "detail", "time", "version")
        )
        mutation = rng.choice(mutate.MUTATIONS)
        function = _function(event)
        return function, mutation(rng, event, (key,)), [f"{mutation.__name__} {key}"]

    def detail(self, now: datetime) -> Built:
        """One detail key the parser reads dropped, mistyped, null, empty, unicode, huge or a list."""
        rng = self.rng
        event = self.any_seed(now)
        keys = [key for key in event.get("detail", {})] or ["x"]
        key = rng.choice(keys)
        mutation = rng.choice(mutate.MUTATIONS)
        function = _function(event)
        return function, mutation(rng, event, ("detail", key)), [f"{mutation.__name__} detail.{key}"]

    def formats(self, now: datetime) -> Built:
        """An account or Region in a wrong format."""
        rng = self.rng
        event = self.any_seed(now)
        if rng.random() < 0.5:
            value: Any = rng.choice(
                (
                    "12345",
                    "1111222233334",
                    "11112222333a",
                    " 111122223333",
                    "111122223333\n",
                    "\u0661" * 4 + "\u0662" * 4 + "\u0663" * 4,  # Arabic-Indic digits
                    "-11112222333",
                    int(ACCOUNT),
                    "",
                )
            )
            key = "account"
        else:
            value = rng.choice(
                (
                    "US-EAST-1",
                    "us_east_1",
                    "useast1",
                    "us-east-",
                    "us-east-123",
                    "",
                    "us-east-1\n",
                    "ab-c-\u0661",
                    "us-east-1 ",
                    1,
                )
            )
            key = "region"
        event[key] = value
        return _function(event), event, [f"{key} {value!r}"]

    def sources(self, now: datetime) -> Built:
        """A source pushdeploy does not know, or a known one sent to another function."""
        rng = self.rng
        event = self.any_seed(now)
        function = _function(event)
        if rng.random() < 0.3:
            event["source"] = rng.choice(("aws.ecr", "aws.codecommit", "aws.apprunner", "pushdeploy.webhook"))
            function = rng.choice(("image_pushed", "commit_pushed", "operation_changed"))
        else:
            event["source"] = rng.choice(
                (
                    "aws.ecr2",
                    "AWS.ECR",
                    "aws.s3",
                    "",
                    " aws.ecr",
                    "aws.ecr ",
                    "pushdeploy",
                    "aws.events",
                    None,
                    7,
                    ["aws.ecr"],
                    {"aws": "ecr"},
                )
            )
        return function, event, [f"source {event['source']!r}"]

    def non_objects(self, now: datetime) -> Built:
        """An event that is not a JSON object."""
        rng = self.rng
        seed = self.any_seed(now)
        event = rng.choice(([], [seed], "", json.dumps(seed), 0, 1.5, None, True, False, values.text(rng)))
        function = rng.choice(("image_pushed", "commit_pushed", "operation_changed", "reconciler"))
        return function, event, []

    def huge(self, now: datetime) -> Built:
        """A string of up to 200,000 characters in an envelope or detail field."""
        rng = self.rng
        event = self.any_seed(now)
        candidates = [path for path in mutate.paths(event) if isinstance(mutate.get(event, path), str)]
        path = rng.choice(candidates)
        event = mutate.replaced(event, path, values.huge_text(rng, high=60_000))
        return _function(event), event, [f"huge {'.'.join(map(str, path))}"]

    def times(self, now: datetime) -> Built:
        """A deployable push whose time is unreadable, at the edges of datetime, stale or ahead."""
        rng = self.rng
        event = self.deployable(now)
        moment = (
            values.garbage_time(rng) if rng.random() < 0.7 else values.iso(values.shifted(now, rng, "stale"))
        )
        event["time"] = moment
        return _function(event), event, [f"time {shorten(repr(moment), 40)}"]

    def digests(self, now: datetime) -> Built:
        """A push a rule selects whose digest ECR would never send: short, upper case, other algorithm,
        not hex, or long."""
        rng = self.rng
        event = self.deployable(now)
        if event["source"] != "aws.ecr":
            event = self.image_push(now, "latest")
        event["detail"]["image-digest"] = values.odd_digest(rng)
        return _function(event), event, [f"digest {shorten(event['detail']['image-digest'], 40)}"]

    def forged_forwarded(self, now: datetime) -> Built:
        """A `Change Pushed` event nobody but the webhook may put: an image, a CodeCommit commit, a
        provider that is not the change's, or a detail of the wrong shape."""
        rng = self.rng
        digest = values.digest(rng)
        commit = values.hex_id(rng)
        forgeries: dict[str, Callable[[], dict[str, Any]]] = {
            "forged image change": lambda: self.forwarded(
                now,
                {
                    "kind": "image",
                    "source": "ecr",
                    "account": ACCOUNT,
                    "region": rng.choice((REGION, REPLICA_REGION)),
                    "repository": IMAGE_REPOSITORY,
                    "tag": rng.choice(("latest", "v1.999.0", "release-x", "stable")),
                    "digest": digest,
                    "branch": None,
                    "commit": None,
                },
                rng.choice(("github", "bitbucket", "ecr")),
            ),
            "forged codecommit change": lambda: self.forwarded(
                now,
                {
                    "kind": "commit",
                    "source": "codecommit",
                    "account": ACCOUNT,
                    "region": REGION,
                    "repository": CODECOMMIT_REPOSITORY,
                    "tag": None,
                    "digest": None,
                    "branch": CODECOMMIT_BRANCH,
                    "commit": commit,
                },
                rng.choice(("github", "bitbucket", "codecommit")),
            ),
            "forged provider mismatch": lambda: self.forged_mismatch(now, commit),
            "odd detail of an unwatched change": lambda: self.odd_detail(now),
        }
        name = rng.choice(sorted(forgeries))
        return "commit_pushed", forgeries[name](), [name]

    def forged_mismatch(self, now: datetime, commit: str) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.5:
            change = self.github_change()
            provider = rng.choice(("bitbucket", "gitlab", "", "GitHub", "github "))
        else:
            change = self.github_change()
            change.update(source="bitbucket", repository=BITBUCKET_REPOSITORY, branch="main", commit=commit)
            provider = rng.choice(("github", "codecommit", "Bitbucket"))
        return self.forwarded(now, change, provider)

    def odd_detail(self, now: datetime) -> dict[str, Any]:
        """A forwarded change of a repository no rule watches, its detail of a wrong shape (or not)."""
        rng = self.rng
        event = self.forwarded(now, self.github_change(UNWATCHED), "github")
        detail = event["detail"]
        edits: list[Callable[[], None]] = [
            lambda: detail.pop("change"),
            lambda: detail["change"].update({"extra": 1}),
            lambda: detail["change"].update({"kind": "Commit"}),
            lambda: detail["change"].update({"branch": None}),
            lambda: detail["change"].update({"commit": ""}),
            lambda: detail["change"].update({"account": ACCOUNT, "region": REGION}),
            lambda: detail.update({"delivery_id": 7}),
            lambda: detail.update({"position": rng.choice(("0", -1, 2**70, 1.5, None))}),
            lambda: detail.update({"provider": None}),
            lambda: detail.update({"previous_commit": 7}),
            lambda: detail.update({"pushed_at": values.garbage_time(rng)}),
            lambda: event.update({"detail": rng.choice(([], "x", None, [detail]))}),
        ]
        rng.choice(edits)()
        return event

    def random_mutations(self, now: datetime) -> Built:
        """An event that deploys nothing, mutated anywhere one to three times."""
        rng = self.rng
        event = self.inert_event(now) if rng.random() < 0.8 else self.forged_forwarded(now)[1]
        function = _function(event)
        mutated, done = mutate.mutate_randomly(rng, event, rng.randint(1, 3))
        return function, mutated, done

    def redelivery(self, now: datetime) -> Built:
        """An earlier event delivered again, unchanged (EventBridge delivers at least once)."""
        if not self.history:
            return self.valid(now)
        function, event = self.rng.choice(self.history)
        return function, copy.deepcopy(event), ["delivered again"]

    def any_seed(self, now: datetime) -> dict[str, Any]:
        """A deployable event, an inert one, a sample, or a forwarded change."""
        roll = self.rng.random()
        if roll < 0.4:
            return self.deployable(now)
        if roll < 0.6:
            return self.inert_event(now)
        if roll < 0.9:
            return self.seed(self.rng.choice(sorted(SEEDS)), now)
        return self.forwarded(now, self.github_change(UNWATCHED), "github")


def _utf8_size(event: Any) -> int:
    return len(json.dumps(event, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))


def _function(event: Any) -> str:
    source = event.get("source") if isinstance(event, dict) else None
    return FUNCTION_OF_SOURCE.get(source, "image_pushed") if isinstance(source, str) else "image_pushed"


def _with(event: dict[str, Any], path: mutate.Path, value: Any) -> dict[str, Any]:
    return dict(mutate.replaced(event, path, value))


def _without(event: dict[str, Any], path: mutate.Path) -> dict[str, Any]:
    return dict(mutate.dropped(event, path))
