"""The flume side of the benchmark, written against the public API of ``DESIGN.md``.

Until flume's API is importable (``flume.open`` and ``flume.views.Reduce/Index/Query``),
:func:`run` returns every flume row with status "not available" and the import error as the
note, so the harness still runs the baselines. Once it is importable, each step runs in its
own ``try``: a step that raises gives its rows status "error" with the exception as the note,
and the other steps go on.

Steps, in order (each on the same prepared messages as the baselines):

1. ``append_many``: ``flume.open(fresh dir)`` with no views, ``db.append_many`` of 1,000
   messages at a time (durable, the default ``sync=True``).
2. ``stream``: reopen that directory, iterate ``db.stream()`` over every entry; then
   ``db.get(seq)`` at the same random seqs as the raw LMDB gets.
3. ``catchup``: in a child process (``python -m bench.flume_workloads catchup DIR``), open the
   directory, ``use`` the three views and wait until each is ``ready()``; the child reports the
   time and its peak memory (``resource.getrusage`` ``ru_maxrss``).
4. ``reopen``: in this process, open the directory again and ``use`` the three views, now
   caught up; the time until all three are ``ready()``.
5. ``latest10`` and ``count_votes`` on that open database, with the Query view.
6. ``disk``: sizes of ``log/`` and ``views/``.
7. ``append_1t`` / ``append_8t``: single durable ``db.append(v)`` calls from 1 thread, then
   from ``cfg.threads`` threads at once, each in a fresh directory.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    ERROR,
    MB,
    NOT_AVAILABLE,
    Config,
    Data,
    Row,
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
    ("flume.reopen", "reopen with 3 caught-up views", "ms"),
    ("flume.latest10", "latest 10 of an author (Query)", "us/query"),
    ("flume.count_votes", "count of votes (covered Query)", "ms"),
    ("flume.disk_log", "disk use of log/", "MB"),
    ("flume.disk_views", "disk use of views/", "MB"),
    ("flume.append_1t", "append(v), 1 thread, durable", "rec/s"),
    ("flume.append_8t", "append(v), 8 threads, durable", "rec/s"),
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
    "flume.reopen",
    "flume.latest10",
    "flume.count_votes",
    "flume.disk_views",
]


def _unavailable(reason: str) -> list[Row]:
    return [
        Row(rid, "flume", label, unit, status=NOT_AVAILABLE, note=reason)
        for rid, label, unit in ROWS
    ]


class _Steps:
    """Collects the flume rows; a step that raises marks its rows as errors and the run goes on."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {
            rid: Row(rid, "flume", label, unit, status=ERROR, note="not run")
            for rid, label, unit in ROWS
        }

    def set(self, row: Row) -> None:
        row.workload = self.rows[row.id].workload
        self.rows[row.id] = row

    def run(self, ids: list[str], fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as e:
            where = traceback.extract_tb(e.__traceback__)[-1]
            note = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
            for rid in ids:
                if self.rows[rid].note == "not run":
                    self.rows[rid].note = note[:400]


def run(cfg: Config, data: Data) -> list[Row]:
    """Every flume workload; "not available" rows if flume's API is not importable yet."""
    if not CORE:
        return _unavailable(CORE_REASON)
    steps = _Steps()
    if not HAVE_QUERY:
        for rid in QUERY_ROWS:
            steps.rows[rid].status, steps.rows[rid].note = NOT_AVAILABLE, QUERY_REASON
    with fresh_dir(cfg, "flume") as path:
        _run_main(cfg, data, path, steps)
    steps.run(["flume.append_1t", "flume.append_8t"], lambda: _single_appends(cfg, data, steps))
    return list(steps.rows.values())


def _run_main(cfg: Config, data: Data, path: Path, steps: _Steps) -> None:
    def append_many() -> None:
        with _open(str(path)) as db:
            seconds, n = timed(lambda: _append_batches(db, data.messages))
        steps.set(rate_row("flume.append_many", "flume", "", n, seconds, "rec/s"))

    steps.run(["flume.append_many"], append_many)

    def stream_and_get() -> None:
        with _open(str(path)) as db:
            seconds, n = timed(lambda: _stream_all(db))
            row = rate_row("flume.stream", "flume", "", n, seconds, "rec/s")
            if n != cfg.n:
                row.status, row.note = ERROR, f"wrong answer: streamed {n} of {cfg.n}"
            steps.set(row)
            if data.get_seqs:
                seconds, n = timed(lambda: _gets(db, data.get_seqs))
                steps.set(rate_row("flume.get", "flume", "", n, seconds, "get/s"))

    steps.run(["flume.stream", "flume.get"], stream_and_get)
    if not HAVE_QUERY:
        steps.set(Row("flume.disk_log", "flume", "", "MB", disk_usage(path / "log") / MB))
        return

    def catchup() -> None:
        report = _catchup_in_child(path, cfg.timeout)
        steps.set(
            Row(
                "flume.catchup",
                "flume",
                "",
                "s",
                report["seconds"],
                report["seconds"],
                cfg.n,
                note=f"{cfg.n / report['seconds']:,.0f} rec/s" if report["seconds"] else "",
                detail=report,
            )
        )
        steps.set(
            Row(
                "flume.catchup_peak",
                "flume",
                "",
                "MB",
                report["peak_mb"],
                note=f"of which {report['start_mb']:.0f} MB before flume.open",
            )
        )

    steps.run(["flume.catchup", "flume.catchup_peak"], catchup)

    def reopen_and_query() -> None:
        t0 = time.perf_counter()
        db = _open(str(path))
        try:
            use_views(db)
            wait_ready(db, cfg.timeout)
            seconds = time.perf_counter() - t0
            steps.set(Row("flume.reopen", "flume", "", "ms", seconds * 1000, seconds, 1))
            steps.run(["flume.latest10"], lambda: steps.set(_latest10(db, data)))
            steps.run(["flume.count_votes"], lambda: steps.set(_count_votes(db, cfg, data)))
        finally:
            db.close()

    steps.run(["flume.reopen", "flume.latest10", "flume.count_votes"], reopen_and_query)

    def disk() -> None:
        steps.set(Row("flume.disk_log", "flume", "", "MB", disk_usage(path / "log") / MB))
        steps.set(Row("flume.disk_views", "flume", "", "MB", disk_usage(path / "views") / MB))

    steps.run(["flume.disk_log", "flume.disk_views"], disk)


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


def _explain(db: Any, query: Any) -> str:
    try:
        return str(db.query.explain(query))[:2000]
    except Exception as e:
        return f"explain failed: {type(e).__name__}: {e}"


def _single_appends(cfg: Config, data: Data, steps: _Steps) -> None:
    single = data.messages[: cfg.single]
    with fresh_dir(cfg, "flume-1t") as path, _open(str(path)) as db:
        append = db.append
        seconds, _ = timed(lambda: [append(m) for m in single])
    steps.set(rate_row("flume.append_1t", "flume", "", len(single), seconds, "rec/s"))

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
    steps.set(row)


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


def _max_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MB


def catchup_child(path: str, timeout: float) -> dict[str, Any]:
    """Open ``path``, mount the three views, wait until all are caught up; report."""
    start_mb = _max_rss_mb()
    t0 = time.perf_counter()
    with _open(path) as db:
        use_views(db)
        wait_ready(db, timeout)
        seconds = time.perf_counter() - t0
        counts = db.by_type.get()
        since = db.since.value
    return {
        "seconds": seconds,
        "peak_mb": _max_rss_mb(),
        "start_mb": start_mb,
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
