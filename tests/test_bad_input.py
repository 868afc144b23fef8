"""Bad arguments to every public call: a FlumeError that says what is wrong, and no change.

Each case feeds one wrong type or value to one call of the public surface (``flume.open``,
``Flume`` methods, the views' mounted methods, ``Obv.wait_for``, ``LogStream`` options) of a
real database on disk, and asserts a :class:`flume.FlumeError` subclass, before anything
changed: the log, every view's progress and state are as they were.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.errors import InvalidArgumentError, InvalidTypeError, NotFoundError
from flume.views import Index, Query, Reduce

WAIT = 10.0
N = 20


def _author(v: Any) -> Any:
    return v.get("author") if isinstance(v, dict) else None


@pytest.fixture
def db(tmp_path: Path) -> Iterator[flume.Flume]:
    with flume.open(tmp_path / "db") as database:
        database.use("count", Reduce(lambda acc, _v: acc + 1, initial=0))
        database.use("by_author", Index(_author))
        database.use("q", Query(indexes={"author": [["value", "author"]]}))
        database.append_many([{"author": f"@{i % 3}", "i": i} for i in range(N)])
        for view in database.views.values():
            view.ready(timeout=WAIT)
        yield database


def snapshot(db: flume.Flume) -> Any:
    """What a failed call must leave as it was: the log, every view's answer and progress."""
    v: Any = db
    return (
        [tuple(e) for e in db.stream()],
        v.count.get(timeout=WAIT),
        [tuple(e) for e in v.by_author.read(timeout=WAIT)],
        list(v.q.read(None, timeout=WAIT)),
        db.status(),
        sorted(db.views),
    )


NAN, INF = float("nan"), float("inf")

# (id, call, error class): every call must raise that FlumeError subclass and change nothing.
CASES: list[tuple[str, Callable[[Any, Path], Any], type[flume.FlumeError]]] = [
    # db.rebuild(name): validated before anything is wiped
    ("rebuild-unknown-name", lambda db, _: db.rebuild("nope"), NotFoundError),
    ("rebuild-int-name", lambda db, _: db.rebuild(3), InvalidTypeError),
    ("rebuild-timeout-str", lambda db, _: db.rebuild(timeout="x"), InvalidTypeError),
    ("rebuild-timeout-nan", lambda db, _: db.rebuild(timeout=NAN), InvalidArgumentError),
    ("rebuild-timeout-negative", lambda db, _: db.rebuild(timeout=-1), InvalidArgumentError),
    ("rebuild-name-and-bad-timeout", lambda db, _: db.rebuild("count", timeout="1"),
     InvalidTypeError),
    # timeouts on reads
    ("reduce-get-timeout-str", lambda db, _: db.count.get(timeout="x"), InvalidTypeError),
    ("reduce-get-timeout-nan", lambda db, _: db.count.get(timeout=NAN), InvalidArgumentError),
    ("reduce-get-timeout-negative", lambda db, _: db.count.get(timeout=-0.5),
     InvalidArgumentError),
    ("reduce-get-timeout-bool", lambda db, _: db.count.get(timeout=True), InvalidTypeError),
    ("ready-timeout-list", lambda db, _: db.count.ready(timeout=[]), InvalidTypeError),
    ("index-get-timeout-nan", lambda db, _: db.by_author.get("@1", timeout=NAN),
     InvalidArgumentError),
    ("index-read-timeout-str", lambda db, _: db.by_author.read(timeout="5"), InvalidTypeError),
    ("index-read-limit-str", lambda db, _: db.by_author.read(limit="5"), InvalidTypeError),
    ("index-read-reverse-int", lambda db, _: db.by_author.read(reverse=1), InvalidTypeError),
    ("query-read-timeout-nan", lambda db, _: db.q.read(None, timeout=NAN), InvalidArgumentError),
    ("query-read-limit-negative", lambda db, _: db.q.read(None, limit=-1), InvalidArgumentError),
    ("query-read-seqs-int", lambda db, _: db.q.read(None, seqs=2), InvalidTypeError),
    ("query-explain-int", lambda db, _: db.q.explain(5), flume.QueryError),
    # open
    ("open-timeout-str", lambda _, tmp: flume.open(tmp / "new", timeout="5"), InvalidTypeError),
    ("open-timeout-nan", lambda _, tmp: flume.open(tmp / "new", timeout=NAN),
     InvalidArgumentError),
    ("open-none", lambda _db, _tmp: flume.open(None), InvalidTypeError),
    ("open-int", lambda _db, _tmp: flume.open(3), InvalidTypeError),
    ("open-bytes", lambda _, tmp: flume.open(os.fsencode(tmp / "new")), InvalidTypeError),
    ("open-empty", lambda _db, _tmp: flume.open(""), InvalidArgumentError),
    ("open-nul", lambda _, tmp: flume.open(f"{tmp}/a\0b"), InvalidArgumentError),
    ("open-readonly-int", lambda _, tmp: flume.open(tmp / "new", readonly=1), InvalidTypeError),
    # append_many
    ("append-many-none", lambda db, _: db.append_many(None), InvalidTypeError),
    ("append-many-int", lambda db, _: db.append_many(5), InvalidTypeError),
    ("append-many-bytearray", lambda db, _: db.append_many(bytearray(b"ab")), InvalidTypeError),
    ("append-many-bytes", lambda db, _: db.append_many(b"ab"), InvalidTypeError),
    ("append-many-memoryview", lambda db, _: db.append_many(memoryview(b"ab")),
     InvalidTypeError),
    ("append-many-str", lambda db, _: db.append_many("ab"), InvalidTypeError),
    ("append-many-dict", lambda db, _: db.append_many({"a": 1}), InvalidTypeError),
    ("append-many-set", lambda db, _: db.append_many({1, 2}), InvalidTypeError),
    ("append-many-generator-unstorable", lambda db, _: db.append_many(x for x in [1, object()]),
     flume.EncodeError),
    # get
    ("get-2**70", lambda db, _: db.get(2**70), NotFoundError),
    ("get-2**64", lambda db, _: db.get(2**64), NotFoundError),
    ("get-negative-huge", lambda db, _: db.get(-(2**70)), NotFoundError),
    ("get-float", lambda db, _: db.get(1.0), InvalidTypeError),
    ("get-str", lambda db, _: db.get("1"), InvalidTypeError),
    # drop
    ("drop-int", lambda db, _: db.drop(3), InvalidTypeError),
    ("drop-none", lambda db, _: db.drop(None), InvalidTypeError),
    ("drop-unknown", lambda db, _: db.drop("nope"), NotFoundError),
    # use
    ("use-int-name", lambda db, _: db.use(3, Reduce(lambda a, v: a, initial=0)), flume.ViewNameError),
    ("use-not-a-view", lambda db, _: db.use("x", 3), InvalidTypeError),
    # stream (LogStream options)
    ("stream-gt-str", lambda db, _: db.stream(gt="1"), InvalidTypeError),
    ("stream-limit-float", lambda db, _: db.stream(limit=1.5), InvalidTypeError),
    ("stream-inverted", lambda db, _: db.stream(gt=5, lt=2), InvalidArgumentError),
    ("stream-reverse-live", lambda db, _: db.stream(reverse=True, live=True),
     InvalidArgumentError),
    ("stream-seqs-none", lambda db, _: db.stream(seqs=None), InvalidTypeError),
    # Obv
    ("obv-wait-timeout-str", lambda db, _: db.since.wait_for(10**6, timeout="1"),
     InvalidTypeError),
    ("obv-wait-timeout-nan", lambda db, _: db.since.wait_for(10**6, timeout=NAN),
     InvalidArgumentError),
    ("obv-wait-timeout-negative", lambda db, _: db.since.wait_for(10**6, timeout=-1),
     InvalidArgumentError),
]


