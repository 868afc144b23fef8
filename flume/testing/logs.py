"""``LogConformance``: the reusable test suite every flume log must pass (like test-flumelog).

Subclass it in a pytest test module, give it a factory, and pytest runs every check against
your log::

    from flume.testing import LogConformance

    class TestMyLog(LogConformance):
        def make_log(self, tmp_path):
            return MyLog(tmp_path / "log")

        def reopen(self, log, tmp_path):      # optional: logs that persist
            log.close()
            return MyLog(tmp_path / "log")

The suite covers: the empty log, single and batch appends, ``since`` (and its ``Obv``), every
stream option alone and combined (checked against a model), option errors, live streams
(on an empty log, racing appends from other threads, closing from another thread, closing the
log, ``limit`` and upper bounds ending them), ``get``/``get_many``, batch atomicity with an
unstorable item, deletes (tombstones, the journal, every stream option over deleted entries
against the model, bad input changing nothing), errors after ``close()``, and close/reopen.
Every wait is bounded, so a broken log fails a test rather than hanging the run.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flume.entry import DELETED
from flume.errors import (
    ClosedError,
    DeletedError,
    EncodeError,
    FlumeError,
    FlumeTimeoutError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
)
from flume.logs import Entry, Log, LogStream

# Upper bound for every wait in the suite: generous, so only a real hang trips it.
WAIT = 10.0


def model_seqs(
    n: int,
    *,
    gt: int | None = None,
    gte: int | None = None,
    lt: int | None = None,
    lte: int | None = None,
    reverse: bool = False,
    limit: int | None = None,
) -> list[int]:
    """The seqs a non-live stream of a log holding seqs ``0..n-1`` yields, in order."""
    out = [
        s
        for s in range(n)
        if (gt is None or s > gt)
        and (gte is None or s >= gte)
        and (lt is None or s < lt)
        and (lte is None or s <= lte)
    ]
    if reverse:
        out.reverse()
    return out if limit is None else out[:limit]


def is_inverted(gt: int | None, gte: int | None, lt: int | None, lte: int | None) -> bool:
    """Whether these bounds are an inverted range (the lower bound given is above the upper)."""
    lower = gt if gt is not None else gte
    upper = lt if lt is not None else lte
    return lower is not None and upper is not None and lower > upper


class Consumer:
    """Iterates a stream in a thread of its own and records what it yields (or raises)."""

    def __init__(self, stream: LogStream | Iterator[Any]) -> None:
        self.stream = stream
        self.items: list[Any] = []
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                with self._cond:
                    self.items.append(item)
                    self._cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - recorded for the test to assert on
            self.error = e
        finally:
            with self._cond:
                self._cond.notify_all()

    def wait_until(self, pred: Callable[[list[Any]], bool], timeout: float = WAIT) -> list[Any]:
        """Block until ``pred(items)`` holds (or the stream ended); return a copy of the items."""
        with self._cond:
            self._cond.wait_for(lambda: pred(self.items) or not self.thread.is_alive(), timeout)
            return list(self.items)

    def wait_count(self, n: int, timeout: float = WAIT) -> list[Any]:
        return self.wait_until(lambda items: len(items) >= n, timeout)

    def join(self, timeout: float = WAIT) -> list[Any]:
        """Wait for the stream to end; fail if it does not, or if it raised."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream did not end"
        assert self.error is None, f"the stream raised {self.error!r}"
        return list(self.items)


