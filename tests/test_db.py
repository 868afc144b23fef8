"""The database as a whole: the DESIGN.md example, threads, processes, readonly opens, errors,
map growth and the on-disk format checks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

import flume
from flume import codec
from flume.errors import (
    ClosedError,
    DirectoryNotFoundError,
    EncodeError,
    FormatError,
    InvalidTypeError,
    LockedError,
    NotFoundError,
    ReadOnlyError,
    ViewNameError,
)
from flume.logs import Entry, LmdbLog, MemoryLog
from flume.testing.logs import Consumer
from flume.views import Index, Query, Reduce

WAIT = 10.0
CHILD_TIMEOUT = 60.0


def run_child(code: str, *args: str, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Run ``code`` in a fresh Python process; it prints one JSON object, returned here."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def file_state(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# -- the DESIGN.md example ---------------------------------------------------------------------


def test_the_design_example_works_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = flume.open("data")  # LmdbLog at data/log, views in RocksDB at data/views
    assert os.path.isdir("data/log") and os.path.isdir("data/views")
    assert db.use("count", Reduce(lambda acc, e: acc + 1, initial=0)) is db
    db.use("by_author", Index(lambda v: (v["author"], v["ts"])))
    db.use("query", Query(indexes={"aut": [["author"], ["ts"]], "typ": [["type"], ["ts"]]}))

    seq = db.append({"author": "@a", "ts": 1, "type": "post"})
    assert seq == 0
    last = db.append_many(
        [{"author": "@b" if i % 2 else "@a", "ts": i + 2, "type": "post"} for i in range(12)]
    )
    assert last == 12
    assert db.count.get() == 13  # waits until 'count' is caught up
    assert db.views["count"] is db.count
    latest = list(db.by_author.read(prefix=("@a",), reverse=True, limit=2))
    assert [(e.key, e.seq) for e in latest] == [(("@a", 12), 11), (("@a", 10), 9)]
    assert db.get(0) == {"author": "@a", "ts": 1, "type": "post"}
    found = list(db.query.read([{"$filter": {"author": "@a"}}], reverse=True, limit=10))
    assert [v["ts"] for v in found] == [12, 10, 8, 6, 4, 2, 1]
    assert all(v["author"] == "@a" for v in found)
    plan = db.query.explain([{"$filter": {"author": "@a", "ts": {"$gt": 0}}}])
    assert plan["index"] == "aut"

    stream = db.stream(gt=10, live=True)  # blocks for new entries; .close() ends it
    consumer = Consumer(stream)
    assert [e.seq for e in consumer.wait_count(2)] == [11, 12]
    db.append({"author": "@c", "ts": 99, "type": "post"})
    assert consumer.wait_count(3)[-1] == Entry(13, {"author": "@c", "ts": 99, "type": "post"})
    stream.close()
    assert len(consumer.join()) == 3
    db.close()

    with flume.open("data") as db:
        db.use("count", Reduce(lambda acc, e: acc + 1, initial=0))
        # A stored Query view is mounted at open; declaring it again the same is no clash.
        db.use("query", Query(indexes={"aut": [["author"], ["ts"]], "typ": [["type"], ["ts"]]}))
        assert db.count.get() == 14
        assert db.since.value == 13
        assert [v["ts"] for v in db.query.read([{"$filter": {"author": "@c"}}])] == [99]
    assert db.closed


# -- basics of the API -------------------------------------------------------------------------


def test_open_creates_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    with flume.open(path) as db:
        assert db.since.value == -1
        assert db.append("x") == 0
    assert (path / "log" / "data.mdb").exists()


def test_open_checks_its_options(tmp_path: Path) -> None:
    with pytest.raises(InvalidTypeError):
        flume.open(tmp_path / "db", readonly="no")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError):
        flume.open(tmp_path / "db", sync=1)  # type: ignore[arg-type]


def test_a_memory_db_has_memory_views() -> None:
    with flume.Flume(MemoryLog()) as db:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        db.append_many([1, 2, 3])
        assert db.count.get() == 3
        assert db.log.dir is None


def test_get_returns_the_bare_value_and_missing_seqs_raise(tmp_path: Path) -> None:
    with flume.open(tmp_path / "db") as db:
        db.append({"a": 1})
        assert db.get(0) == {"a": 1}
        with pytest.raises(NotFoundError) as info:
            db.get(1)
        assert isinstance(info.value, KeyError)
        with pytest.raises(KeyError):
            db.get(-1)


def test_limit_zero_yields_nothing_everywhere(tmp_path: Path) -> None:
    with flume.open(tmp_path / "db") as db:
        db.use("idx", Index(lambda v: v))
        db.append_many([1, 2, 3])
        assert list(db.stream(limit=0)) == []
        assert list(db.stream(limit=0, live=True)) == []
        assert list(db.idx.read(limit=0)) == []


def test_close_is_idempotent_and_ends_live_streams(tmp_path: Path) -> None:
    db = flume.open(tmp_path / "db")
    db.append(1)
    consumers = [Consumer(db.stream(live=True)), Consumer(db.stream(live=True, old=False))]
    consumers[0].wait_count(1)
    db.close()
    db.close()
    assert [len(c.join()) for c in consumers] == [1, 0]


def test_closed_db_raises_closed_error(tmp_path: Path) -> None:
    db = flume.open(tmp_path / "db")
    db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
    db.append(1)
    count = db.count
    db.close()
    for call in (
        lambda: db.append(2),
        lambda: db.append_many([2]),
        lambda: db.get(0),
        lambda: db.stream(),
        lambda: db.use("other", Reduce(lambda acc, v: acc, initial=0)),
        lambda: count.get(),
        lambda: count.ready(),
        lambda: db.status(),
        lambda: db.rebuild(),
    ):
        with pytest.raises(ClosedError):
            call()


def test_use_name_clashes_raise_view_name_error(tmp_path: Path) -> None:
    with flume.open(tmp_path / "db") as db:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        with pytest.raises(ViewNameError) as info:
            db.use("count", Reduce(lambda acc, v: acc + 2, initial=0))
        assert isinstance(info.value, ValueError)
        attributes = ["append", "append_many", "get", "stream", "since", "use", "views",
                      "close", "rebuild", "status", "log", "readonly", "closed"]
        for name in attributes:
            with pytest.raises(ViewNameError):
                db.use(name, Reduce(lambda acc, v: acc, initial=0))
        for bad_name in ["_private", "__dict__", "1abc", "has space", "", "a-b"]:
            with pytest.raises(ViewNameError):
                db.use(bad_name, Reduce(lambda acc, v: acc, initial=0))
        with pytest.raises((ViewNameError, InvalidTypeError)):
            db.use(5, Reduce(lambda acc, v: acc, initial=0))  # type: ignore[arg-type]
        with pytest.raises(InvalidTypeError):
            db.use("fine", lambda acc, v: acc)  # type: ignore[arg-type]
        assert list(db.views) == ["count"]
        db.append(1)
        assert db.count.get() == 1  # the first declaration is untouched
        assert callable(db.append)


# -- threads -----------------------------------------------------------------------------------


def test_threads_hammering_appends_while_others_stream_and_get(tmp_path: Path) -> None:
    db = flume.open(tmp_path / "db")
    db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
    db.use("by_thread", Index(lambda v: (v["t"], v["i"], v["k"])))
    writers, ops = 8, 25
    plans = {
        t: [random.Random(t * 31 + i).choice([1, 1, 2, 4]) for i in range(ops)]
        for t in range(writers)
    }
    total = sum(sum(p) for p in plans.values())
    results: dict[int, list[tuple[int, list[Any]]]] = {t: [] for t in range(writers)}
    errors: list[BaseException] = []
    go = threading.Event()
    done = threading.Event()

    def write(t: int) -> None:
        go.wait(WAIT)
        try:
            for i, size in enumerate(plans[t]):
                batch = [{"t": t, "i": i, "k": k} for k in range(size)]
                last = db.append(batch[0]) if size == 1 else db.append_many(batch)
                results[t].append((last, batch))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    def get_while_writing() -> None:
        rng = random.Random(5)
        while not done.is_set():
            since = db.since.value
            if since >= 0:
                try:
                    value = db.get(rng.randint(0, since))
                    assert set(value) == {"t", "i", "k"}
                    assert db.get(since) is not None
                except BaseException as e:  # noqa: BLE001 - reported by the test
                    errors.append(e)
                    return

    def stream_while_writing() -> None:
        while not done.is_set():
            seqs = list(db.stream(values=False))
            if seqs != list(range(len(seqs))):
                errors.append(AssertionError(f"a non-live stream was not dense: {seqs[:20]}"))
                return

    live = [Consumer(db.stream(live=True, limit=total)) for _ in range(2)]
    others = [threading.Thread(target=get_while_writing), threading.Thread(target=stream_while_writing)]
    threads = [threading.Thread(target=write, args=(t,)) for t in range(writers)]
    for th in threads + others:
        th.start()
    go.set()
    late = Consumer(db.stream(live=True, limit=total))  # joins while the writers run
    for th in threads:
        th.join(WAIT * 3)
    done.set()
    for th in others:
        th.join(WAIT)
    assert errors == []

    stored = list(db.stream())
    assert [e.seq for e in stored] == list(range(total))
    covered: list[int] = []
    for t in range(writers):
        lasts = [last for last, _ in results[t]]
        assert lasts == sorted(lasts)  # a thread's appends land in its order
        for last, batch in results[t]:
            first = last - len(batch) + 1
            assert [e.value for e in stored[first : last + 1]] == batch  # whole and contiguous
            covered.extend(range(first, last + 1))
    assert sorted(covered) == list(range(total))  # distinct, dense seqs
    for consumer in live + [late]:
        assert consumer.join() == stored  # every live stream saw each entry exactly once
    assert db.count.get() == total
    for t in range(writers):
        mine = [e.value for e in db.by_thread.read(prefix=(t,))]
        assert mine == [v for _, batch in results[t] for v in batch]
    db.close()


# -- processes ---------------------------------------------------------------------------------

TRY_OPEN = """
import json, sys, time
import flume
start = time.monotonic()
try:
    db = flume.open(sys.argv[1])
