"""moto's DynamoDB, faster, with the same answers. Two costs dominate a long simulation:

- TransactWriteItems backs up a transaction by deep-copying every table it touches, once per item of the
  transaction, so each transaction costs time in proportion to the table's size. Here the backup is taken
  of the items the transaction names instead, and restored when moto raises (a cancelled transaction, or a
  validation error part-way). moto still evaluates and applies the transaction itself, so conditions and
  error answers are moto's own.
- Every response is serialized by walking botocore's model, and an attribute value (a structure of ten
  members) is walked member by member. moto's DynamoDB results are DynamoDB JSON already, so an attribute
  value without binary data is written as it is.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_Backup = list[tuple[Table, DynamoType, DynamoType | None, Any]]


class _CopyKeepingTables:
    """The `copy` module as moto's DynamoDB backend sees it: a table "copy" is the table itself (the
    transaction's backup is taken item by item by `_backup` instead); everything else is copied."""

    copy = staticmethod(copy.copy)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the item-level backup until `monkeypatch` is undone."""
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        backup = _backup(self, transact_items)
        try:
            original(self, transact_items)
        except BaseException:
            _restore(backup)
            raise

    monkeypatch.setattr(dynamodb_models, "copy", _CopyKeepingTables)
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", transact_write_items)

    serialize_structure = BaseJSONSerializer._serialize_type_structure

    def _serialize_type_structure(
        self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        if key and shape.name == "AttributeValue" and _plain_json(value):
            self._default_serialize(serialized, value, shape, key)
        else:
            serialize_structure(self, serialized, value, shape, key)

    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_structure", _serialize_type_structure)


def _plain_json(value: Any) -> bool:
    """An attribute value in DynamoDB JSON with nothing to encode (no binary)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in ("S", "N", "BOOL", "NULL", "SS", "NS"):
        return True
    if kind == "M":
        return isinstance(inner, dict) and all(_plain_json(item) for item in inner.values())
    if kind == "L":
        return isinstance(inner, list) and all(_plain_json(item) for item in inner)
    return False


def _backup(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> _Backup:
    backup: _Backup = []
    for entry in transact_items:
        for operation, request in entry.items():
            table = backend.tables.get(request.get("TableName"))
            key = request.get("Item") if operation == "Put" else request.get("Key")
            if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
                continue  # moto refuses the request itself; nothing is written
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in key:
                    continue
                range_value = DynamoType(key[table.range_key_attr])
            item = table.get_item(hash_value, range_value)
            backup.append((table, hash_value, range_value, copy.deepcopy(item)))
    return backup


def _restore(backup: _Backup) -> None:
    for table, hash_value, range_value, item in reversed(backup):
        if range_value is None:
            if item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item
        elif item is None:
            table.items.get(hash_value, {}).pop(range_value, None)
        else:
            table.items[hash_value][range_value] = item
