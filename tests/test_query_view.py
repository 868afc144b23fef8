"""The Query view on real stores: what a read through the view yields equals a full scan of
the log, for random data, indexes and queries (the planner invariant, end to end), and the
key-count path of an exactly indexed ``$count`` equals counting the records."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from test_query_invariant import canon, cases, has_collect, scan_run

import flume
from flume.query import parse_query
from flume.views import Query


def _check_view(db: flume.Flume, values: list[Any], batch: list[Any], limit: int | None) -> None:
    for query in batch:
        for reverse in (False, True):
            for lim in (None, limit):
                got = list(db.q.read(query, reverse=reverse, limit=lim))
                expected = scan_run(query, values, reverse=reverse, limit=lim)
                sort_lists = has_collect(query)
                got_c = [canon(x, sort_lists) for x in got]
                expected_c = [canon(x, sort_lists) for x in expected]
                explain = db.q.explain(query)
                if parse_query(query).ordered:
                    assert got_c == expected_c, explain
                elif lim is None:
                    assert Counter(got_c) == Counter(expected_c), explain
                else:
                    everything = Counter(canon(x, sort_lists) for x in scan_run(query, values))
                    assert len(got_c) == len(expected_c), explain
                    assert not Counter(got_c) - everything, explain


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases())
def test_view_reads_equal_a_full_scan_in_memory(case: tuple[Any, ...]) -> None:
    values, indexes, batch, limit, _ = case
    with flume.Flume(flume.MemoryLog()) as db:
        db.use("q", Query(indexes=indexes))
        db.append_many(values)
        _check_view(db, values, batch, limit)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases())
def test_view_reads_equal_a_full_scan_on_disk(tmp_path_factory: pytest.TempPathFactory, case: tuple[Any, ...]) -> None:
    values, indexes, batch, limit, _ = case
    with flume.open(tmp_path_factory.mktemp("db")) as db:
        db.use("q", Query(indexes=indexes))
        db.append_many(values)
        _check_view(db, values, batch, limit)


VOTES = [{"type": t, "ts": i, "n": i % 7} for i, t in enumerate(["vote", "post", "vote", "about"] * 50)]
COUNT_QUERIES = [
    [{"$filter": {"type": "vote"}}, {"$reduce": {"$count": True}}],
    [{"$filter": {"type": {"$in": ["post"]}}}, {"$reduce": {"$count": True}}],
    [{"$filter": {"type": "vote", "ts": {"$gte": 10, "$lt": 100}}}, {"$reduce": {"$count": True}}],
    [{"$filter": {"type": {"$prefix": "v"}}}, {"$reduce": {"$count": True}}],
    [{"$filter": {"type": {"$is": "string"}}}, {"$reduce": {"$count": True}}],
    [{"$filter": {"type": "nothing"}}, {"$reduce": {"$count": True}}],
]


@pytest.mark.parametrize("query", COUNT_QUERIES)
@pytest.mark.parametrize("on_disk", [False, True])
def test_exact_count_is_a_count_of_keys(tmp_path: Path, query: Any, on_disk: bool) -> None:
    db = flume.open(tmp_path / "db") if on_disk else flume.Flume(flume.MemoryLog())
    with db:
        db.use("q", Query(indexes={"type_ts": [["type"], ["ts"]]}))
        db.append_many(VOTES)
        plan = db.q.explain(query)
        assert plan["index"] == "type_ts" and plan["exact"] and plan["covered"]
        assert list(db.q.read(query)) == scan_run(query, VOTES)
        assert list(db.q.read(query, limit=0)) == []


def test_exact_count_of_an_empty_view_is_zero() -> None:
    with flume.Flume(flume.MemoryLog()) as db:
        db.use("q", Query(indexes={"type_ts": [["type"], ["ts"]]}))
        assert list(db.q.read(COUNT_QUERIES[0])) == [0]


def test_inexact_filters_are_not_counted_from_keys() -> None:
    with flume.Flume(flume.MemoryLog()) as db:
        db.use("q", Query(indexes={"type_ts": [["type"], ["ts"]]}))
        db.append_many(VOTES)
        for query in (
            [{"$filter": {"type": "vote", "n": 3}}, {"$reduce": {"$count": True}}],
            [{"$filter": {"type": {"$ne": "vote"}}}, {"$reduce": {"$count": True}}],
            [{"$filter": {"type": "vote", "ts": {"$gt": 1, "$ne": 8}}}, {"$reduce": {"$count": True}}],
        ):
            assert not db.q.explain(query)["exact"]
            assert list(db.q.read(query)) == scan_run(query, VOTES)


def test_covered_reads_keep_number_types() -> None:
    values = [{"t": 1.0, "x": 1}, {"t": 1, "x": 2}, {"t": math.nan, "x": 3}, {"t": -0.0}, {"t": 2**64 - 1}]
    with flume.Flume(flume.MemoryLog()) as db:
        db.use("q", Query(indexes={"t": [["t"]]}))
        db.append_many(values)
        query = [{"$filter": {"t": {"$is": "number"}}}, {"$map": "t"}]
        assert db.q.explain(query)["covered"]
        assert sorted(map(repr, db.q.read(query))) == sorted(map(repr, scan_run(query, values)))
