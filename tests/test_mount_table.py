"""The mount table: which stored view a declaration reuses (the fingerprint), handles that
follow their name, readers that follow the writer's stored views, and views catching up
without holding the others back."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import flume
import flume.verify
from flume import Flume, MemoryLog
from flume.views import Index, Query, Reduce

VALUES = [{"a": i % 5, "b": (i * 7) % 11, "c": {"d": i}} for i in range(200)]


def scan(values: list[Any], **match: Any) -> list[Any]:
    return [v for v in values if all(v.get(k) == x for k, x in match.items())]


def reopen_with(path: Path, indexes: dict[str, Any], version: int = 1) -> flume.Flume:
    db = flume.open(path)
    db.use("q", Query(indexes=indexes, version=version))
    return db


# -- one fingerprint decides ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "first, second",
    [
        # The same indexes in another order: index key prefixes come from the order.
        ({"ia": [["a"]], "ib": [["b"]]}, {"ib": [["b"]], "ia": [["a"]]}),
        # The same names over other paths.
        ({"ia": [["a"]], "ib": [["b"]]}, {"ia": [["b"]], "ib": [["a"]]}),
        # The same fields in another order within one index.
        ({"ab": [["a"], ["b"]]}, {"ab": [["b"], ["a"]]}),
    ],
)
def test_a_redeclared_query_view_with_another_layout_is_rebuilt(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    with reopen_with(tmp_path, first) as db:
        db.append_many(VALUES)
        db.q.ready()
    with reopen_with(tmp_path, second) as db:
        for a in range(5):
            got = [e.seq for e in db.q.read([{"$filter": {"a": a}}], seqs=True)]
            assert sorted(got) == [i for i, v in enumerate(VALUES) if v["a"] == a]
        for b in range(11):
            # In index order, which for an index over (b, a) is not log order.
            got = [e.seq for e in db.q.read([{"$filter": {"b": b}}], seqs=True)]
            assert sorted(got) == [i for i, v in enumerate(VALUES) if v["b"] == b]
        assert db.status()["views"]["q"]["state"] == "ready"
    report = flume.verify.verify(str(tmp_path))
    assert report.ok, report


def test_the_same_definition_is_reused_not_rebuilt(tmp_path: Path) -> None:
    indexes = {"ia": [["a"]], "ib": [["b"]]}
    with reopen_with(tmp_path, indexes) as db:
        db.append_many(VALUES)
        db.q.ready()
    with flume.open(tmp_path) as db:
        assert db.q.since.value == len(VALUES) - 1  # mounted from its stored definition
        db.use("q", Query(indexes={"ia": ["a"], "ib": ["b"]}))  # the same, spelled shorter
        assert db.q.since.value == len(VALUES) - 1


def test_a_version_or_kind_change_rebuilds(tmp_path: Path) -> None:
    with flume.open(tmp_path) as db:
        db.use("v", Reduce(lambda acc, v: acc + 1, initial=0))
        db.append_many(VALUES)
        assert db.v.get() == len(VALUES)
    with flume.open(tmp_path) as db:
        db.use("v", Reduce(lambda acc, v: acc + 2, initial=0, version=2))
        assert db.v.get() == 2 * len(VALUES)
    with flume.open(tmp_path) as db:
        db.use("v", Index(lambda v: v["a"]))
        assert [e.seq for e in db.v.read(prefix=3)] == [i for i in range(200) if i % 5 == 3]


def test_a_record_from_before_fingerprints_is_rebuilt(tmp_path: Path) -> None:
    """A view stored without a fingerprint may have been built under another index order
    (the stored definition was compared order-blind): it is rebuilt, never trusted."""
    with reopen_with(tmp_path, {"ia": [["a"]], "ib": [["b"]]}) as db:
        db.append_many(VALUES)
        db.q.ready()
        store = db._store
        meta = store.read_meta("q")
        assert meta is not None
        del meta["fingerprint"]
        meta["definition"] = {"indexes": {"ib": [["b"]], "ia": [["a"]]}}
        batch = store.batch()
        batch.put_meta("q", meta)
        store.write(batch)
    with reopen_with(tmp_path, {"ib": [["b"]], "ia": [["a"]]}) as db:
        assert list(db.q.read([{"$filter": {"a": 2}}])) == scan(VALUES, a=2)


# -- handles follow their name -------------------------------------------------------------------


def test_a_handle_follows_a_redeclaration(tmp_path: Path) -> None:
    with reopen_with(tmp_path, {"ia": [["a"]]}) as db:
        db.append_many(VALUES)
    with flume.open(tmp_path, timeout=10) as db:
        old = db.q  # mounted from the stored definition
        db.use("q", Query(indexes={"ia": [["a"]]}))  # the same: reused
        assert list(old.read([{"$filter": {"a": 1}}])) == scan(VALUES, a=1)
        db.use("q", Query(indexes={"ib": [["b"]], "ia": [["a"]]}, version=3))
        db.append({"a": 1, "b": 99})
        want = scan(VALUES + [{"a": 1, "b": 99}], a=1)
        assert list(old.read([{"$filter": {"a": 1}}])) == want
        assert old.explain([{"$filter": {"b": 2}}])["index"] == "ib"
        assert old.view is db.views["q"].view


def test_a_handle_to_a_dropped_view_raises_at_once(tmp_path: Path) -> None:
    with flume.open(tmp_path) as db:
        db.use("q", Query(indexes={"ia": [["a"]]}))
        db.append_many(VALUES)
        old = db.q
        db.drop("q")
        started = time.monotonic()
        with pytest.raises(flume.NotFoundError, match="dropped"):
            old.read([{"$filter": {"a": 1}}])
        with pytest.raises(flume.NotFoundError):
            old.ready()
        assert time.monotonic() - started < 1


def test_a_read_waiting_on_a_replaced_view_moves_to_the_new_one() -> None:
    """A read waiting for a view that gets re-declared answers from the new declaration
    instead of waiting forever on the old one."""
    with Flume(MemoryLog()) as db:
        db.use("q", Query(indexes={"ia": [["a"]]}))
        db.append_many(VALUES)
        old = db.q
        db.q.ready(timeout=10)
        result: list[Any] = []
        with db._views_lock:  # holds the indexer back while the read starts waiting
            db.append({"a": 4})
            reader = threading.Thread(
                target=lambda: result.append(list(old.read([{"$filter": {"a": 4}}], timeout=10)))
            )
            reader.start()
            time.sleep(0.1)
            assert result == []  # waiting for the view to index {"a": 4}
            db.use("q", Query(indexes={"ib": [["b"]], "ia": [["a"]]}))
        reader.join(10)
        assert result == [scan(VALUES + [{"a": 4}], a=4)]


# -- readers follow the writer's stored views ----------------------------------------------------


def test_a_reader_follows_query_views_declared_changed_and_dropped(tmp_path: Path) -> None:
    with flume.open(tmp_path) as writer:
        writer.append_many(VALUES)
        with flume.open(tmp_path, readonly=True, timeout=10) as reader:
            assert "q" not in reader.views
            writer.use("q", Query(indexes={"ia": [["a"]]}))
            assert list(reader.q.read([{"$filter": {"a": 3}}])) == scan(VALUES, a=3)
            handle = reader.q
            writer.use("q", Query(indexes={"ib": [["b"]], "ia": [["a"]]}, version=2))
            assert handle.explain([{"$filter": {"b": 3}}])["index"] == "ib"
            assert list(handle.read([{"$filter": {"b": 3}}])) == scan(VALUES, b=3)
            writer.drop("q")
            with pytest.raises(flume.NotFoundError, match="dropped by the writer"):
                handle.read([{"$filter": {"a": 3}}])
            assert "q" not in reader.views


def test_a_reader_opened_before_the_views_exist_follows_them(tmp_path: Path) -> None:
    with flume.open(tmp_path) as writer:
        writer.append_many(VALUES)
    import shutil

    shutil.rmtree(tmp_path / "views")
    with flume.open(tmp_path, readonly=True, timeout=10) as reader:
        assert dict(reader.views) == {}
        with flume.open(tmp_path) as writer:
            writer.use("q", Query(indexes={"ia": [["a"]]}))
            writer.append({"a": 3, "b": 0})
            want = scan(VALUES + [{"a": 3, "b": 0}], a=3)
            assert list(reader.q.read([{"$filter": {"a": 3}}])) == want
            assert reader.status()["views"]["q"]["state"] == "ready"


def test_a_reader_declared_view_that_the_writer_defines_otherwise_says_so(tmp_path: Path) -> None:
    with flume.open(tmp_path) as writer:
        writer.use("q", Query(indexes={"ia": [["a"]]}))
        writer.append_many(VALUES)
        writer.q.ready()
        with flume.open(tmp_path, readonly=True, timeout=0.2) as reader:
            reader.use("q", Query(indexes={"ib": [["b"]]}))
            with pytest.raises(flume.FormatError, match="another kind, version or definition"):
                list(reader.q.read())


# -- one view catching up does not hold back the others ------------------------------------------


def test_caught_up_views_answer_at_once_while_another_catches_up(tmp_path: Path) -> None:
    with flume.open(tmp_path, sync=False) as db:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        db.append_many([{"a": i} for i in range(10_000)])
        assert db.count.get() == 10_000

        def slow_key(v: Any) -> Any:
            time.sleep(0.0005)  # a view that takes 5 s or more over this log
            return v["a"]

        db.use("slow", Index(slow_key))
        waits = []
        for i in range(30):
            db.append({"a": -i})
            started = time.monotonic()
            assert db.count.get() == 10_001 + i
            waits.append(time.monotonic() - started)
            time.sleep(0.01)
        assert db.status()["views"]["slow"]["state"] == "indexing"  # still catching up
        # Each wait is at most one batch of the slow view's, about 20 ms.
        assert max(waits) < 0.25, waits
        assert statistics.median(waits) < 0.05, waits
        assert db.slow.since.value > 0  # and it makes progress meanwhile


def test_views_at_different_places_each_end_equal_to_a_rebuild(tmp_path: Path) -> None:
    values = [{"a": i % 7, "b": i} for i in range(12_000)]
    with flume.open(tmp_path, sync=False) as db:
        db.use("n", Reduce(lambda acc, v: acc + v["b"], initial=0))
        db.append_many(values[:6000])
        db.n.get()
        db.use("q", Query(indexes={"ia": [["a"], ["b"]]}))
        db.use("i", Index(lambda v: (v["a"], v["b"])))
        for chunk in range(6000, 12_000, 500):
            db.append_many(values[chunk : chunk + 500])
        assert db.n.get() == sum(v["b"] for v in values)
        assert list(db.q.read([{"$filter": {"a": 3}}])) == [v for v in values if v["a"] == 3]
        assert [e.seq for e in db.i.read(prefix=3)] == [i for i, v in enumerate(values) if v["a"] == 3]


# -- definitions survive a rebuild cut short ------------------------------------------------------


def test_rebuild_keeps_every_definition_stored_while_it_runs(tmp_path: Path) -> None:
    """A rebuild wipes every view and stores its definition in one write, so that at no
    moment (a crash could catch any) is a view's definition missing from the store."""
    with flume.open(tmp_path) as db:
        db.use("q", Query(indexes={"ia": [["a"]]}))
        db.use("r", Query(indexes={"ib": [["b"]]}))
        db.append_many(VALUES)
        db.q.ready()
        seen: list[set[str]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(set(db._store.all_meta()))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for _ in range(5):
                db.rebuild()
        finally:
            stop.set()
            watcher.join()
        assert seen and all(names == {"q", "r"} for names in seen)
    with flume.open(tmp_path) as db:
        assert sorted(db.views) == ["q", "r"]


def test_index_add_never_leaves_a_moment_without_the_old_definition(tmp_path: Path) -> None:
    """`flume index add` replaces the definition in one atomic write (it used to drop the
    view first and declare it again: a kill in between lost every index)."""
    from click.testing import CliRunner

    from flume.cli import cli

    with flume.open(tmp_path) as db:
        db.use("query", Query(indexes={"ia": [["value", "a"]]}))
        db.append_many(VALUES)
    calls: list[str] = []
    real_drop = flume.Flume.drop

    def spy(self: flume.Flume, name: str) -> None:
        calls.append(name)
        real_drop(self, name)

    flume.Flume.drop = spy  # type: ignore[method-assign]
    try:
        result = CliRunner().invoke(cli, ["index", "add", str(tmp_path), "ib", "value.b"])
    finally:
        flume.Flume.drop = real_drop  # type: ignore[method-assign]
    assert result.exit_code == 0, result.output
    assert calls == []
    with flume.open(tmp_path) as db:
        assert list(db.query.view.definition()["indexes"]) == ["ia", "ib"]
        assert os.path.isdir(tmp_path / "views")
