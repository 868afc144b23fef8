"""The indexer's scheduling: views declared one after another on a long log share one read of
it (the convoy), and no view waits long for a slower one."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import flume
from flume.logs.lmdb_log import LmdbLog
from flume.views import Index, Reduce

N = 30_000


def _fill(path: Path) -> None:
    with flume.open(path, sync=False) as db:
        for start in range(0, N, 5_000):
            db.append_many([{"i": i, "k": i % 7} for i in range(start, start + 5_000)])


def _count_reads(monkeypatch: Any) -> list[int]:
    """Entries the indexer reads from the log, per read."""
    reads: list[int] = []
    lock = threading.Lock()
    original = LmdbLog.read_raw

    def counted(self: LmdbLog, start: int, end: int, reverse: bool, n: int) -> Any:
        raw = original(self, start, end, reverse, n)
        if threading.current_thread().name == "flume-indexer":
            with lock:
                reads.append(len(raw))
        return raw

    monkeypatch.setattr(LmdbLog, "read_raw", counted)
    return reads


def test_views_declared_one_after_another_share_one_read_of_the_log(
    tmp_path: Path, monkeypatch: Any
) -> None:
    _fill(tmp_path)
    reads = _count_reads(monkeypatch)
    with flume.open(tmp_path, sync=False) as db:
        db.use("first", Index(lambda v: v["i"]))
        deadline = time.monotonic() + 30
        while db.first.since.value < 2_000 and time.monotonic() < deadline:
            time.sleep(0.001)
        ahead = db.first.since.value
        assert 2_000 <= ahead < N - 1  # still catching up when the others are declared
        db.use("second", Index(lambda v: (v["k"], v["i"])))
        db.use("third", Reduce(lambda acc, v: acc + 1, initial=0))
        assert db.third.get() == N
        db.first.ready()
        db.second.ready()
        assert list(db.second.read(prefix=(3,), limit=2)) == list(
            db.second.read(gte=(3,), lt=(4,), limit=2)
        )
    # Each view alone would read the whole log: 3 * N. Together, the log once, plus what
    # the first view had read before the others came and a little slack.
    assert sum(reads) <= N + ahead + 6_000, (sum(reads), ahead)


def test_a_view_catching_up_does_not_wait_for_a_slow_view_behind_it(tmp_path: Path) -> None:
    _fill(tmp_path)

    def slow(v: Any) -> Any:
        time.sleep(0.002)
        return v["i"]

    with flume.open(tmp_path, sync=False) as db:
        db.use("fast", Index(lambda v: v["i"]))
        deadline = time.monotonic() + 30
        while db.fast.since.value < 3_000 and time.monotonic() < deadline:
            time.sleep(0.001)
        db.use("slow", Index(slow))  # ~60 s of work for the whole log
        began = time.monotonic()
        db.fast.ready(timeout=20)
        assert time.monotonic() - began < 20
        assert db.status()["views"]["slow"]["state"] == "indexing"
        db.drop("slow")
