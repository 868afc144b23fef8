"""The one range vocabulary of flume: ``gt/gte/lt/lte/reverse/limit/live/old``.

Every read (log streams, Index reads, Query reads, the CLI) checks its options here, so a wrong
type or an inverted range gets the same clear error everywhere, before anything is read.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
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


#: The largest seq a log can hold (keys are 8-byte unsigned ints): a larger int is simply not
#: in the log, never an overflow.
MAX_SEQ = 2**64 - 1


def check_timeout(value: Any, name: str = "timeout") -> float | None:
    """Return ``value`` as seconds to wait: None (or ``math.inf``, or anything longer than
    half ``threading.TIMEOUT_MAX``, some 146 years) waits forever, else a number >= 0.

    Raises:
        InvalidTypeError: not None, an int or a float (a bool or a str of digits included).
        InvalidArgumentError: negative or NaN (a NaN deadline would never pass).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{name} must be None or a number of seconds >= 0, not {value!r}")
    if (isinstance(value, float) and math.isnan(value)) or value < 0:
        raise InvalidArgumentError(
            f"{name} must be None or a number of seconds >= 0, not {value!r}"
        )
    if value > threading.TIMEOUT_MAX / 2:
        # Some 146 years or more (inf included) is forever; a wait this long would be refused by
        # the platform (OverflowError above TIMEOUT_MAX) once deadline arithmetic rounds it up.
        return None
    return float(value)


def check_values(values: Any) -> list[Any]:
    """Return the batch of ``append_many`` as a list: any iterable of values (a list, a tuple,
    a generator, read whole before anything is written), but not one value that happens to be
    iterable (a str, bytes, a dict) nor an unordered set.

    Raises:
        InvalidTypeError: ``values`` is not such an iterable.
    """
    if isinstance(values, (str, bytes, bytearray, memoryview, Mapping)):
        raise InvalidTypeError(
            f"append_many takes a list of values, not a {type(values).__name__}; "
            "use append() for a single value"
        )
    if isinstance(values, AbstractSet):
        raise InvalidTypeError(
            f"append_many takes an ordered list of values, not a {type(values).__name__} "
            "(its order, hence the seqs, would be arbitrary); pass sorted(...) or a list"
        )
    if not isinstance(values, Iterable):
        raise InvalidTypeError(
            f"append_many takes a list of values, not {values!r:.60}; "
            "use append() for a single value"
        )
    return values if isinstance(values, list) else list(values)


def check_path(path: Any) -> str:
    """Return the directory ``path`` (a str or an ``os.PathLike`` of str) as a str.

    Raises:
        InvalidTypeError: not a str path (bytes paths are not supported: decode them).
        InvalidArgumentError: empty, or holding a NUL character.
    """
    directory = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(directory, str):
        hint = " (decode a bytes path with os.fsdecode())" if isinstance(directory, bytes) else ""
        raise InvalidTypeError(f"path must be a str or a pathlib.Path, not {path!r:.60}{hint}")
    if not directory or "\0" in directory:
        raise InvalidArgumentError(f"path {directory!r:.60} is not a directory name")
    return directory


def check_name(name: Any) -> str:
    """Return a view ``name`` if it is a str, else raise :class:`InvalidTypeError`."""
    if not isinstance(name, str):
        raise InvalidTypeError(f"a view name is a str, not {name!r:.60}")
    return name


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
