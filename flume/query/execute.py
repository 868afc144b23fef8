"""The streaming executor: runs a parsed query over ``(seq, value)`` pairs in read order.

Runs of ``$filter``/``$map`` stages are fused into one pass (one closure call per stage per
record, no generator per stage); ``$sort`` and ``$reduce`` buffer. Items travel as
``(tie, item)`` pairs: ``tie`` is the record's seq, or ``None`` for items made by a ``$reduce``
(which come from no single record; a later ``$sort`` breaks their ties by input position).

``reverse=True`` means the entries arrive newest first (or an index descending). Then each
``$sort`` yields the exact reverse of its ascending order (ties by seq, which the sort key holds,
so the arrival order does not matter); a grouping ``$reduce`` still emits its groups ascending.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from flume.errors import QueryError
from flume.keys import MISSING
from flume.query.maps import Getter
from flume.query.stages import FilterStage, MapStage, ParsedQuery, ReduceStage, SortStage, Stage
from flume.ranges import check_bool, check_limit

__all__ = ["compile_live", "execute", "is_live_able"]

_Item = tuple[Any, Any]
"""``(tie, item)``: the seq of the record the item came from (None after a ``$reduce``)."""


def is_live_able(parsed: ParsedQuery) -> bool:
    """True when the query may run live (``live=True``): only ``$filter`` and ``$map`` stages."""
    return parsed.live_able


def execute(
    parsed: ParsedQuery,
    entries: Iterable[tuple[int, Any]],
    *,
    reverse: bool = False,
    limit: int | None = None,
    seqs: bool = False,
) -> Iterator[Any]:
    """Run ``parsed`` over ``entries`` (``(seq, value)`` pairs already in read order).

    Yields the items the last stage produces, or ``(seq, value)`` pairs when ``seqs`` is true.
    ``reverse`` says the entries come in reverse order (it reverses every ``$sort``'s result);
    ``limit`` caps the items yielded (``0`` reads nothing). ``entries`` is consumed lazily: a
    query without ``$sort``/``$reduce`` stops reading once ``limit`` items are out.

    Raises (at once, before anything is read):
        QueryError: ``seqs=True`` with a ``$map`` or ``$reduce`` stage.
        InvalidTypeError, InvalidArgumentError: a bad ``limit`` or a non-bool flag.
    """
    check_bool("reverse", reverse)
    check_bool("seqs", seqs)
    limit = check_limit(limit)
    check_seqs(parsed, seqs)
    if limit == 0:
        return iter(())
    return _run(parsed.stages, entries, reverse, limit, seqs)


def check_seqs(parsed: ParsedQuery, seqs: bool) -> None:
    """Refuse ``seqs=True`` for a query whose items are no stored records.

    Raises:
        QueryError: ``seqs`` with a ``$map`` or ``$reduce`` stage, naming it.
    """
    if seqs and not parsed.yields_records:
        bad = next(s for s in parsed.stages if isinstance(s, (MapStage, ReduceStage)))
        raise QueryError(
            f"seqs=True needs a query of $filter and $sort stages only: after {bad.name} the "
            "items are no longer stored records",
            bad.position,
        )


def compile_live(parsed: ParsedQuery) -> Callable[[Any], Any]:
    """One function for a live query: ``f(value)`` is the item to yield, or MISSING to skip.

    Raises:
        QueryError: the query holds a ``$reduce`` or ``$sort`` stage (it cannot run live).
    """
    if not parsed.live_able:
        bad = next(s for s in parsed.stages if not isinstance(s, (FilterStage, MapStage)))
        raise QueryError(
            f"a live query holds only $filter and $map stages, not {bad.name}", bad.position
        )
    return _fuse(parsed.stages)


def _run(
    stages: tuple[Stage, ...],
    entries: Iterable[tuple[int, Any]],
    reverse: bool,
    limit: int | None,
    seqs: bool,
) -> Iterator[Any]:
    if not seqs and stages and all(isinstance(s, (FilterStage, MapStage)) for s in stages):
        # The common, streaming case: one generator from entries to items.
        values = _stream_values(stages, entries)
        return islice(values, limit) if limit is not None else values
    items: Iterable[_Item] = entries
    i = 0
    n = len(stages)
    while i < n:
        stage = stages[i]
        if isinstance(stage, (FilterStage, MapStage)):
            j = i
            while j < n and isinstance(stages[j], (FilterStage, MapStage)):
                j += 1
            items = _stream(stages[i:j], items)
            i = j
        elif isinstance(stage, SortStage):
            # A final sort under a limit keeps only the `limit` smallest (or largest) keys.
            last = i == n - 1
            items = _sort(stage, items, reverse, limit if last else None)
            i += 1
        else:
            items = _reduce(stage, items)
            i += 1
    out: Iterator[Any] = iter(items) if seqs else (item for _, item in items)
    return islice(out, limit) if limit is not None else out


def _fuse(stages: tuple[Stage, ...]) -> Getter:
    """One function applying a run of filters and maps: the item, or MISSING to drop it."""
    steps: list[Getter] = []
    for stage in stages:
        if isinstance(stage, FilterStage):
            steps.append(_as_step(stage.match))
        else:
            assert isinstance(stage, MapStage)
            steps.append(stage.apply)
    if not steps:
        return _identity
    if len(steps) == 1:
        return steps[0]
    chain = tuple(steps)

    def fused(v: Any) -> Any:
        for step in chain:
            v = step(v)
            if v is MISSING:
                break
        return v

    return fused


def _identity(v: Any) -> Any:
    return v


def _as_step(match: Callable[[Any], bool]) -> Getter:
    def step(v: Any) -> Any:
        return v if match(v) else MISSING

    return step


def _stream(stages: tuple[Stage, ...], items: Iterable[_Item]) -> Iterator[_Item]:
    if all(isinstance(s, FilterStage) for s in stages):
        matches = [s.match for s in stages if isinstance(s, FilterStage)]
        if len(matches) == 1:
            match = matches[0]
            return ((tie, v) for tie, v in items if match(v))
        return ((tie, v) for tie, v in items if all(m(v) for m in matches))
    fused = _fuse(stages)
    missing = MISSING
    return ((tie, out) for tie, v in items if (out := fused(v)) is not missing)


def _stream_values(stages: tuple[Stage, ...], entries: Iterable[_Item]) -> Iterator[Any]:
    if len(stages) == 1 and isinstance(stages[0], FilterStage):
        match = stages[0].match
        return (v for _, v in entries if match(v))
    fused = _fuse(stages)
    missing = MISSING
    return (out for _, v in entries if (out := fused(v)) is not missing)


def _sort(
    stage: SortStage, items: Iterable[_Item], reverse: bool, limit: int | None
) -> Iterator[_Item]:
    # A generator: it buffers when the first item is asked for, not when the pipeline is built.
    key = stage.key
    # The key ends with the tie-breaker: the seq, or for reduce outputs the input position.
    keyed = [
        (key(item, position if tie is None else tie), tie, item)
        for position, (tie, item) in enumerate(items)
    ]
    if limit is not None and limit < len(keyed):
        chosen = (
            heapq.nlargest(limit, keyed, key=_first)
            if reverse
            else heapq.nsmallest(limit, keyed, key=_first)
        )
    else:
        keyed.sort(key=_first, reverse=reverse)
        chosen = keyed
    for _, tie, item in chosen:
        yield tie, item


def _first(t: tuple[bytes, Any, Any]) -> bytes:
    return t[0]


def _reduce(stage: ReduceStage, items: Iterable[_Item]) -> Iterator[_Item]:
    # Generator: the reduce runs when the first output is asked for, so nothing is read before.
    for out in stage.run(item for _, item in items):
        yield (None, out)
