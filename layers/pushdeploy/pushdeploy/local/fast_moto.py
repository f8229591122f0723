"""moto's DynamoDB, faster and leaner, with the same answers: used by the local cloud's moto server (for
the life of the process) and by the simulation and fuzz tests (undone after each test). Two costs dominate
when the ledger grows:

- TransactWriteItems backs up a transaction by deep-copying every table it touches, once per item of the
  transaction, so each transaction costs time (and garbage) in proportion to the table's size: in a burst
  of 1,000 pushes it was most of the moto server's time, and the copies most of its memory. Here the backup
  is taken of the items the transaction names instead, and restored when moto raises (a cancelled
  transaction, or a validation error part-way). moto still evaluates and applies the transaction itself,
  so conditions and error answers are moto's own.
- Every response is serialized by walking botocore's model, and an attribute value (a structure of ten
  members) is walked member by member. moto's DynamoDB results are DynamoDB JSON already, so an attribute
  value without binary data is written as it is.

The local cloud's server also pays per request, and more as its SQS queues fill (`server_patches()`):

- moto finds the service of every request by listing its own package directory (a few hundred `isdir`
  calls); the list does not change while the server runs, so it is listed once.
- moto lists the methods of a response class (`inspect.getmembers`) for every request; they do not change
  while the server runs, so they are listed once per class.
- EventBridge builds a JSONPath parser (a yacc grammar) for every path of an input transformer, for every
  event a rule sends; a parsed path is kept for the next event instead.
- SQS recomputes every attribute of a queue, each a scan of its messages, once per attribute asked for,
  and once more for each message it receives (to read the retention period); and it reads the clock
  through `datetime` for every message of every scan. Here the attributes are computed once per request,
  the retention period is read as it is, and the clock is `time.time()`: the same values, in a fraction of
  the time.

`patches()` and `server_patches()` list what to replace, as (owner, attribute, value); `install()` applies
both for good (the local cloud's moto server), and a test applies `patches()` with its own monkeypatch so
that they are undone.
"""

from __future__ import annotations

import copy
import functools
import time
from datetime import datetime
from typing import Any

import jsonpath_ng.ext
from moto import backends as moto_backends
from moto.core import responses as moto_responses
from moto.core.serialize import BaseJSONSerializer
from moto.core.utils import method_names_from_class, unix_time, unix_time_millis
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import InvalidAttributeName
from moto.sqs.models import Message, SQSBackend

Patch = tuple[object, str, Any]
_Backup = list[tuple[Table, DynamoType, DynamoType | None, Any]]
_ORIGINAL_TRANSACT = DynamoDBBackend.transact_write_items
_ORIGINAL_SERIALIZE_STRUCTURE = BaseJSONSerializer._serialize_type_structure


class _CopyKeepingTables:
    """The `copy` module as moto's DynamoDB backend sees it: a table "copy" is the table itself (the
    transaction's backup is taken item by item by `_backup` instead); everything else is copied."""

    copy = staticmethod(copy.copy)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    backup = _backup(self, transact_items)
    try:
        _ORIGINAL_TRANSACT(self, transact_items)
    except BaseException:
        _restore(backup)
        raise


def _serialize_type_structure(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
) -> None:
    if key and shape.name == "AttributeValue" and _plain_json(value):
        self._default_serialize(serialized, value, shape, key)
    else:
        _ORIGINAL_SERIALIZE_STRUCTURE(self, serialized, value, shape, key)


def patches() -> list[Patch]:
    """What to replace in moto, as (owner, attribute name, new value)."""
    return [
        (dynamodb_models, "copy", _CopyKeepingTables),
        (DynamoDBBackend, "transact_write_items", _transact_write_items),
        (BaseJSONSerializer, "_serialize_type_structure", _serialize_type_structure),
    ]


def server_patches() -> list[Patch]:
    """What to replace in moto's server, as (owner, attribute name, new value)."""
    modules = tuple(moto_backends.list_of_moto_modules())
    return [
        (moto_backends, "list_of_moto_modules", lambda: modules),
        (moto_responses, "method_names_from_class", _method_names),
        # moto's events imports `parse` from here for each event: it finds the cached one.
        (jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)),  # type: ignore[attr-defined]
        (sqs_models, "unix_time", _unix_time),
        (sqs_models, "unix_time_millis", _unix_time_millis),
        (SQSBackend, "get_queue_attributes", _get_queue_attributes),
        (SQSBackend, "is_message_valid_based_on_retention_period", _within_retention_period),
    ]


def install() -> None:
    """Apply all the patches for the rest of the process (the local cloud's moto server)."""
    for owner, name, value in [*patches(), *server_patches()]:
        setattr(owner, name, value)


@functools.cache
def _method_names_of(clazz: type) -> tuple[str, ...]:
    return tuple(method_names_from_class(clazz))


def _method_names(clazz: object) -> list[str]:
    return list(_method_names_of(clazz if isinstance(clazz, type) else type(clazz)))


_ORIGINAL_UNIX_TIME = unix_time
_ORIGINAL_UNIX_TIME_MILLIS = unix_time_millis


def _unix_time(dt: datetime | None = None) -> float:
    return time.time() if dt is None else _ORIGINAL_UNIX_TIME(dt)


def _unix_time_millis(dt: datetime | None = None) -> float:
    return time.time() * 1000 if dt is None else _ORIGINAL_UNIX_TIME_MILLIS(dt)


def _get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    """moto's, with the queue's attributes computed once instead of twice per name."""
    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}
    valid_names = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
    invalid_name = next((name for name in attribute_names if name not in valid_names), None)
    if invalid_name or invalid_name == "":
        raise InvalidAttributeName(invalid_name)
    attributes: dict[str, Any] = queue.attributes
    if "All" in attribute_names:
        return attributes
    return {name: attributes[name] for name in attribute_names if attributes.get(name) is not None}


def _within_retention_period(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto's, reading the retention period without computing every attribute of the queue."""
    retention_period: int = self.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    sent_timestamp: int = message.sent_timestamp or 0
    return retention_period + sent_timestamp / 1000 > _unix_time()


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