class LogConformance:
    """The conformance suite of the Log protocol; subclass it with a factory (see the module
    docstring). Test classes must be named ``Test...`` for pytest to collect them."""

    N = 12  # entries in the log used by the stream-option checks
    BOUNDS = (-3, 0, 1, 5, 11, 12, 20)  # seq bounds tried: negative, edges, inside, past the end

    # -- the factory (override) ---------------------------------------------------------------

    def make_log(self, tmp_path: Path) -> Log:
        """A new, empty, writable log whose storage (if any) lives under ``tmp_path``."""
        raise NotImplementedError

    def reopen(self, log: Log, tmp_path: Path) -> Log | None:
        """Close ``log`` and open the same log again; None for logs that cannot be reopened
        (like ``MemoryLog``), which turns the reopen checks off."""
        return None

    def value(self, i: int) -> Any:
        """The value appended as the ``i``-th entry by the suite (override to taste)."""
        return {"i": i, "s": "é" * (i % 4), "b": bytes([i % 256]), "l": [i, None, True, 1.5]}

    # -- fixtures and helpers ------------------------------------------------------------------

    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[Log]:
        self._logs: list[Log] = []
        self._tmp_path = tmp_path
        log = self.make_log(tmp_path)
        self._logs.append(log)
        try:
            yield log
        finally:
            for opened in self._logs:
                opened.close()

    def _reopen_or_skip(self, log: Log) -> Log:
        reopened = self.reopen(log, self._tmp_path)
        if reopened is None:
            pytest.skip(f"{type(log).__name__} cannot be reopened (reopen() returned None)")
        self._logs.append(reopened)
        return reopened

    def fill(self, log: Log, n: int) -> list[Any]:
        values = [self.value(i) for i in range(n)]
        if values:
            assert log.append_many(values) == n - 1
        return values

    def contents(self, log: Log) -> list[Entry]:
        return list(log.stream())

    # -- the empty log -------------------------------------------------------------------------

    def test_empty_log(self, log: Log) -> None:
        assert log.since.value == -1
        assert list(log.stream()) == []
        assert list(log.stream(reverse=True)) == []
        assert list(log.stream(gte=0, lte=10)) == []
        assert list(log.stream(values=False)) == []
        assert log.get_many([]) == []
        for seq in (0, 1, -1):
            with pytest.raises(NotFoundError):
                log.get(seq)

    # -- appends and since ---------------------------------------------------------------------

    def test_append_returns_dense_seqs_and_moves_since(self, log: Log) -> None:
        for i in range(5):
            assert log.append(self.value(i)) == i
            assert log.since.value == i
        assert [e.seq for e in log.stream()] == list(range(5))
        assert [log.get(i) for i in range(5)] == [self.value(i) for i in range(5)]

    def test_append_many_returns_the_last_seq(self, log: Log) -> None:
        assert log.append_many([self.value(0)]) == 0
        assert log.append_many([self.value(i) for i in range(1, 4)]) == 3
        assert log.since.value == 3
        assert log.append(self.value(4)) == 4
        assert log.append_many([self.value(i) for i in range(5, 7)]) == 6
        assert list(log.stream(seqs=False)) == [self.value(i) for i in range(7)]

    def test_append_many_accepts_any_sequence(self, log: Log) -> None:
        assert log.append_many((self.value(0), self.value(1))) == 1
        assert log.get(1) == self.value(1)

    def test_empty_batch_writes_nothing(self, log: Log) -> None:
        assert log.append_many([]) == -1
        assert log.since.value == -1
        self.fill(log, 3)
        assert log.append_many([]) == 2
        assert log.since.value == 2
        assert len(self.contents(log)) == 3

    def test_entries_are_named_tuples(self, log: Log) -> None:
        log.append("x")
        (entry,) = list(log.stream())
        assert isinstance(entry, Entry)
        assert entry.seq == 0 and entry.value == "x"
        assert entry == (0, "x")

    def test_every_storable_type_round_trips(self, log: Log) -> None:
        values: list[Any] = [
            None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.25, float("inf"),
            "", "snow ☃ and 𝄞", b"", b"\x00\xff", [], [1, [2, [3]]], {}, {"a": {"b": [None]}},
            {1: "int key", b"k": "bytes key", None: "none key"},
        ]
        last = log.append_many(values)
        assert last == len(values) - 1
        got = [log.get(i) for i in range(len(values))]
        assert got == values
        assert [type(v) for v in got] == [type(v) for v in values]  # bool stays bool, etc.

    def test_tuples_come_back_as_lists(self, log: Log) -> None:
        log.append((1, (2, 3)))
        assert log.get(0) == [1, [2, 3]]

    def test_reads_return_copies(self, log: Log) -> None:
        log.append({"a": [1]})
        got = log.get(0)
        got["a"].append(2)
        got["b"] = 1
        assert log.get(0) == {"a": [1]}
        (entry,) = list(log.stream())
        entry.value["a"].append(3)
        assert log.get(0) == {"a": [1]}

    def test_since_subscribe_sees_every_commit(self, log: Log) -> None:
        seen: list[int] = []
        unsubscribe = log.since.subscribe(seen.append)
        assert seen == [-1]  # called at once with the current value
        log.append(self.value(0))
        log.append_many([self.value(1), self.value(2)])
        log.append(self.value(3))
        assert seen == [-1, 0, 2, 3]
        unsubscribe()
        log.append(self.value(4))
        assert seen == [-1, 0, 2, 3]
        unsubscribe()  # twice is harmless

    def test_since_wait_for_wakes_on_append_from_another_thread(self, log: Log) -> None:
        result: list[int] = []
        waiter = threading.Thread(target=lambda: result.append(log.since.wait_for(3, WAIT)))
        waiter.start()
        for i in range(4):
            time.sleep(0.005)
            log.append(self.value(i))
        waiter.join(WAIT)
        assert not waiter.is_alive()
        assert result and result[0] >= 3
        assert log.since.wait_for(2, timeout=0) == 3  # already reached: returns at once

    def test_since_wait_for_times_out(self, log: Log) -> None:
        started = time.monotonic()
        with pytest.raises(FlumeTimeoutError) as info:
            log.since.wait_for(0, timeout=0.05)
        assert isinstance(info.value, TimeoutError)
        assert 0.04 <= time.monotonic() - started < WAIT

    # -- get -----------------------------------------------------------------------------------

    def test_get_every_seq_and_missing_ones(self, log: Log) -> None:
        values = self.fill(log, self.N)
        for seq, value in enumerate(values):
            assert log.get(seq) == value
        for seq in (self.N, self.N + 1, 10**12, -1, -(10**12)):
            with pytest.raises(NotFoundError) as info:
                log.get(seq)
            assert isinstance(info.value, KeyError)
            assert isinstance(info.value, FlumeError)
            assert str(seq) in str(info.value)

    @pytest.mark.parametrize("bad", ["0", 1.0, None, True, [0], b"\x00"])
    def test_get_wrong_type(self, log: Log, bad: Any) -> None:
        self.fill(log, 2)
        with pytest.raises(InvalidTypeError) as info:
            log.get(bad)
        assert isinstance(info.value, TypeError)

    def test_get_many(self, log: Log) -> None:
        values = self.fill(log, self.N)
        assert log.get_many([]) == []
        assert log.get_many([3]) == [values[3]]
        assert log.get_many([5, 0, 11, 5]) == [values[5], values[0], values[11], values[5]]
        assert log.get_many(list(range(self.N))) == values
        for missing in ([0, self.N], [-1], [3, 10**9, 4]):
            with pytest.raises(NotFoundError) as info:
                log.get_many(missing)
            assert f"seq {missing[1] if len(missing) > 1 else missing[0]} " in str(info.value)

    def test_get_many_of_values_the_fast_decoder_refuses(self, log: Log) -> None:
        # Non-str dict keys and tuple keys take the codec's slower path; a batch mixing them
        # with plain values must still come back whole and in order.
        odd = [{1: "int key"}, {(1, 2): "tuple key"}, {"plain": [1.5, None]}, {b"k": True}]
        last = log.append_many(odd)
        seqs = list(range(last - len(odd) + 1, last + 1))
        assert log.get_many(seqs[::-1]) == odd[::-1]

    # -- stream options ------------------------------------------------------------------------

    def test_stream_all(self, log: Log) -> None:
        values = self.fill(log, self.N)
        assert list(log.stream()) == [Entry(i, v) for i, v in enumerate(values)]
        assert list(log.stream(reverse=True)) == [Entry(i, v) for i, v in enumerate(values)][::-1]

    def test_stream_shapes(self, log: Log) -> None:
        values = self.fill(log, self.N)
        assert list(log.stream(seqs=False)) == values
        assert list(log.stream(values=False)) == list(range(self.N))
        assert list(log.stream(values=False, reverse=True, gt=8)) == [11, 10, 9]
        assert list(log.stream(seqs=False, lt=2)) == values[:2]
        assert list(log.stream(seqs=True, values=True, limit=1)) == [Entry(0, values[0])]

    @pytest.mark.parametrize(
        "opts, seqs",
        [
            ({"gt": 5}, [6, 7, 8, 9, 10, 11]),
            ({"gte": 5}, [5, 6, 7, 8, 9, 10, 11]),
            ({"lt": 3}, [0, 1, 2]),
            ({"lte": 3}, [0, 1, 2, 3]),
            ({"reverse": True, "limit": 3}, [11, 10, 9]),
            ({"limit": 0}, []),
            ({"limit": 1}, [0]),
            ({"limit": 100}, list(range(12))),
            ({"gt": 11}, []),
            ({"gte": 11}, [11]),
            ({"gt": 100}, []),
            ({"lte": 100}, list(range(12))),
            ({"lt": 0}, []),
            ({"gt": -5}, list(range(12))),
            ({"gte": 3, "lt": 3}, []),
            ({"gt": 3, "lt": 4}, []),
            ({"gt": 2, "lte": 5, "reverse": True}, [5, 4, 3]),
            ({"gte": 2, "lt": 9, "reverse": True, "limit": 2}, [8, 7]),
            ({"gte": 9, "lte": 100, "reverse": True}, [11, 10, 9]),
            ({"old": False}, []),
        ],
    )
    def test_stream_option(self, log: Log, opts: dict[str, Any], seqs: list[int]) -> None:
        values = self.fill(log, self.N)
        assert list(log.stream(**opts)) == [Entry(s, values[s]) for s in seqs]

    def test_stream_options_combined_against_the_model(self, log: Log) -> None:
        values = self.fill(log, self.N)
        lowers: list[dict[str, int]] = [{}]
        uppers: list[dict[str, int]] = [{}]
        for b in self.BOUNDS:
            lowers += [{"gt": b}, {"gte": b}]
            uppers += [{"lt": b}, {"lte": b}]
        checked = 0
        for lower, upper, reverse, limit in itertools.product(
            lowers, uppers, (False, True), (None, 0, 1, 4)
        ):
            opts: dict[str, Any] = {**lower, **upper, "reverse": reverse, "limit": limit}
            bounds = {k: opts.get(k) for k in ("gt", "gte", "lt", "lte")}
            if is_inverted(**bounds):
                with pytest.raises(InvalidArgumentError):
                    log.stream(**opts)
                continue
            want = model_seqs(self.N, **bounds, reverse=reverse, limit=limit)
            assert list(log.stream(**opts)) == [Entry(s, values[s]) for s in want], opts
            checked += 1
        assert checked > 1000

    def test_stream_shapes_combined_with_bounds(self, log: Log) -> None:
        values = self.fill(log, self.N)
        rng = random.Random(1)
        for _ in range(200):
            lo, hi = sorted(rng.sample(range(-2, self.N + 3), 2))
            reverse = rng.random() < 0.5
            limit = rng.choice([None, 0, 1, 3])
            want = model_seqs(self.N, gte=lo, lte=hi, reverse=reverse, limit=limit)
            opts: dict[str, Any] = {"gte": lo, "lte": hi, "reverse": reverse, "limit": limit}
            assert list(log.stream(**opts, values=False)) == want
            assert list(log.stream(**opts, seqs=False)) == [values[s] for s in want]

    def test_a_stream_reads_what_was_committed_when_it_was_made(self, log: Log) -> None:
        self.fill(log, 3)
        stream = log.stream(values=False)
        log.append(self.value(3))
        assert list(stream) == [0, 1, 2]
        reverse = log.stream(values=False, reverse=True)
        log.append(self.value(4))
        assert list(reverse) == [3, 2, 1, 0]

    def test_a_long_stream_spans_many_reads(self, log: Log) -> None:
        n = 5000  # more than one read chunk
        log.append_many(list(range(n)))
        assert list(log.stream(seqs=False)) == list(range(n))
        assert list(log.stream(seqs=False, reverse=True)) == list(range(n))[::-1]
        window = log.stream(seqs=False, gt=2000, lte=4500, limit=2600)
        assert list(window) == list(range(2001, 4501))
        assert list(log.stream(values=False, reverse=True, lt=4100, limit=3000)) == list(
            range(4099, 1099, -1)
        )

    def test_stream_close_and_context_manager(self, log: Log) -> None:
        self.fill(log, 5)
        stream = log.stream(values=False)
        assert next(stream) == 0
        stream.close()
        stream.close()  # idempotent
        assert list(stream) == []
        with log.stream(values=False) as s:
            assert next(s) == 0
        assert list(s) == []

    @pytest.mark.parametrize(
        "opts",
        [
            {"gt": 5, "lt": 2},
            {"gte": 5, "lte": 4},
            {"gt": 3, "lte": 2},
            {"gt": 1, "gte": 1},
            {"lt": 1, "lte": 1},
            {"limit": -1},
            {"reverse": True, "live": True},
        ],
    )
    def test_stream_bad_option_values(self, log: Log, opts: dict[str, Any]) -> None:
        self.fill(log, 3)
        with pytest.raises(InvalidArgumentError) as info:
            log.stream(**opts)
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize(
        "opts",
        [
            {"gt": "1"},
            {"gte": 1.0},
            {"lt": [3]},
            {"lte": True},
            {"limit": "3"},
            {"limit": 2.0},
            {"limit": True},
            {"reverse": 1},
            {"live": "yes"},
            {"old": None},
            {"seqs": 0},
            {"values": "no"},
        ],
    )
    def test_stream_wrong_option_types(self, log: Log, opts: dict[str, Any]) -> None:
        self.fill(log, 3)
        with pytest.raises(InvalidTypeError) as info:
            log.stream(**opts)
        assert isinstance(info.value, TypeError)

    # -- live streams --------------------------------------------------------------------------

    def test_live_stream_on_an_empty_log(self, log: Log) -> None:
        stream = log.stream(live=True)
        consumer = Consumer(stream)
        for i in range(3):
            log.append(self.value(i))
        got = consumer.wait_count(3)
        assert got == [Entry(i, self.value(i)) for i in range(3)]
        stream.close()
        assert consumer.join() == got

    def test_live_stream_yields_old_then_new(self, log: Log) -> None:
        self.fill(log, 3)
        stream = log.stream(live=True, values=False)
        consumer = Consumer(stream)
        assert consumer.wait_count(3) == [0, 1, 2]
        log.append_many([self.value(3), self.value(4)])
        log.append(self.value(5))
        assert consumer.wait_count(6) == list(range(6))
        stream.close()
        assert consumer.join() == list(range(6))

    def test_live_stream_old_false_yields_only_new(self, log: Log) -> None:
        self.fill(log, 3)
        stream = log.stream(live=True, old=False)
        consumer = Consumer(stream)
        log.append("new")
        assert consumer.wait_count(1) == [Entry(3, "new")]
        stream.close()
        assert consumer.join() == [Entry(3, "new")]

    def test_live_stream_with_a_lower_bound_past_the_end(self, log: Log) -> None:
        self.fill(log, 3)
        stream = log.stream(live=True, gt=5, seqs=False)
        consumer = Consumer(stream)
        log.append_many([10, 11, 12, 13, 14])  # seqs 3..7
        assert consumer.wait_count(2) == [13, 14]
        stream.close()
        assert consumer.join() == [13, 14]

    def test_live_stream_limit_ends_it(self, log: Log) -> None:
        self.fill(log, 2)
        consumer = Consumer(log.stream(live=True, limit=4, values=False))
        log.append_many([1, 2, 3])
        assert consumer.join() == [0, 1, 2, 3]

    def test_live_stream_limit_zero_yields_nothing(self, log: Log) -> None:
        consumer = Consumer(log.stream(live=True, limit=0))
        assert consumer.join() == []

    @pytest.mark.parametrize("bound", [{"lt": 3}, {"lte": 2}])
    def test_live_stream_upper_bound_ends_it(self, log: Log, bound: dict[str, Any]) -> None:
        log.append(self.value(0))
        consumer = Consumer(log.stream(live=True, values=False, **bound))
        log.append_many([self.value(1), self.value(2), self.value(3), self.value(4)])
        assert consumer.join() == [0, 1, 2]

    def test_live_stream_upper_bound_already_passed(self, log: Log) -> None:
        self.fill(log, 5)
        consumer = Consumer(log.stream(live=True, values=False, gte=1, lt=3))
        assert consumer.join() == [1, 2]

    def test_closing_a_live_stream_from_another_thread_ends_it_quietly(self, log: Log) -> None:
        stream = log.stream(live=True)
        consumer = Consumer(stream)
        time.sleep(0.05)  # let the consumer block in next()
        assert consumer.thread.is_alive()
        stream.close()
        assert consumer.join() == []
        log.append(self.value(0))  # the log is not affected
        assert log.get(0) == self.value(0)

    def test_closing_the_log_ends_live_streams(self, log: Log) -> None:
        self.fill(log, 2)
        consumers = [Consumer(log.stream(live=True, values=False)) for _ in range(3)]
        for c in consumers:
            assert c.wait_count(2) == [0, 1]
        log.close()
        for c in consumers:
            assert c.join() == [0, 1]

    def test_live_streams_race_appends_without_miss_or_repeat(self, log: Log) -> None:
        total = 400
        rng = random.Random(7)
        batches: list[list[int]] = []
        i = 0
        while i < total:
            size = min(rng.choice([1, 1, 1, 2, 5]), total - i)
            batches.append(list(range(i, i + size)))
            i += size
        before = Consumer(log.stream(live=True, limit=total))
        gate = threading.Event()
        halfway = threading.Event()

        def write() -> None:
            gate.wait(WAIT)
            for n, batch in enumerate(batches):
                if len(batch) == 1:
                    log.append(batch[0])
                else:
                    log.append_many(batch)
                if n == len(batches) // 2:
                    halfway.set()

        writer = threading.Thread(target=write)
        writer.start()
        gate.set()
        assert halfway.wait(WAIT)
        during = Consumer(log.stream(live=True, limit=total))
        since_before = log.since.value
        new_only = log.stream(live=True, old=False, values=False)
        since_after = log.since.value
        new_consumer = Consumer(new_only)
        writer.join(WAIT)
        assert not writer.is_alive()
        log.append(total)  # one more, so that the new-only stream surely gets something
        expected = [Entry(s, s) for s in range(total)]
        assert before.join() == expected
        assert during.join() == expected
        got = new_consumer.wait_until(lambda items: bool(items) and items[-1] == total)
        new_only.close()
        assert new_consumer.join() == got
        assert since_before + 1 <= got[0] <= since_after + 1
        assert got == list(range(got[0], total + 1))

    def test_readers_never_see_a_since_they_cannot_read(self, log: Log) -> None:
        # Anything up to since.value must be readable at once, from any thread.
        stop = threading.Event()
        failures: list[str] = []

        def read() -> None:
            while not stop.is_set():
                since = log.since.value
                if since < 0:
                    continue
                try:
                    if log.get(since) != since:
                        failures.append(f"wrong value at {since}")
                    if list(log.stream(gte=since, lte=since, values=False)) != [since]:
                        failures.append(f"stream missed {since}")
                except NotFoundError:
                    failures.append(f"seq {since} <= since not found")

        readers = [threading.Thread(target=read)]
        for r in readers:
            r.start()
        try:
            for i in range(0, 150, 3):
                log.append(i)
                log.append_many([i + 1, i + 2])
        finally:
            stop.set()
            for r in readers:
                r.join(WAIT)
        assert failures == []

    def test_appends_from_many_threads_land_whole(self, log: Log) -> None:
        threads, per_thread = 4, 40
        results: dict[int, list[tuple[int, list[Any]]]] = {t: [] for t in range(threads)}

        def write(t: int) -> None:
            for i in range(per_thread):
                if i % 3 == 0:
                    batch = [[t, i, k] for k in range(3)]
                    results[t].append((log.append_many(batch), batch))
                else:
                    results[t].append((log.append([t, i, 0]), [[t, i, 0]]))

        workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(WAIT)
        stored = [e.value for e in log.stream()]
        seen: set[int] = set()
        for t in range(threads):
            for last, batch in results[t]:
                first = last - len(batch) + 1
                assert stored[first : last + 1] == batch  # each batch contiguous and whole
                seen.update(range(first, last + 1))
        assert seen == set(range(len(stored)))
        assert log.since.value == len(stored) - 1

    # -- atomicity and bad input ---------------------------------------------------------------

    @pytest.mark.parametrize(
        "bad",
        [object(), {1, 2}, 2**64, -(2**63) - 1, 1j, "\ud800", {"a": [1, object()]}],
        ids=["object", "set", "2**64", "-2**63-1", "complex", "surrogate", "nested"],
    )
    def test_bad_values_change_nothing(self, log: Log, bad: Any) -> None:
        values = self.fill(log, 3)
        before = self.contents(log)
        with pytest.raises(EncodeError) as info:
            log.append(bad)
        assert isinstance(info.value, TypeError)
        with pytest.raises(EncodeError) as info:
            log.append_many([self.value(3), self.value(4), bad, self.value(5)])
        assert "item 2" in str(info.value)
        assert log.since.value == 2
        assert self.contents(log) == before
        assert log.append(self.value(3)) == 3  # seqs stay dense after the failures
        assert [log.get(i) for i in range(3)] == values

    def test_bad_batch_wakes_no_live_stream(self, log: Log) -> None:
        stream = log.stream(live=True, values=False)
        consumer = Consumer(stream)
        with pytest.raises(EncodeError):
            log.append_many([1, object()])
        log.append("ok")
        assert consumer.wait_count(1) == [0]
        stream.close()
        assert consumer.join() == [0]

    @pytest.mark.parametrize("bad", ["abc", b"abc", {"a": 1}])
    def test_append_many_wants_a_sequence_of_values(self, log: Log, bad: Any) -> None:
        with pytest.raises(InvalidTypeError):
            log.append_many(bad)
        assert log.since.value == -1

    # -- close and reopen ----------------------------------------------------------------------

    def test_closed_log_errors(self, log: Log) -> None:
        self.fill(log, 2)
        stream = log.stream(values=False)
        log.close()
        log.close()  # idempotent
        assert log.since.value == 1
        assert list(stream) == []  # closing the log ended it, quietly
        calls: list[Callable[[], Any]] = [
            lambda: log.append(1),
            lambda: log.append_many([1]),
            lambda: log.get(0),
            lambda: log.get_many([0]),
            lambda: log.stream(),
            lambda: log.stream(live=True),
        ]
        for call in calls:
            with pytest.raises(ClosedError):
                call()

    # -- deletes -------------------------------------------------------------------------------

    def test_delete_leaves_a_tombstone_in_its_place(self, log: Log) -> None:
        values = self.fill(log, self.N)
        records = log.delete_many([5, 2, 5])
        assert [(r.number, r.seq) for r in records] == [(0, 2), (1, 5)]
        assert [r.old is not None for r in records] == [True, True]
        assert log.deletes.value == 1 and log.since.value == self.N - 1
        for seq in (2, 5):
            with pytest.raises(DeletedError):
                log.get(seq)
        assert log.get_many([1, 2]) == [values[1], DELETED]
        assert log.delete_many([2]) == []  # deleted before: nothing changes
        assert [(r.number, r.seq) for r in log.read_deletes(0, 10)] == [(0, 2), (1, 5)]
        assert log.append(self.value(self.N)) == self.N

    def test_streams_over_deleted_entries_against_the_model(self, log: Log) -> None:
        self.fill(log, self.N)
        deleted = {0, 3, 4, 5, 11}
        log.delete_many(sorted(deleted))
        rng = random.Random(7)
        for _ in range(60):
            opts: dict[str, Any] = {}
            for name in ("gt", "gte", "lt", "lte"):
                if rng.random() < 0.3:
                    opts[name] = rng.choice(self.BOUNDS)
            if ("gt" in opts and "gte" in opts) or ("lt" in opts and "lte" in opts):
                continue
            if is_inverted(opts.get("gt"), opts.get("gte"), opts.get("lt"), opts.get("lte")):
                continue
            reverse = rng.random() < 0.5
            limit = rng.choice([None, 0, 1, 2, 5])
            every = model_seqs(self.N, reverse=reverse, **opts)
            alive = [s for s in every if s not in deleted]
            want = alive if limit is None else alive[:limit]
            got = list(log.stream(reverse=reverse, limit=limit, values=False, **opts))
            assert got == want, (opts, reverse, limit)
            shown = [e.seq for e in log.stream(reverse=reverse, tombstones=True, **opts)]
            assert shown == every
        assert [e.value for e in log.stream(tombstones=True, lte=0)] == [DELETED]

    def test_bad_deletes_change_nothing(self, log: Log) -> None:
        self.fill(log, 3)
        before = self.contents(log)
        bad: Any
        for bad in ([0, 3], [-1], ["0"], [True], 1.5, "0", [2**70]):
            with pytest.raises((NotFoundError, InvalidTypeError)):
                log.delete_many(bad)
        assert self.contents(log) == before and log.deletes.value == -1

    def test_deletes_survive_a_reopen(self, log: Log) -> None:
        self.fill(log, self.N)
        log.delete_many([1, self.N - 1])
        log = self._reopen_or_skip(log)
        assert log.since.value == self.N - 1 and log.deletes.value == 1
        alive = [s for s in range(self.N) if s not in (1, self.N - 1)]
        assert [e.seq for e in log.stream()] == alive
        assert log.append(self.value(self.N)) == self.N  # the deleted last seq is not reused

    def test_reopen_keeps_everything(self, log: Log) -> None:
        values = self.fill(log, self.N)
        before = self.contents(log)
        log = self._reopen_or_skip(log)
        assert log.since.value == self.N - 1
        assert self.contents(log) == before
        assert [log.get(i) for i in range(self.N)] == values
        assert list(log.stream(reverse=True, gt=8, values=False)) == [11, 10, 9]
        assert log.append(self.value(self.N)) == self.N
        log = self._reopen_or_skip(log)
        assert log.get(self.N) == self.value(self.N)
        assert log.since.value == self.N

    def test_reopen_an_empty_log(self, log: Log) -> None:
        log = self._reopen_or_skip(log)
        assert log.since.value == -1
        assert list(log.stream()) == []
        assert log.append("first") == 0

    def test_reopen_after_a_failed_batch(self, log: Log) -> None:
        self.fill(log, 3)
        with pytest.raises(EncodeError):
            log.append_many([self.value(3), object()])
        log = self._reopen_or_skip(log)
        assert log.since.value == 2
        assert len(self.contents(log)) == 3
        assert log.append(self.value(3)) == 3

    def test_live_stream_after_reopen(self, log: Log) -> None:
        self.fill(log, 2)
        log = self._reopen_or_skip(log)
        stream = log.stream(live=True, values=False)
        consumer = Consumer(stream)
        log.append(self.value(2))
        assert consumer.wait_count(3) == [0, 1, 2]
        stream.close()
        consumer.join()
