"""Structural mutations of JSON documents, by path: drop, retype, null, empty, huge, deep, duplicate.
Each returns a new document (the input is never changed)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

from tests.fuzz import values

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a node below `value` (object keys and list positions), parents before children."""
    found: list[Path] = []
    children: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        path = (*prefix, key)
        found.append(path)
        found.extend(paths(child, path))
    return found


def get(document: Any, path: Path) -> Any:
    for key in path:
        document = document[key]
    return document


def exists(document: Any, path: Path) -> bool:
    try:
        get(document, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def replaced(document: Any, path: Path, value: Any) -> Any:
    """A copy of `document` with the node at `path` set to `value` (its parents made when missing)."""
    copied = copy.deepcopy(document)
    if not path:
        return value
    parent = copied
    for key in path[:-1]:
        if isinstance(parent, dict) and not isinstance(parent.get(key), dict | list):
            parent[key] = {}
        parent = parent[key]
    parent[path[-1]] = value
    return copied


def dropped(document: Any, path: Path) -> Any:
    """A copy of `document` without the node at `path`."""
    copied = copy.deepcopy(document)
    if not exists(copied, path):
        return copied
    parent = get(copied, path[:-1])
    del parent[path[-1]]
    return copied


Mutation = Callable[[random.Random, Any, Path], Any]


def drop(rng: random.Random, document: Any, path: Path) -> Any:
    return dropped(document, path)


def retype(rng: random.Random, document: Any, path: Path) -> Any:
    current = get(document, path) if exists(document, path) else None
    return replaced(document, path, values.other_type(rng, current))


def nullify(rng: random.Random, document: Any, path: Path) -> Any:
    return replaced(document, path, None)


def empty(rng: random.Random, document: Any, path: Path) -> Any:
    return replaced(document, path, rng.choice(("", [], {}, 0)))


def unicode(rng: random.Random, document: Any, path: Path) -> Any:
    return replaced(document, path, values.unicode_text(rng))


def huge(rng: random.Random, document: Any, path: Path) -> Any:
    return replaced(document, path, values.huge_text(rng, high=50_000))


def nest(rng: random.Random, document: Any, path: Path) -> Any:
    return replaced(document, path, values.deep(rng, rng.choice((5, 50, 200))))


def list_for_object(rng: random.Random, document: Any, path: Path) -> Any:
    current = get(document, path) if exists(document, path) else None
    wrapped = list(current.values()) if isinstance(current, dict) else [current]
    return replaced(document, path, wrapped)


MUTATIONS: tuple[Mutation, ...] = (drop, retype, nullify, empty, unicode, huge, nest, list_for_object)


def mutate_randomly(rng: random.Random, document: Any, count: int) -> tuple[Any, list[str]]:
    """`count` random mutations anywhere in `document`; the result and what was done."""
    done: list[str] = []
    for _ in range(count):
        candidates = paths(document)
        if not candidates:
            break
        path = rng.choice(candidates)
        mutation = rng.choice(MUTATIONS)
        document = mutation(rng, document, path)
        done.append(f"{mutation.__name__} {'.'.join(map(str, path))}")
    return document, done


def with_duplicate_key(document: dict[str, Any], key: str, junk: Any, junk_last: bool) -> str:
    """The object's JSON text with `key` given twice: the junk value after the real one (JSON readers
    keep the last) or before it."""
    text = json.dumps(document)
    extra = json.dumps({key: junk})[1:-1]
    if junk_last:
        return text[:-1] + ", " + extra + "}"
    return "{" + extra + ", " + text[1:]
