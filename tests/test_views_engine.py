"""The views engine: failing view functions, Index and Reduce semantics, rebuilds, closing
mid-indexing, status, and views that are ahead of their log."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume import codec
from flume.db import Flume
from flume.errors import (
    ClosedError,
    EncodeError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
    ViewError,
)
from flume.logs import MemoryLog
from flume.testing.logs import Consumer
from flume.testing.views import Counter
from flume.views import Index, IndexEntry, Reduce
from flume.views.store import RocksStore

WAIT = 10.0


def count_view(seen: Callable[[Any], None] | None = None, version: int = 1) -> Reduce:
    def reducer(acc: int, value: Any) -> int:
        if seen is not None:
            seen(value)
        return acc + 1

    return Reduce(reducer, initial=0, version=version)


@pytest.fixture(params=["memory", "disk"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flume]:
    opened = Flume(MemoryLog()) if request.param == "memory" else flume.open(tmp_path / "db")
    try:
        yield opened
    finally:
        opened.close()


# -- failing view functions --------------------------------------------------------------------


def failing_reducer(bad: int) -> Callable[[int, Any], int]:
    def reducer(acc: int, value: Any) -> int:
        if value == bad:
            raise ZeroDivisionError(f"cannot take {value}")
        return acc + value

    return reducer


def test_a_raising_view_function_stops_that_view_only(db: Flume) -> None:
    db.use("good", count_view())
    db.use("bad", Reduce(failing_reducer(13), initial=0))
    db.use("idx", Index(lambda v: v))
    db.append_many([1, 2, 3])
    assert db.bad.get() == 6
    seq = db.append_many([4, 13, 5])  # seqs 3, 4, 5; 13 is at seq 4
    assert seq == 5
    for read in (db.bad.get, db.bad.ready):
        with pytest.raises(ViewError) as info:
            read()
        error = info.value
        assert error.seq == 4
        assert error.view == "bad"
        assert isinstance(error.cause, ZeroDivisionError)
        assert error.__cause__ is error.cause
        assert "bad" in str(error) and "4" in str(error)
    # The log and the other views go on.
    assert db.append(7) == 6
    assert db.get(4) == 13
    assert db.good.get() == 7
    assert [e.seq for e in db.idx.read()] == [0, 1, 2, 3, 5, 6, 4]  # by key: 1 2 3 4 5 7 13
    assert list(db.stream(seqs=False)) == [1, 2, 3, 4, 13, 5, 7]
    status = db.status()["views"]
    assert status["bad"]["state"] == "failed"
    assert "ZeroDivisionError" in status["bad"]["error"]
    assert status["bad"]["since"] == 2  # its last committed batch
    assert status["good"]["state"] == "ready"
    with pytest.raises(ViewError):
        db.bad.get()  # still failed


def test_an_index_function_that_raises(db: Flume) -> None:
    db.use("idx", Index(lambda v: v["key"]))
    db.append({"key": 1})
    db.append({"no key": 2})
    with pytest.raises(ViewError) as info:
        list(db.idx.read())
    assert info.value.seq == 1
    assert isinstance(info.value.cause, KeyError)
    with pytest.raises(ViewError):
        db.idx.get(1)


@pytest.mark.parametrize(
    "bad_key", [object(), {1, 2}, ("ok", object()), [1, {3}], 2**64], ids=repr
)
def test_an_index_function_returning_an_unstorable_key(db: Flume, bad_key: Any) -> None:
    db.use("idx", Index(lambda v: bad_key if v == "bad" else v))
    db.use("count", count_view())
    db.append_many(["a", "b", "bad", "c"])
    with pytest.raises(ViewError) as info:
        db.idx.ready()
    assert info.value.seq == 2
    assert isinstance(info.value.cause, EncodeError)
    assert db.count.get() == 4


def test_an_unstorable_reduce_state(db: Flume) -> None:
    db.use("bad", Reduce(lambda acc, v: {1, 2} if v == 3 else acc + v, initial=0))
    db.append_many([1, 2, 3])
    with pytest.raises(ViewError) as info:
        db.bad.get()
    assert isinstance(info.value.cause, EncodeError)


def test_a_new_version_rebuilds_a_failed_view(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.use("sum", Reduce(failing_reducer(13), initial=0))
        db.append_many([1, 2])
        assert db.sum.get() == 3
        db.append_many([13, 4])
        with pytest.raises(ViewError):
            db.sum.get()
    with flume.open(path) as db:  # the same version resumes, and fails on the same entry
        db.use("sum", Reduce(failing_reducer(13), initial=0))
        with pytest.raises(ViewError) as info:
            db.sum.get()
        assert info.value.seq == 2
    seen = Counter()
    with flume.open(path) as db:  # fixed and declared with version=2: rebuilt from scratch
        def fixed(acc: int, value: Any) -> int:
            seen(value)
            return acc + value

        db.use("sum", Reduce(fixed, initial=0, version=2))
        assert db.sum.get() == 20
        assert seen.values == [1, 2, 13, 4]
        assert db.status()["views"]["sum"]["state"] == "ready"


def test_rebuild_with_a_failing_view_raises_and_rebuilds_the_others(db: Flume) -> None:
    db.use("good", count_view())
    db.use("bad", Reduce(failing_reducer(2), initial=0))
    db.append_many([1, 2, 3])
    with pytest.raises(ViewError):
        db.rebuild(timeout=WAIT)
    assert db.good.get() == 3


# -- Index semantics ---------------------------------------------------------------------------

DATA = [
    {"a": "@a", "ts": 3, "tags": ["x"]},  # 0
    {"a": "@b", "ts": 1, "tags": []},  # 1
    {"a": "@a", "ts": 1, "tags": ["x", "y"]},  # 2
    {"a": "@c", "ts": 2, "tags": None},  # 3
    {"a": "@a", "ts": 3, "tags": ["y"]},  # 4: the same tuple key as 0
    {"a": "@b", "ts": 5, "tags": ["z", "x"]},  # 5
    {"a": "@ab", "ts": 0, "tags": None},  # 6: "@a" is a string prefix of it, not a key prefix
]
TUPLE_ORDER = [2, 0, 4, 6, 1, 5, 3]  # by (author, ts), ties by seq


def with_indexes(db: Flume) -> Flume:
    db.use("by_author", Index(lambda v: v["a"]))
    db.use("by_author_ts", Index(lambda v: (v["a"], v["ts"])))
    db.use("by_tag", Index(lambda v: v["tags"]))
    db.append_many(DATA)
    return db


@pytest.fixture
def idb(db: Flume) -> Flume:
    """A db holding DATA and three Index views (for tests that change it)."""
    return with_indexes(db)


@pytest.fixture(scope="module", params=["memory", "disk"])
def ro_idb(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flume]:
    """The same, shared by the tests that only read it."""
    if request.param == "memory":
        opened = Flume(MemoryLog())
    else:
        opened = flume.open(tmp_path_factory.mktemp("ro") / "db")
    try:
        yield with_indexes(opened)
    finally:
        opened.close()


def seqs_of(entries: Any) -> list[int]:
    return [e.seq for e in entries]


def test_index_keys_come_back_as_given(ro_idb: Flume) -> None:
    scalar = list(ro_idb.by_author.read())
    assert all(isinstance(e, IndexEntry) for e in scalar)
    assert [e.key for e in scalar] == ["@a", "@a", "@a", "@ab", "@b", "@b", "@c"]
    assert seqs_of(scalar) == [0, 2, 4, 6, 1, 5, 3]
    assert all(e.value == DATA[e.seq] for e in scalar)
    tuples = list(ro_idb.by_author_ts.read())
    assert seqs_of(tuples) == TUPLE_ORDER
    assert [e.key for e in tuples] == [(DATA[s]["a"], DATA[s]["ts"]) for s in TUPLE_ORDER]
    assert all(type(e.key) is tuple for e in tuples)
    assert tuples[0] == IndexEntry(("@a", 1), 2, DATA[2])


def test_index_list_of_keys_and_none(ro_idb: Flume) -> None:
    entries = list(ro_idb.by_tag.read())
    assert [(e.key, e.seq) for e in entries] == [
        ("x", 0), ("x", 2), ("x", 5), ("y", 2), ("y", 4), ("z", 5)
    ]


def test_index_get(ro_idb: Flume) -> None:
    assert ro_idb.by_author.get("@a") == DATA[4]  # the newest entry with that key
    assert ro_idb.by_author.get("@ab") == DATA[6]
    assert ro_idb.by_author_ts.get(("@a", 3)) == DATA[4]
    assert ro_idb.by_author_ts.get(("@b", 1)) == DATA[1]
    assert ro_idb.by_tag.get("x") == DATA[5]
    for view, key in [
        (ro_idb.by_author, "@z"),
        (ro_idb.by_author, ("@a", 3)),  # more fields than the stored keys
        (ro_idb.by_author_ts, ("@a",)),  # a prefix only: not a key
        (ro_idb.by_author_ts, "@a"),
        (ro_idb.by_author_ts, ("@a", 2)),
    ]:
        with pytest.raises(NotFoundError) as info:
            view.get(key)
        assert isinstance(info.value, KeyError)


def test_index_prefix(ro_idb: Flume) -> None:
    assert seqs_of(ro_idb.by_author_ts.read(prefix=("@a",))) == [2, 0, 4]
    assert seqs_of(ro_idb.by_author_ts.read(prefix="@a")) == [2, 0, 4]
    assert seqs_of(ro_idb.by_author_ts.read(prefix=("@a", 3))) == [0, 4]
    assert seqs_of(ro_idb.by_author_ts.read(prefix=("@a", 3), reverse=True)) == [4, 0]
    assert seqs_of(ro_idb.by_author_ts.read(prefix=("@nobody",))) == []
    assert seqs_of(ro_idb.by_author.read(prefix="@a")) == [0, 2, 4]
    assert seqs_of(ro_idb.by_author_ts.read(prefix=("@b",), limit=1)) == [1]


@pytest.mark.parametrize(
    "opts, seqs",
    [
        ({"gte": ("@b",)}, [1, 5, 3]),
        ({"gt": ("@b",)}, [3]),  # a tuple bound covers every key it is a prefix of
        ({"lt": ("@b",)}, [2, 0, 4, 6]),
        ({"lte": ("@b",)}, [2, 0, 4, 6, 1, 5]),
        ({"gte": ("@a", 2), "lt": ("@b", 5)}, [0, 4, 6, 1]),
        ({"gt": ("@a", 1), "lte": ("@b", 1)}, [0, 4, 6, 1]),
        ({"gte": ("@a", 3), "lte": ("@a", 3)}, [0, 4]),
        ({"gt": ("@a", 3), "lt": ("@b",)}, [6]),
        ({"gte": ("@b",), "reverse": True}, [3, 5, 1]),
        ({"lt": ("@b",), "reverse": True, "limit": 2}, [6, 4]),
        ({"reverse": True}, TUPLE_ORDER[::-1]),
        ({"limit": 0}, []),
        ({"limit": 3}, [2, 0, 4]),
        ({"limit": 100}, TUPLE_ORDER),
        ({"gt": ("@z",)}, []),
        ({"lt": ("@",)}, []),
        ({"prefix": ("@a",), "gt": ("@a", 1)}, [0, 4]),
        ({"prefix": ("@a",), "lt": ("@a", 3)}, [2]),
        ({"prefix": ("@b",), "reverse": True, "limit": 1}, [5]),
    ],
)
def test_index_ranges(ro_idb: Flume, opts: dict[str, Any], seqs: list[int]) -> None:
    assert seqs_of(ro_idb.by_author_ts.read(**opts)) == seqs


def test_index_scalar_ranges(ro_idb: Flume) -> None:
    assert seqs_of(ro_idb.by_author.read(gt="@a")) == [6, 1, 5, 3]
    assert seqs_of(ro_idb.by_author.read(gte="@ab", lt="@c")) == [6, 1, 5]
    assert seqs_of(ro_idb.by_author.read(lte="@b", reverse=True)) == [5, 1, 6, 4, 2, 0]


@pytest.mark.parametrize(
    "opts, error",
    [
        ({"gt": ("@b",), "lt": ("@a",)}, InvalidArgumentError),
        ({"gte": "b", "lte": "a"}, InvalidArgumentError),
        ({"gt": 1, "gte": 1}, InvalidArgumentError),
        ({"lt": 1, "lte": 1}, InvalidArgumentError),
        ({"limit": -1}, InvalidArgumentError),
        ({"reverse": True, "live": True}, InvalidArgumentError),
        ({"limit": "2"}, InvalidTypeError),
        ({"reverse": "yes"}, InvalidTypeError),
        ({"live": 1}, InvalidTypeError),
        ({"old": None}, InvalidTypeError),
    ],
)
def test_index_bad_options(ro_idb: Flume, opts: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        list(ro_idb.by_author_ts.read(**opts))


def test_index_keys_sort_in_flume_order_and_keep_their_types(db: Flume) -> None:
    keys: list[Any] = [
        "b", 2, None, b"x", 0.5, True, [1, "a"], -1, False, {"k": 1}, "a", 2.0, -1.5, [1],
        float("-inf"), 2**63, b"",
    ]
    # A list of one key each: a bare None would be "no key", a bare list "several keys".
    db.use("k", Index(lambda v: [v["key"]]))
    db.append_many([{"key": k} for k in keys])
    got = [(e.key, e.seq) for e in db.k.read()]
    expected = [
        (None, 2), (False, 8), (True, 5), (float("-inf"), 14), (-1.5, 12), (-1, 7), (0.5, 4),
        (2, 1), (2.0, 11), (2**63, 15), ("a", 10), ("b", 0), (b"", 16), (b"x", 3), ([1], 13),
        ([1, "a"], 6), ({"k": 1}, 9),
    ]
    assert got == expected
    assert [type(k) for k, _ in got] == [type(k) for k, _ in expected]  # 2 and 2.0 stay apart


def test_index_live_old_false_gets_only_new_matching_entries(idb: Flume) -> None:
    stream = idb.by_author_ts.read(prefix=("@a",), live=True, old=False)
    consumer = Consumer(stream)
    new = [
        {"a": "@b", "ts": 9, "tags": None},  # 7
        {"a": "@a", "ts": 9, "tags": None},  # 8
        {"a": "@ab", "ts": 9, "tags": None},  # 9
        {"a": "@a", "ts": 0, "tags": None},  # 10
    ]
    for value in new:
        idb.append(value)
    got = consumer.wait_count(2)
    assert got == [IndexEntry(("@a", 9), 8, new[1]), IndexEntry(("@a", 0), 10, new[3])]
    stream.close()
    assert consumer.join() == got


def test_index_live_old_true_gets_old_then_new(idb: Flume) -> None:
    consumer = Consumer(idb.by_tag.read(gte="y", live=True, limit=4))
    assert [(e.key, e.seq) for e in consumer.wait_count(3)] == [("y", 2), ("y", 4), ("z", 5)]
    idb.append({"a": "@a", "ts": 1, "tags": ["a", "y"]})  # 7: only "y" matches
    assert [(e.key, e.seq) for e in consumer.join()] == [("y", 2), ("y", 4), ("z", 5), ("y", 7)]


def test_closing_the_db_ends_live_index_reads(idb: Flume) -> None:
    consumer = Consumer(idb.by_author.read(live=True, old=False))
    time.sleep(0.02)
    idb.close()
    assert consumer.join() == []


# -- Reduce semantics --------------------------------------------------------------------------


def test_reduce_map_skips_none_only(db: Flume) -> None:
    db.use(
        "total",
        Reduce(lambda acc, n: [acc[0] + 1, acc[1] + n], initial=[0, 0], map=lambda v: v.get("n")),
    )
    db.append_many([{"n": 5}, {"x": 1}, {"n": 0}, {"n": None}, {"n": 2}])
    assert db.total.get() == [3, 7]  # 0 is reduced, None is skipped


def test_reduce_initial_and_default(db: Flume) -> None:
    db.use("none", Reduce(lambda acc, v: v))
    assert db.none.get() is None
    db.append("last")
    assert db.none.get() == "last"


def test_reduce_in_place_state_and_copies(db: Flume) -> None:
    def collect(acc: dict[str, Any], value: Any) -> dict[str, Any]:
        acc.setdefault(value["k"], []).append(value["v"])
        return acc

    db.use("groups", Reduce(collect, initial={}))
    db.append_many([{"k": "a", "v": 1}, {"k": "b", "v": 2}])
    got = db.groups.get()
    assert got == {"a": [1], "b": [2]}
    got["a"].append(99)
    got["c"] = []
    assert db.groups.get() == {"a": [1], "b": [2]}  # a copy: the stored state is untouched
    db.append({"k": "a", "v": 3})
    assert db.groups.get() == {"a": [1, 3], "b": [2]}


def test_an_in_place_reducer_that_fails_leaves_no_partial_state(tmp_path: Path) -> None:
    path = tmp_path / "db"

    def append_until_bad(acc: list[Any], value: Any) -> list[Any]:
        acc.append(value)  # mutates before failing
        if value == "bad":
            raise ValueError("bad value")
        return acc

    with flume.open(path) as db:
        db.use("items", Reduce(append_until_bad, initial=[]))
        db.append_many(["a", "b"])
        assert db.items.get() == ["a", "b"]
        db.append_many(["c", "bad", "d"])
        with pytest.raises(ViewError):
            db.items.get()
    with flume.open(path) as db:  # same version: resumes from the committed state
        db.use("items", Reduce(lambda acc, v: acc + [v], initial=[]))
        assert db.items.get() == ["a", "b", "c", "bad", "d"]


def test_reduce_state_is_persisted(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.use("sum", Reduce(lambda acc, v: acc + v, initial=0))
        db.append_many(list(range(100)))
        assert db.sum.get() == 4950
    seen = Counter()
    with flume.open(path) as db:
        def add(acc: int, v: int) -> int:
            seen(v)
            return acc + v

        db.use("sum", Reduce(add, initial=0))
        assert db.sum.get() == 4950
        db.append(50)
        assert db.sum.get() == 5000
        assert seen.values == [50]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Reduce("not callable"),  # type: ignore[arg-type]
        lambda: Reduce(lambda a, v: a, map=5),  # type: ignore[arg-type]
        lambda: Reduce(lambda a, v: a, version="2"),  # type: ignore[arg-type]
        lambda: Index(None),  # type: ignore[arg-type]
        lambda: Index(lambda v: v, version=1.5),  # type: ignore[arg-type]
    ],
)
def test_view_constructors_check_their_arguments(make: Callable[[], Any]) -> None:
    with pytest.raises(InvalidTypeError):
        make()


def test_an_unstorable_initial_state_is_refused_at_once() -> None:
    with pytest.raises(EncodeError):
        Reduce(lambda acc, v: acc, initial=object())


# -- rebuild -----------------------------------------------------------------------------------


def test_rebuild_while_appends_continue(db: Flume) -> None:
    db.use("count", count_view())
    db.use("idx", Index(lambda v: v % 7))
    db.append_many(list(range(200)))
    total = 600
    errors: list[BaseException] = []

    def write() -> None:
        try:
            n = 200
            while n < total:
                db.append_many(list(range(n, n + 5)))
                n += 5
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    writer = threading.Thread(target=write)
    writer.start()
    for _ in range(3):
        target = db.since.value
        db.rebuild(timeout=WAIT)
        assert db.count.since.value >= target
        assert db.idx.since.value >= target
    writer.join(WAIT)
    assert errors == []
    assert db.count.get() == total
    got = [(e.key, e.seq) for e in db.idx.read()]
    assert got == sorted((n % 7, n) for n in range(total))


# -- closing in the middle of indexing ---------------------------------------------------------


def stored_state(views_dir: Path) -> dict[str, Any]:
    """Read the views database directly: each view's stored since and data."""
    store = RocksStore(views_dir)
    try:
        # A view that never committed a batch has no meta record: its since is -1.
        count_meta = store.read_meta("count") or {"since": -1}
        idx_meta = store.read_meta("idx") or {"since": -1}
        raw_state = store.family("count").get(b"state")
        state = 0 if raw_state is None else codec.decode(raw_state)[1]
        idx_seqs = [int.from_bytes(k[-8:], "big") for k, _ in store.family("idx").scan(b"", None)]
        return {
            "count_since": count_meta["since"],
            "count": state,
            "idx_since": idx_meta["since"],
            "idx_seqs": sorted(idx_seqs),
        }
    finally:
        store.close()


