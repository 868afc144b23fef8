"""The flume side of the benchmark, written against the public API of ``DESIGN.md``.

:class:`Flume` is a :class:`~bench.common.System` like the baselines: one workload per phase,
run by the harness right after the baselines' workloads of the same phase. Until flume's API is
importable (``flume.open``, ``flume.views.Reduce`` and ``Index``; ``Query`` for the view rows),
the rows it cannot measure say "not available" with the import error as the note, and the
harness runs everything else. A workload that raises gives its rows status "error" with the
exception as the note, and the run goes on.

The workloads, by phase (all on the same prepared messages as the baselines):

- write: ``flume.open(fresh dir)`` with no views, ``db.append_many`` of 1,000 messages at a
  time (durable, the default ``sync=True``).
- scan: open that directory again (no views) and iterate ``db.stream()`` over every entry.
- get: ``db.get(seq)`` at the same random seqs as the raw LMDB gets.
- views: in a child process (``python -m bench.flume_workloads catchup DIR``), open the
  directory, ``use`` the three views and wait until each is ``ready()``; the child reports the
  time and its peak memory (see :func:`_peak_rss_mb`: on Linux ``VmHWM``, as ``ru_maxrss``
  there includes the parent's peak).
- reopen: in this process, open the directory and ``use`` the three views, now caught up; the
  time until all three are ``ready()``.
- latest10, count: reads with the Query view on that open database.
- bitmaps: on that database, ``use`` a fourth view, a Query with bitmap fields on the type and
  the author and no index, and wait until it is ``ready()`` (its build time, information).
- bitmap_count: the count of votes and the count of one author's votes (two fields) on it.
- single: single durable ``db.append(v)`` calls from 1 thread, then from ``cfg.threads``
  threads at once, each in a fresh directory.
- disk: sizes of ``log/`` and ``views/``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.common import (
    ERROR,
    FAST_COUNT_ROUNDS,
    MB,
    NOT_AVAILABLE,
    Config,
    Data,
    Row,
    System,
    batches,
    disk_usage,
    fresh_dir,
    latency_row,
    median,
    rate_row,
    timed,
)

try:
    import flume
    from flume.views import Index, Reduce

    _open: Callable[..., Any] = flume.open
except Exception as e:  # ImportError, AttributeError, or an error inside a half-written module
    CORE, CORE_REASON = False, f"flume API not importable yet ({type(e).__name__}: {e})"
else:
    CORE, CORE_REASON = True, ""
try:
    from flume.views import Query  # type: ignore[attr-defined,unused-ignore]
except Exception as e:
    HAVE_QUERY, QUERY_REASON = (
        False,
        f"flume Query view not importable yet ({type(e).__name__}: {e})",
    )
else:
    HAVE_QUERY, QUERY_REASON = True, ""

#: Whether every flume row can be measured, and if not, why not.
AVAILABLE = CORE and HAVE_QUERY
REASON = CORE_REASON or QUERY_REASON

#: The flume rows, in report order: (id, workload, unit).
ROWS: list[tuple[str, str, str]] = [
    ("flume.append_many", "append_many, 1000/batch, durable", "rec/s"),
    ("flume.stream", "stream() every entry", "rec/s"),
    ("flume.get", "random get(seq)", "get/s"),
    ("flume.catchup", "3-view catch-up (child process)", "s"),
    ("flume.catchup_peak", "peak RSS of the catch-up process", "MB"),
    ("flume.catchup_anon", "peak anonymous memory of the catch-up", "MB"),
    ("flume.reopen", "reopen with 3 caught-up views", "ms"),
    ("flume.latest10", "latest 10 of an author (Query)", "us/query"),
    ("flume.count_votes", "count of votes (covered Query)", "ms"),
    ("flume.bitmap_build", "build of a 4th view: 2 bitmap fields", "s"),
    ("flume.count_votes_bitmap", "count of votes (bitmap)", "ms"),
    ("flume.count_type_author", "count of one author's votes (bitmaps)", "ms"),
    ("flume.append_1t", "append(v), 1 thread, durable", "rec/s"),
    ("flume.append_8t", "append(v), 8 threads, durable", "rec/s"),
    ("flume.disk_log", "disk use of log/", "MB"),
    ("flume.disk_views", "disk use of views/", "MB"),
]

#: The three views of the benchmark, as names of the mounted views.
VIEW_NAMES = ("by_type", "by_author", "query")

LATEST10_QUERY: Callable[[str], list[dict[str, Any]]] = lambda author: [  # noqa: E731
    {"$filter": {"value": {"author": author}}}
]
COUNT_VOTES_QUERY: list[dict[str, Any]] = [
    {"$filter": {"value": {"content": {"type": "vote"}}}},
    {"$reduce": {"$count": True}},
]
TYPE_AUTHOR_QUERY: Callable[[str], list[dict[str, Any]]] = lambda author: [  # noqa: E731
    {"$filter": {"value": {"content": {"type": "vote"}, "author": author}}},
    {"$reduce": {"$count": True}},
]
#: The bitmap fields of the fourth view, mounted after the three views' rows.
BITMAP_FIELDS = [["value", "content", "type"], ["value", "author"]]


def _count_by_type(acc: dict[str, int], kind: str) -> dict[str, int]:
    return {**acc, kind: acc.get(kind, 0) + 1}


def use_views(db: Any) -> None:
    """Mount the benchmark's three views on ``db`` (the same definitions in every process)."""
    db.use(
        "by_type",
        Reduce(_count_by_type, initial={}, map=lambda v: v["value"]["content"]["type"]),
    )
    db.use("by_author", Index(lambda v: (v["value"]["author"], v["value"]["sequence"])))
    db.use(
        "query",
        Query(
            indexes={
                "author_ts": [["value", "author"], ["value", "timestamp"]],
                "type_ts": [["value", "content", "type"], ["value", "timestamp"]],
            }
        ),
    )


