"""The one range vocabulary of flume: ``gt/gte/lt/lte/reverse/limit/live/old``.

Every read (log streams, Index reads, Query reads, the CLI) checks its options here, so a wrong
type or an inverted range gets the same clear error everywhere, before anything is read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from flume.errors import InvalidArgumentError, InvalidTypeError


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise :class:`InvalidTypeError`."""
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be True or False, not {value!r}")
    return value


def check_limit(limit: Any) -> int | None:
    """Return ``limit`` (None or an int >= 0; 0 yields nothing), else raise."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidTypeError(f"limit must be None or an int >= 0, not {limit!r}")
    if limit < 0:
        raise InvalidArgumentError(f"limit must be None or an int >= 0, not {limit}")
    # No read yields more than sys.maxsize items, and itertools.islice refuses a larger stop.
    return min(limit, sys.maxsize)


def check_seq(name: str, value: Any) -> int:
    """Return ``value`` if it is an int seq (not a bool), else raise :class:`InvalidTypeError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name} must be an int seq, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SeqRange:
    """An inclusive range of seqs; ``hi`` None means no upper end."""

    lo: int
    hi: int | None

    def contains(self, seq: int) -> bool:
        return seq >= self.lo and (self.hi is None or seq <= self.hi)


def seq_range(gt: Any = None, gte: Any = None, lt: Any = None, lte: Any = None) -> SeqRange:
    """Turn the four seq bounds into one inclusive :class:`SeqRange`.

    Raises:
        InvalidTypeError: a bound is not an int.
        InvalidArgumentError: both ``gt`` and ``gte`` (or ``lt`` and ``lte``) are given, or the
            lower bound lies above the upper one.
    """
    _one_of("gt", gt, "gte", gte)
    _one_of("lt", lt, "lte", lte)
    lo = 0
    if gt is not None:
        lo = max(0, check_seq("gt", gt) + 1)
    elif gte is not None:
        lo = max(0, check_seq("gte", gte))
    hi: int | None = None
    if lt is not None:
        hi = check_seq("lt", lt) - 1
    elif lte is not None:
        hi = check_seq("lte", lte)
    lower = gt if gt is not None else gte
    upper = lt if lt is not None else lte
    if lower is not None and upper is not None and lower > upper:
        raise InvalidArgumentError(
            f"inverted range: the lower bound {lower} is above the upper bound {upper}; "
            "swap them, or use reverse=True to read backwards"
        )
    return SeqRange(lo, hi)


def _one_of(a: str, va: Any, b: str, vb: Any) -> None:
    if va is not None and vb is not None:
        raise InvalidArgumentError(f"give at most one of {a}= and {b}=, not both")
