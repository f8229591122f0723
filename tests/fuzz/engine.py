"""The fuzz engine: generated cases through the real handlers of an in-process cloud (a fresh one every
`EPISODE_CASES` cases, its clock carried on), and the oracles checked after every case.

Unhandled (U), per case:
- a handler raised (the webhook, a push function, operation_changed, the reconciler);
- the webhook answered 5xx to a request while no AWS fault was injected (it catches everything: a 500 is
  an exception it did not expect);
- the dead-letter queue disagrees with the parser: an event the function's parser refuses is not there
  exactly once (every delivery of it, a redelivery too: nothing remembers an event), or an event it reads
  is there (a readable redelivery is answered from its change's record);
- a valid case was refused: a signed fresh push of a watched repository not answered 202 with every
  change forwarded, or a well-formed EventBridge event refused;
- a case took longer than `SLOW_SECONDS`.

Deployed from invalid input (D):
- a deployment was created, or App Runner was called for one, whose change no valid case carried (valid:
  what the reference models in webhook_reference and event_reference allow to deploy);
- the webhook forwarded a change it must not (unsigned, stale, unwatched or malformed), or answered 2xx to
  a request without a valid signature;
- at the end, the ledger holds a deployment whose change no valid case carried.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from botocore.exceptions import ClientError

from pushdeploy import webhook
from pushdeploy.adapters.ledger import Ledger
from pushdeploy.domain.change_ids import signed_change_id
from pushdeploy.domain.deployments import Deployment, Status
from pushdeploy.errors import EventError
from pushdeploy.sources.eventbridge import parse_eventbridge_event
from pushdeploy.sources.forwarded import is_forwarded, parse_forwarded
from tests.fuzz.event_cases import EventCase, EventGenerator
from tests.fuzz.webhook_cases import WebhookCase, WebhookGenerator
from tests.fuzz.world import FuzzWorld, shorten

SLOW_SECONDS = 10.0
FINISH_EVERY = 20  # cases between two rounds of "App Runner finishes what runs" (and of draining)
FAIL_SHARE = 0.2  # the odds, every `FINISH_EVERY` cases, that a service's next deployment fails
EPISODE_CASES = 2_000  # cases per cloud: its tables stay small, so moto stays fast
EVENTBRIDGE_ENTRY_LIMIT = 262_144  # PutEvents: the entries of one request add up to at most 256 KB

Counter = Literal["unhandled", "deployed"]


@dataclass
class Failure:
    counter: Counter
    kind: str
    detail: str
    case: str  # the failing input, shortened
    size: int  # the input's length in JSON: the shortest of a kind is shown

    @property
    def signature(self) -> tuple[str, str, str]:
        return self.counter, self.kind, self.detail


@dataclass
class PhaseStats:
    cases: int = 0
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process's CPU time: the rate on a machine shared with other work
    valid: int = 0
    valid_deployed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # cases by family, or by function

    def count(self, kind: str) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.cases / self.cpu_seconds if self.cpu_seconds else 0.0


@dataclass
class Report:
    seed: int
    webhook: PhaseStats = field(default_factory=PhaseStats)
    eventbridge: PhaseStats = field(default_factory=PhaseStats)
    failures: list[Failure] = field(default_factory=list)
    disagreements: dict[str, tuple[int, str]] = field(default_factory=dict)  # reason -> (count, shortest)
    deploy_calls: int = 0
    dead_letters: int = 0
    forwarded: int = 0

    @property
    def cases(self) -> int:
        return self.webhook.cases + self.eventbridge.cases

    @property
    def unhandled(self) -> int:
        return sum(1 for failure in self.failures if failure.counter == "unhandled")

    @property
    def deployed_from_invalid(self) -> int:
        return sum(1 for failure in self.failures if failure.counter == "deployed")

    def grouped(self) -> list[tuple[Failure, int]]:
        """One failure per (counter, kind, detail): the shortest input, and how many cases failed so."""
        groups: dict[tuple[str, str, str], list[Failure]] = {}
        for failure in self.failures:
            groups.setdefault(failure.signature, []).append(failure)
        found = [(min(group, key=lambda f: f.size), len(group)) for group in groups.values()]
        return sorted(found, key=lambda item: (item[0].counter != "deployed", -item[1]))

    def lines(self, shown: int = 12) -> list[str]:
        lines = [
            f"fuzz: seed={self.seed} (FUZZ_SEED={self.seed} reproduces this run)",
            _phase_line("webhook", self.webhook),
            _phase_line("eventbridge", self.eventbridge),
            f"fuzz: forwarded={self.forwarded} dead_letters={self.dead_letters} app_runner_deploy_calls="
            f"{self.deploy_calls}",
        ]
        for reason, (count, example) in sorted(self.disagreements.items()):
            lines.append(f"note: parser and reference disagree ({count}x): {reason}: {example}")
        groups = self.grouped()
        for failure, count in groups[:shown]:
            lines.append(f"FAIL {failure.counter} {failure.kind} ({count}x): {failure.detail}")
            lines.append(f"     shortest input: {failure.case}")
        if len(groups) > shown:
            lines.append(f"... and {len(groups) - shown} more kinds of failure")
        counts = f"unhandled={self.unhandled} deployed_from_invalid={self.deployed_from_invalid}"
        lines.append(f"fuzz: cases={self.cases} {counts}")
        return lines


def _phase_line(name: str, stats: PhaseStats) -> str:
    kinds = " ".join(f"{kind}={count}" for kind, count in sorted(stats.by_kind.items()))
    return (
        f"fuzz: {name} cases={stats.cases} valid={stats.valid} valid_deployed={stats.valid_deployed} "
        f"in {stats.seconds:.1f} s ({stats.rate:.0f} cases/s; {stats.cpu_rate:.0f} per CPU second); {kinds}"
    )


class Fuzz:
    """Runs cases through the real handlers, episode by episode (one cloud per `EPISODE_CASES` cases, its
    clock carried on), and checks the oracles after each case."""

    def __init__(self, seed: int, patch: pytest.MonkeyPatch) -> None:
        self.seed = seed
        self.report = Report(seed)
        self.allowed: set[str] = set()  # change ids some valid case may deploy
        self.created: list[Deployment] = []  # deployments created since the last check
        self.claimed: list[Deployment] = []  # deployments App Runner is about to be called for
        self.deployed_changes: set[str] = set()  # every change that got a deployment
        self.webhook_error: list[BaseException] = []
        self.valid_webhook: list[frozenset[str]] = []  # what each valid case may deploy
        self.valid_events: list[frozenset[str]] = []
        self.app_runner = random.Random(f"app runner:{seed}")  # which deployments App Runner fails
        self.episodes = 0
        self.clock = 0.0  # seconds the fake clock has advanced over all episodes
        # Per episode:
        self._world: FuzzWorld | None = None
        self.calls_seen = 0
        self.recent: dict[str, tuple[str, int]] = {}  # the last few cases, by delivery id or event
        self._hook(patch)

    @property
    def world(self) -> FuzzWorld:
        assert self._world is not None, "cases run inside an episode"
        return self._world

    @contextlib.contextmanager
    def episode(self) -> Iterator[FuzzWorld]:
        """A fresh cloud whose clock goes on from the last one's; checked and drained when it ends."""
        self.episodes += 1
        with FuzzWorld(self.seed * 1000 + self.episodes, start_seconds=self.clock) as world:
            self._world = world
            self.calls_seen = len(world.cloud.sim.calls)
            self.recent.clear()
            try:
                yield world
                self.end_of_episode()
            finally:
                self.clock = world.cloud.clock_offset[0]
                self._world = None

    def end_of_episode(self) -> None:
        """What should be empty is drained; nothing in the ledger that a valid case did not carry."""
        self.stray_forwards()
        self.finish_operations("end of an episode")
        self.stray_dead_letters()
        for deployment in self.world.all_deployments():
            if deployment.change_id is not None:
                self.deployed_changes.add(deployment.change_id)
            if deployment.change_id not in self.allowed:
                self.fail(
                    "deployed",
                    "the ledger holds a deployment from invalid input",
                    _deployment(deployment),
                    "(end)",
                    0,
                )

    def finish(self) -> Report:
        for stats, valid in (
            (self.report.webhook, self.valid_webhook),
            (self.report.eventbridge, self.valid_events),
        ):
            stats.valid = len(valid)
            stats.valid_deployed = sum(1 for deployable in valid if deployable & self.deployed_changes)
        return self.report

    def run_phase(
        self,
        stats: PhaseStats,
        count: int,
        run_case: Callable[[int], str],
        progress: Callable[[str], None] | None,
    ) -> None:
        """`count` cases, `run_case(index)` each (it answers the case's kind); episodes as they come."""
        started, cpu_started = time.perf_counter(), time.process_time()
        index = 0
        while index < count:
            with self.episode():
                for _ in range(min(EPISODE_CASES, count - index)):
                    self.world.tick()
                    stats.count(run_case(index))
                    stats.cases += 1
                    if index % FINISH_EVERY == FINISH_EVERY - 1:
                        self.stray_forwards()
                        self.stray_dead_letters()
                        self.finish_operations(f"after case #{index}")
                        self.fail_some()
                        self.recent.clear()
                    index += 1
                    if progress and index % 1000 == 0:
                        progress(f"fuzz: {index}/{count} cases, {len(self.report.failures)} failures")
        stats.seconds = time.perf_counter() - started
        stats.cpu_seconds = time.process_time() - cpu_started

    # --- observing the code under test ---------------------------------------------------------------

    def _hook(self, patch: pytest.MonkeyPatch) -> None:
        """See every deployment the ledger creates and every App Runner call it claims; keep the exception
        behind a webhook 500; make EventBridge refuse what AWS would (moto takes any size)."""
        created, claimed, errors = self.created, self.claimed, self.webhook_error
        commit, record, claim = Ledger.commit, Ledger.record, Ledger.claim_attempt

        def commit_hook(ledger: Ledger, *args: Any, **kwargs: Any) -> None:
            commit(ledger, *args, **kwargs)
            deployment = kwargs.get("created", args[4] if len(args) > 4 else None)
            if deployment is not None:
                created.append(deployment)
                if deployment.status is Status.STARTING and deployment.attempt_log:
                    claimed.append(deployment)  # admitted with its first App Runner attempt claimed

        def record_hook(ledger: Ledger, deployment: Deployment) -> bool:
            written = record(ledger, deployment)
            if written:
                created.append(deployment)
            return written

        def claim_hook(ledger: Ledger, deployment: Deployment, attempt: Any) -> bool:
            won = claim(ledger, deployment, attempt)
            if won:
                claimed.append(deployment)
            return won

        receive = webhook._receive

        def receive_hook(*args: Any, **kwargs: Any) -> Any:
            try:
                return receive(*args, **kwargs)
            except Exception as error:
                errors.append(error)
                raise

        patch.setattr(Ledger, "commit", commit_hook)
        patch.setattr(Ledger, "record", record_hook)
        patch.setattr(Ledger, "claim_attempt", claim_hook)
        patch.setattr(webhook, "_receive", receive_hook)
        _enforce_eventbridge_entry_limit(patch)

    # --- the webhook -------------------------------------------------------------------------------

    def run_webhook(self, count: int, progress: Callable[[str], None] | None = None) -> None:
        generator = WebhookGenerator(self.seed)

        def run_case(index: int) -> str:
            self.world.cloud.advance(generator.pause())
            case = generator.case(index, self.world.now())
            self.webhook_case(case)
            return case.family

        self.run_phase(self.report.webhook, count, run_case, progress)

    def webhook_case(self, case: WebhookCase) -> None:
        self.allowed |= case.expectation.deployable
        describe, size = case.describe(), _size(case.event)
        self.recent[_delivery_id(case.event)] = (describe, size)
        started = time.perf_counter()
        self.webhook_error.clear()
        with self._fault(case.fault):
            try:
                answer = self.world.invoke("webhook", case.event)
            except Exception as error:
                self.fail("unhandled", "webhook raised", _exception(error), describe, size)
                return
        status = int(answer.get("statusCode", 0))
        if status >= 500 and case.fault is None:
            cause = _exception(self.webhook_error[-1]) if self.webhook_error else _answer(answer)
            self.fail("unhandled", f"webhook answered {status}", cause, describe, size)
        if 200 <= status < 300 and not case.expectation.authentic:
            why = case.expectation.reason
            self.fail(
                "deployed",
                "answered 2xx without a valid signature",
                f"{why}: {_answer(answer)}",
                describe,
                size,
            )
        # Only an answer of 2xx (or 5xx, after part of a delivery went out) may come with forwarded
        # changes; anything forwarded while answering 4xx turns up in the periodic drain (`stray_forwards`).
        forwarded = self.world.forwarded() if status < 400 or status >= 500 else []
        self.report.forwarded += len(forwarded)
        ids = [self.forwarded_id(event) for event in forwarded]
        unexpected = _minus(ids, list(case.expectation.forwardable))
        if unexpected:
            detail = f"{len(unexpected)} change(s) that are {case.expectation.reason or 'not forwardable'}"
            self.fail("deployed", "forwarded a change it must not", detail, describe, size)
        expected = case.expectation.forwardable
        if case.must_accept and (status != 202 or sorted(ids) != sorted(expected)):
            detail = f"answered {status} {_answer(answer)}; forwarded {len(ids)} of {len(expected)}"
            self.fail("unhandled", "a valid push was refused", detail, describe, size)
        for event in forwarded:
            self.invoke("commit_pushed", event, describe, size, must_accept=True)
        self.check_deployments(describe, size)
        if case.must_accept:
            self.valid_webhook.append(case.expectation.deployable)
        self.check_slow(started, describe, size)

    def stray_forwards(self) -> None:
        """Changes forwarded by a request answered 4xx (found by draining the bus now and then)."""
        for event in self.world.forwarded():
            self.report.forwarded += 1
            detail = event.get("detail")
            delivery = detail.get("delivery_id") if isinstance(detail, dict) else None
            describe, size = self.recent.get(
                str(delivery), (f"(delivery id {shorten(str(delivery), 60)})", 0)
            )
            self.fail(
                "deployed", "forwarded a change while refusing the request", shorten(detail), describe, size
            )
            self.invoke("commit_pushed", event, describe, size, must_accept=False)
            self.check_deployments(describe, size)

    def forwarded_id(self, event: Mapping[str, Any]) -> str:
        try:
            parsed, _ = parse_forwarded(event)
        except EventError:
            return "(unreadable)"
        return signed_change_id(parsed.changes[0])

    @contextlib.contextmanager
    def _fault(self, fault: str | None) -> Iterator[None]:
        """An AWS fault for the length of one case: EventBridge refuses every entry."""
        if fault != "eventbridge":
            yield
            return
        from pushdeploy import runtime

        events = runtime.client("events")

        def refuse(**request: Any) -> dict[str, Any]:
            entries = [{"ErrorCode": "InternalFailure", "ErrorMessage": "fuzz"} for _ in request["Entries"]]
            return {"FailedEntryCount": len(entries), "Entries": entries}

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(events, "put_events", refuse)
            yield

    # --- EventBridge -------------------------------------------------------------------------------

    def run_events(self, count: int, progress: Callable[[str], None] | None = None) -> None:
        generator = EventGenerator(self.seed)

        def run_case(index: int) -> str:
            case = generator.case(index, self.world.now(), self.world.services)
            self.event_case(case)
            return case.function

        self.run_phase(self.report.eventbridge, count, run_case, progress)

    def event_case(self, case: EventCase) -> None:
        self.allowed |= case.expectation.deployable
        describe, size = case.describe(), _size(case.event)
        self.recent[_normalized(case.event)] = (describe, size)
        started = time.perf_counter()
        verdict = parser_verdict(case.function, case.event)
        answer = self.invoke(case.function, case.event, describe, size, must_accept=False)
        if answer is not None and verdict == "refused":
            # Dead-lettered exactly once; a dead letter where none is due turns up in `stray_dead_letters`.
            dead = self.world.dead_letters()
            self.report.dead_letters += len(dead)
            mine = [
                message for message in dead if _normalized(message.get("event")) == _normalized(case.event)
            ]
            if len(mine) != 1:
                detail = f"the parser refuses it; {len(mine)} dead letter(s) for it"
                self.fail("unhandled", "dead-letter queue disagrees with the parser", detail, describe, size)
            self.stray_dead_letters([message for message in dead if message not in mine])
        if case.must_accept and verdict != "accepted":
            self.fail("unhandled", "a well-formed event was refused", _answer(answer or {}), describe, size)
        reference = case.expectation.refused
        if reference is not None and verdict != "crashed" and reference != (verdict == "refused"):
            said = "refused" if reference else "readable"
            self.disagree(f"reference: {said} ({case.expectation.reason}); parser: {verdict}", describe, size)
        self.check_deployments(describe, size)
        if case.must_accept and case.expectation.deployable:
            self.valid_events.append(case.expectation.deployable)
        self.check_slow(started, describe, size)

    def stray_dead_letters(self, messages: list[dict[str, Any]] | None = None) -> None:
        """Dead letters nobody expected: for an event its parser reads, or a second one."""
        found = self.world.dead_letters() if messages is None else messages
        if messages is None:
            self.report.dead_letters += len(found)
        for message in found:
            event = message.get("event")
            describe, size = self.recent.get(_normalized(event), (f"(event {shorten(event, 200)})", 0))
            detail = f"dead-lettered ({shorten(message.get('error'), 120)}) though the parser reads it"
            self.fail("unhandled", "dead-letter queue disagrees with the parser", detail, describe, size)

    # --- shared --------------------------------------------------------------------------------------

    def invoke(
        self, function: str, event: Any, describe: str, size: int, must_accept: bool
    ) -> dict[str, Any] | None:
        try:
            answer = self.world.invoke(function, event)
        except Exception as error:
            self.fail("unhandled", f"{function} raised", _exception(error), describe, size)
            return None
        if must_accept and answer.get("status") not in ("decided", "ignored", "confirmed", "reconciled"):
            self.fail("unhandled", f"{function} refused a forwarded change", _answer(answer), describe, size)
        return answer

    def check_deployments(self, describe: str, size: int) -> None:
        """Every deployment created and every App Runner call claimed since the last check traces back to
        a valid case; every StartDeployment/UpdateService call was claimed first."""
        for deployment in self.created:
            if deployment.change_id is not None:
                self.deployed_changes.add(deployment.change_id)
            if deployment.change_id not in self.allowed:  # None: nobody pushed it (no operator here)
                detail = _deployment(deployment)
                self.fail("deployed", "a deployment from invalid input", detail, describe, size)
        for deployment in self.claimed:
            if deployment.change_id not in self.allowed:
                detail = f"App Runner called for {_deployment(deployment)}"
                self.fail("deployed", "App Runner called for invalid input", detail, describe, size)
        claimed = {deployment.service: deployment for deployment in self.claimed}
        self.created.clear()
        self.claimed.clear()
        self.calls_seen, calls = self.world.deploy_calls(self.calls_seen)
        self.report.deploy_calls += len(calls)
        for name, params in calls:
            problem = _call_problem(name, params, claimed.get(str(params.get("ServiceArn"))))
            if problem:
                self.fail("deployed", problem, shorten(params), describe, size)

    def fail_some(self) -> None:
        """App Runner will fail the next deployment of some services (it rolls back): pushdeploy must
        settle those, remember the artifact as failed there, and go on."""
        for service in self.world.services.all():
            if self.app_runner.random() < FAIL_SHARE:
                self.world.cloud.sim.fail_next(service)

    def finish_operations(self, describe: str) -> None:
        """App Runner finishes what runs; its status events go to operation_changed (as valid input)."""
        try:
            self.world.finish_operations()
        except Exception as error:
            self.fail(
                "unhandled",
                "operation_changed raised on App Runner's own event",
                _exception(error),
                describe,
                0,
            )
        self.check_deployments(f"(App Runner's events after) {describe}", 0)

    def check_slow(self, started: float, describe: str, size: int) -> None:
        took = time.perf_counter() - started
        if took > SLOW_SECONDS:
            self.fail("unhandled", "slow", f"{took:.1f} s", describe, size)

    def fail(self, counter: Counter, kind: str, detail: str, case: str, size: int) -> None:
        self.report.failures.append(Failure(counter, kind, shorten(detail, 300), case, size))

    def disagree(self, reason: str, case: str, size: int) -> None:
        count, example = self.report.disagreements.get(reason, (0, case))
        shortest = example if count and len(example) <= len(case) else case
        self.report.disagreements[reason] = (count + 1, shortest)