def test_close_during_a_long_catch_up_leaves_every_view_consistent(tmp_path: Path) -> None:
    path = tmp_path / "db"
    n = 5000
    with flume.open(path) as db:
        db.append_many(list(range(n)))
    started = threading.Event()

    def slow(value: Any) -> Any:
        started.set()
        time.sleep(0.0002)
        return value

    db = flume.open(path)
    db.use("count", Reduce(lambda acc, v: acc + 1, initial=0, map=slow))
    db.use("idx", Index(slow))
    assert started.wait(WAIT)
    time.sleep(0.05)
    begin = time.monotonic()
    db.close()
    assert time.monotonic() - begin < WAIT
    with pytest.raises(ClosedError):
        db.count.get()

    state = stored_state(path / "views")
    assert state["count_since"] < n - 1 or state["idx_since"] < n - 1  # it was interrupted
    assert state["count"] == state["count_since"] + 1  # data and since moved together
    assert state["idx_seqs"] == list(range(state["idx_since"] + 1))

    def tap(seen: Counter) -> Callable[[Any], Any]:
        def fn(value: Any) -> Any:
            seen(value)
            return value

        return fn

    seen_count, seen_idx = Counter(), Counter()
    with flume.open(path) as db:  # resumes each view from its own since
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0, map=tap(seen_count)))
        db.use("idx", Index(tap(seen_idx)))
        assert db.count.get() == n
        assert seqs_of(db.idx.read()) == list(range(n))
        assert seen_count.count == n - 1 - state["count_since"]
        assert seen_idx.count == n - 1 - state["idx_since"]