def wait_ready(db: Any, timeout: float) -> None:
    for name in VIEW_NAMES:
        getattr(db, name).ready(timeout=timeout)


def _key_of(item: Any) -> str:
    """The message key of a query result, whether it is the value or a (seq, value) entry."""
    if isinstance(item, dict):
        return str(item["key"])
    value = getattr(item, "value", None)
    if value is None:
        value = item[1]
    return str(value["key"])


#: The rows that need the Query view (all three views are needed for the catch-up).
QUERY_ROWS = [
    "flume.catchup",
    "flume.catchup_peak",
    "flume.catchup_anon",
    "flume.reopen",
    "flume.latest10",
    "flume.count_votes",
    "flume.bitmap_build",
    "flume.count_votes_bitmap",
    "flume.count_type_author",
    "flume.disk_views",
]


class Flume(System):
    """flume's workloads by phase. Each returns its rows; one that raises returns them as errors."""

    name = "flume"

    def __init__(self, cfg: Config, data: Data, stack: ExitStack) -> None:
        super().__init__(cfg, data, stack)
        self.labels = {rid: (label, unit) for rid, label, unit in ROWS}
        self.dir: Path | None = None
        self._db: Any = None
        self._views = False  # whether self._db has the three views mounted
        if CORE:
            self.dir = stack.enter_context(fresh_dir(cfg, "flume"))
            stack.callback(self._close)
        self.phases = {
            "write": lambda: self._guard(["flume.append_many"], self.append_many),
            "scan": lambda: self._guard(["flume.stream"], self.stream),
            "get": lambda: self._guard(["flume.get"], self.get),
            "views": lambda: self._guard(
                ["flume.catchup", "flume.catchup_peak", "flume.catchup_anon"], self.catchup
            ),
            "reopen": lambda: self._guard(["flume.reopen"], self.reopen),
            "latest10": lambda: self._guard(["flume.latest10"], self.latest10),
            "count": lambda: self._guard(["flume.count_votes"], self.count),
            "bitmaps": lambda: self._guard(["flume.bitmap_build"], self.bitmap_build),
            "bitmap_count": lambda: self._guard(
                ["flume.count_votes_bitmap", "flume.count_type_author"], self.bitmap_count
            ),
            "single": lambda: self._guard(["flume.append_1t", "flume.append_8t"], self.single),
            "disk": lambda: self._guard(["flume.disk_log", "flume.disk_views"], self.disk),
        }

    # --- plumbing

    def _row(self, rid: str, value: float | None, **kw: Any) -> Row:
        label, unit = self.labels[rid]
        return Row(rid, "flume", label, unit, value, **kw)

    def _guard(self, ids: list[str], fn: Callable[[], list[Row]]) -> list[Row]:
        if not CORE:
            return [self._row(rid, None, status=NOT_AVAILABLE, note=CORE_REASON) for rid in ids]
        missing = [rid for rid in ids if rid in QUERY_ROWS and not HAVE_QUERY]
        runnable = [rid for rid in ids if rid not in missing]
        rows = [self._row(rid, None, status=NOT_AVAILABLE, note=QUERY_REASON) for rid in missing]
        if not runnable:
            return rows
        try:
            measured = fn()
        except Exception as e:
            where = traceback.extract_tb(e.__traceback__)[-1]
            note = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
            return rows + [self._row(rid, None, status=ERROR, note=note[:400]) for rid in runnable]
        for row in measured:
            row.workload = self.labels[row.id][0]
        return rows + [r for r in measured if r.id in runnable]

    def _close(self) -> None:
        if self._db is not None:
            db, self._db, self._views = self._db, None, False
            db.close()

    @property
    def path(self) -> str:
        assert self.dir is not None
        return str(self.dir)

    def _open_plain(self) -> Any:
        """The database without views (for the log workloads)."""
        if self._db is None:
            self._db = _open(self.path)
        return self._db

    # --- the workloads

    def append_many(self) -> list[Row]:
        with _open(self.path) as db:
            seconds, n = timed(lambda: _append_batches(db, self.data.messages))
        return [rate_row("flume.append_many", "flume", "", n, seconds, "rec/s")]

    def stream(self) -> list[Row]:
        db = self._open_plain()
        seconds, n = timed(lambda: _stream_all(db))
        row = rate_row("flume.stream", "flume", "", n, seconds, "rec/s")
        if n != self.cfg.n:
            row.status, row.note = ERROR, f"wrong answer: streamed {n} of {self.cfg.n}"
        return [row]

    def get(self) -> list[Row]:
        if not self.data.get_seqs:
            return []
        db = self._open_plain()
        seconds, n = timed(lambda: _gets(db, self.data.get_seqs))
        return [rate_row("flume.get", "flume", "", n, seconds, "get/s")]

    def catchup(self) -> list[Row]:
        self._close()  # the child opens the directory as its writer
        report = _catchup_in_child(Path(self.path), self.cfg.timeout)
        seconds = report["seconds"]
        rate = f"{self.cfg.n / seconds:,.0f} rec/s" if seconds else ""
        row = self._row("flume.catchup", seconds, seconds=seconds, count=self.cfg.n, note=rate)
        row.detail = report
        if report.get("counts", {}).get("vote", 0) != self.data.vote_count:
            row.status, row.note = ERROR, f"wrong answer: by_type counts {report.get('counts')}"
        note = f"of which {report['start_mb']:.0f} MB before flume.open"
        anon = report.get("peak_anon_mb")
        anon_note = (
            "RssAnon sampled every 20 ms: heap, not the mapped log's file pages"
            if anon is not None
            else "not measured: no /proc/self/status"
        )
        return [
            row,
            self._row("flume.catchup_peak", report["peak_mb"], note=note),
            self._row("flume.catchup_anon", anon, note=anon_note),
        ]

    def reopen(self) -> list[Row]:
        self._close()
        t0 = time.perf_counter()
        db = _open(self.path)
        try:
            use_views(db)
            wait_ready(db, self.cfg.timeout)
        except BaseException:
            db.close()
            raise
        seconds = time.perf_counter() - t0
        self._db, self._views = db, True
        return [self._row("flume.reopen", seconds * 1000, seconds=seconds, count=1)]

    def _db_with_views(self) -> Any:
        if not self._views:
            raise RuntimeError("the database with its views did not reopen (see flume.reopen)")
        return self._db

    def latest10(self) -> list[Row]:
        return [_latest10(self._db_with_views(), self.data)]

    def count(self) -> list[Row]:
        return [_count_votes(self._db_with_views(), self.cfg, self.data)]

    def bitmap_build(self) -> list[Row]:
        db = self._db_with_views()
        t0 = time.perf_counter()
        db.use("bitmaps", Query(indexes={}, bitmaps=BITMAP_FIELDS))
        db.bitmaps.ready(timeout=self.cfg.timeout)
        seconds = time.perf_counter() - t0
        rate = f"{self.cfg.n / seconds:,.0f} rec/s" if seconds else ""
        return [self._row("flume.bitmap_build", seconds, seconds=seconds, note=rate)]

    def bitmap_count(self) -> list[Row]:
        db, data = self._db_with_views(), self.data
        return [
            _timed_count(
                db.bitmaps, "flume.count_votes_bitmap", COUNT_VOTES_QUERY, data.vote_count
            ),
            _timed_count(
                db.bitmaps,
                "flume.count_type_author",
                TYPE_AUTHOR_QUERY(data.vote_author),
                data.vote_author_count,
            ),
        ]

    def single(self) -> list[Row]:
        return _single_appends(self.cfg, self.data)

    def disk(self) -> list[Row]:
        self._close()
        assert self.dir is not None
        return [
            self._row("flume.disk_log", disk_usage(self.dir / "log") / MB),
            self._row("flume.disk_views", disk_usage(self.dir / "views") / MB),
        ]


