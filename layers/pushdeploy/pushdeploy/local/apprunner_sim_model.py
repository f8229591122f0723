"""App Runner's request rules for the simulator, read from botocore's own model of the API.

Requests are checked server-side as App Runner does (required members, types, lengths, ranges, enums,
patterns), because a client over loopback HTTP may skip botocore's client-side validation, which checks
neither patterns nor enums. Smithy patterns are not anchored, so they are searched, not fully matched.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape

if TYPE_CHECKING:
    from botocore.model import ServiceModel

_PY_TYPES: dict[str, type | tuple[type, ...]] = {
    "structure": dict,
    "map": dict,
    "list": list,
    "string": str,
    "integer": int,
    "long": int,
    "boolean": bool,
    "double": (int, float),
    "float": (int, float),
    "timestamp": (int, float, str),
    "blob": str,
}
_MAX_REPORTED = 5


class AppRunnerError(Exception):
    """An App Runner error response: `code` becomes the body's `__type`, `status` the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid_request(message: str) -> AppRunnerError:
    return AppRunnerError("InvalidRequestException", message)


def invalid_state(message: str) -> AppRunnerError:
    return AppRunnerError("InvalidStateException", message)


def not_found(message: str) -> AppRunnerError:
    return AppRunnerError("ResourceNotFoundException", message)


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("apprunner")


def operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


def validate_input(operation: str, params: dict[str, Any]) -> None:
    """Raise InvalidRequestException listing what in `params` breaks the operation's input shape."""
    shape = service_model().operation_model(operation).input_shape
    if shape is None:
        return
    problems = list(_problems(params, shape, ""))
    if problems:
        shown = "; ".join(problems[:_MAX_REPORTED])
        raise invalid_request(f"{len(problems)} validation error(s) detected: {shown}")


def _problems(value: Any, shape: Shape, path: str) -> Iterator[str]:
    expected = _PY_TYPES.get(shape.type_name)
    if expected is not None and (
        not isinstance(value, expected) or (shape.type_name != "boolean" and isinstance(value, bool))
    ):
        yield f"Value at '{path or '$'}' must be of type {shape.type_name}"
        return
    if isinstance(shape, StructureShape):
        yield from _structure_problems(value, shape, path)
    elif isinstance(shape, ListShape):
        yield from _length_problems(len(value), shape, path)
        for index, item in enumerate(value):
            yield from _problems(item, shape.member, f"{path}[{index}]")
    elif isinstance(shape, MapShape):
        for key, item in value.items():
            yield from _problems(key, shape.key, f"{path}.{key}")
            yield from _problems(item, shape.value, f"{path}.{key}")
    elif isinstance(shape, StringShape):
        yield from _string_problems(value, shape, path)
    elif shape.type_name in ("integer", "long"):
        yield from _range_problems(value, shape, path)


def _structure_problems(value: dict[str, Any], shape: StructureShape, path: str) -> Iterator[str]:
    prefix = f"{path}." if path else ""
    for name in shape.required_members:
        if value.get(name) is None:
            yield f"Member '{prefix}{name}' is required"
    # Like App Runner, ignore members the model does not know.
    for name, item in value.items():
        if name in shape.members and item is not None:
            yield from _problems(item, shape.members[name], f"{prefix}{name}")


def _string_problems(value: str, shape: StringShape, path: str) -> Iterator[str]:
    yield from _length_problems(len(value), shape, path)
    enum = shape.enum
    if enum and value not in enum:
        yield f"Value at '{path}' must be one of {', '.join(enum)}"
    pattern = shape.metadata.get("pattern")
    if pattern is not None and _compiled(pattern).search(value) is None:
        yield f"Value at '{path}' must satisfy regular expression pattern: {pattern}"


def _length_problems(length: int, shape: Shape, path: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and length < low:
        yield f"Value at '{path}' must have length greater than or equal to {low}"
    if high is not None and length > high:
        yield f"Value at '{path}' must have length less than or equal to {high}"


def _range_problems(value: int, shape: Shape, path: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        yield f"Value at '{path}' must be greater than or equal to {low}"
    if high is not None and value > high:
        yield f"Value at '{path}' must be less than or equal to {high}"


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# Pagination tokens are opaque to clients; inside they are an index into an append-only list.
_CURSOR_PREFIX = "pushdeploy-sim:"


def encode_token(index: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{index}".encode()).decode()


def decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_request("The provided NextToken is not valid.") from None
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX) :].isdigit():
        raise invalid_request("The provided NextToken is not valid.")
    return int(text[len(_CURSOR_PREFIX) :])
