"""Bitmap indexes of Query views: random queries over views with bitmap fields answer what a
full scan answers (with small chunks, so that answers span many chunks), also after a rebuild,
across a reopen and in a reader process; and the chunks are canonical."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flume
from flume.errors import InvalidArgumentError, InvalidTypeError
from flume.logs import MemoryLog
from flume.query import execute, parse_query, plan_query
from flume.query.plan import normalise_bitmaps, normalise_indexes
from flume.query.shapes import PlanCache
from flume.views import Query
from tests.test_query_invariant import any_values, canon
from tests.test_query_shapes import _sibling

BITMAPS = [["a"], ["d", "e"], ["b"]]
INDEXES = {"ab": [["a"], ["b"]], "c": [["c"]]}
VALUES_POOL = [None, True, False, 0, 1, 1.0, 2, -0.0, "", "a", "b", b"a", [1], [1.0], {"x": 1}]
leaf = st.one_of(
    st.sampled_from(VALUES_POOL).filter(lambda v: not isinstance(v, dict)),
    st.sampled_from(VALUES_POOL).map(lambda v: {"$eq": v}),
    st.lists(st.sampled_from(VALUES_POOL), max_size=3).map(lambda vs: {"$in": vs}),
    st.sampled_from(VALUES_POOL).map(lambda v: {"$eq": v, "$ne": 2}),
)
TAILS: list[list[dict[str, Any]]] = [
    [], [{"$reduce": {"$count": True}}], [{"$map": "c"}], [{"$sort": ["c"]}],
    [{"$reduce": {"a": True, "n": {"$count": True}}}],
]


def _query(draw: st.DrawFn) -> list[dict[str, Any]]:
    rule: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(["a", "b", "de", "c"]), min_size=1, max_size=3, unique=True)):
        value = draw(leaf) if path != "c" else draw(st.sampled_from([1, {"$ne": 1}]))
        if path == "de":
            rule["d"] = {"e": value}
        else:
            rule[path] = value
    return [{"$filter": rule}, *draw(st.sampled_from(TAILS))]


queries = st.composite(_query)()


def _same(got: list[Any], expected: list[Any], query: Any, limit: int | None) -> bool:
    g = [canon(x, False) for x in got]
    e = [canon(x, False) for x in expected]
    if parse_query(query).ordered:
        return g == e
    if limit is None:
        return Counter(g) == Counter(e)
    return len(g) == len(e)


def _check(db: flume.Flume, values: list[Any], batch: list[Any]) -> None:
    rng = random.Random(len(values))
    for query in batch:
        # A query of the same shape first: the read below re-binds its cached plan.
        db.q.explain([{"$filter": _sibling(query[0]["$filter"], rng)}, *query[1:]])
        for reverse in (False, True):
            for limit in (None, 3):
                got = list(db.q.read(query, reverse=reverse, limit=limit))
                entries = list(enumerate(values))
                if reverse:
                    entries.reverse()
                expected = list(execute(parse_query(query), entries, reverse=reverse, limit=limit))
                assert _same(got, expected, query, limit), (query, db.q.explain(query))


def _view() -> Query:
    view = Query(indexes=INDEXES, bitmaps=BITMAPS)
    view.chunk_bits = 3  # answers span many chunks
    return view


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_values, min_size=5, max_size=60), st.lists(queries, min_size=3, max_size=6))
def test_bitmap_plans_equal_a_full_scan(values: list[Any], batch: list[Any]) -> None:
    db = flume.Flume(MemoryLog())
    try:
        db.use("q", _view())
        half = len(values) // 2
        db.append_many(values[:half])
        for v in values[half:]:
            db.append(v)  # batches of one touch one chunk each
        _check(db, values, batch)
        db.rebuild("q")
        _check(db, values, batch)
    finally:
        db.close()


def test_bitmaps_survive_a_reopen_and_serve_readers(tmp_path: Any) -> None:
    r = random.Random(7)
    values = [{"a": r.choice(VALUES_POOL[:10]), "b": r.choice("xyz"), "c": i % 3} for i in range(300)]
    batch = [[{"$filter": {"a": "a", "b": "x"}}, {"$reduce": {"$count": True}}],
             [{"$filter": {"a": {"$in": [1, True]}}}], [{"$filter": {"b": "y", "c": 1}}]]
    with flume.open(str(tmp_path)) as db:
        db.use("q", Query(indexes=INDEXES, bitmaps=BITMAPS))
        db.append_many(values)
        assert db.q.explain(batch[0])["bitmap"] == ['a == "a"', 'b == "x"']
        _check(db, values, batch)
    with flume.open(str(tmp_path), readonly=True) as reader:
        assert reader.q.view.bitmaps == (("a",), ("d", "e"), ("b",))
        assert reader.q.explain(batch[0])["count_keys"] is True
        _check(reader, values, batch)


def test_flume_equality_of_bitmap_values() -> None:
    db = flume.Flume(MemoryLog())
    db.use("q", Query(indexes={}, bitmaps=["a"]))
    db.append_many([{"a": 1}, {"a": 1.0}, {"a": True}, {"a": [1]}, {"a": {"x": 1, "y": 2}},
                    {"a": {"y": 2, "x": 1}}, {"b": 1}, "not a dict"])
    count = [{"$reduce": {"$count": True}}]
    assert list(db.q.read([{"$filter": {"a": 1}}, *count])) == [2]
    assert list(db.q.read([{"$filter": {"a": True}}, *count])) == [1]
    assert list(db.q.read([{"$filter": {"a": [1.0]}}, *count])) == [1]
    assert list(db.q.read([{"$filter": {"a": {"$eq": {"x": 1, "y": 2.0}}}}, *count])) == [2]
    assert list(db.q.read([{"$filter": {"a": {"$in": []}}}, *count])) == [0]
    db.close()


def test_chunks_are_canonical_whatever_the_batches() -> None:
    values = [{"a": i % 5} for i in range(500)]
    one, many = flume.Flume(MemoryLog()), flume.Flume(MemoryLog())
    one.use("q", _view())
    many.use("q", _view())
    one.append_many(values)
    for v in values:
        many.append(v)
    one.q.ready()
    many.q.ready()
    def fam(db: flume.Flume) -> list[tuple[bytes, bytes]]:
        return list(db.views["q"].view.ctx.family.scan(b"\xff", None))
    assert fam(one) == fam(many) and fam(one)
    one.close()
    many.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(queries, min_size=1, max_size=4), st.integers(0, 2**32))
def test_rebound_bitmap_plan_equals_fresh_plan(batch: list[Any], seed: int) -> None:
    """A bitmap plan re-bound to new literals has the terms, exactness, cost and choice of a
    fresh plan (its execution against a full scan: test_bitmap_plans_equal_a_full_scan)."""
    rng = random.Random(seed)
    defs = normalise_indexes(INDEXES)
    bitmaps = normalise_bitmaps(BITMAPS)
    cache = PlanCache(defs, bitmaps)
    for query in batch:
        for _ in range(2):
            cache.plan([{"$filter": _sibling(query[0]["$filter"], rng)}, *query[1:]])
        parsed, plan = cache.plan(query)
        fresh = plan_query(parse_query(query), defs, bitmaps)
        assert plan.explain() == fresh.explain()
        assert plan.bitmap == fresh.bitmap


@pytest.mark.parametrize("bad", ["a", [["a"], ["a"]], [[1]], 5])
def test_bad_bitmap_declarations_are_refused(bad: Any) -> None:
    with pytest.raises((InvalidTypeError, InvalidArgumentError)):
        Query(indexes={}, bitmaps=bad)


def test_declaring_bitmaps_changes_the_fingerprint_only_when_there_are_some() -> None:
    plain = Query(indexes={"a": [["a"]]})
    assert plain.definition() == {"indexes": {"a": [["a"]]}}
    assert Query(indexes={"a": [["a"]]}, bitmaps=[]).fingerprint() == plain.fingerprint()
    assert Query(indexes={"a": [["a"]]}, bitmaps=["a"]).fingerprint() != plain.fingerprint()


def test_cli_declares_and_lists_bitmap_fields(tmp_path: Any) -> None:
    import json

    from tests.test_cli import error, ok

    directory = str(tmp_path / "db")
    ok("append", directory, input="".join(
        json.dumps({"value": {"type": t, "author": a}}) + "\n" for t, a in
        [("vote", "@a"), ("post", "@a"), ("vote", "@b"), ("vote", "@a")]))
    ok("index", "add", directory, "by_author", "value.author")
    ok("index", "bitmap", directory, "value.type", "value.author")
    listed = [json.loads(line) for line in ok("index", "list", directory).splitlines()]
    assert {"view": "query", "bitmap": "value.type"} in listed
    assert {"view": "query", "index": "by_author", "paths": ["value.author"]} in listed
    query = json.dumps([{"$filter": {"value": {"type": "vote", "author": "@a"}}},
                        {"$reduce": {"$count": True}}])
    assert json.loads(ok("query", directory, query)) == 2
    assert json.loads(ok("query", directory, query, "--explain"))["bitmap"] == [
        'value.type == "vote"', 'value.author == "@a"']
    assert "given twice" in error("index", "bitmap", directory, "value.x", "value.x")


def test_bitmap_plans_of_one_shape_answer_each_query_with_its_own_literals() -> None:
    """The plan cache re-binds a query's literals into the plan of an earlier query of the same
    shape; a bitmap plan's terms hold literal values, so each must answer for its own."""
    db = flume.Flume(MemoryLog())
    db.use("q", Query(indexes={}, bitmaps=["t", "a"]))
    values = [{"t": i % 5, "a": i % 3} for i in range(200)]
    db.append_many(values)
    for t in range(6):
        for a in range(4):
            query = [{"$filter": {"t": t, "a": a}}, {"$reduce": {"$count": True}}]
            expected = sum(1 for v in values if v["t"] == t and v["a"] == a)
            assert db.q.explain(query)["bitmap"], query
            assert list(db.q.read(query)) == [expected], query
            in_query = [{"$filter": {"t": {"$in": [t, t + 1]}, "a": a}}]
            seqs = [e.seq for e in db.q.read(in_query, seqs=True)]
            assert seqs == [i for i, v in enumerate(values) if v["t"] in (t, t + 1) and v["a"] == a]
    db.close()
