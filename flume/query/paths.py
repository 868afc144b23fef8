"""Positions in a query (for error messages) and paths in a stored value.

Two small ideas shared by every part of the query language:

- An error *position* is a string such as ``query[1].$filter.value.ts.$gt``: list items as
  ``[i]``, dict keys after a dot (keys that would read ambiguously are quoted: ``["a.b"]``).
- A value *path* is a tuple of dict keys; :func:`get_path` follows it the way an index does
  (a step into anything but a dict gives :data:`~flume.keys.MISSING`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from flume.keys import MISSING

__all__ = ["Path", "at", "format_path", "get_path", "is_operator"]

Path = tuple[Any, ...]
"""A path of dict keys into a value; ``()`` is the value itself."""

# A key shown bare after a dot must not be confused with the punctuation of a position.
_PLAIN_KEY = re.compile(r"^[^.\[\]\s\"']+$")


def at(position: str, step: Any) -> str:
    """The position of ``step`` (a list index or a dict key) inside the part at ``position``."""
    if isinstance(step, int) and not isinstance(step, bool):
        return f"{position}[{step}]"
    if isinstance(step, str) and _PLAIN_KEY.match(step):
        return f"{position}.{step}"
    if isinstance(step, str):
        return f"{position}[{json.dumps(step, ensure_ascii=False)}]"
    return f"{position}[{step!r}]"  # a non-str dict key (Python callers only)


def format_path(path: Sequence[Any]) -> str:
    """A readable dotted form of a value path, e.g. ``value.content.type``; ``()`` is ``.``."""
    if not path:
        return "."
    text = at("", path[0])
    for step in path[1:]:
        text = at(text, step)
    return text.lstrip(".")


def is_operator(key: Any) -> bool:
    """True for a ``$`` key (an operator, a stage or a reducer name), False for a plain key."""
    return isinstance(key, str) and key.startswith("$")


def get_path(value: Any, path: Sequence[Any]) -> Any:
    """The value at ``path`` inside ``value``, or MISSING when a step meets a non-dict or no key.

    This is how an index reads its fields, and what a ``$map`` path of keys gives.
    """
    for key in path:
        if not isinstance(value, dict):
            return MISSING
        value = value.get(key, MISSING)
    return value
