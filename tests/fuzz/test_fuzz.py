"""The fuzz suite's fixed-seed share (issue 9, "Prove it"): 1,000 generated webhook requests and 1,000
mutated EventBridge events through the real handlers, with no unhandled input, no deployment from
unsigned, stale or invalid input, and valid input still deploying. `make fuzz` runs 10,000 of each."""

from __future__ import annotations

import pytest

from pushdeploy import runtime, webhook
from tests.fuzz.engine import Report, run_fuzz

SEED = 20261201
CASES = 1_000

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def report() -> Report:
    return run_fuzz(SEED, CASES, CASES)


def _explained(report: Report) -> str:
    return "\n".join(report.lines())


def test_every_case_ran_through_the_handlers(report: Report) -> None:
    assert report.webhook.cases == CASES
    assert report.eventbridge.cases == CASES
    assert report.cases == 2 * CASES
    # Every kind of EventBridge event reached its function.
    assert set(report.eventbridge.by_kind) == {
        "image_pushed",
        "commit_pushed",
        "operation_changed",
        "reconciler",
    }


def test_no_input_is_left_unhandled(report: Report) -> None:
    assert report.unhandled == 0, _explained(report)


def test_nothing_deploys_from_unsigned_stale_or_invalid_input(report: Report) -> None:
    assert report.deployed_from_invalid == 0, _explained(report)


def test_valid_input_still_deploys(report: Report) -> None:
    for phase in (report.webhook, report.eventbridge):
        assert phase.valid > 0
        assert phase.valid_deployed > 0, _explained(report)
    assert report.deploy_calls > 0
    assert report.forwarded > 0
    assert report.dead_letters > 0  # malformed events were dead-lettered


def test_the_oracles_catch_a_webhook_that_takes_any_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook, "check_signature", lambda body, header, secrets: "valid")
    broken = run_fuzz(SEED, 100, 0)
    kinds = {failure.kind for failure in broken.failures if failure.counter == "deployed"}
    assert "answered 2xx without a valid signature" in kinds
    assert "a deployment from invalid input" in kinds


def test_the_oracles_catch_a_function_that_loses_malformed_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "dead_letter", lambda event, error: None)
    broken = run_fuzz(SEED, 0, 100)
    assert any(failure.kind == "dead-letter queue disagrees with the parser" for failure in broken.failures)


def test_a_seed_replays_identically() -> None:
    runs = [run_fuzz(SEED + 1, 40, 40) for _ in range(2)]
    assert [f.signature for f in runs[0].failures] == [f.signature for f in runs[1].failures]
    assert [r.forwarded for r in runs] == [runs[0].forwarded] * 2
    assert [r.deploy_calls for r in runs] == [runs[0].deploy_calls] * 2
    assert runs[0].webhook.by_kind == runs[1].webhook.by_kind
    assert runs[0].eventbridge.by_kind == runs[1].eventbridge.by_kind