except flume.LockedError as e:
    print(json.dumps({"locked": str(e), "elapsed": time.monotonic() - start}))
else:
    seq = db.append("from the child")
    print(json.dumps({"opened": True, "seq": seq, "first": db.get(0)}))
    db.close()
"""


def test_a_second_writer_process_gets_locked_error_at_once(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = flume.open(path)
    db.append("from the parent")
    result = run_child(TRY_OPEN, str(path))
    assert "locked" in result, result
    assert str(os.getpid()) in result["locked"]  # names the holder
    assert result["elapsed"] < 2.0  # at once, no waiting for the lock
    db.close()
    result = run_child(TRY_OPEN, str(path))
    assert result == {"opened": True, "seq": 1, "first": "from the parent"}
    with flume.open(path) as db:
        assert db.get(1) == "from the child"


def test_a_second_writer_in_the_same_process_gets_locked_error(tmp_path: Path) -> None:
    with flume.open(tmp_path / "db"):
        with pytest.raises(LockedError) as info:
            flume.open(tmp_path / "db")
        assert str(os.getpid()) in str(info.value)
    with flume.open(tmp_path / "db") as db:  # released by close()
        assert db.since.value == -1


HOLD_OPEN = """
import sys, time
import flume
db = flume.open(sys.argv[1])
db.append_many(["kept %d" % i for i in range(5)])
open(sys.argv[2], "w").write("ready")
time.sleep(120)
"""


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    path, ready = tmp_path / "db", tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(path), str(ready)])
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while not ready.exists():
            assert child.poll() is None, "the child writer died"
            assert time.monotonic() < deadline, "the child writer never got ready"
            time.sleep(0.02)
        with pytest.raises(LockedError) as info:
            flume.open(path)
        assert str(child.pid) in str(info.value)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(CHILD_TIMEOUT)
    with flume.open(path) as db:
        assert list(db.stream(seqs=False)) == [f"kept {i}" for i in range(5)]
        assert db.append("after") == 5


READ_ONLY_CHILD = """
import json, sys
import flume
with flume.open(sys.argv[1], readonly=True) as db:
    out = {"since": db.since.value, "values": list(db.stream(seqs=False))}
    try:
        db.append(1)
    except flume.ReadOnlyError:
        out["readonly_error"] = True