# -- status ------------------------------------------------------------------------------------


def test_status_reports_every_view(db: Flume) -> None:
    assert db.status() == {"since": -1, "deleted": 0, "views": {}}
    db.use("count", count_view())
    db.use("idx", Index(lambda v: v))
    db.use("bad", Reduce(failing_reducer(3), initial=0))
    db.append_many([1, 2, 3, 4])
    db.count.ready()
    db.idx.ready()
    with pytest.raises(ViewError):
        db.bad.ready()
    status = db.status()
    assert status["since"] == 3
    assert status["views"]["count"] == {"kind": "reduce", "since": 3, "lag": 0, "state": "ready"}
    assert status["views"]["idx"] == {"kind": "index", "since": 3, "lag": 0, "state": "ready"}
    bad = status["views"]["bad"]
    assert bad["kind"] == "reduce" and bad["state"] == "failed" and bad["since"] == -1
    assert bad["lag"] == 4
    assert "seq 2" in bad["error"]


def test_status_while_indexing(db: Flume) -> None:
    def slow(acc: int, v: Any) -> int:
        time.sleep(0.002)
        return acc + 1

    db.use("slow", Reduce(slow, initial=0))
    db.append_many(list(range(100)))
    status = db.status()["views"]["slow"]
    assert status["state"] == "indexing"
    assert 0 < status["lag"] <= 100
    assert status["since"] + status["lag"] == 99
    db.slow.ready(timeout=WAIT)
    assert db.status()["views"]["slow"] == {"kind": "reduce", "since": 99, "lag": 0, "state": "ready"}


