"""Deletes: a deleted seq keeps its place and reads as deleted, and every view forgets it
exactly: after any mix of appends and deletes each view's stored data is what a rebuild from
the log stores (the oracle), in memory and on disk, across reopens, with the deletes a view
missed replayed when it is mounted; readers in other processes see deletes with the same
read-your-writes promise as appends."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flume
from flume import DELETED, Entry, Flume, MemoryLog
from flume.errors import (
    DeletedError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
    QueryError,
    ReadOnlyError,
)
from flume.views import Index, Query, Reduce
from flume.views.base import View


def count(acc: int, _: Any) -> int:
    return acc + 1


def uncount(acc: int, _: Any) -> int:
    return acc - 1


def add_n(acc: int, n: int) -> int:
    return acc + n


def sub_n(acc: int, n: int) -> int:
    return acc - n


def n_of(v: Any) -> Any:
    return v.get("n") if isinstance(v, dict) else None


def last_two(acc: list[Any], v: Any) -> list[Any]:
    return [*acc, v][-2:]


def a_key(v: Any) -> Any:
    return v.get("a") if isinstance(v, dict) else None


def tags(v: Any) -> Any:
    t = v.get("t") if isinstance(v, dict) else None
    return t if isinstance(t, list) else None


def small_query() -> Query:
    view = Query(indexes={"a": [["a"]], "ab": [["a"], ["b"]]}, bitmaps=[["b"], ["a"]])
    view.chunk_bits = 3  # bitmaps span many chunks
    return view


VIEWS: dict[str, Any] = {
    "cnt": lambda: Reduce(count, initial=0, unreduce=uncount),
    "total": lambda: Reduce(add_n, initial=0, map=n_of, unreduce=sub_n),
    "last": lambda: Reduce(last_two, initial=[]),  # no unreduce: rebuilt
    "by_a": lambda: Index(a_key),
    "by_tag": lambda: Index(tags),
    "q": small_query,
}


def declare(db: Flume, names: list[str] | None = None) -> None:
    for name in names or list(VIEWS):
        db.use(name, VIEWS[name]())


def stored(db: Flume) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every view's stored keys and values, after it caught up."""
    out = {}
    for name in sorted(db.views):
        db.views[name].ready(timeout=10)
        out[name] = list(db._store.family(name).scan(b"", None))
    return out


def answers(db: Flume) -> dict[str, Any]:
    """What each view answers (for the comparison a reader can make)."""
    return {
        "cnt": db.cnt.get(timeout=10),
        "total": db.total.get(timeout=10),
        "last": db.last.get(timeout=10),
        "by_a": [tuple(e) for e in db.by_a.read(timeout=10)],
        "by_tag": [tuple(e) for e in db.by_tag.read(timeout=10)],
        "q": [
            list(db.q.read(q, timeout=10))
            for q in (
                None,
                [{"$filter": {"b": 1}}, {"$reduce": {"$count": True}}],
                [{"$filter": {"b": {"$in": [0, 2]}, "a": 1}}],
                [{"$filter": {"a": {"$gte": 1}}}, {"$reduce": {"$count": True}}],
            )
        ],
    }


def check_against_rebuild(db: Flume) -> None:
    before_data, before_answers = stored(db), answers(db)
    db.rebuild(timeout=10)
    assert stored(db) == before_data
    assert answers(db) == before_answers


def model_check(db: Flume, model: list[Any]) -> None:
    alive = [(s, v) for s, v in enumerate(model) if v is not DELETED]
    assert list(db.stream()) == [Entry(s, v) for s, v in alive]
    assert list(db.stream(tombstones=True)) == [Entry(s, v) for s, v in enumerate(model)]
    assert list(db.stream(reverse=True, limit=3)) == [Entry(s, v) for s, v in alive[::-1][:3]]
    assert db.cnt.get() == len(alive)
    assert db.total.get() == sum(n for _, v in alive if isinstance(n := n_of(v), int))
    assert db.last.get() == [v for _, v in alive][-2:]


values_st = st.fixed_dictionaries(
    {"a": st.integers(0, 3), "b": st.integers(0, 3), "n": st.integers(-5, 5)},
    optional={"t": st.lists(st.integers(0, 2), max_size=2)},
)
ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(values_st, min_size=1, max_size=12)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 60), min_size=1, max_size=6)),
        st.tuples(st.just("where"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("reopen"), st.sampled_from(["all", "some"])),
    ),
    min_size=2,
    max_size=10,
)


