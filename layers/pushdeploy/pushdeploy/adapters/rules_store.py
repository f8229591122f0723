"""Rules in DynamoDB, keyed by the source they watch, so a function reads only the rules of its change.

Items: `source_key` (HASH, e.g. `ecr|111122223333|us-east-1|web`), `rule_id` (RANGE), `rule` (the rule as
JSON text, validated again when read), `updated_at`. Beside a source's rules, one version item
(`rule_id` `#version`, a number `version`) that `apply` bumps after it wrote that source's rules: a
container keeps a source's rules for as long as that version stays the one it read them with, and the
push's own ledger read (one `TransactGetItems`) reads the version with the change, so a cached rule is
never used after `rules apply` changed it.
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


VERSION_ID = "#version"  # never a rule id: those are lowercase letters, digits and dashes


@dataclass(frozen=True)
class RulesSnapshot:
    """A source's rules as of one version of them; `probe` reads that version's item in a transaction."""

    key: SourceKey
    rules: tuple[CompiledRule, ...]
    version: int
    probe: dict[str, Any]
    read_now: bool  # queried for this snapshot (consistently), not remembered


@dataclass(frozen=True)
class _Cached:
    fetched_at: float
    version: int
    rules: tuple[CompiledRule, ...]


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
    """Reads rules by source key, cached in memory; writes a whole validated file.

    A push's read, `snapshot`, is confirmed by the version its caller reads in its own ledger read
    (`confirmed`), so its cache never expires; `watches` confirms a no the same way; `watching`, for a
    caller that cannot, expires after `cache_seconds`."""

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
        self._cache: dict[SourceKey, _Cached] = {}
        self._unreadable: set[tuple[str, str]] = set()  # (source key, rule id) of invalid stored rules

    def watching(self, change: Change) -> tuple[CompiledRule, ...]:
        """The rules watching the change's source, at most `cache_seconds` old."""
        cached = self._cache.get(change.key)
        if cached is not None and self._clock() - cached.fetched_at < self._cache_seconds:
            return cached.rules
        return self._fetch(change.key).rules

    def watches(self, change: Change) -> bool:
        """Whether a rule watches the change's source, as cached however long ago. A yes may be stale
        (the push's own read confirms its rules); a no is confirmed against the stored version, so a rule
        applied a moment ago is never missed."""
        snapshot = self.snapshot(change)
        if snapshot.rules or snapshot.read_now or self.confirmed_now(snapshot):
            return bool(snapshot.rules)
        return bool(self.snapshot(change).rules)

    def snapshot(self, change: Change) -> RulesSnapshot:
        """The rules watching the change's source as last read, however long ago: the caller confirms
        them (`confirmed`) with the version its ledger read returns."""
        cached = self._cache.get(change.key)
        read_now = cached is None
        if cached is None:
            cached = self._fetch(change.key)
        probe = self._version_get(change.key)
        return RulesSnapshot(change.key, cached.rules, cached.version, probe, read_now)

    def confirmed(self, snapshot: RulesSnapshot, version_item: dict[str, Any] | None) -> bool:
        """Whether the snapshot's rules are still the stored ones, by the version item read just now
        (None: the source never had rules); if not, they are forgotten and the next snapshot reads them."""
        if _version_of(version_item) == snapshot.version:
            self._cache[snapshot.key] = _Cached(self._clock(), snapshot.version, snapshot.rules)
            return True
        self._cache.pop(snapshot.key, None)
        return False

    def confirmed_now(self, snapshot: RulesSnapshot) -> bool:
        """As `confirmed`, reading the version item alone (when the caller's ledger read could not)."""
        key = snapshot.probe["Get"]["Key"]
        item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return self.confirmed(snapshot, item)

    def _version_get(self, key: SourceKey) -> dict[str, Any]:
        return {"Get": {"TableName": self._table, "Key": _version_key(format_source_key(key))}}

    def _fetch(self, key: SourceKey) -> _Cached:
        fetched_at = self._clock()
        version, rules = self._query(format_source_key(key))
        cached = _Cached(fetched_at, version, tuple(compile_rule(rule) for rule in rules))
        self._cache[key] = cached
        return cached

    def _query(self, source_key: str) -> tuple[int, list[Rule]]:
        """A source's version and rules; a strongly consistent read, so that its version is never older
        than one a transaction has just read."""
        version, rules = 0, []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "source_key = :key",
            "ExpressionAttributeValues": {":key": {"S": source_key}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**request)
            items = page.get("Items", [])
            version = next((_version_of(item) for item in items if _is_version(item)), version)
            rules.extend(self._readable(items))
            if "LastEvaluatedKey" not in page:
                return version, sorted(rules, key=lambda rule: rule.id)
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
            if _is_version(item):
                continue
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
        for source_key in sorted({key for key, _ in written | doomed}):
            self._bump_version(source_key, stamp)  # last: a push that reads the new version reads these rules
        self._cache.clear()
        return diff

    def _bump_version(self, source_key: str, stamp: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=_version_key(source_key),
            UpdateExpression="ADD version :one SET updated_at = :at",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":at": {"S": stamp},
            },
        )

    def _write_batch(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._table: requests}
        for attempt in range(8):
            unprocessed = self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems", {})
            if not unprocessed:
                return
            pending = unprocessed
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise PushdeployError("DynamoDB left rule writes unprocessed after 8 attempts; run the apply again")


def _version_key(source_key: str) -> dict[str, Any]:
    return {"source_key": {"S": source_key}, "rule_id": {"S": VERSION_ID}}


def _is_version(item: dict[str, Any]) -> bool:
    return bool(item["rule_id"]["S"] == VERSION_ID)


def _version_of(item: dict[str, Any] | None) -> int:
    return int(item["version"]["N"]) if item and "version" in item else 0


def _applied_at(item: dict[str, Any]) -> datetime:
    stamp = item.get("updated_at", {}).get("S")
    return datetime.fromisoformat(stamp) if stamp else datetime.min.replace(tzinfo=UTC)
