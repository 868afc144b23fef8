"""Group commit in LmdbLog: concurrent appends share commits, yet each gets its own seq, its
own error and returns only once committed; an interrupted waiter loses nothing but its own."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

from flume.errors import StorageError
from flume.logs import LmdbLog

WAIT = 30.0


def _wait_until(pred: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_each_appender_gets_the_seq_of_its_own_value(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "log")
    threads, per = 8, 150
    got: list[list[tuple[int, Any]]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    batches: list[int] = []
    put = log._put_with_growth

    def counted(batch: Any) -> int:
        batches.append(len(batch))
        return put(batch)

    log._put_with_growth = counted  # type: ignore[method-assign]

    def run(t: int) -> None:
        try:
            for i in range(per):
                value = {"t": t, "i": i}
                seq = log.append(value)
                assert log.since.value >= seq  # visible as soon as it returns
                got[t].append((seq, value))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT)
    assert errors == []
    assert max(batches) > 1  # the appends did share commits
    seqs = sorted(seq for mine in got for seq, _ in mine)
    assert seqs == list(range(threads * per))  # distinct and dense
    for mine in got:
        assert [s for s, _ in mine] == sorted(s for s, _ in mine)  # in each thread's order
        for seq, value in mine:
            assert log.get(seq) == value
    log.close()


def test_a_failed_commit_fails_every_appender_of_its_batch_and_changes_nothing(
    tmp_path: Path,
) -> None:
    log = LmdbLog(tmp_path / "log")
    followers = 5
    put = log._put_with_growth
    calls: list[int] = []
    next_seq = log._next_seq

    def failing_next_seq(cursor: Any) -> int:
        raise lmdb.Error("injected failure")

    def put_once_then_fail(batch: Any) -> int:
        calls.append(len(batch))
        if len(calls) == 1:
            # The first commit holds until every follower has queued behind it.
            _wait_until(lambda: len(log._queue) == followers)
            return put(batch)
        log._next_seq = failing_next_seq  # type: ignore[method-assign]
        try:
            return put(batch)
        finally:
            log._next_seq = next_seq  # type: ignore[method-assign]

    log._put_with_growth = put_once_then_fail  # type: ignore[method-assign]
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            results[name] = log.append(name)
        except BaseException as e:  # noqa: BLE001 - the test looks at it
            results[name] = e

    first = threading.Thread(target=run, args=("first",))
    first.start()
    _wait_until(lambda: calls)
    others = [threading.Thread(target=run, args=(f"f{k}",)) for k in range(followers)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(WAIT)
        assert not t.is_alive()
    assert calls == [1, followers]
    assert results["first"] == 0
    for k in range(followers):
        assert isinstance(results[f"f{k}"], StorageError), results[f"f{k}"]
    assert log.since.value == 0
    assert log.read_raw(0, 100, False, 100)[1:] == []  # nothing of the failed batch
    log._put_with_growth = put  # type: ignore[method-assign]
    assert log.append("after") == 1  # the log commits again, at the next seq
    assert log.get(1) == "after"
    log.close()


class _Interrupted(Exception):
    pass


def test_an_interrupted_waiter_is_not_written_and_the_lead_is_not_lost(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "log")
    put = log._put_with_growth
    release = threading.Event()
    calls: list[int] = []

    def held(batch: Any) -> int:
        calls.append(len(batch))
        if len(calls) == 1:
            assert release.wait(WAIT)
        return put(batch)

    log._put_with_growth = held  # type: ignore[method-assign]
    leader_seq: list[int] = []
    leader = threading.Thread(target=lambda: leader_seq.append(log.append("leader")))
    leader.start()
    _wait_until(lambda: calls)

    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(_Interrupted):
            log.append("interrupted")  # queued behind the held commit, then interrupted
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert log._queue == []
    release.set()
    leader.join(WAIT)
    assert leader_seq == [0]
    assert log.append("next") == 1  # someone still leads: this append commits
    assert log.get_many([0, 1]) == ["leader", "next"]
    assert log.since.value == 1  # nothing of the interrupted append
    log.close()
