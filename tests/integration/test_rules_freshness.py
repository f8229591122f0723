"""A container keeps the rules it read for as long as they stay the stored ones: a push reads their version
in its one ledger read, so `rules apply` takes effect on the very next push, and a push whose rules have
not changed does not query them again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pushdeploy import container, runtime
from pushdeploy.adapters.ledger import ChangeReads
from pushdeploy.adapters.rules_store import VERSION_ID, RulesStore
from pushdeploy.local.inprocess import TABLES
from tests.integration.harness import Cloud

DIGESTS = [f"sha256:{n:064x}" for n in range(1, 10)]


@pytest.fixture(autouse=True)
def cache_for_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a warm container whose rules were read long ago, yet within any time-based cache."""
    monkeypatch.setenv("RULES_CACHE_SECONDS", "86400")


@contextmanager
def dynamodb_calls() -> Iterator[Counter[str]]:
    calls: Counter[str] = Counter()

    def count(model: object, **_: object) -> None:
        calls.update([model.name])  # type: ignore[attr-defined]

    events = container.client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb", count)


def staging_rule(service: str, tag: str) -> dict[str, object]:
    return {"id": "web-staging", "service": service, "image": {"repository": "web", "tag": tag}}


def test_a_rule_changed_while_a_container_holds_the_old_one_decides_the_very_next_push(
    cloud: Cloud, services: dict[str, str]
) -> None:
    assert cloud.push_image("latest", DIGESTS[0])["deployments"]  # the container now holds the rules
    cloud.settle_operations()
    cloud.deliver_apprunner_events()
    cloud.apply_rules([staging_rule(services["staging"], "stable")])

    assert cloud.push_image("latest", DIGESTS[1])["deployments"] == []
    assert cloud.push_image("stable", DIGESTS[2])["deployments"]
    assert cloud.deployments(services["staging"])[-1].digest == DIGESTS[2]


def test_a_rule_removed_deploys_nothing_more_and_one_added_to_a_quiet_source_deploys_at_once(
    cloud: Cloud, services: dict[str, str]
) -> None:
    api = cloud.create_image_service("api-prod", tag="latest", repository="api")
    assert cloud.push_image("latest", DIGESTS[0], repository="api")["deployments"] == []  # no rule yet
    cloud.apply_rules([{"id": "api", "service": api, "image": {"repository": "api", "tag": "latest"}}])
    assert cloud.push_image("latest", DIGESTS[1], repository="api")["deployments"]

    cloud.apply_rules([])
    assert cloud.push_image("latest", DIGESTS[2])["deployments"] == []


def test_a_push_whose_rules_are_unchanged_reads_them_from_memory(
    cloud: Cloud, services: dict[str, str]
) -> None:
    cloud.push_image("latest", DIGESTS[0])
    cloud.settle_operations()
    cloud.deliver_apprunner_events()
    with dynamodb_calls() as calls:
        assert cloud.push_image("latest", DIGESTS[1])["deployments"]
    # One read (change, deployment, slot, failure mark, rules' version), the admission, the operation id.
    assert calls == Counter({"TransactGetItems": 1, "TransactWriteItems": 2})


def test_a_container_that_never_read_the_rules_queries_them_once(
    cloud: Cloud, services: dict[str, str]
) -> None:
    with dynamodb_calls() as calls:
        assert cloud.push_image("latest", DIGESTS[0])["deployments"]
    assert calls == Counter({"Query": 1, "TransactGetItems": 1, "TransactWriteItems": 2})


def test_apply_bumps_the_version_of_each_source_it_changed_and_no_other(
    cloud: Cloud, services: dict[str, str]
) -> None:
    store = RulesStore(cloud.dynamodb, TABLES["RulesTable"])
    before = versions(cloud)
    store.apply(store.all_rules(), [*store.all_rules()])  # nothing changes
    assert versions(cloud) == before

    api = cloud.create_image_service("api-prod", tag="latest", repository="api")
    cloud.apply_rules(
        [
            *(rule.model_dump(mode="json", exclude_none=True) for rule in store.all_rules()),
            {"id": "api", "service": api, "image": {"repository": "api", "tag": "latest"}},
        ]
    )
    after = versions(cloud)
    assert after["ecr|111122223333|us-east-1|web"] == before["ecr|111122223333|us-east-1|web"]
    assert after["ecr|111122223333|us-east-1|api"] == 1
    assert [rule.id for rule in store.all_rules()] == ["api", "web-prod", "web-staging"]  # no version items


def versions(cloud: Cloud) -> dict[str, int]:
    items = cloud.dynamodb.scan(TableName=TABLES["RulesTable"])["Items"]
    return {
        item["source_key"]["S"]: int(item["version"]["N"])
        for item in items
        if item["rule_id"]["S"] == VERSION_ID
    }


def test_rules_applied_between_a_pushs_rules_read_and_its_ledger_read_decide_it(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = runtime.controller().ledger
    read_the_ledger = ledger.reads_for_change
    applied: list[bool] = []

    def rules_applied_first(*args: Any, **kwargs: Any) -> ChangeReads | None:
        if not applied:
            applied.append(True)
            cloud.apply_rules([staging_rule(services["staging"], "stable")])
        return read_the_ledger(*args, **kwargs)

    monkeypatch.setattr(ledger, "reads_for_change", rules_applied_first)
    assert cloud.push_image("latest", DIGESTS[0])["deployments"] == []  # decided by the rules read again
    assert cloud.deployments(services["staging"]) == []


def test_without_the_one_ledger_read_the_rules_version_is_read_on_its_own(
    cloud: Cloud, services: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.push_image("latest", DIGESTS[0])
    cloud.apply_rules([staging_rule(services["staging"], "stable")])
    # Too many items for one transaction, or one of them being written: the ledger answers None.
    monkeypatch.setattr(runtime.controller().ledger, "reads_for_change", lambda *_, **__: None)
    assert cloud.push_image("latest", DIGESTS[1])["deployments"] == []
    assert cloud.push_image("stable", DIGESTS[2])["deployments"]