def parser_verdict(function: str, event: Any) -> str:
    """What the function's parser makes of the event, called as the handler calls it: `refused` (an
    EventError: the handler must dead-letter it), `accepted`, or `crashed` (any other exception)."""
    if function == "reconciler":
        return "accepted"
    try:
        if not isinstance(event, Mapping):
            return "refused"
        if function == "operation_changed" or not is_forwarded(event):
            parse_eventbridge_event(event)
        else:
            parse_forwarded(event)
    except EventError:
        return "refused"
    except Exception:
        return "crashed"
    return "accepted"


def _enforce_eventbridge_entry_limit(patch: pytest.MonkeyPatch) -> None:
    """moto's PutEvents takes entries of any size; EventBridge refuses a request whose entries add up to
    more than 256 KB (sizes as "Calculating PutEvents event entry size" counts them)."""
    from moto.events.models import EventsBackend

    put_events = EventsBackend.put_events

    def limited(backend: EventsBackend, events: list[dict[str, Any]]) -> Any:
        total = sum(_entry_size(entry) for entry in events)
        if total > EVENTBRIDGE_ENTRY_LIMIT:
            raise _validation_error("Total size of the entries in the request is over the limit.")
        return put_events(backend, events)

    patch.setattr(EventsBackend, "put_events", limited)


