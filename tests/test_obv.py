"""Obv: the observable value that logs and views use to announce progress."""

from __future__ import annotations

import threading
import time

import pytest

from flume.errors import FlumeError, FlumeTimeoutError
from flume.obv import Obv


def test_value_and_set() -> None:
    obv = Obv(-1)
    assert obv.value == -1
    obv.set(4)
    assert obv.value == 4


def test_subscribe_is_called_at_once_then_on_every_change() -> None:
    obv = Obv(0)
    seen: list[int] = []
    unsubscribe = obv.subscribe(seen.append)
    assert seen == [0]
    obv.set(1)
    obv.set(1)  # every set() is a change notification, even to the same value
    obv.set(5)
    assert seen == [0, 1, 1, 5]
    unsubscribe()
    obv.set(6)
    assert seen == [0, 1, 1, 5]
    unsubscribe()  # twice is harmless


def test_subscribers_are_called_in_order() -> None:
    obv = Obv(0)
    calls: list[tuple[str, int]] = []
    obv.subscribe(lambda v: calls.append(("a", v)))
    obv.subscribe(lambda v: calls.append(("b", v)))
    obv.set(1)
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


def test_a_subscriber_may_unsubscribe_or_set_from_its_callback() -> None:
    obv = Obv(0)
    seen: list[int] = []
    unsubscribe_box: list[object] = []

    def once(v: int) -> None:
        seen.append(v)
        if v == 1:
            unsubscribe_box[0]()  # type: ignore[operator]

    unsubscribe_box.append(obv.subscribe(once))
    obv.set(1)
    obv.set(2)
    assert seen == [0, 1]

    chained: list[int] = []
    obv.subscribe(lambda v: obv.set(v + 1) if v == 10 else chained.append(v))
    obv.set(10)  # the callback sets again, from inside set(): no deadlock
    assert obv.value == 11
    assert chained == [2, 11]


def test_wait_for_returns_at_once_when_reached() -> None:
    obv = Obv(3)
    assert obv.wait_for(3, timeout=0) == 3
    assert obv.wait_for(-10, timeout=0) == 3
    assert obv.wait_for(2) == 3


def test_wait_for_blocks_until_another_thread_reaches_it() -> None:
    obv = Obv(0)
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(obv.wait_for(5, timeout=10)))
    waiter.start()
    for i in range(1, 5):
        obv.set(i)
        time.sleep(0.005)
    assert waiter.is_alive()  # 4 is not enough
    obv.set(7)
    waiter.join(10)
    assert not waiter.is_alive()
    assert result == [7]


def test_wait_for_times_out_with_a_timeout_error() -> None:
    obv = Obv(1)
    start = time.monotonic()
    with pytest.raises(FlumeTimeoutError) as info:
        obv.wait_for(2, timeout=0.05)
    elapsed = time.monotonic() - start
    assert 0.04 <= elapsed < 2
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, FlumeError)
    assert "2" in str(info.value)


def test_wait_for_with_zero_timeout_does_not_block() -> None:
    obv = Obv(0)
    start = time.monotonic()
    with pytest.raises(FlumeTimeoutError):
        obv.wait_for(1, timeout=0)
    assert time.monotonic() - start < 1


def test_wait_change_and_wake() -> None:
    obv = Obv(0)
    generation = obv.generation
    assert obv.wait_change(generation, 0.01) is False
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(obv.wait_change(generation, 10)))
    waiter.start()
    time.sleep(0.02)
    obv.wake()
    waiter.join(10)
    assert woke == [True]
    assert obv.value == 0  # wake() changes no value
    generation = obv.generation
    obv.set(1)
    assert obv.wait_change(generation, 0) is True


def test_many_threads_setting_and_waiting() -> None:
    obv = Obv(0)
    calls: list[int] = []
    obv.subscribe(calls.append)
    lock = threading.Lock()
    counter = [0]

    def bump() -> None:
        for _ in range(200):
            with lock:  # set() in increasing order, from many threads
                counter[0] += 1
                obv.set(counter[0])

    waiters_done: list[tuple[int, int]] = []
    waiters = [
        threading.Thread(
            target=lambda n=n: waiters_done.append((n, obv.wait_for(n, timeout=10)))
        )
        for n in (1, 400, 800)
    ]
    setters = [threading.Thread(target=bump) for _ in range(4)]
    for t in waiters + setters:
        t.start()
    for t in waiters + setters:
        t.join(10)
    assert obv.value == 800
    assert len(calls) == 801  # the initial call, then one per set()
    assert calls == sorted(calls)
    assert sorted(n for n, _ in waiters_done) == [1, 400, 800]
    assert all(got >= n for n, got in waiters_done)
