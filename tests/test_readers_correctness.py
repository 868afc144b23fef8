"""Readers (``readonly=True``) are correct and touch nothing that is not theirs.

* Their RocksDB secondary directories live in the database directory only, and a reader removes
  only directories that flume's readers made and whose process is gone (issue 11, item 14).
* Their answers are never older than what they have seen, across writer restarts and kills
  (item 12).
* They never take LMDB's writer lock, their secondary reopen does not break scans running in
  other threads, and a later ``sync=True`` open of a log is durable (item 15).

Real LMDB and RocksDB on disk, real processes where processes matter.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import flume
from flume.logs.lmdb_log import LmdbLog
from flume.views import Index, Reduce
from flume.views.store import RocksStore


def count_view() -> Reduce:
    return Reduce(lambda acc, v: acc + 1, initial=0)


def make_db(path: Path, n: int = 10) -> None:
    with flume.open(path) as db:
        db.use("cnt", count_view())
        db.append_many(list(range(n)))
        assert db.cnt.get() == n


def listing(path: Path) -> set[str]:
    return set(os.listdir(path))


@pytest.fixture
def private_tmp(tmp_path: Path) -> Iterator[Path]:
    """The system temp dir, pointed at a directory of this test's own (so that what a reader
    does there is seen, and no real temp dir is touched)."""
    tmp = tmp_path / "systemp"
    tmp.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    try:
        yield tmp
    finally:
        tempfile.tempdir = saved


# -- secondary directories (item 14) -----------------------------------------------------------


def test_a_reader_opened_without_a_secondaries_path_keeps_to_its_database_directory(
    tmp_path: Path, private_tmp: Path
) -> None:
    db_dir = tmp_path / "db"
    make_db(db_dir)
    # A user's directories whose names begin with digits, as the old cleanup's pattern did;
    # one of them named after a pid that is surely not running.
    for name in ("2024-photos", "4000000-backup", "123-notours"):
        (private_tmp / name).mkdir()
        (private_tmp / name / "keep.txt").write_text("mine")
    before = listing(private_tmp)

    for _ in range(2):
        reader = flume.Flume(LmdbLog(db_dir / "log", readonly=True))
        reader.use("cnt", count_view())
        assert reader.cnt.get() == 10
        (mine,) = os.listdir(db_dir / "readers")
        assert mine.startswith(f"flume-secondary-{os.getpid()}-")
        assert listing(private_tmp) == before
        reader.close()
        assert os.listdir(db_dir / "readers") == []
    assert listing(private_tmp) == before
    for name in before:
        assert (private_tmp / name / "keep.txt").read_text() == "mine"


def _hold_lock_in_child(lock_file: Path) -> subprocess.Popen[str]:
    """A process that holds an flock on ``lock_file`` until its stdin closes."""
    code = textwrap.dedent(
        f"""
        import fcntl, os, sys
        fd = os.open({str(lock_file)!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def test_readers_remove_only_the_abandoned_secondary_directories_of_flume(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    make_db(db_dir)
    readers = db_dir / "readers"
    readers.mkdir()

    def secondary(name: str, lock: bool = True) -> Path:
        path = readers / name
        path.mkdir()
        (path / "LOG").write_text("rocksdb")
        if lock:
            (path / "flume-secondary.lock").write_text("")
        return path

    # Not flume's: other names, or flume's name without its lock file. None is ever removed.
    for name in ("123-notours", "4000000-x", "flume-secondary-notes"):
        (readers / name).mkdir()
    secondary("flume-secondary-4000000-nolock", lock=False)
    (readers / "flume-secondary-file").write_text("a file")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "flume-secondary.lock").write_text("")
    (readers / "flume-secondary-link").symlink_to(target)
    # flume's, alive: its lock is held by a running process.
    alive = secondary("flume-secondary-4000001-alive")
    holder = _hold_lock_in_child(alive / "flume-secondary.lock")
    # flume's, abandoned: nobody holds its lock, whatever its pid (here our own, running: a
    # reused pid does not keep a dead reader's directory).
    dead = secondary("flume-secondary-4000002-dead")
    reused = secondary(f"flume-secondary-{os.getpid()}-reused")
    try:
        for _ in range(2):
            reader = flume.open(db_dir, readonly=True)
            reader.use("cnt", count_view())
            assert reader.cnt.get() == 10
            assert not dead.exists() and not reused.exists()
            reader.close()
            assert listing(readers) == {
                "123-notours",
                "4000000-x",
                "flume-secondary-notes",
                "flume-secondary-4000000-nolock",
                "flume-secondary-file",
                "flume-secondary-link",
                "flume-secondary-4000001-alive",
            }
            assert (target / "flume-secondary.lock").exists()
            assert (alive / "LOG").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    # Once its holder is gone, the next reader removes it.
    flume.open(db_dir, readonly=True).close()
    assert not alive.exists()


def test_two_readers_in_one_process_keep_each_others_secondary_directory(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    make_db(db_dir)
    first = flume.open(db_dir, readonly=True)
    second = flume.open(db_dir, readonly=True)
    try:
        assert len(os.listdir(db_dir / "readers")) == 2
        for db in (first, second):
            db.use("cnt", count_view())
            assert db.cnt.get() == 10
    finally:
        first.close()
        second.close()
    assert os.listdir(db_dir / "readers") == []


def test_a_reader_whose_readers_directory_cannot_be_made_uses_a_private_temp_dir(
    tmp_path: Path, private_tmp: Path
) -> None:
    db_dir = tmp_path / "db"
    make_db(db_dir)
    # `readers` cannot be created: a file has the name (as good as read-only media here,
    # where tests run as root and permissions do not stop anything).
    (db_dir / "readers").write_text("not a directory")
    reader = flume.open(db_dir, readonly=True)
    try:
        reader.use("cnt", count_view())
        assert reader.cnt.get() == 10
        (private,) = os.listdir(private_tmp)
        assert private.startswith("flume-")
    finally:
        reader.close()
    assert os.listdir(private_tmp) == []
    assert (db_dir / "readers").read_text() == "not a directory"


def test_a_private_temp_dir_is_never_scanned(tmp_path: Path, private_tmp: Path) -> None:
    # Abandoned-looking directories of flume's in the temp dir are not a reader's to remove
    # when its secondary lives there: only the readers directory of a database is scanned.
    stray = private_tmp / "flume-secondary-4000003-x"
    stray.mkdir()
    (stray / "flume-secondary.lock").write_text("")
    db_dir = tmp_path / "db"
    make_db(db_dir)
    (db_dir / "readers").write_text("not a directory")
    flume.open(db_dir, readonly=True).close()
    assert stray.exists()


def test_the_lock_of_a_secondary_directory_is_held_while_its_reader_is_open(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    make_db(db_dir)
    store = RocksStore(db_dir / "views", readonly=True)
    try:
        (mine,) = os.listdir(db_dir / "readers")
        fd = os.open(db_dir / "readers" / mine / "flume-secondary.lock", os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        store.close()


# -- LMDB: readers never take the writer lock; a later sync=True open is durable (item 15) ----


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_reader_opens_while_another_process_holds_lmdbs_write_transaction(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    make_db(db_dir)
    # A process in the middle of a write transaction (as a writer is during each commit;
    # here held on purpose): it holds LMDB's writer mutex.
    holder = _child(
        f"""
        import lmdb, sys
        env = lmdb.open({str(db_dir / "log")!r}, max_dbs=2)
        txn = env.begin(write=True)
        print("holding", flush=True)
        sys.stdin.read()
        txn.abort()
        """
    )
    reader = None
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        reader = _child(
            f"""
            import flume
            db = flume.open({str(db_dir)!r}, readonly=True)
            print(db.since.value, db.get(3), flush=True)
            db.close()
            """
        )
        try:
            out, _ = reader.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("a reader's open waited for LMDB's writer lock")
        assert out.split() == ["9", "3"]
    finally:
        for child in (holder, reader):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait(10)


def test_a_later_sync_open_of_a_shared_log_makes_its_commits_durable(tmp_path: Path) -> None:
    # One environment per directory per process: the second open shares the first's. Its
    # sync=True must hold all the same (LMDB's sync flags decide whether a commit fsyncs).
    fast = LmdbLog(tmp_path / "log", sync=False)
    assert fast._env.flags()["sync"] is False
    fast.append("a")
    durable = LmdbLog(tmp_path / "log", sync=True)
    try:
        assert durable._env.flags()["sync"] is True and durable._env.flags()["metasync"] is True
        assert durable.append("b") == 1
        assert fast.append("c") == 2  # the first keeps working on the reopened environment
        assert [v for _, v in fast.stream()] == ["a", "b", "c"]
    finally:
        durable.close()
        fast.close()


def test_a_writer_opened_after_a_reader_in_one_process_writes_and_the_reader_follows(
    tmp_path: Path,
) -> None:
    make_db(tmp_path / "db", n=3)
    reader = flume.open(tmp_path / "db", readonly=True)
    try:
        assert reader.log._env.flags()["readonly"] is True
        with flume.open(tmp_path / "db") as writer:
            writer.use("cnt", count_view())
            assert writer.append(3) == 3
            assert writer.cnt.get() == 4
            assert reader.since.value == 3 and reader.get(3) == 3
        reader.use("cnt", count_view())
        assert reader.cnt.get() == 4
    finally:
        reader.close()


# -- a secondary reopen under concurrent scans (item 15 b) --------------------------------------


def test_scans_in_other_threads_survive_the_readers_secondary_reopen(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    with flume.open(db_dir) as db:
        db.use("idx", Index(lambda v: ("k", v)))
        db.append_many(list(range(2000)))
        db.idx.ready()
    store = RocksStore(db_dir / "views", readonly=True)
    family = store.family("idx")
    errors: list[str] = []
    scans = [0]
    stop = threading.Event()

    def scan() -> None:
        # Whole scans, each long enough to outlive a reopen, and short reads, many per reopen.
        while not stop.is_set():
            try:
                n = sum(1 for _ in family.scan(b"", None))
                for _ in range(200):
                    first = next(family.scan(b"", None))
                    assert family.get(first[0]) == first[1]
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            if n != 2000:
                errors.append(f"a scan saw {n} entries")
            scans[0] += 1

    threads = [threading.Thread(target=scan) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        # What catch_up does when the writer restarts or declares a view, back to back (a
        # real restart takes too long to hit the race more than rarely).
        reopened = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline or reopened < 20:
            store._reopen()
            reopened += 1
        # And once through the real path: the writer restarts, the next catch-up reopens.
        RocksStore(db_dir / "views").close()
        before = store._secondary_dir
        store.catch_up()
        assert store._secondary_dir is not before
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        store.close()
    assert reopened >= 20 and scans[0] > 0
    assert errors[:3] == []


def test_a_reader_never_returns_a_reduce_state_older_than_the_since_it_waited_for(
    tmp_path: Path,
) -> None:
    """Issue 11 item 12: a reader answered cnt.get() with a state 600 entries behind the since
    it had seen. The stored state carries its own since; a reader whose copy of the store
    shows an older state than the view's since catches up again instead of answering, and
    never answers stale (here the store is made inconsistent on purpose: it times out)."""
    from flume import codec
    from flume.views.store import RocksStore

    with flume.open(tmp_path) as db:
        db.use("cnt", Reduce(lambda acc, v: acc + 1, initial=0))
        db.append_many(list(range(1000)))
        assert db.cnt.get() == 1000
    store = RocksStore(tmp_path / "views")
    try:
        batch = store.batch()
        batch.put("cnt", b"state", codec.encode([399, 400]))  # what a stale copy would show
        store.write(batch)
    finally:
        store.close()
    with flume.open(tmp_path, readonly=True) as reader:
        reader.use("cnt", Reduce(lambda acc, v: acc + 1, initial=0))
        assert reader.cnt.since.value == 999
        with pytest.raises(flume.FlumeTimeoutError):
            reader.cnt.get(timeout=0.3)
    with flume.open(tmp_path) as db:
        db.use("cnt", Reduce(lambda acc, v: acc + 1, initial=0))
        db.append(1000)
        with flume.open(tmp_path, readonly=True) as reader:
            reader.use("cnt", Reduce(lambda acc, v: acc + 1, initial=0))
            assert reader.cnt.get(timeout=5) == 401  # the record is consistent again: answered