def _entry_size(entry: Mapping[str, Any]) -> int:
    size = 14 if entry.get("Time") else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key) or "").encode())
    return size + sum(len(str(resource).encode()) for resource in entry.get("Resources") or [])


def _validation_error(message: str) -> Exception:
    from moto.events.exceptions import ValidationException

    return ValidationException(message)


def _call_problem(name: str, params: Mapping[str, Any], claimed: Deployment | None) -> str | None:
    """What is wrong with an App Runner deploy call, given the deployment claimed for its service."""
    if claimed is None:
        return f"App Runner {name} without a claimed deployment"
    source = params.get("SourceConfiguration") or {}
    image = str(source.get("ImageRepository", {}).get("ImageIdentifier"))
    if name == "UpdateService" and (claimed.digest is None or not image.endswith(f"@{claimed.digest}")):
        return "UpdateService to an image no valid case pushed"
    return None


def _minus(found: list[str], allowed: list[str]) -> list[str]:
    """`found` without one occurrence of each allowed id."""
    remaining = list(allowed)
    extra = []
    for item in found:
        if item in remaining:
            remaining.remove(item)
        else:
            extra.append(item)
    return extra


def _normalized(event: Any) -> str:
    """An event as JSON text, as the dead-letter queue keeps it (default=str), keys sorted."""
    return json.dumps(json.loads(json.dumps(event, default=str)), sort_keys=True)