def test_a_read_times_out_while_the_view_catches_up(db: Flume) -> None:
    def slow(acc: int, v: Any) -> int:
        time.sleep(0.002)
        return acc + 1

    db.use("slow", Reduce(slow, initial=0))
    db.append_many(list(range(100)))
    with pytest.raises(TimeoutError):
        db.slow.get(timeout=0.01)
    assert db.slow.get(timeout=WAIT) == 100


# -- a view ahead of its log -------------------------------------------------------------------


def test_a_view_ahead_of_the_log_is_wiped_and_rebuilt(tmp_path: Path) -> None:
    values = [{"n": i} for i in range(10)]
    with flume.open(tmp_path / "long") as db:
        db.use("count", count_view())
        db.use("idx", Index(lambda v: v["n"]))
        db.append_many(values)
        assert db.count.get() == 10
        assert len(list(db.idx.read())) == 10
    with flume.open(tmp_path / "short") as db:
        db.append_many(values[:5])
    shutil.rmtree(tmp_path / "short" / "views", ignore_errors=True)
    shutil.copytree(tmp_path / "long" / "views", tmp_path / "short" / "views")

    seen = Counter()
    with flume.open(tmp_path / "short") as db:
        db.use("count", count_view(seen))
        db.use("idx", Index(lambda v: v["n"]))
        assert db.count.get() == 5
        assert seen.count == 5  # rebuilt from the start of the log
        assert [(e.key, e.seq) for e in db.idx.read()] == [(i, i) for i in range(5)]
        db.append({"n": 5})
        assert db.count.get() == 6
