"""Plans by query shape: a plan re-bound from the cache to new literals equals a fresh plan,
and its indexed run equals a full scan (the planner's invariant, through the cache)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_query_invariant import MemoryIndexes, canon, cases, has_collect, scan_run

from flume.errors import EncodeError
from flume.keys import MISSING, encode
from flume.query import execute, parse_query, plan_query
from flume.query.plan import normalise_indexes
from flume.query.shapes import PlanCache, query_shape

_POOLS: dict[Any, list[Any]] = {
    str: ["", "a", "ab", "b", "\u00e9", "zz"],
    bytes: [b"", b"a", b"\x00", b"ab"],
    float: [0.5, -1.5, 2.0, -0.0, float("nan"), float("inf")],
    bool: [True, False],
    int: [-2, 0, 1, 3, 2**53 + 1, -(2**63)],
    "big": [2**64, -(2**63) - 1, 2**70],
}


def _pool(x: Any) -> list[Any] | None:
    if x is None:
        return None
    if type(x) is int:
        try:
            encode(x)
        except EncodeError:
            return _POOLS["big"]
    return _POOLS.get(type(x))


def _sibling(rule: Any, rng: random.Random) -> Any:
    """``rule`` with each literal replaced by another of its type (the same shape)."""
    if type(rule) is dict:
        return {
            k: v if k in ("$is", "$truthy") else _sibling(v, rng) for k, v in rule.items()
        }
    if type(rule) in (list, tuple):
        return type(rule)(_sibling(v, rng) for v in rule)
    pool = _pool(rule)
    return rng.choice(pool) if pool else rule


def _with_first(query: Any, rule: Any) -> Any:
    return [{"$filter": rule}, *query[1:]]


def _has_first(query: Any) -> bool:
    return bool(query) and isinstance(query[0], dict) and "$filter" in query[0]


def _explained(plan: Any) -> dict[str, Any]:
    return {**plan.explain(), "source": repr(plan.query.source)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 2**32))
def test_rebound_plan_equals_fresh_plan_and_scan(case: tuple[Any, ...], seed: int) -> None:
    values, indexes, batch, limit, _hints = case
    rng = random.Random(seed)
    defs = normalise_indexes(indexes)
    memory = MemoryIndexes(indexes, values)
    cache = PlanCache(defs)
    for query in batch:
        if not _has_first(query):
            continue
        for _ in range(2):  # warm the cache with queries of the same shape
            cache.plan(_with_first(query, _sibling(query[0]["$filter"], rng)))
        shapes = len(cache)
        assert query_shape(query) is not None
        parsed, plan = cache.plan(query)
        assert len(cache) == shapes  # served from the cache
        fresh_parsed = parse_query(query)
        fresh = plan_query(fresh_parsed, defs)
        assert _explained(plan) == _explained(fresh)
        _assert_same_first_filter(parsed, fresh_parsed, values)
        for reverse in (False, True):
            entries = memory.read(plan, reverse=reverse)
            got = list(execute(plan.query, entries, reverse=reverse, limit=limit))
            expected = scan_run(query, values, reverse=reverse, limit=limit)
            c = has_collect(query)
            got_c = [canon(x, c) for x in got]
            exp_c = [canon(x, c) for x in expected]
            if parsed.ordered:
                assert got_c == exp_c
            elif limit is None:
                assert sorted(map(repr, got_c)) == sorted(map(repr, exp_c))
            else:
                assert len(got_c) == len(exp_c)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


def _assert_same_first_filter(bound: Any, fresh: Any, values: Any) -> None:
    """The re-bound first filter (maybe compiled only when called) is the fresh one."""
    a, b = bound.first_filter, fresh.first_filter
    assert repr(a.rule) == repr(b.rule) and a.position == b.position
    assert [(x.path, repr(x.rule), x.position) for x in a.leaves] == [
        (x.path, repr(x.rule), x.position) for x in b.leaves
    ]
    for v in values:
        assert a.match(v) == b.match(v)
        for x, y in zip(a.leaves, b.leaves):
            assert x.match(_at(v, x.path)) == y.match(_at(v, y.path))
        assert all(x.match(MISSING) == y.match(MISSING) for x, y in zip(a.leaves, b.leaves))


def test_literal_types_make_different_shapes() -> None:
    shapes = {query_shape({"a": x})[0] for x in (1, True, 1.0, None, "1", b"1", 2**70)}  # type: ignore[index]
    assert len(shapes) == 7
    assert query_shape({"a": {"$in": [1]}}) != query_shape({"a": {"$in": [1, 2]}})
    assert query_shape({"a": {"$is": "string"}})[0] != query_shape({"a": {"$is": "number"}})[0]  # type: ignore[index]
