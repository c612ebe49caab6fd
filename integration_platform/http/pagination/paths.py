"""Dotted paths into a response body (`data.items[0].id`), with errors that say what was there."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from integration_platform.http.errors import ResponseShapeError

_SEGMENT = re.compile(r"^([^\[\]]*)((?:\[\d+\])*)$")


def path_keys(path: str) -> list[str | int]:
    """`data.items[0].id` -> ["data", "items", 0, "id"]; a bare number indexes a list too."""
    keys: list[str | int] = []
    for segment in path.split(".") if path else []:
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(f"{path!r} is not a dotted path (e.g. data.items or data.items[0])")
        name, indexes = match.groups()
        if name:
            keys.append(name)
        keys += [int(i) for i in re.findall(r"\d+", indexes)]
    return keys


def place(keys: list[str | int]) -> str:
    return "the top level" if not keys else repr(".".join(str(k) for k in keys))


def kind_of(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def step(node: Any, key: str | int, done: list[str | int], path: str) -> Any:
    """One lookup, or a ResponseShapeError that says what was there instead."""
    if isinstance(node, Mapping):
        if str(key) in node:
            return node[str(key)]
        there = ", ".join(sorted(map(str, node))) or "none"
        raise ResponseShapeError(
            f"the response has no key {str(key)!r} at {place(done)} (looking up {path!r}); "
            f"the keys there are: {there}. The API may have changed: check the path in the spec"
        )
    if isinstance(node, list) and (isinstance(key, int) or key.isdigit()):
        index = int(key)
        if index < len(node):
            return node[index]
        raise ResponseShapeError(
            f"the list at {place(done)} has {len(node)} item(s), so there is no [{index}] "
            f"(looking up {path!r})"
        )
    raise ResponseShapeError(
        f"expected an object at {place(done)} to look up {str(key)!r} (for {path!r}), "
        f"but found {kind_of(node)}. The API may have changed: check the path in the spec"
    )


def select(body: Any, path: str) -> Any:
    """The value at a dotted path; "" is the body itself. A missing key is a ResponseShapeError
    naming the key and the keys that were there; a null on the way is one too."""
    node, done = body, list[str | int]()
    for key in path_keys(path):
        if node is None and done:
            raise ResponseShapeError(
                f"{place(done)} is null in the response, so {path!r} "
                "cannot be read. The API may have changed"
            )
        node = step(node, key, done, path)
        done.append(key)
    return node


def select_optional(body: Any, path: str) -> Any:
    """Like select, but a missing key or a null on the way is None (e.g. "no next cursor")."""
    node, done = body, list[str | int]()
    for key in path_keys(path):
        if node is None or (isinstance(node, Mapping) and str(key) not in node):
            return None
        node = step(node, key, done, path)
        done.append(key)
    return node


def count_at(body: Any, path: str, what: str) -> int | None:
    """A total from the response: None when the API sends null (it does not know)."""
    value = select(body, path)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    whole = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and float(value).is_integer()
        and value >= 0
    )
    if whole:
        return int(value)
    raise ResponseShapeError(
        f"{what} at {path!r} should be a whole number, but it is {value!r}: check "
        "the pagination path in the spec"
    )