def run_ops(make: Any, reopen: Any, ops: list[Any]) -> None:
    db = make()
    declare(db)
    model: list[Any] = []
    try:
        for op in ops:
            if op[0] == "append":
                db.append_many(op[1])
                model.extend(op[1])
            elif op[0] == "delete":
                seqs = [s for s in op[1] if s < len(model)]
                if not seqs:
                    continue
                fresh = {s for s in seqs if model[s] is not DELETED}
                assert db.delete_many(seqs) == len(fresh)
                for s in fresh:
                    model[s] = DELETED
            elif op[0] == "where":
                a, by_view = op[1], op[2]
                hits = {s for s, v in enumerate(model) if v is not DELETED and v["a"] == a}
                query = [{"$filter": {"a": a}}]
                assert db.delete_where(query, view="q" if by_view else None) == len(hits)
                for s in hits:
                    model[s] = DELETED
            elif reopen is not None:
                db.close()
                db = reopen()
                # Views declared later than deletes they missed: replayed at mount.
                declare(db, list(VIEWS) if op[1] == "all" else ["q", "by_a"])
                if op[1] == "some":
                    db.append({"a": 0, "b": 0, "n": 0})
                    model.append({"a": 0, "b": 0, "n": 0})
                    db.delete_many([len(model) - 1])
                    model[-1] = DELETED
                    declare(db, ["cnt", "total", "last", "by_tag"])
            model_check(db, model)
        check_against_rebuild(db)
    finally:
        db.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops_st)
def test_views_after_deletes_equal_a_rebuild_in_memory(ops: list[Any]) -> None:
    run_ops(lambda: Flume(MemoryLog()), None, ops)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops_st)
def test_views_after_deletes_equal_a_rebuild_on_disk(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Any]
) -> None:
    path = tmp_path_factory.mktemp("deletes") / "db"
    run_ops(lambda: flume.open(path), lambda: flume.open(path), ops)