def _delivery_id(event: Mapping[str, Any]) -> str:
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    return str(headers.get("x-github-delivery") or headers.get("x-request-uuid"))


def _size(value: Any) -> int:
    return len(json.dumps(value, default=repr))


def _answer(answer: Mapping[str, Any]) -> str:
    return shorten(answer.get("body") or answer, 160)


def _deployment(deployment: Deployment) -> str:
    what = shorten(deployment.tag or deployment.branch or "", 40)
    artifact = shorten(deployment.artifact or "", 40)
    service = deployment.service.rsplit("/", 2)[-2]
    return (
        f"deployment {deployment.id} of change {deployment.change_id} "
        f"({deployment.source} {deployment.repository} {what} {artifact}) to {service}"
    )


def _exception(error: BaseException) -> str:
    """The exception and where it was raised in pushdeploy's code (its innermost frame there)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if "/pushdeploy/" in frame.filename or "/functions/" in frame.filename]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    place = f" at {where.filename.split('/layers/pushdeploy/')[-1]}:{where.lineno}" if where else ""
    message = str(error)
    if isinstance(error, ClientError):
        message = (
            f"{error.response.get('Error', {}).get('Code')}: {error.response.get('Error', {}).get('Message')}"
        )
    return f"{type(error).__name__}{place}: {message}"


def progress_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_fuzz(
    seed: int, webhook_cases: int, event_cases: int, progress: Callable[[str], None] | None = None
) -> Report:
    """`webhook_cases` requests, then `event_cases` events, through the real handlers; the report."""
    with pytest.MonkeyPatch.context() as patch:
        fuzz = Fuzz(seed, patch)
        fuzz.run_webhook(webhook_cases, progress)
        fuzz.run_events(event_cases, progress)
        return fuzz.finish()