def _append_batches(db: Any, messages: list[dict[str, Any]]) -> int:
    n = 0
    for chunk in batches(messages):
        db.append_many(chunk)
        n += len(chunk)
    return n


def _stream_all(db: Any) -> int:
    n = 0
    for _entry in db.stream():
        n += 1
    return n


def _gets(db: Any, seqs: list[int]) -> int:
    get = db.get
    for s in seqs:
        get(s)
    return len(seqs)


def _latest10(db: Any, data: Data) -> Row:
    def query(author: str) -> list[Any]:
        return list(db.query.read(LATEST10_QUERY(author), reverse=True, limit=10))

    checked = data.query_authors[:5]
    wrong = [a for a in checked if [_key_of(x) for x in query(a)] != data.latest10(a)]
    t0 = time.perf_counter()
    for a in data.query_authors:
        query(a)
    seconds = time.perf_counter() - t0
    row = latency_row("flume.latest10", "flume", "", len(data.query_authors), seconds)
    row.detail["explain"] = _explain(db, LATEST10_QUERY(checked[0] if checked else "@"))
    if wrong:
        row.status, row.note = ERROR, f"wrong answer: latest 10 of {len(wrong)} checked authors"
    return row


def _count_votes(db: Any, cfg: Config, data: Data) -> Row:
    times = []
    answer: Any = None
    for _ in range(max(1, cfg.count_repeats)):
        seconds, answer = timed(lambda: list(db.query.read(COUNT_VOTES_QUERY)))
        times.append(seconds)
    row = Row("flume.count_votes", "flume", "", "ms", median(times) * 1000, sum(times), len(times))
    row.detail["explain"] = _explain(db, COUNT_VOTES_QUERY)
    if answer != [data.vote_count]:
        row.status, row.note = ERROR, f"wrong answer: {answer!r}, expected [{data.vote_count}]"
    return row


