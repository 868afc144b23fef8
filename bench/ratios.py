"""The issue's targets: each a ratio of two rows (or one absolute number) and a bound."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import OK, Row

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Target:
    """A bound on ``num / den``, the rows' values (or on ``num`` alone when ``den`` is None).

    Rows whose values are rates give ratios where more is better (flume / baseline >= bound);
    rows whose values are times give ratios where less is better (flume / baseline <= bound).
    A target with ``bound`` None is informational.
    """

    id: str
    label: str
    num: str
    den: str | None
    op: str
    bound: float | None
    unit: str = "x"


TARGETS: list[Target] = [
    Target(
        "append_many",
        "append_many vs raw LMDB batched",
        "flume.append_many",
        "lmdb.batched_put",
        ">=",
        0.7,
    ),
    Target(
        "threads",
        "8-thread vs 1-thread single appends",
        "flume.append_8t",
        "flume.append_1t",
        ">=",
        4.0,
    ),
    Target("stream", "stream vs raw cursor scan", "flume.stream", "lmdb.scan", ">=", 0.8),
    Target(
        "catchup",
        "3-view catch-up time vs raw implied work",
        "flume.catchup",
        "rocksdb.implied_work",
        "<=",
        1.3,
    ),
    Target(
        "latest10_raw",
        "latest-10 time vs raw scan + fetch",
        "flume.latest10",
        "rocksdb.latest10",
        "<=",
        1.3,
    ),
    Target(
        "latest10_sqlite",
        "latest-10 time vs sqlite3",
        "flume.latest10",
        "sqlite.latest10",
        "<",
        1.0,
    ),
    Target(
        "count",
        "covered count time vs sqlite3 count",
        "flume.count_votes",
        "sqlite.count_votes",
        "<=",
        2.0,
    ),
    Target(
        "count_bitmap",
        "count of votes by bitmap",
        "flume.count_votes_bitmap",
        None,
        "<=",
        1.0,
        "ms",
    ),
    Target(
        "count_two",
        "count of one author's votes (two fields)",
        "flume.count_type_author",
        None,
        "<=",
        1.0,
        "ms",
    ),
    Target(
        "count_two_sqlite",
        "two-field count vs sqlite3, an index on each field",
        "flume.count_type_author",
        "sqlite.count_type_author",
        "<=",
        0.5,
    ),
    Target("reopen", "reopen with caught-up views", "flume.reopen", None, "<", 100.0, "ms"),
    Target("peak", "peak memory of the catch-up", "flume.catchup_peak", None, "<", 300.0, "MB"),
    # Informational: no bound in the issue.
    Target(
        "anon",
        "anonymous memory of the catch-up (heap)",
        "flume.catchup_anon",
        None,
        "<",
        None,
        "MB",
    ),
    Target(
        "count_two_composite",
        "two-field count vs sqlite3 (type, author) index",
        "flume.count_type_author",
        "sqlite.count_type_author_composite",
        "<=",
        None,
    ),
    Target(
        "bitmap_build",
        "build of 2 bitmap fields vs sqlite3 index build",
        "flume.bitmap_build",
        "sqlite.type_author_index",
        "<=",
        None,
    ),
    Target("get", "random get vs raw LMDB get", "flume.get", "lmdb.get", ">=", None),
    Target(
        "single",
        "1-thread single append vs raw LMDB single put",
        "flume.append_1t",
        "lmdb.single_put",
        ">=",
        None,
    ),
    Target(
        "sqlite_batched",
        "sqlite3 batched insert vs raw LMDB batched",
        "sqlite.batched_insert",
        "lmdb.batched_put",
        ">=",
        None,
    ),
    Target(
        "sqlite_index",
        "sqlite3 index build vs raw implied work",
        "sqlite.index_build",
        "rocksdb.implied_work",
        "<=",
        None,
    ),
]


def evaluate(rows: list[Row]) -> list[dict[str, Any]]:
    """Each target with its measured value and a verdict: pass, FAIL, info or n/a."""
    by_id = {r.id: r for r in rows}
    out = []
    for t in TARGETS:
        value: float | None = None
        missing = [rid for rid in (t.num, t.den) if rid is not None]
        usable = all(
            rid in by_id and by_id[rid].status == OK and by_id[rid].value for rid in missing
        )
        if usable:
            num = by_id[t.num].value
            assert num is not None
            if t.den is None:
                value = num
            else:
                den = by_id[t.den].value
                assert den is not None
                value = num / den
        if value is None:
            verdict = "n/a"
        elif t.bound is None:
            verdict = "info"
        else:
            verdict = "pass" if _OPS[t.op](value, t.bound) else "FAIL"
        out.append(
            {
                "id": t.id,
                "label": t.label,
                "numerator": t.num,
                "denominator": t.den,
                "value": value,
                "unit": t.unit,
                "op": t.op,
                "target": t.bound,
                "verdict": verdict,
            }
        )
    return out