@pytest.mark.parametrize(("call", "error"), [(c, e) for _, c, e in CASES],
                         ids=[i for i, _, _ in CASES])
def test_a_bad_argument_raises_a_flume_error_and_changes_nothing(
    db: flume.Flume, tmp_path: Path, call: Callable[[Any, Path], Any],
    error: type[flume.FlumeError],
) -> None:
    before = snapshot(db)
    with pytest.raises(error) as caught:
        result = call(db, tmp_path)
        # Some calls return a stream: their options are checked before the first item.
        list(result)
    assert isinstance(caught.value, flume.FlumeError)
    assert str(caught.value)
    assert snapshot(db) == before
    assert not (tmp_path / "new").exists()  # a refused open creates nothing


def test_rebuild_of_one_view_by_name(db: flume.Flume) -> None:
    v: Any = db
    db.rebuild("count", timeout=WAIT)
    assert v.count.get(timeout=WAIT) == N
    assert len(list(v.by_author.read(timeout=WAIT))) == N


def test_rebuild_of_one_view_leaves_the_others_alone(db: flume.Flume) -> None:
    """Only the named view is wiped: another view never goes back to since -1."""
    seen: list[int] = []
    unsubscribe = db.views["by_author"].since.subscribe(seen.append)
    db.rebuild("count", timeout=WAIT)
    unsubscribe()
    assert min(seen) == N - 1


def test_an_infinite_timeout_waits_like_none(db: flume.Flume) -> None:
    v: Any = db
    assert v.count.get(timeout=INF) == N
    assert v.count.get(timeout=math.inf) == N
    assert db.since.wait_for(N - 1, timeout=INF) == N - 1


def test_a_nan_timeout_does_not_hang(db: flume.Flume) -> None:
    """Before: a NaN deadline never passed, so waiting on a value that never came hung."""
    started = time.monotonic()
    with pytest.raises(InvalidArgumentError):
        flume.Obv(0).wait_for(1, timeout=NAN)
    assert time.monotonic() - started < 1


def test_a_generator_is_appended_whole(db: flume.Flume) -> None:
    last = db.append_many({"author": "@g", "i": i} for i in range(3))
    assert last == N + 2
    assert [db.get(s)["i"] for s in range(N, N + 3)] == [0, 1, 2]
    assert db.append_many(iter(())) == N + 2
    assert db.append_many(("a", "b")) == N + 4


def test_a_generator_that_raises_appends_nothing(db: flume.Flume) -> None:
    def values() -> Iterator[int]:
        yield 1
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError):
        db.append_many(values())
    assert db.since.value == N - 1


def test_a_path_object_opens(tmp_path: Path) -> None:
    with flume.open(tmp_path / "p") as db:
        assert db.append(1) == 0


def test_open_and_flume_timeouts(tmp_path: Path) -> None:
    with flume.open(tmp_path / "t", timeout=INF) as db:
        assert db.append(1) == 0
    with pytest.raises(InvalidArgumentError):
        flume.Flume(flume.MemoryLog(), timeout=-1)
