"""What the workloads share: the result row, the run configuration, the prepared data, helpers."""

from __future__ import annotations

import gc
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flume import sample

#: Records per transaction / write batch in every batched workload.
BATCH = 1000

#: One megabyte, as reported everywhere in the benchmark (decimal, like ``du --si``).
MB = 1_000_000

#: Status of a row: measured, not measurable yet (flume API missing), or failed.
OK, NOT_AVAILABLE, ERROR = "ok", "not available", "error"


@dataclass
class Row:
    """One measured number.

    ``value`` is the row's headline figure in ``unit`` (a rate such as ``rec/s``, a latency such
    as ``us/query``, or ``ms``, ``s``, ``MB``); ``seconds`` is the wall time of the timed section
    and ``count`` how many operations it did. A row that could not be measured has ``value``
    None, a ``status`` other than ``ok`` and the reason in ``note``.
    """

    id: str
    system: str
    workload: str
    unit: str
    value: float | None = None
    seconds: float | None = None
    count: int | None = None
    status: str = OK
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: The phases of a run, in order. In each phase every system runs its workload of that phase
#: one after the other, so that a flume row and the baseline rows it is compared with are
#: measured close together in time, under the same conditions of the machine.
PHASES = (
    "write",
    "scan",
    "get",
    "views",
    "reopen",
    "latest10",
    "count",
    "bitmaps",
    "bitmap_count",
    "composite",
    "single",
    "disk",
)

#: Phases whose workloads only read, and can run again to keep the best of ``--repeat`` rounds.
READ_PHASES = ("scan", "get", "latest10", "count", "bitmap_count")

#: Rounds of each count answered in under a millisecond (their median is kept).
FAST_COUNT_ROUNDS = 51


class System:
    """A system under test: ``phases`` maps phase names (of :data:`PHASES`) to workloads.

    A workload is a callable returning the rows it measured. Systems keep their databases
    between phases (later phases read what earlier ones wrote) and register their cleanup on
    the ``ExitStack`` they are given.
    """

    name = ""

    def __init__(self, cfg: Config, data: Data, stack: ExitStack) -> None:
        self.cfg = cfg
        self.data = data
        self.phases: dict[str, Callable[[], list[Row]]] = {}


def rate_row(id: str, system: str, workload: str, count: int, seconds: float, unit: str) -> Row:
    """A throughput row: ``count`` operations in ``seconds``, reported per second."""
    return Row(id, system, workload, unit, count / seconds, seconds, count)


def latency_row(id: str, system: str, workload: str, count: int, seconds: float) -> Row:
    """A latency row: the mean time of one of ``count`` operations, in microseconds."""
    return Row(id, system, workload, "us/query", seconds / count * 1e6, seconds, count)


@dataclass(frozen=True)
class Config:
    """Sizes and places of one benchmark run (see ``python -m bench --help``)."""

    n: int = 1_000_000
    single: int = 2000
    queries: int = 2000
    gets: int = 100_000
    count_repeats: int = 5
    repeat: int = 1
    codec: str = "ormsgpack"
    threads: int = 8
    authors: int = 1000
    seed: int = 0
    tmp: str | None = None
    keep: bool = False
    timeout: float = 1800.0


@dataclass
class Data:
    """The generated messages, prepared once before any timing, and what the reads look up."""

    messages: list[dict[str, Any]]
    query_authors: list[str]  # one author per latest-10 query, in query order
    get_seqs: list[int]  # one seq per random get, in get order
    vote_count: int  # the answer every "count of votes" must give
    vote_author: str  # the author of the two-field count (votes of one author)
    vote_author_count: int  # the answer every two-field count must give
    mean_msgpack_bytes: float
    generate_seconds: float

    _latest10: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def latest10(self, author: str) -> list[str]:
        """Keys of the 10 latest messages of ``author``, newest first (the expected answer)."""
        if author not in self._latest10:
            out = []
            for m in reversed(self.messages):
                if m["value"]["author"] == author:
                    out.append(m["key"])
                    if len(out) == 10:
                        break
            self._latest10[author] = out
        return self._latest10[author]


def prepare(cfg: Config) -> Data:
    """Generate the messages and the read plans deterministically from ``cfg.seed``.

    The collector is paused while the million dicts are built, then they are frozen
    (``gc.freeze``), so that no workload pays for the collector walking the prepared data.
    """
    import msgpack

    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        msgs = list(sample.messages(cfg.n, authors=cfg.authors, seed=cfg.seed))
        generate_seconds = time.perf_counter() - t0
    finally:
        gc.enable()
    gc.collect()
    gc.freeze()
    rng = random.Random(cfg.seed + 1)
    ids = sample.authors(cfg.authors, cfg.seed)
    written = {m["value"]["author"] for m in msgs}
    pool = [a for a in ids if a in written] or ids
    query_authors = [pool[int(rng.random() * len(pool))] for _ in range(cfg.queries)]
    get_seqs = [int(rng.random() * cfg.n) for _ in range(cfg.gets)] if cfg.n else []
    votes = sum(1 for m in msgs if m["value"]["content"]["type"] == "vote")
    vote_author = query_authors[0] if query_authors else ids[0]
    votes_of = sum(
        1
        for m in msgs
        if m["value"]["content"]["type"] == "vote" and m["value"]["author"] == vote_author
    )
    step = max(1, len(msgs) // 20_000)
    sizes = [len(msgpack.packb(m)) for m in msgs[::step]]
    mean = sum(sizes) / len(sizes) if sizes else 0.0
    return Data(msgs, query_authors, get_seqs, votes, vote_author, votes_of, mean, generate_seconds)


def batches(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    """Consecutive slices of ``size`` items (the last one may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def fresh_dir(cfg: Config, name: str) -> Iterator[Path]:
    """A new empty directory for one workload, removed afterwards unless ``cfg.keep``."""
    path = Path(tempfile.mkdtemp(prefix=f"flume-bench-{name}-", dir=cfg.tmp))
    try:
        yield path
    finally:
        if not cfg.keep:
            shutil.rmtree(path, ignore_errors=True)


def disk_usage(path: Path) -> int:
    """Bytes of all files under ``path`` (apparent sizes, like ``du --apparent-size -b``)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:  # a temporary file that went away meanwhile
                pass
    return total


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return its wall time in seconds and its result."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
