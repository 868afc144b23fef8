"""Plans by query shape: a cache of plans that serves every query differing from a planned one
only in the literal values of its first ``$filter``.

An app asks the same query again and again with other values (the latest messages of one
author, then of another), and parsing and planning cost more than a small indexed read. The
**shape** of a query is its structure with the first filter's literals abstracted to their
types: stages, operators, dict keys, list lengths, everything outside the first filter and the
arguments of ``$is`` and ``$truthy`` stay as written. Whatever the planner decides (which index,
whether the range is exact, covered, counts keys, skips the sort) depends only on that: on a
literal's type (``1``, ``True`` and ``1.0`` are three types; a range over strings is not one
over numbers), on list lengths (a one-element ``$in`` is an equality), on whether an int fits in
a key (one that does not leaves its field to the filter). A cached plan is re-bound to a new
query of its shape: its first filter compiled again with the new literals, and the key bounds
computed from them (:func:`flume.query.plan.rebind`); the rest of the parsed query is reused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from flume.codec import MAX_DEPTH
from flume.errors import EncodeError, QueryError
from flume.keys import encode
from flume.query.filters import compile_filter, compile_filter_later
from flume.query.parse import parse_query
from flume.query.paths import Path, is_operator
from flume.query.plan import Plan, plan_query, rebind
from flume.query.stages import FilterStage, ParsedQuery

__all__ = ["PlanCache", "query_shape"]

#: Queries larger than this (in items) are planned afresh each time: walking them to make a key
#: costs about what planning them does.
MAX_SHAPE_NODES: Final = 4096

# The shape's token for an int no index key can hold (beyond 64 bits): its field is left to
# the filter, so it plans otherwise than an int that fits.
_BIG_INT: Final = "int beyond 64 bits"
_SCALARS: Final = frozenset({str, int, float, bool, type(None), bytes})
# Operators whose argument is no value but part of the rule's meaning (a kind name, a flag).
_VERBATIM_ARGS: Final = frozenset({"$is", "$truthy"})


class _Unshapeable(Exception):
    """The query holds a type other than the plain ones, or is too large to be worth a key."""


def query_shape(query: Any) -> tuple[tuple[Any, ...], Any] | None:
    """``(shape, first filter rule)`` of ``query`` (the rule None when there is no first
    ``$filter``), or None for a query that is not cached: one holding other types than dict,
    list, tuple, str, int, float, bool, None and bytes (a subclass could compare or encode
    otherwise), larger than :data:`MAX_SHAPE_NODES` items, or cyclic.

    Two queries of equal shapes parse alike but for their first filter's literal values, and
    plan alike but for the key bounds.
    """
    tokens: list[Any] = []
    budget = [MAX_SHAPE_NODES]
    first: Any = None
    try:
        t = type(query)
        if t is list or t is tuple:
            tokens += (t, len(query))
            _spend(budget, len(query))
            for i, stage in enumerate(query):
                if i == 0 and type(stage) is dict and len(stage) == 1 and "$filter" in stage:
                    first = stage["$filter"]
                    tokens += (dict, 1, "$filter")
                    _walk(first, tokens, budget, True)
                else:
                    _walk(stage, tokens, budget, False)
        elif t is dict and len(query) == 1 and "$filter" in query:
            first = query["$filter"]
            tokens += (dict, 1, "$filter")
            _walk(first, tokens, budget, True)
        elif t is dict and not any(map(is_operator, query)):
            first = query  # a lone filter dict
            _walk(first, tokens, budget, True)
        else:
            _walk(query, tokens, budget, False)
    except (_Unshapeable, RecursionError):
        return None
    return tuple(tokens), first


def _spend(budget: list[int], n: int) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise _Unshapeable


def _scalar(value: Any) -> tuple[type, Any]:
    """A scalar as written; floats by repr, which tells ``-0.0`` from ``0.0`` and keeps NaN
    equal to itself."""
    t = type(value)
    if t not in _SCALARS:
        raise _Unshapeable
    return (t, repr(value)) if t is float else (t, value)


def _walk(item: Any, tokens: list[Any], budget: list[int], abstract: bool) -> None:
    """Append ``item``: with ``abstract``, a first-filter rule with its literal values
    abstracted to their types (the arguments of ``_VERBATIM_ARGS`` operators as written);
    otherwise as written."""
    t = type(item)
    if t is dict:
        tokens += (dict, len(item))
        _spend(budget, len(item))
        for k, v in item.items():
            tokens.append(_scalar(k))
            _walk(v, tokens, budget, abstract and k not in _VERBATIM_ARGS)
    elif t is list or t is tuple:
        tokens += (t, len(item))
        _spend(budget, len(item))
        for v in item:
            _walk(v, tokens, budget, abstract)
    elif not abstract:
        tokens.append(_scalar(item))
    elif t is int:
        try:
            encode(item)
        except EncodeError:
            tokens.append(_BIG_INT)
        else:
            tokens.append(int)
    elif t in _SCALARS:
        tokens.append(t)
    else:
        raise _Unshapeable


class PlanCache:
    """Parsed queries and their plans over ``indexes``, by query shape; the last ``size``
    shapes asked are kept. Thread-safe: one cache serves every reader of a view.

    Raises (from :meth:`plan`): QueryError, for a malformed query.
    """

    def __init__(
        self,
        indexes: Mapping[str, tuple[Path, ...]],
        bitmaps: tuple[Path, ...] = (),
        size: int = 256,
    ) -> None:
        self._indexes = indexes
        self._bitmaps = bitmaps
        self._size = size
        self._plans: OrderedDict[tuple[Any, ...], tuple[ParsedQuery, Plan]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._plans)

    def plan(self, query: Any) -> tuple[ParsedQuery, Plan]:
        """``query`` parsed and planned: re-bound from the plan of an earlier query of its
        shape when there is one, else planned afresh (and remembered).

        Raises:
            QueryError: a malformed query (naming the offending part), or one nested too deeply
                to plan on this thread's stack.
        """
        shape = query_shape(query)
        if shape is None:
            return _plan(query, self._indexes, self._bitmaps)
        key, first = shape
        with self._lock:
            cached = self._plans.get(key)
            if cached is not None:
                self._plans.move_to_end(key)
        if cached is not None:
            bound = _bind(cached, first, self._bitmaps)
            if bound is not None:
                return bound
        planned = _plan(query, self._indexes, self._bitmaps)
        with self._lock:
            self._plans[key] = planned
            self._plans.move_to_end(key)
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)
        return planned


def _plan(
    query: Any, indexes: Mapping[str, tuple[Path, ...]], bitmaps: tuple[Path, ...]
) -> tuple[ParsedQuery, Plan]:
    parsed = parse_query(query)
    try:
        return parsed, plan_query(parsed, indexes, bitmaps)
    except RecursionError:
        raise QueryError(
            f"the query is nested too deeply to plan here (flume accepts queries up to "
            f"{MAX_DEPTH} lists/dicts deep, stack permitting): flatten it",
            "query",
        ) from None


def _bind(
    cached: tuple[ParsedQuery, Plan], rule: Any, bitmaps: tuple[Path, ...]
) -> tuple[ParsedQuery, Plan] | None:
    """The cached parse and plan of a query of the same shape, with ``rule`` as the first
    filter (compiled anew) and the key bounds of its literals; None if the plan does not fit."""
    parsed, plan = cached
    first = parsed.first_filter
    if first is None:
        return cached  # nothing in the query was abstracted: it is the cached one
    if plan.exact and not plan.scan:
        # The key range decides this filter, so reads never run it: compile it only if
        # something does (a live read). Its validity is the shape's, which compiled.
        compiled = compile_filter_later(rule, first.position, first.leaves)
    else:
        try:
            compiled = compile_filter(rule, first.position)
        except RecursionError:
            return None  # deeper than this thread's stack: let parse_query say so
    stage = FilterStage(first.position, rule, compiled.match, compiled.leaves)
    bound = ParsedQuery((stage, *parsed.stages[1:]), ({"$filter": rule}, *parsed.source[1:]))
    new_plan = rebind(plan, bound, bitmaps)
    return None if new_plan is None else (bound, new_plan)
