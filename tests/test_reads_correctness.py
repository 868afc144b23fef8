"""Reads that must give the scan's answer, exactly once, without leaking what they open
(issue 11: items 2, 3, 4, 6, 7, 10, 13)."""

from __future__ import annotations

import gc
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import flume
from flume import codec, keys
from flume.errors import EncodeError, QueryError
from flume.views import Index, Query


def _scan(db: flume.Flume, query: Any, **options: Any) -> list[Any]:
    """The answer of a full scan: a Query view without indexes."""
    if "scan" not in db.views:
        db.use("scan", Query(indexes={}))
    return list(db.scan.read(query, **options))


def _items(items: list[Any]) -> list[str]:
    """The items as sorted reprs (which show dict key order), collected lists flattened."""
    if len(items) == 1 and isinstance(items[0], list):
        items = items[0]
    return sorted(repr(x) for x in items)


@pytest.fixture(params=["memory", "disk"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    d = flume.Flume(flume.MemoryLog()) if request.param == "memory" else flume.open(tmp_path / "db")
    yield d
    d.close()


# -- item 2: a $count of a path is not the exact-count shortcut ---------------------------------


def test_count_of_a_path_is_not_a_count_of_keys(db: flume.Flume) -> None:
    db.use("q", Query(indexes={"a": [["a"]]}))
    db.append_many([{"a": 1, "v": [1, 2]}, {"a": 1, "v": [1]}, {"a": 1}, {"a": 2, "v": [0, 0]}])
    for rule, count_keys in (({"$count": True}, True), ({"$count": 1}, False)):
        query = [{"$filter": {"a": 1}}, {"$reduce": rule}]
        assert list(db.q.read(query)) == _scan(db, query), rule
        assert db.q.explain(query)["count_keys"] is count_keys
    # The plan cache keeps 1, True and 1.0 apart.
    for rule in ({"$count": 1}, {"$count": True}, {"$count": 1}):
        query = [{"$filter": {"a": 1}}, {"$reduce": rule}]
        assert list(db.q.read(query)) == _scan(db, query), rule


def test_plan_cache_keeps_apart_queries_equal_in_python() -> None:
    with flume.Flume(flume.MemoryLog()) as db:
        db.use("q", Query(indexes={"a": [["a"]]}))
        db.append_many([{"a": 1, "b": [1, 2]}, {"a": True, "b": [3]}, {"a": 1.0}])
        for query in ({"a": True}, {"a": 1}, {"a": 1.0}, {"a": True}, [{"$map": 1}], [{"$map": True}]):
            assert list(db.q.read(query)) == _scan(db, query), query


# -- item 3: covered answers keep the stored key order ------------------------------------------


def test_covered_answers_keep_dict_key_order(db: flume.Flume) -> None:
    db.use("q", Query(indexes={"d": [["d"]], "de": [["d", "e"], ["n"]]}))
    values = [
        {"d": {"z": 1, "b": 2}, "n": 1},
        {"d": {"e": {"y": 1.0, "a": [{"q": 0, "p": -0.0}]}, "c": 3}, "n": 2},
        {"d": {"b": {"z": {}, "a": 2}, "a": 1}, "n": 3},
        {"d": {1: "x", "a": 2, None: 3}, "n": 4},
    ]
    db.append_many(values)
    for query in (
        [{"$filter": {"d": {"$is": "object"}}}, {"$map": "d"}],
        [{"$filter": {"d": {"$is": "object"}}}, {"$reduce": {"$collect": "d"}}],
        [{"$filter": {"d": {"e": {"$is": "object"}}}}, {"$map": ["d", "e"]}],
    ):
        assert db.q.explain(query)["covered"], query
        for reverse in (False, True):
            # The query fixes no order: compare the items, each exactly (key order included).
            got = _items(list(db.q.read(query, reverse=reverse)))
            assert got == _items(_scan(db, query, reverse=reverse)), query
    assert [list(v["d"].items()) for v in [db.get(i) for i in range(4)]] == [
        list(v["d"].items()) for v in values
    ]


def test_key_hints_restore_dict_order_and_keep_key_order() -> None:
    cases: list[Any] = [
        {"z": 1, "b": 2},
        {"b": {"z": 2.0, "a": -0.0}, "a": [{"y": 1, "x": 2}, 3.0]},
        [{"c": 1, "a": 2, "b": 3}, {"b": 1, "a": 2}],
        {(2, 1): {"y": 1, "x": 1}, (1, 2): 0},
    ]
    for value in cases:
        hint = keys.type_hint((value, "s"))
        back = keys.decode_tuple(keys.encode_tuple((value, "s")), hint)
        assert repr(back) == repr((value, "s"))
        assert repr(keys.decode(keys.encode(value), keys.type_hint(value))) == repr(value)
    # Ordering is unchanged: key order plays no part in flume order.
    assert keys.encode({"z": 1, "b": 2}) == keys.encode({"b": 2, "z": 1})


def test_index_keys_keep_dict_key_order(db: flume.Flume) -> None:
    db.use("idx", Index(lambda v: v["k"]))
    db.append({"k": {"z": 1, "b": 2}})
    (entry,) = list(db.idx.read())
    assert list(entry.key.items()) == [("z", 1), ("b", 2)]


# -- item 4: a live read yields each entry once -------------------------------------------------


def test_live_index_read_does_not_repeat_entries_indexed_before_the_first_next(db: flume.Flume) -> None:
    db.use("idx", Index(lambda v: v["k"]))
    db.append({"k": 0})
    stream = db.idx.read(live=True)
    db.append({"k": 1})
    db.idx.ready()
    db.append({"k": 2})
    db.idx.ready()
    got = [next(stream).seq for _ in range(3)]
    db.append({"k": 3})
    got.append(next(stream).seq)
    stream.close()
    assert got == [0, 1, 2, 3]


def test_live_query_read_does_not_repeat_entries_indexed_before_the_first_next(db: flume.Flume) -> None:
    db.use("q", Query(indexes={"k": [["k"]]}))
    db.append({"k": 0})
    stream = db.q.read({"k": {"$gte": 0}}, live=True, seqs=True)
    db.append({"k": 1})
    db.q.ready()
    db.append({"k": 2})
    got = [next(stream).seq for _ in range(3)]
    db.append({"k": 3})
    got.append(next(stream).seq)
    stream.close()
    assert got == [0, 1, 2, 3]


def test_live_index_read_yields_a_repeated_key_once_like_the_stored_index(db: flume.Flume) -> None:
    db.use("idx", Index(lambda v: [v, v, [v], [v], v]))
    db.append(1)
    live = db.idx.read(live=True)
    db.append(2)
    got = [next(live) for _ in range(4)]
    db.append(3)
    got += [next(live) for _ in range(2)]
    live.close()
    stored = list(db.idx.read())
    assert sorted((repr(e.key), e.seq) for e in got) == sorted((repr(e.key), e.seq) for e in stored)
    assert len(stored) == 6


def test_live_reads_with_threads_appending_see_every_entry_once(db: flume.Flume) -> None:
    db.use("idx", Index(lambda v: v))
    db.use("q", Query(indexes={"n": [["n"]]}))
    n = 300
    done = threading.Event()

    def writer() -> None:
        for i in range(n):
            db.append({"n": i} if i % 2 else i)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    try:
        rounds = 0
        while not done.is_set() or rounds < 3:
            rounds += 1
            idx_live = db.idx.read(live=True)
            q_live = db.q.read(None, live=True, seqs=True)
            last = db.since.value
            target = min(last + 5, n - 1)
            seen_idx = _take_until(idx_live, target, lambda e: e.seq, done, db)
            seen_q = _take_until(q_live, target, lambda e: e.seq, done, db)
            for seen in (seen_idx, seen_q):
                assert len(seen) == len(set(seen)), seen
                assert set(range(target + 1)) <= set(seen)
    finally:
        t.join()


def _take_until(stream: Any, target: int, seq_of: Any, done: threading.Event, db: flume.Flume) -> list[int]:
    seen: list[int] = []
    with stream:
        while True:
            if done.is_set() and db.since.value < target:
                return seen
            s = seq_of(next(stream))
            seen.append(s)
            if s >= target and set(range(target + 1)) <= set(seen):
                # one more append proves nothing older comes again
                return seen


# -- item 6: abandoned streams are released -----------------------------------------------------


def test_abandoned_reads_hold_nothing(db: flume.Flume) -> None:
    db.use("idx", Index(lambda v: v["n"]))
    db.use("q", Query(indexes={"n": [["n"]]}))
    db.append_many([{"n": i} for i in range(50)])
    for _ in range(100):
        for _e in db.stream():
            break
        for _e in db.stream(live=True):
            break
        for _e in db.idx.read():
            break
        for _e in db.idx.read(live=True):
            break
        for _e in db.q.read(None, limit=3):
            break
        for _e in db.q.read({"n": {"$gte": 1}}, live=True):
            break
        db.q.read(None, live=True)  # never iterated
        db.idx.read(live=True, old=False)
    gc.collect()
    assert len(db.log._streams) == 0
    # db.close() still ends a live stream someone holds.
    live = db.stream(live=True, old=False)
    db.close()
    assert list(live) == []


# -- item 7: the plan cache under threads -------------------------------------------------------


def test_plan_cache_is_thread_safe() -> None:
    # Switch threads as often as possible, so that races show within a short run.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _hammer_plans()
    finally:
        sys.setswitchinterval(old_interval)


def _hammer_plans() -> None:
    with flume.Flume(flume.MemoryLog()) as db:
        db.use("q", Query(indexes={"a": [["a"]]}))
        errors: list[BaseException] = []

        def hammer(k: int) -> None:
            try:
                for i in range(600):
                    query = {"a": k * 10_000 + i}
                    assert db.q.explain(query)["index"] == "a"
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


# -- item 10: a limited Index read looks up about `limit` values first --------------------------


class CountingLog(flume.MemoryLog):
    """A MemoryLog that records how many values each lookup asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[int] = []

    def get_many(self, seqs: Sequence[int]) -> list[Any]:
        self.lookups.append(len(seqs))
        return super().get_many(seqs)


def test_limited_index_read_looks_up_few_values() -> None:
    log = CountingLog()
    with flume.Flume(log) as db:
        db.use("idx", Index(lambda v: ("k", v)))
        db.append_many(list(range(1000)))
        db.idx.ready()
        log.lookups.clear()
        got = list(db.idx.read(prefix="k", reverse=True, limit=3))
        assert [e.value for e in got] == [999, 998, 997]
        assert log.lookups == [3]
        log.lookups.clear()
        assert len(list(db.idx.read())) == 1000
        assert log.lookups[0] == 16 and max(log.lookups) <= 1024


# -- item 13: one depth limit --------------------------------------------------------------------


def _nested(n: int, leaf: Any = 1, kind: str = "list") -> Any:
    v = leaf
    for i in range(n):
        v = [v] if kind == "list" else {"k": v, "j": i} if kind == "dict" else ([v] if i % 2 else {"x": v})
    return v


def test_values_at_the_depth_limit_are_stored_and_indexed(db: flume.Flume) -> None:
    db.use("q", Query(indexes={"a": [["a"]], "b": [["b"], ["a"]]}))
    db.use("idx", Index(lambda v: v["a"]))
    limit = codec.MAX_DEPTH
    for kind in ("list", "dict", "mixed"):
        value = {"a": _nested(limit - 1, kind=kind), "b": kind}  # the outer dict is one level
        seq = db.append(value)
        assert db.get(seq) == value
        query = [{"$filter": {"b": kind}}, {"$map": "a"}]
        assert db.q.read(query, limit=1).__next__() == value["a"]
        assert [e.seq for e in db.idx.read() if e.seq == seq] == [seq]
    for kind in ("list", "dict", "mixed"):
        too_deep = {"a": _nested(limit, kind=kind)}
        before = db.since.value
        with pytest.raises(EncodeError, match=str(limit)):
            db.append(too_deep)
        with pytest.raises(EncodeError, match=str(limit)):
            db.append_many([1, too_deep])
        assert db.since.value == before
    db.q.ready()
    db.idx.ready()
    assert {v["state"] for v in db.status()["views"].values()} == {"ready"}


def test_keys_encode_every_value_the_codec_accepts() -> None:
    for kind in ("list", "dict", "mixed"):
        value = _nested(codec.MAX_DEPTH, kind=kind)
        codec.encode(value)
        for encoded in (keys.encode(value), keys.encode_tuple((value, 1))):
            assert keys.decode_tuple(encoded, keys.type_hint((value,)))[0] == value
        assert keys.encode(value) == keys.encode(json.loads(json.dumps(value)))
        with pytest.raises(EncodeError, match=str(codec.MAX_DEPTH)):
            keys.encode([value])
        with pytest.raises(EncodeError, match=str(codec.MAX_DEPTH)):
            codec.encode([value])


@pytest.mark.parametrize("depth", [50, codec.MAX_DEPTH, codec.MAX_DEPTH + 1, 900])
def test_deep_queries_are_answered_or_refused_naming_the_limit(depth: int) -> None:
    with flume.Flume(flume.MemoryLog()) as db:
        db.use("q", Query(indexes={"a": [["a"]]}))
        db.append({"a": _nested(min(depth, codec.MAX_DEPTH) - 1)})
        rule: Any = {"$eq": 1}
        for _ in range(depth - 2):  # {"a": ...} around it makes it depth deep
            rule = {"$not": rule}
        mapped: Any = "a"
        for _ in range(depth - 2):  # [{"$map": ...}] around it makes it depth deep
            mapped = {"x": mapped}
        queries = [{"a": rule}, {"a": _nested(depth - 1)}, [{"$map": mapped}], [{"$sort": ["a"]}],
                   [{"$reduce": {"a": "a", "n": {"$count": True}}}]]
        for query in queries:
            if depth > codec.MAX_DEPTH and query not in queries[3:]:
                with pytest.raises(QueryError, match=str(codec.MAX_DEPTH)):
                    list(db.q.read(query))
                with pytest.raises(QueryError, match=str(codec.MAX_DEPTH)):
                    db.q.explain(query)
            else:
                # Within the limit: answered, whatever the query's shape.
                list(db.q.read(query))
                db.q.explain(query)


# -- issue 14: the exact-range read of a few values -----------------------------------------------


def test_exact_limited_read_is_the_snapshot_the_read_began_on(db: flume.Flume) -> None:
    db.use("q", Query(indexes={"author_ts": [["author"], ["ts"]]}))
    db.append_many([{"author": a, "ts": t} for t in range(30) for a in ("x", "y")])
    query = {"$filter": {"author": "x"}}
    assert db.q.explain(query)["exact"]
    stream = db.q.read(query, reverse=True, limit=5, seqs=True)
    db.append_many([{"author": "x", "ts": 100 + t} for t in range(5)])
    db.q.ready()  # indexed before the first next(): not part of this read
    got = list(stream)
    assert [e.value["ts"] for e in got] == [29, 28, 27, 26, 25]
    assert all(db.get(e.seq) == e.value for e in got)
    for limit in (0, 1, 34, 35, 36, 1024):
        for reverse in (False, True):
            expected = _scan(db, query, reverse=reverse, limit=limit)
            assert list(db.q.read(query, reverse=reverse, limit=limit)) == expected
    assert list(db.q.read({"author": "z"}, limit=10)) == []


def test_a_cached_exact_shape_still_filters_live_entries(db: flume.Flume) -> None:
    db.use("q", Query(indexes={"author": [["author"]]}))
    db.append_many([{"author": a} for a in "xyz"])
    assert list(db.q.read({"$filter": {"author": "x"}}, limit=10)) == [{"author": "x"}]
    # Same shape, other literal: served from the cache, its filter compiled only when run live.
    stream = db.q.read({"$filter": {"author": "y"}}, live=True, seqs=True)
    db.append_many([{"author": a} for a in "xyzy"])
    got = [next(stream) for _ in range(3)]
    stream.close()
    assert [(e.seq, e.value["author"]) for e in got] == [(1, "y"), (4, "y"), (6, "y")]


def test_exact_limited_read_of_an_empty_view(db: flume.Flume) -> None:
    # Review finding: the exact-range read turned the empty view's since (-1) into a key.
    db.use("q", Query(indexes={"author": [["author"]]}))
    assert list(db.q.read({"author": "x"}, limit=10)) == []
    stream = db.q.read({"author": "x"}, live=True, limit=2, seqs=True)
    db.append_many([{"author": a} for a in "xyx"])
    assert [e.seq for e in stream] == [0, 2]