print(json.dumps(out))
"""


def test_a_readonly_process_reads_alongside_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.append_many(["a", "b"])
        result = run_child(READ_ONLY_CHILD, str(path))
        assert result == {"since": 1, "values": ["a", "b"], "readonly_error": True}
        db.append("c")
        result = run_child(READ_ONLY_CHILD, str(path))
        assert result["values"] == ["a", "b", "c"]


# -- readonly in the same process ---------------------------------------------------------------


def test_readonly_open_alongside_a_writer_sees_its_commits(tmp_path: Path) -> None:
    path = tmp_path / "db"
    writer = flume.open(path)
    writer.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
    writer.append("first")
    reader = flume.open(path, readonly=True)
    assert reader.readonly
    assert reader.since.value == 0
    assert reader.get(0) == "first"

    live = reader.stream(live=True, values=False)
    consumer = Consumer(live)
    assert writer.append_many(["second", "third"]) == 2
    assert reader.since.value == 2
    assert reader.get(2) == "third"
    assert list(reader.stream(seqs=False)) == ["first", "second", "third"]
    assert consumer.wait_count(3) == [0, 1, 2]
    live.close()
    consumer.join()

    reader.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
    assert reader.count.get() == 3  # the writer's view, read-your-writes relative to it
    writer.append("fourth")
    assert reader.count.get() == 4

    reader.close()  # closing the reader leaves the writer working
    assert writer.append("fifth") == 4
    assert writer.get(0) == "first"
    assert writer.count.get() == 5
    writer.close()


def test_readonly_db_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with flume.open(path) as writer:
        writer.append(1)
        with flume.open(path, readonly=True) as reader:
            for call in (
                lambda: reader.append(2),
                lambda: reader.append_many([2, 3]),
                lambda: reader.append_many([]),
                lambda: reader.rebuild(),
            ):
                with pytest.raises(ReadOnlyError):
                    call()
            assert reader.since.value == 0
    with flume.open(path, readonly=True) as reader:  # also with no writer around
        with pytest.raises(ReadOnlyError):
            reader.append(2)
        assert reader.get(0) == 1


def test_readonly_open_of_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(DirectoryNotFoundError) as info:
        flume.open(tmp_path / "missing", readonly=True)
    assert isinstance(info.value, FileNotFoundError)
    assert "missing" in str(info.value)
    with pytest.raises(DirectoryNotFoundError):
        flume.open(tmp_path / "missing" / "deeper", readonly=True)
    assert sorted(os.listdir(tmp_path)) == before


# -- bad input changes nothing -----------------------------------------------------------------


def test_a_bad_batch_leaves_the_log_exactly_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
        db.append_many([{"n": i} for i in range(10)])
        assert db.count.get() == 10
        before = list(db.stream())
        data_before = (path / "log" / "data.mdb").read_bytes()
        for bad in ([{"n": 10}, {"n": object()}], [1, 2, 3, 2**64], [{1, 2}], ["ok", "\ud800"]):
            with pytest.raises(EncodeError):
                db.append_many(bad)
            with pytest.raises(EncodeError):
                db.append(bad[-1])
        assert db.since.value == 9
        assert list(db.stream()) == before
        assert (path / "log" / "data.mdb").read_bytes() == data_before
        assert db.count.get() == 10
        assert db.append("next") == 10
    with flume.open(path) as db:
        assert [e.value for e in db.stream()] == [e.value for e in before] + ["next"]


# -- map growth --------------------------------------------------------------------------------


def test_the_map_grows_by_itself_and_the_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db" / "log"
    log = LmdbLog(path, _map_size=1 << 20)  # a 1 MiB map, filled many times over below
    big = [bytes([i]) * (600 * 1024) for i in range(4)]
    stop = threading.Event()
    reader_errors: list[BaseException] = []

    def read_meanwhile() -> None:
        while not stop.is_set():
            try:
                for entry in log.stream():
                    assert entry.value in big or isinstance(entry.value, dict)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                reader_errors.append(e)
                return

    reader = threading.Thread(target=read_meanwhile)
    reader.start()
    try:
        for value in big:
            log.append(value)
        assert log.append_many([{"blob": b"x" * (1 << 20), "n": n} for n in range(3)]) == 6
    finally:
        stop.set()
        reader.join(WAIT)
    assert reader_errors == []
    assert (path / "data.mdb").stat().st_size > 4 * (1 << 20)
    assert [log.get(i) for i in range(4)] == big
    log.close()

    for k, map_size in enumerate((1 << 20, 1 << 30)):
        log = LmdbLog(path, _map_size=map_size)  # smaller than the file: the file size wins
        assert log.since.value == 6 + k
        assert [log.get(i) for i in range(4)] == big
        assert log.get(6) == {"blob": b"x" * (1 << 20), "n": 2}
        assert log.append(b"y" * (2 << 20)) == 7 + k  # grows again, if it must
        log.close()
    with flume.open(tmp_path / "db") as db:
        assert db.since.value == 8
        assert db.get(8) == b"y" * (2 << 20)


def test_readers_in_a_loop_do_not_starve_map_growth(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "log", _map_size=1 << 20)
    log.append(0)
    stop = threading.Event()

    def read_in_a_loop() -> None:
        while not stop.is_set():
            log.get(0)

    readers = [threading.Thread(target=read_in_a_loop) for _ in range(2)]
    for r in readers:
        r.start()
    try:
        start = time.monotonic()
        for _ in range(3):
            log.append(b"x" * (1 << 20))  # each fills the map: it must grow
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        for r in readers:
            r.join(WAIT)
        log.close()
    assert elapsed < 8.0, f"3 appends took {elapsed:.1f} s: the map resize was starved"


# -- the on-disk format ------------------------------------------------------------------------


def _set_meta(log_dir: Path, meta: Any) -> None:
    env = lmdb.open(str(log_dir), max_dbs=2)
    try:
        meta_db = env.open_db(b"meta")
        with env.begin(write=True) as txn:
            txn.put(b"format", codec.encode(meta), db=meta_db)
    finally:
        env.close()


def test_an_unknown_format_version_is_refused_and_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.append_many(["a", "b"])
    _set_meta(path / "log", {"name": "flume-log", "version": 99})
    data = path / "log" / "data.mdb"
    before = file_state(data)
    time.sleep(0.01)  # so a write would show in the mtime
    for opener in (
        lambda: flume.open(path),
        lambda: flume.open(path, readonly=True),
        lambda: LmdbLog(path / "log"),
    ):
        with pytest.raises(FormatError) as info:
            opener()
        assert "99" in str(info.value)
        assert file_state(data) == before
    _set_meta(path / "log", {"name": "flume-log", "version": 1})
    with flume.open(path) as db:  # nothing was left locked or changed
        assert list(db.stream(seqs=False)) == ["a", "b"]


def test_an_lmdb_env_that_is_not_a_flume_log_is_refused(tmp_path: Path) -> None:
    log_dir = tmp_path / "db" / "log"
    log_dir.mkdir(parents=True)
    env = lmdb.open(str(log_dir))
    with env.begin(write=True) as txn:
        txn.put(b"someone", b"else's data")
    env.close()
    before = file_state(log_dir / "data.mdb")
    with pytest.raises(FormatError):
        flume.open(tmp_path / "db")
    assert file_state(log_dir / "data.mdb") == before
    _set_meta(tmp_path / "db" / "log", {"name": "not-flume", "version": 1})
    with pytest.raises(FormatError):
        flume.open(tmp_path / "db")


def test_a_non_flume_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mine"
    path.mkdir()
    (path / "notes.txt").write_text("my notes")
    for readonly in (False, True):
        with pytest.raises(FormatError) as info:
            flume.open(path, readonly=readonly)
        assert "notes.txt" in str(info.value) or "not a flume database" in str(info.value)
    assert os.listdir(path) == ["notes.txt"]
    assert (path / "notes.txt").read_text() == "my notes"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FormatError):
        flume.open(a_file)
    assert a_file.read_text() == "x"


def test_an_empty_existing_directory_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.mkdir()
    with flume.open(path) as db:
        assert db.append(1) == 0
    with flume.open(path, readonly=True) as db:
        assert db.get(0) == 1
