"""Resources: hundreds of live streams at once, readers across map growth, closing while
everything runs, and thousands of open/close cycles without leaking descriptors or threads."""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.errors import ClosedError, FormatError, LockedError
from flume.logs import LmdbLog
from flume.views import Index, Query, Reduce

WAIT = 30.0
OPEN_CLOSE_CYCLES = 100
OPEN_CLOSE_CYCLES_SLOW = 5000


def fds() -> int:
    gc.collect()  # what earlier tests left for the collector is not this test's leak
    return len(os.listdir("/proc/self/fd"))


def native_threads() -> int:
    """Every thread of the process, RocksDB's and LMDB's included (threading sees only its own)."""
    return len(os.listdir("/proc/self/task"))


def mount(db: flume.Flume) -> flume.Flume:
    db.use("count", Reduce(lambda acc, v: acc + 1, initial=0))
    db.use("by_author", Index(lambda v: (v["author"], v["i"])))
    db.use("q", Query(indexes={"aut": [["author"], ["i"]]}))
    return db


def value(i: int) -> dict[str, Any]:
    return {"i": i, "author": f"@{i % 5}", "pad": "p" * (i % 50)}


class Collector(threading.Thread):
    """Iterates one stream to its end in a thread; records what it got and any exception."""

    def __init__(self, stream: Iterator[Any]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.items: list[Any] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for item in self.stream:
                self.items.append(item)
        except BaseException as e:  # reported by the test
            self.error = e


def wait_until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# -- many live streams -----------------------------------------------------------------------


def test_hundreds_of_live_streams_at_once_close_cleanly(tmp_path: Path) -> None:
    threads_before, fds_before = threading.active_count(), fds()
    with mount(flume.open(tmp_path / "db", sync=False)) as db:
        db.append_many([value(i) for i in range(20)])
        streams: list[Any] = []
        streams += [db.stream(live=True) for _ in range(200)]
        streams += [db.stream(live=True, old=False, seqs=False) for _ in range(50)]
        streams += [db.by_author.read(prefix="@1", live=True) for _ in range(50)]
        streams += [db.q.read({"author": "@2"}, live=True) for _ in range(50)]
        collectors = [Collector(s) for s in streams]
        for c in collectors:
            c.start()
        # Appends, single and batched, while 350 streams wait on them.
        n = 20
        while n < 120:
            if n % 3:
                db.append(value(n))
                n += 1
            else:
                db.append_many([value(n + k) for k in range(7)])
                n += 7
        expected_log = list(range(n))
        wait_until(lambda: all(len(c.items) == n for c in collectors[:200]), "the live log streams")
        wait_until(lambda: all(len(c.items) == n - 20 for c in collectors[200:250]), "old=False streams")
        authors_1 = [i for i in range(n) if i % 5 == 1]
        wait_until(lambda: all(len(c.items) == len(authors_1) for c in collectors[250:300]), "index reads")
        authors_2 = [i for i in range(n) if i % 5 == 2]
        wait_until(lambda: all(len(c.items) == len(authors_2) for c in collectors[300:]), "query reads")
        for c in collectors[:200]:
            assert [e.seq for e in c.items] == expected_log
            assert [e.value for e in c.items] == [value(i) for i in range(n)]
        for c in collectors[250:300]:
            assert [e.seq for e in c.items] == authors_1
        for c in collectors[300:]:
            assert [v["i"] for v in c.items] == authors_2
        # Close half from this thread: each ends quietly; the rest end with the db.
        for s in streams[::2]:
            s.close()
        for c in collectors[::2]:
            c.join(WAIT)
            assert not c.is_alive()
        assert all(c.is_alive() for c in collectors[1::2])
    for c in collectors:
        c.join(WAIT)
        assert not c.is_alive() and c.error is None, c.error
    assert not db.log._streams
    assert threading.active_count() <= threads_before
    assert fds() <= fds_before


# -- a reader across map growth ----------------------------------------------------------------


def small_map_db(path: Path, map_size: int = 256 * 1024) -> flume.Flume:
    """A db whose log starts with a tiny LMDB map, so that appends grow it many times."""
    path.mkdir(parents=True, exist_ok=True)
    return flume.Flume(LmdbLog(path / "log", sync=False, _map_size=map_size))


def map_size(db: flume.Flume) -> int:
    size: int = db.log._env.info()["map_size"]
    return size


def test_a_stream_mid_iteration_survives_the_writer_growing_the_map(tmp_path: Path) -> None:
    with mount(small_map_db(tmp_path / "db")) as db:
        first = [value(i) for i in range(5000)]
        db.append_many(first)
        old = db.stream()  # what was committed now: seqs 0..4999
        backwards = db.stream(reverse=True, seqs=False)
        live = db.stream(live=True, values=False)
        index_read = db.by_author.read(prefix="@3")
        query_read = db.q.read({"author": "@4"}, seqs=True)
        got = [next(old) for _ in range(100)]
        got_back = [next(backwards) for _ in range(100)]
        got_live = [next(live) for _ in range(100)]
        got_index = [next(index_read) for _ in range(10)]
        got_query = [next(query_read) for _ in range(10)]
        # The writer grows the map several times while those five are mid-iteration.
        start_size = map_size(db)
        big = [{"i": 5000 + i, "author": "@9", "pad": "x" * 500} for i in range(3000)]
        for k in range(0, len(big), 1000):
            db.append_many(big[k : k + 1000])
            db.append_many([{"i": -1, "author": "@8", "pad": ""}] * 8000)
        assert map_size(db) >= 2 * start_size, "the map did not grow"
        got += list(old)
        got_back += list(backwards)
        assert [e.seq for e in got] == list(range(5000))
        assert [e.value for e in got] == first
        assert got_back == list(reversed(first))
        got_index += list(index_read)
        got_query += list(query_read)
        assert [e.seq for e in got_index] == [i for i in range(5000) if i % 5 == 3]
        assert [e.seq for e in got_query] == [i for i in range(5000) if i % 5 == 4]
        total = 5000 + 3 * 9000
        got_live += [next(live) for _ in range(total - 100)]
        assert got_live == list(range(total))
        live.close()
        assert db.count.get() == total
        assert db.get(total - 8001) == big[-1]


@pytest.mark.parametrize("ahead", [True, False], ids=["grown-ahead", "grown-on-map-full"])
def test_reader_threads_run_alongside_map_growth(tmp_path: Path, ahead: bool) -> None:
    """Readers take short read transactions; a map resize waits for them and they for it.
    The log grows the map before a commit that may not fit; when that estimate falls short,
    the full transaction is aborted and the map grown (aborting it while threads read hung
    py-lmdb 3.0): both paths, with four threads reading in a loop."""
    errors: list[BaseException] = []
    stop = threading.Event()
    with small_map_db(tmp_path / "db") as db:
        if not ahead:
            db.log._make_room = lambda batch: None  # type: ignore[method-assign]
        db.append({"i": 0, "author": "@0", "pad": ""})

        def reader() -> None:
            rng = random.Random()
            try:
                while not stop.is_set():
                    since = db.since.value
                    seq = rng.randrange(since + 1)
                    assert db.get(seq)["i"] == seq
                    for e in db.stream(gte=max(0, since - 300), lte=since):
                        assert e.value["i"] == e.seq
            except BaseException as e:
                errors.append(e)

        readers = [threading.Thread(target=reader) for _ in range(4)]
        for t in readers:
            t.start()
        for k in range(1, 4001, 200):
            db.append_many([{"i": k + j, "author": "@1", "pad": "y" * 1500} for j in range(200)])
        stop.set()
        for t in readers:
            t.join(WAIT)
        assert map_size(db) > 256 * 1024
    assert not errors, errors[0]


READER_CHILD = """
import json, sys, time
import flume
db = flume.open(sys.argv[1], readonly=True)
s = db.stream(seqs=False)
first = [next(s) for _ in range(10)]
print("started", flush=True)
sys.stdin.readline()               # the writer grows the map meanwhile
rest = list(s)
after = list(db.stream(gt=db.since.value - 5, values=False))
print(json.dumps({"n": len(first) + len(rest), "last": rest[-1]["i"], "since": db.since.value,
                  "after": after}), flush=True)
db.close()
"""


def test_a_reader_process_mid_iteration_adopts_the_grown_map(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with small_map_db(path) as db:
        db.append_many([{"i": i, "pad": "z" * 100} for i in range(3000)])
        child = subprocess.Popen(
            [sys.executable, "-c", READER_CHILD, str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "started", child.stderr.read() if child.stderr else ""
        size = map_size(db)
        for k in range(3000, 9000, 3000):
            db.append_many([{"i": k + j, "pad": "w" * 2000} for j in range(3000)])
        assert map_size(db) > size, "the map did not grow"
        out, err = child.communicate("go\n", timeout=WAIT * 2)
        assert child.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result == {"n": 3000, "last": 2999, "since": 8999, "after": [8995, 8996, 8997, 8998, 8999]}


# -- closing while everything runs --------------------------------------------------------------


@pytest.mark.parametrize("round_", range(6))
def test_close_while_live_streams_and_indexing_run(tmp_path: Path, round_: int) -> None:
    """db.close() from one thread while others append, stream live, read views and the
    indexer works: close returns promptly, live streams end quietly, and the others get
    ClosedError (the documented error) and nothing else."""
    threads_before, fds_before = threading.active_count(), fds()
    rng = random.Random(round_)
    db = mount(flume.open(tmp_path / "db", sync=rng.random() < 0.5))
    db.append_many([value(i) for i in range(rng.randrange(1, 3000))])
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(fn: Any) -> Any:
        def run() -> None:
            try:
                while not stop.is_set():
                    fn()
            except ClosedError:
                pass
            except BaseException as e:
                errors.append(e)

        return run

    counter = iter(range(10**9))
    workers = [
        threading.Thread(target=guarded(lambda: db.append(value(next(counter))))),
        threading.Thread(target=guarded(lambda: db.append_many([value(next(counter)) for _ in range(50)]))),
        threading.Thread(target=guarded(lambda: db.count.get())),
        threading.Thread(target=guarded(lambda: list(db.by_author.read(prefix="@2", limit=50)))),
        threading.Thread(target=guarded(lambda: list(db.q.read({"author": "@1"}, limit=20)))),
        threading.Thread(target=guarded(lambda: db.rebuild())) if round_ % 2 else None,
    ]
    workers = [w for w in workers if w is not None]
    lives = [Collector(db.stream(live=True)), Collector(db.by_author.read(live=True)),
             Collector(db.q.read({"author": "@3"}, live=True)), Collector(db.stream(live=True, old=False))]
    for t in [*workers, *lives]:
        t.start()
    time.sleep(rng.uniform(0.05, 0.5))
    started = time.monotonic()
    db.close()
    assert time.monotonic() - started < 10, "close() took too long"
    stop.set()
    for t in [*workers, *lives]:
        t.join(WAIT)
        assert not t.is_alive(), "a thread hung after close()"
    assert not errors, f"{type(errors[0]).__name__}: {errors[0]}"
    for c in lives:
        assert c.error is None, f"a live stream ended with {type(c.error).__name__}: {c.error}"
    assert threading.active_count() <= threads_before
    assert fds() <= fds_before
    # Everything acknowledged is there, and the views catch up on the next open.
    with mount(flume.open(tmp_path / "db")) as db:
        assert db.count.get() == db.since.value + 1


# -- open/close cycles ---------------------------------------------------------------------------


def cycle(path: Path, i: int) -> None:
    """One open/use/read/close, and now and then an open that fails or a reader alongside."""
    db = flume.open(path, sync=bool(i % 2))
    try:
        mount(db)
        if i % 10 == 0:
            db.append({"i": i, "author": "@c", "pad": ""})
        assert db.count.get() == db.since.value + 1
        if i % 7 == 0:
            with pytest.raises(LockedError):
                flume.open(path)
        if i % 11 == 0:
            with flume.open(path, readonly=True) as reader:
                assert reader.since.value == db.since.value
                list(reader.stream(limit=3))
        if i % 13 == 0:
            s = db.stream(live=True)
            next(s)  # left open: close() must end it
    finally:
        db.close()
    if i % 17 == 0:
        with pytest.raises(FormatError):
            flume.open(path / "log")


def run_cycles(tmp_path: Path, n: int) -> None:
    path = tmp_path / "db"
    with mount(flume.open(path)) as db:
        db.append_many([value(i) for i in range(100)])
    for i in range(10):  # warm up: lazily created pools and caches
        cycle(path, i)
    fds_before, threads_before, native_before = fds(), threading.active_count(), native_threads()
    for i in range(10, 10 + n):
        cycle(path, i)
        if i % 100 == 0:
            assert fds() <= fds_before, f"file descriptors leak: {fds_before} -> {fds()} after {i} cycles"
    assert fds() == fds_before, f"file descriptors: {fds_before} -> {fds()}"
    assert threading.active_count() == threads_before
    assert native_threads() == native_before, f"threads: {native_before} -> {native_threads()}"
    assert not os.listdir(path / "readers"), "a reader's secondary directory was left behind"


def test_open_close_cycles_leak_no_descriptors_or_threads(tmp_path: Path) -> None:
    run_cycles(tmp_path, OPEN_CLOSE_CYCLES)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_thousands_of_open_close_cycles_leak_no_descriptors_or_threads(tmp_path: Path) -> None:
    run_cycles(tmp_path, OPEN_CLOSE_CYCLES_SLOW)


def test_memory_databases_leak_no_threads() -> None:
    threads_before = threading.active_count()
    for _ in range(300):
        with mount(flume.Flume(flume.MemoryLog())) as db:
            db.append(value(1))
            assert db.count.get() == 1
    assert threading.active_count() == threads_before
