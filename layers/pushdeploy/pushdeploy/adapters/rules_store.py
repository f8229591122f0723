"""Rules in DynamoDB, keyed by the source they watch, so a function reads only the rules of its change.

Items: `source_key` (HASH, e.g. `ecr|111122223333|us-east-1|web`), `rule_id` (RANGE), `rule` (the rule as
JSON text, validated again when read), `updated_at`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from pushdeploy.domain.changes import Change, SourceKey, format_source_key
from pushdeploy.domain.rules import CompiledRule, Rule, compile_rule
from pushdeploy.errors import PushdeployError

logger = Logger(service="pushdeploy", child=True)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class RulesDiff:
    added: tuple[Rule, ...]
    changed: tuple[Rule, ...]
    removed: tuple[Rule, ...]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def rule_key(rule: Rule) -> str:
    return format_source_key(compile_rule(rule).key)


def _rule_json(rule: Rule) -> str:
    return json.dumps(rule.model_dump(mode="json", exclude_none=True), sort_keys=True)


def diff_rules(current: Sequence[Rule], wanted: Sequence[Rule]) -> RulesDiff:
    before = {rule.id: rule for rule in current}
    after = {rule.id: rule for rule in wanted}
    added = tuple(rule for rule_id, rule in after.items() if rule_id not in before)
    changed = tuple(
        rule
        for rule_id, rule in after.items()
        if rule_id in before and _rule_json(before[rule_id]) != _rule_json(rule)
    )
    removed = tuple(rule for rule_id, rule in before.items() if rule_id not in after)
    return RulesDiff(added, changed, removed, len(after) - len(added) - len(changed))


class RulesStore:
    """Reads rules by source key with a short in-memory cache; writes a whole validated file."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table_name
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[SourceKey, tuple[float, tuple[CompiledRule, ...]]] = {}
        self._unreadable: set[tuple[str, str]] = set()  # (source key, rule id) of invalid stored rules

    def watching(self, change: Change) -> tuple[CompiledRule, ...]:
        key = change.key
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        rules = tuple(compile_rule(rule) for rule in self._query(format_source_key(key)))
        self._cache[key] = (now, rules)
        return rules

    def _query(self, source_key: str) -> list[Rule]:
        rules: list[Rule] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "source_key = :key",
            "ExpressionAttributeValues": {":key": {"S": source_key}},
        }
        while True:
            page = self._client.query(**request)
            rules.extend(self._readable(page.get("Items", [])))
            if "LastEvaluatedKey" not in page:
                return sorted(rules, key=lambda rule: rule.id)
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def all_rules(self) -> list[Rule]:
        """Every stored rule (a scan: for the operator CLI, never on a Lambda path)."""
        rules: list[Rule] = []
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table):
            rules.extend(self._readable(page.get("Items", [])))
        return sorted(rules, key=lambda rule: rule.id)

    def applied(self) -> list[tuple[CompiledRule, datetime]]:
        """Every stored rule, compiled, with when it was last applied (a scan: for the sweep, which
        looks for pushes only from then on)."""
        found: list[tuple[CompiledRule, datetime]] = []
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table):
            for item in page.get("Items", []):
                for rule in self._readable([item]):
                    found.append((compile_rule(rule), _applied_at(item)))
        return sorted(found, key=lambda pair: pair[0].id)

    def _readable(self, items: Sequence[dict[str, Any]]) -> list[Rule]:
        """The stored rules that are still valid. One stored under an older pushdeploy that this one
        refuses (a regex RE2 cannot run, say) is left out with an error in the log, so the others still
        decide; the next `rules apply` replaces or deletes it."""
        rules = []
        for item in items:
            try:
                rules.append(Rule.model_validate_json(item["rule"]["S"]))
            except ValidationError as error:
                key = (item["source_key"]["S"], item["rule_id"]["S"])
                self._unreadable.add(key)
                logger.error(
                    "a stored rule is no longer valid and is ignored: apply the rules file again",
                    extra={"rule": key[1], "problems": error.error_count()},
                )
        return rules

    def apply(self, current: Sequence[Rule], wanted: Sequence[Rule]) -> RulesDiff:
        """Make the stored rules equal `wanted` (already validated whole)."""
        diff = diff_rules(current, wanted)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        requests: list[dict[str, Any]] = []
        for rule in (*diff.added, *diff.changed):
            item = {
                "source_key": {"S": rule_key(rule)},
                "rule_id": {"S": rule.id},
                "rule": {"S": _rule_json(rule)},
                "updated_at": {"S": stamp},
            }
            requests.append({"PutRequest": {"Item": item}})
        changed_ids = {rule.id: rule for rule in diff.changed}
        stale = [
            *diff.removed,
            *(
                old
                for old in current
                if old.id in changed_ids and rule_key(old) != rule_key(changed_ids[old.id])
            ),
        ]
        written = {(rule_key(rule), rule.id) for rule in (*diff.added, *diff.changed)}
        doomed = {(rule_key(rule), rule.id) for rule in stale} | (self._unreadable - written)
        for source_key, rule_id in sorted(doomed):
            key = {"source_key": {"S": source_key}, "rule_id": {"S": rule_id}}
            requests.append({"DeleteRequest": {"Key": key}})
        for start in range(0, len(requests), 25):
            self._write_batch(requests[start : start + 25])
        self._cache.clear()
        return diff

    def _write_batch(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._table: requests}
        for attempt in range(8):
            unprocessed = self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems", {})
            if not unprocessed:
                return
            pending = unprocessed
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise PushdeployError("DynamoDB left rule writes unprocessed after 8 attempts; run the apply again")


def _applied_at(item: dict[str, Any]) -> datetime:
    stamp = item.get("updated_at", {}).get("S")
    return datetime.fromisoformat(stamp) if stamp else datetime.min.replace(tzinfo=UTC)
