"""The indexer's steps on a stand-in store and log (no engine): which views each step serves."""

from __future__ import annotations

import threading
from typing import Any

from flume.indexer import GROUP_SPAN, Indexer
from flume.mounts import Mount
from flume.obv import Obv


class _Batch:
    def put(self, *args: Any) -> None: ...
    def delete(self, *args: Any) -> None: ...
    def put_meta(self, *args: Any) -> None: ...


class _Store:
    def batch(self) -> _Batch:
        return _Batch()

    def write(self, batch: Any) -> None: ...


class _View:
    def apply(self, entries: Any, batch: Any) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


def _indexer(mounted: dict[str, Mount], last: list[int]) -> Indexer:
    return Indexer(
        mounted=mounted,
        lock=threading.RLock(),
        store=_Store(),  # type: ignore[arg-type]
        read=lambda s, e, n: [(q, None) for q in range(s, min(e, s + n - 1) + 1)],
        last=lambda: last[0],
        meta=lambda m, s: {},
    )


def test_a_caught_up_view_is_served_at_once_after_a_burst_of_appends() -> None:
    """Found in review: a view caught up before an append_many of 100 was taken for a view
    catching up just ahead of a slower one, and waited for that one's whole catch-up."""
    last = [10_000]
    a = Mount("a", _View(), Obv(10_000), "fp", reached_end=True)  # type: ignore[arg-type]
    b = Mount("b", _View(), Obv(5_000), "fp", rate=1e6)  # type: ignore[arg-type]
    indexer = _indexer({"a": a, "b": b}, last)
    last[0] = 10_100
    steps = 0
    while a.since.value < 10_100:
        indexer._step()
        steps += 1
    assert steps <= 2, steps


def test_views_between_the_leader_and_the_lowest_wait_for_it_and_merge() -> None:
    last = [50_000]
    lead = Mount("lead", _View(), Obv(50_000), "fp", reached_end=True)  # type: ignore[arg-type]
    middle = Mount("middle", _View(), Obv(3_000), "fp", rate=1e5)  # type: ignore[arg-type]
    low = Mount("low", _View(), Obv(1_000), "fp", rate=1e5)  # type: ignore[arg-type]
    indexer = _indexer({"lead": lead, "middle": middle, "low": low}, last)
    last[0] = 50_010
    for _ in range(100):
        middle_before, low_before = middle.since.value, low.since.value
        indexer._step()
        if middle.since.value != middle_before:
            # middle moved only once low had joined it (one group, one read)
            assert middle_before - low_before <= GROUP_SPAN
            assert middle.since.value == low.since.value
        if low.since.value == middle.since.value:
            break
    assert low.since.value == middle.since.value
    assert middle.since.value <= 3_000 + GROUP_SPAN + middle.chunk
    assert lead.since.value == 50_010  # the leader was served meanwhile
    while low.since.value < last[0]:
        indexer._step()
        assert low.since.value == middle.since.value  # one group from then on