def _timed_count(view: Any, rid: str, query: Any, expected: int) -> Row:
    """The median of :data:`FAST_COUNT_ROUNDS` reads of the count ``query`` on ``view``."""
    times = []
    answer: Any = None
    for _ in range(FAST_COUNT_ROUNDS):
        seconds, answer = timed(lambda: list(view.read(query)))
        times.append(seconds)
    row = Row(rid, "flume", "", "ms", median(times) * 1000, sum(times), len(times))
    row.detail["explain"] = _explain_on(view, query)
    if answer != [expected]:
        row.status, row.note = ERROR, f"wrong answer: {answer!r}, expected [{expected}]"
    return row


def _explain(db: Any, query: Any) -> str:
    return _explain_on(db.query, query)


def _explain_on(view: Any, query: Any) -> str:
    try:
        return str(view.explain(query))[:2000]
    except Exception as e:
        return f"explain failed: {type(e).__name__}: {e}"


def _single_appends(cfg: Config, data: Data) -> list[Row]:
    single = data.messages[: cfg.single]
    with fresh_dir(cfg, "flume-1t") as path, _open(str(path)) as db:
        append = db.append
        seconds, _ = timed(lambda: [append(m) for m in single])
    rows = [rate_row("flume.append_1t", "flume", "", len(single), seconds, "rec/s")]

    threads = max(1, cfg.threads)
    with fresh_dir(cfg, "flume-8t") as path, _open(str(path)) as db:
        shares = [single[i::threads] for i in range(threads)]
        barrier = threading.Barrier(threads + 1)
        errors: list[BaseException] = []

        def worker(share: list[dict[str, Any]]) -> None:
            barrier.wait()
            try:
                for m in share:
                    db.append(m)
            except BaseException as e:  # reported below, in the main thread
                errors.append(e)

        workers = [threading.Thread(target=worker, args=(s,)) for s in shares]
        for w in workers:
            w.start()
        barrier.wait()
        t0 = time.perf_counter()
        for w in workers:
            w.join()
        seconds = time.perf_counter() - t0
        if errors:
            raise errors[0]
        total = db.since.value + 1
    row = rate_row("flume.append_8t", "flume", "", len(single), seconds, "rec/s")
    row.note = f"{threads} threads"
    if total != len(single):
        row.status, row.note = ERROR, f"wrong answer: log has {total} of {len(single)} entries"
    return rows + [row]