@pytest.fixture(params=["memory", "disk"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    d = Flume(MemoryLog()) if request.param == "memory" else flume.open(tmp_path / "db")
    declare(d)
    d.append_many([{"a": i % 3, "b": i % 2, "n": i} for i in range(10)])
    yield d
    d.close()


def test_a_deleted_seq_reads_as_deleted_and_keeps_its_place(db: Flume) -> None:
    assert db.delete(4) is True
    assert db.delete(4) is False  # deleted before: nothing changes
    with pytest.raises(DeletedError, match="seq 4 was deleted") as info:
        db.get(4)
    assert isinstance(info.value, NotFoundError) and isinstance(info.value, KeyError)
    assert db.since.value == 9
    assert db.append({"a": 9}) == 10  # later seqs never move
    assert [e.seq for e in db.stream(gte=3, lte=5)] == [3, 5]
    assert list(db.stream(gte=3, lte=5, tombstones=True, seqs=False))[1] is DELETED
    assert list(db.stream(values=False, lte=5)) == [0, 1, 2, 3, 5]
    assert list(db.stream(limit=5, values=False)) == [0, 1, 2, 3, 5]
    assert db.delete_many([9, 10]) == 2
    assert db.since.value == 10  # deleting the last seq does not give its seq back
    assert db.append({"a": 1}) == 11


def test_bad_deletes_change_nothing(db: Flume) -> None:
    before = list(db.stream())
    for bad, error in [
        ([1, 10], NotFoundError), ([-1], NotFoundError), (["1"], InvalidTypeError),
        ("12", InvalidTypeError), ([True], InvalidTypeError), (1.0, InvalidTypeError),
        ([2**70], NotFoundError),
    ]:
        with pytest.raises(error):
            db.delete_many(bad)
        assert list(db.stream()) == before
        assert db.log.deletes.value == -1
    with pytest.raises(QueryError):
        db.delete_where([{"$map": "a"}])
    for everything in (None, [], [{"$sort": ["a"]}]):
        with pytest.raises(InvalidArgumentError, match="needs a \\$filter"):
            db.delete_where(everything)
    with pytest.raises(NotFoundError):
        db.delete_where([{"$filter": {"a": 1}}], view="by_a")
    assert list(db.stream()) == before and db.cnt.get() == 10


def test_a_stream_made_of_deleted_chunks_goes_on(tmp_path: Path) -> None:
    with flume.open(tmp_path / "db") as db:
        db.append_many(list(range(5000)))
        db.delete_many(range(100, 4900))
        assert list(db.stream(seqs=False)) == [*range(100), *range(4900, 5000)]
        assert list(db.stream(seqs=False, reverse=True, limit=101))[-1] == 99
        with db.stream(live=True, gt=50, seqs=False) as live:
            got = [next(live) for _ in range(149)]
            db.append(-1)
            got.append(next(live))
        assert got == [*range(51, 100), *range(4900, 5000), -1]


def test_a_batch_of_deleted_entries_only_advances_every_view(tmp_path: Path) -> None:
    """Views catching up over a stretch of deleted entries reach the log's end (a Reduce view
    stores its since with its state: a reader must not find it stale)."""
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.append_many([{"a": 1, "b": 1, "n": 1}] * 50)
        db.delete_many(range(10, 50))
        declare(db)  # declared after: catch up over tombstones
        assert db.cnt.get() == 10 and db.total.get() == 10
        assert db.status()["views"]["cnt"]["lag"] == 0
        script = textwrap.dedent(f"""
            import flume, json
            from flume.views import Reduce
            def count(acc, v): return acc + 1
            with flume.open({str(path)!r}, readonly=True, timeout=10) as r:
                r.use("cnt", Reduce(count, initial=0))
                print(json.dumps(r.cnt.get()))
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == 10


class NoForget(View):
    """A custom view without unapply: deletes rebuild it."""

    kind = "custom"
    methods = {"seqs": "waits"}

    def apply(self, entries: Any, batch: Any) -> None:
        for seq, _ in entries:
            batch.put(seq.to_bytes(8, "big"), b"")

    def seqs(self) -> list[int]:
        return [int.from_bytes(k, "big") for k, _ in self.ctx.family.scan(b"", None)]


def test_a_view_that_cannot_forget_is_rebuilt() -> None:
    with Flume(MemoryLog()) as db:
        db.use("s", NoForget())
        db.append_many(list(range(6)))
        assert db.s.seqs() == list(range(6))
        db.delete_many([1, 4])
        assert db.s.seqs() == [0, 2, 3, 5]


def test_readers_in_other_processes_see_deletes_at_once(tmp_path: Path) -> None:
    """A reader asked after delete_many returned sees it in the log and in every view; one
    reader process stays open across deletes (its copy of the views database catches up)."""
    path = tmp_path / "db"
    script = textwrap.dedent(f"""
        import sys, json, flume
        with flume.open({str(path)!r}, readonly=True, timeout=10) as r:
            for line in sys.stdin:
                q = [{{"$filter": {{"b": 1}}}}, {{"$reduce": {{"$count": True}}}}]
                try:
                    r.get(int(line))
                    got = "there"
                except flume.DeletedError:
                    got = "deleted"
                out = [got, list(r.q.read(q)), list(r.stream(values=False))]
                print(json.dumps(out), flush=True)
    """)
    with flume.open(path) as db:
        # The reader mounts it from its stored definition, so with the default chunk size.
        db.use("q", Query(indexes={"a": [["a"]]}, bitmaps=[["b"]]))
        db.append_many([{"a": i % 3, "b": i % 2, "n": i} for i in range(40)])
        db.q.ready()
        reader = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert reader.stdin is not None and reader.stdout is not None
            alive = set(range(40))
            for step in range(8):
                seqs = list(range(2 * step + 1, 40, 16))  # odd: b == 1
                db.delete_many(seqs)
                alive -= set(seqs)
                reader.stdin.write(f"{seqs[0]}\n")
                reader.stdin.flush()
                got, counted, streamed = json.loads(reader.stdout.readline())
                assert got == "deleted"
                assert counted == [sum(1 for s in alive if s % 2)]
                assert streamed == sorted(alive)
        finally:
            if reader.stdin is not None:
                reader.stdin.close()
            reader.wait(30)


def test_a_reader_cannot_delete(tmp_path: Path) -> None:
    with flume.open(tmp_path / "db") as db:
        db.append(1)
        with flume.open(tmp_path / "db", readonly=True) as reader:
            with pytest.raises(ReadOnlyError):
                reader.delete(0)
        assert db.get(0) == 1


def _files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and needle in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


def test_after_compact_no_file_holds_a_deleted_secret(tmp_path: Path) -> None:
    """A value holding a unique secret, indexed by every kind of view (an index key, a bitmap,
    a Reduce state, and a view defined by code that is not mounted when the delete happens),
    is deleted; before compact its bytes are still on disk, after compact in no file under the
    directory; everything else reads back, and every view equals a rebuild."""
    import secrets

    secret = "s3cr3t-" + secrets.token_hex(16)
    path = tmp_path / "db"
    values = [{"a": i % 3, "b": i % 2, "n": i, "who": f"user{i}"} for i in range(300)]
    with flume.open(path) as db:
        declare(db)
        db.use("by_who", Index(lambda v: v.get("who")))
        db.use("q2", Query(indexes={"who": [["who"]]}, bitmaps=[["who"]]))
        db.append_many(values[:150])
        seq = db.append({"a": 1, "b": 1, "n": 1, "who": secret, "t": [secret]})
        db.append_many(values[150:])
        for view in db.views.values():
            view.ready(timeout=10)
    with flume.open(path) as db:  # by_who is stored, not declared: it misses the delete
        declare(db)
        db.use("q2", Query(indexes={"who": [["who"]]}, bitmaps=[["who"]]))
        assert db.delete(seq)
        assert db.status()["deleted"] == 1
        assert _files_holding(path, secret.encode())  # deleted, not yet erased
        report = db.compact()
        assert report == {"erased": 1, "wiped": 1}
        assert _files_holding(path, secret.encode()) == []
        assert [e.value for e in db.stream()] == values
        assert list(db.q2.read([{"$filter": {"who": secret}}])) == []
        check_against_rebuild(db)
    assert _files_holding(path, secret.encode()) == []
    with flume.open(path) as db:
        db.use("by_who", Index(lambda v: v.get("who")))  # wiped by compact: rebuilt
        assert [e.seq for e in db.by_who.read(prefix="user7")] == [7]
        assert list(db.by_who.read(prefix=secret, timeout=10)) == []
        assert len(list(db.by_who.read(timeout=10))) == 300


def test_cli_deletes_compacts_and_reports(tmp_path: Path) -> None:
    from tests.test_cli import error, ok

    path = tmp_path / "db"
    with flume.open(path) as db:
        db.use("q", Query(indexes={"a": [["a"]]}))
        db.append_many([{"a": i % 3} for i in range(30)])
    assert ok("delete", path, 1, 2, 2).strip() == "2"
    assert ok("delete", path, "--where", '{"a": 0}', "--view", "q").strip() == "10"
    assert "not in the log" in error("delete", path, 99)
    assert "give the seqs" in error("delete", path, code=2)
    report = json.loads(ok("status", path, "--json"))
    assert report["deleted"] == 12 and report["reclaimable_bytes"] > 0
    assert "12 deleted" in ok("status", path)
    assert "12 deleted values erased" in ok("compact", path)
    with flume.open(path, readonly=True) as reader:
        assert [e.seq for e in reader.stream()] == [s for s in range(30) if s % 3 and s > 2]
        assert list(reader.q.read([{"$filter": {"a": 0}}])) == []


def test_export_writes_deleted_entries_and_import_keeps_their_seqs(tmp_path: Path) -> None:
    from tests.test_cli import error, ok

    a, b = tmp_path / "a", tmp_path / "b"
    with flume.open(a) as db:
        db.append_many([{"i": i} for i in range(2500)])  # the import's batches span deletes
        db.delete_many([0, 7, 999, 1000, 2499])
    dump = tmp_path / "a.jsonl"
    dump.write_text(ok("export", a))
    assert dump.read_text().splitlines()[7] == '{"$deleted": true}'
    ok("import", b, dump)
    with flume.open(a, readonly=True) as source, flume.open(b, readonly=True) as db:
        assert list(db.stream(tombstones=True)) == list(source.stream(tombstones=True))
        assert db.since.value == 2499 and db.log.deletes.value == 4
    c = tmp_path / "c"
    with flume.open(c) as db:
        db.append({"$deleted": True})  # a value export could not tell from a deleted entry
    assert "deleted entry" in error("export", c)
