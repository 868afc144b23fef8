"""Views that can be rebuilt from what is stored: a Query view's definition is data, so a
process that opens the directory can mount it without the code that declared it."""

from __future__ import annotations

from typing import Any

from flume.views.base import View


def view_from_meta(meta: dict[str, Any]) -> View | None:
    """The view a stored meta record describes, or None for views defined by code."""
    if meta.get("kind") != "query" or not isinstance(meta.get("definition"), dict):
        return None
    from flume.views.query import Query

    return Query.from_definition(meta["definition"], version=int(meta.get("version", 1)))