# ------------------------------------------------------------------ the catch-up child


def _catchup_in_child(path: Path, timeout: float) -> dict[str, Any]:
    """Run the catch-up in a fresh interpreter; return its JSON report."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.flume_workloads", "catchup", str(path), str(timeout)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"catch-up child exited {proc.returncode}: {tail[0]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _peak_rss_mb() -> tuple[float, str]:
    """This process's peak resident memory in MB, and how it was measured.

    On Linux the kernel's ``VmHWM`` (peak RSS of the process's own address space) is used:
    ``ru_maxrss`` there carries the *parent's* peak across fork and exec, so a child of the
    benchmark (which holds a million messages) would report the parent's size. Elsewhere,
    ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB, "VmHWM"
    except (OSError, ValueError, IndexError):
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MB, "ru_maxrss"


def _anon_mb() -> float | None:
    """This process's anonymous resident memory (``RssAnon``: its heap, not mapped files) in
    MB, or None where the kernel does not report it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024 / MB
    except (OSError, ValueError, IndexError):
        pass
    return None


class _AnonPeak:
    """The peak of :func:`_anon_mb`, sampled every 20 ms in a thread (the kernel keeps a peak
    of the whole RSS only, which the memory-mapped log dominates)."""

    def __init__(self) -> None:
        self.peak = _anon_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            now = _anon_mb()
            if now is not None and self.peak is not None:
                self.peak = max(self.peak, now)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.peak


@contextmanager
def caught_up(path: str, timeout: float) -> Iterator[tuple[Any, float]]:
    """Open ``path``, mount the three views and wait until all are caught up: ``(db, the
    seconds that took)``, the db open until the block ends."""
    t0 = time.perf_counter()
    with _open(path) as db:
        use_views(db)
        wait_ready(db, timeout)
        yield db, time.perf_counter() - t0


def catchup_child(path: str, timeout: float) -> dict[str, Any]:
    """Open ``path``, mount the three views, wait until all are caught up; report."""
    start_mb, _ = _peak_rss_mb()
    anon = _AnonPeak()
    with caught_up(path, timeout) as (db, seconds):
        counts = db.by_type.get()
        since = db.since.value
    peak_mb, how = _peak_rss_mb()
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "peak_anon_mb": anon.stop(),
        "start_mb": start_mb,
        "peak_measured_by": how,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB,
        "since": since,
        "counts": counts,
    }


def main(argv: list[str]) -> int:
    """``python -m bench.flume_workloads catchup DIR [TIMEOUT]``: the catch-up child."""
    if len(argv) < 2 or argv[0] != "catchup":
        print("usage: python -m bench.flume_workloads catchup DIR [TIMEOUT]", file=sys.stderr)
        return 2
    if not AVAILABLE:
        print(REASON, file=sys.stderr)
        return 1
    timeout = float(argv[2]) if len(argv) > 2 else 1800.0
    print(json.dumps(catchup_child(argv[1], timeout)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
