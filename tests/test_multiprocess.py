"""Many processes on one directory: one writer, many readers (DESIGN.md promise 4).

Every test here runs real processes (``subprocess`` with ``sys.executable -c``): a writer and
readers that open the same directory, exactly as a service and its web workers or a notebook
would. Each child is killed at the end of its test, and every wait has a timeout, so nothing
here can hang the suite.

Two kinds of child: an *agent* (``Agent``) runs snippets of Python that the test sends it one
at a time, in one persistent namespace, and answers each with JSON; a *script* (``Child``) runs
on its own (a writer appending in a loop, a reader checking every answer it gets) and reports
JSON lines. Latency figures (read-your-writes, live streams) are printed (``pytest -s``) and
recorded as test properties; docs/processes.md quotes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.views import Query

CHILD_TIMEOUT = 60.0

# Imported by every child: the view code the writer (and some readers) declare. The Reduce
# state [n, sum of seqs, last seq] is, for a prefix of the log of length L, exactly
# [L, L*(L-1)/2, L-1]: a reader can check that an answer is that of some committed prefix.
PRELUDE = r"""
import json, os, random, sys, threading, time, traceback
import flume
from flume.views import Index, Query, Reduce

AUTHORS = 7

def value(seq, **extra):
    return {"i": seq, "author": "@%d" % (seq % AUTHORS), **extra}

def declare(db, query=True):
    db.use("count", Reduce(lambda acc, v: [acc[0] + 1, acc[1] + v["i"], v["i"]], initial=[0, 0, -1]))
    db.use("by_author", Index(lambda v: (v["author"], v["i"])))
    if query:
        db.use("q", Query(indexes={"aut": [["author"], ["i"]]}))
    return db

def emit(**obj):
    print(json.dumps(obj), flush=True)
"""

AGENT = PRELUDE + r"""
ns = dict(globals())
for line in sys.stdin:
    code = json.loads(line)
    ns.pop("result", None)
    try:
        exec(code, ns)
        out = {"ok": ns.get("result")}
    except BaseException as e:
        out = {"error": type(e).__name__, "message": str(e), "trace": traceback.format_exc()}
    print(json.dumps(out, default=repr), flush=True)
"""


class Child:
    """A child Python process running ``script``; its stdout JSON lines go to a queue."""

    def __init__(self, script: str, *args: str, stdin: Any = subprocess.PIPE, **popen: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            text=True,
            **popen,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float = CHILD_TIMEOUT) -> Any:
        """The next JSON line the child prints."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"child {self.pid} said nothing for {timeout} s") from None
            if line is None:
                self.lines.put(None)
                raise AssertionError(f"child {self.pid} exited (code {self.proc.poll()})")
            line = line.strip()
            if line.startswith(("{", "[")):
                return json.loads(line)

    def until(self, pred: Callable[[Any], bool], timeout: float = CHILD_TIMEOUT) -> Any:
        """Skip lines until one satisfies ``pred``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next(max(0.0, deadline - time.monotonic()))
            if pred(msg):
                return msg

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = CHILD_TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(CHILD_TIMEOUT)


class Agent(Child):
    """A child that runs the snippets it is sent (see the module docstring)."""

    def __init__(self, **popen: Any) -> None:
        super().__init__(AGENT, **popen)

    def call(self, code: str, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
        self.send(json.dumps(textwrap.dedent(code)))
        reply: dict[str, Any] = self.next(timeout)
        return reply

    def run(self, code: str, timeout: float = CHILD_TIMEOUT) -> Any:
        """Run ``code``; return its ``result`` variable. A raised error fails the test."""
        reply = self.call(code, timeout)
        assert "error" in reply or "ok" in reply, reply
        if "error" in reply:
            raise AssertionError(f"child {self.pid}: {reply['error']}: {reply['message']}\n{reply['trace']}")
        return reply["ok"]

    def error(self, code: str, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
        """Run ``code``, which must raise; return ``{"error": name, "message": str}``."""
        reply = self.call(code, timeout)
        assert "error" in reply, f"expected an error, got {reply}"
        return reply


@pytest.fixture
def spawn() -> Iterator[Callable[..., Any]]:
    """``spawn(Agent)`` / ``spawn(Child, script, *args)``; every child is killed afterwards."""
    children: list[Child] = []

    def make(kind: type[Child] = Agent, *args: Any, **kwargs: Any) -> Any:
        child = kind(*args, **kwargs)
        children.append(child)
        return child

    yield make
    for child in children:
        child.kill()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(record: Callable[[str, Any], None], name: str, samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    figures = {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
    }
    record(name, json.dumps(figures))
    print(f"\n{name} ({os.cpu_count()} cores): {figures}")
    return figures


def tree_state(path: Path) -> dict[str, str]:
    """Every file under ``path`` and a hash of its bytes; LMDB's lock file (its reader table,
    which any reader writes by design) and reader secondary directories are left out."""
    out: dict[str, str] = {}
    for root, _, files in os.walk(path):
        rel_root = os.path.relpath(root, path)
        if rel_root.split(os.sep)[0] == "readers":
            continue
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel == os.path.join("log", "lock.mdb"):
                continue
            out[rel] = hashlib.sha256((Path(root) / name).read_bytes()).hexdigest()
    return out


def open_writer(agent: Agent, path: Path, query: bool = True) -> int:
    """Open ``path`` for writing in ``agent`` with the shared views; return the log's since."""
    result: int = agent.run(
        f"db = declare(flume.open({str(path)!r}), query={query!r}); result = db.since.value"
    )
    return result


# -- readers see the writer's appends and views -------------------------------------------------


def test_readers_see_the_writers_appends_and_views(tmp_path: Path, spawn: Any) -> None:
    path = tmp_path / "db"
    writer = spawn()
    open_writer(writer, path)
    assert writer.run("result = db.append_many([value(i) for i in range(20)])") == 19

    # One reader declares the Reduce and Index views as the writer's code does; the other has
    # no view code at all and gets the Query view from its stored definition.
    declaring, bare = spawn(), spawn()
    declaring.run(f"db = declare(flume.open({str(path)!r}, readonly=True), query=False)")
    bare.run(f"db = flume.open({str(path)!r}, readonly=True); result = sorted(db.views)")
    assert bare.run("result = sorted(db.views)") == ["q"]

    query = [{"$filter": {"author": "@3", "i": {"$gte": 5}}}]
    want = writer.run(f"result = list(db.q.read({query!r}))")
    assert [v["i"] for v in want] == [10, 17]
    for reader in (declaring, bare):
        assert reader.run("result = db.since.value") == 19
        assert reader.run("result = db.get(7)") == {"i": 7, "author": "@0"}
        assert reader.run("result = [e.seq for e in db.stream(gte=15)]") == [15, 16, 17, 18, 19]
        assert reader.run(f"result = list(db.q.read({query!r}))") == want
        plan = reader.run(f"result = db.q.explain({query!r})")
        assert plan["index"] == "aut"
    assert declaring.run("result = db.count.get()") == [20, sum(range(20)), 19]
    assert declaring.run("result = db.by_author.get(('@2', 9))") == {"i": 9, "author": "@2"}
    assert declaring.run(
        "result = [(list(e.key), e.seq) for e in db.by_author.read(prefix=('@1',), reverse=True, limit=2)]"
    ) == [[["@1", 15], 15], [["@1", 8], 8]]

    # New appends are visible to the very next read in each reader (read-your-writes
    # relative to what the writer committed).
    assert writer.run("result = db.append_many([value(i) for i in range(20, 30)])") == 29
    assert declaring.run("result = db.count.get()") == [30, sum(range(30)), 29]
    assert declaring.run("result = db.by_author.get(('@3', 24))")["i"] == 24
    for reader in (declaring, bare):
        assert reader.run(f"result = [v['i'] for v in db.q.read({query!r})]") == [10, 17, 24]
        assert reader.run("result = db.status()['views']['q']['lag']") == 0

    for reader in (declaring, bare):
        reader.run("db.close()")
    assert os.listdir(path / "readers") == []  # secondary directories are removed on close


# -- read-your-writes across processes, and its latency ----------------------------------------

RYW_WRITER = PRELUDE + r"""
# Appends one value at a time; after each append returns, writes "seq t" to the reader's pipe
# and waits for the reader's acknowledgement before the next one (lockstep: no queueing).
path, n, to_reader, from_reader = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = declare(flume.open(path))
out, ack = os.fdopen(to_reader, "w"), os.fdopen(from_reader)
for k in range(n):
    seq = db.append(value(db.since.value + 1, k=k))
    out.write("%d %r\n" % (seq, time.monotonic()))
    out.flush()
    if not ack.readline():
        break
out.close()
emit(done=db.since.value)
"""

RYW_READER = PRELUDE + r"""
path, from_writer, to_writer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = flume.open(path, readonly=True)
inp, ack = os.fdopen(from_writer), os.fdopen(to_writer, "w")
latencies, missing = [], []
for line in inp:
    seq, t = line.split()
    seq, t = int(seq), float(t)
    author = "@%d" % (seq % AUTHORS)
    found = [e.seq for e in db.q.read([{"$filter": {"author": author, "i": seq}}], seqs=True)]
    latencies.append(time.monotonic() - t)
    if found != [seq]:
        missing.append([seq, found])
    ack.write("\n")
    ack.flush()
emit(latencies=latencies, missing=missing, since=db.since.value)
"""


def run_read_your_writes(path: Path, spawn: Any, n: int) -> tuple[list[float], Any]:
    create_db(path)
    w_to_r = os.pipe()
    r_to_w = os.pipe()
    writer = spawn(Child, RYW_WRITER, str(path), str(n), str(w_to_r[1]), str(r_to_w[0]),
                   pass_fds=(w_to_r[1], r_to_w[0]))
    reader = spawn(Child, RYW_READER, str(path), str(w_to_r[0]), str(r_to_w[1]),
                   pass_fds=(w_to_r[0], r_to_w[1]))
    for fd in (*w_to_r, *r_to_w):
        os.close(fd)
    assert writer.next()["done"] == n - 1
    result = reader.next()
    assert writer.wait() == 0 and reader.wait() == 0
    return result["latencies"], result


def create_db(path: Path) -> None:
    """Create the database with its stored Query view (readers find it without code)."""
    with flume.open(path) as db:
        db.use("q", Query(indexes={"aut": [["author"], ["i"]]}))


def test_read_your_writes_across_processes(
    tmp_path: Path, spawn: Any, record_property: Callable[[str, Any], None]
) -> None:
    latencies, result = run_read_your_writes(tmp_path / "db", spawn, 300)
    assert result["missing"] == []  # every query found the record the writer had appended
    assert len(latencies) == 300 and result["since"] == 299
    figures = report(record_property, "read-your-writes latency", latencies)
    assert figures["median_ms"] < 100  # generous: a loaded CI machine; ~5 ms on 2 cores


@pytest.mark.slow
def test_read_your_writes_across_processes_many_times(
    tmp_path: Path, spawn: Any, record_property: Callable[[str, Any], None]
) -> None:
    latencies, result = run_read_your_writes(tmp_path / "db", spawn, 3000)
    assert result["missing"] == []
    report(record_property, "read-your-writes latency (3000)", latencies)


# -- a reader whose writer is not indexing the view times out ----------------------------------


def test_a_reader_times_out_when_no_writer_indexes_the_view(tmp_path: Path, spawn: Any) -> None:
    path = tmp_path / "db"
    writer = spawn()
    open_writer(writer, path)
    writer.run("db.append_many([value(i) for i in range(5)]); db.count.get(); db.close()")
    # A writer whose code does not declare 'count' (a Reduce is not stored as data, so it is
    # not mounted): the log moves on, 'count' stays at seq 4.
    writer.run(f"db = flume.open({str(path)!r}); db.append_many([value(i) for i in range(5, 8)])")

    reader = spawn()
    reader.run(f"db = declare(flume.open({str(path)!r}, readonly=True, timeout=0.5))")
    started = time.monotonic()
    err = reader.error("db.count.get()")
    elapsed = time.monotonic() - started
    assert err["error"] == "FlumeTimeoutError"
    message = err["message"]
    assert "'count'" in message and "seq 4" in message and "3 entries behind" in message
    assert "the log's 7" in message and "0.5 s" in message
    assert "writer" in message and "not running" in message
    assert 0.5 <= elapsed < 5

    # Per call, timeout= overrides the db's; ready() takes it too.
    for call in ("db.count.get(timeout=0.1)", "db.count.ready(timeout=0.1)"):
        started = time.monotonic()
        err = reader.error(call)
        assert err["error"] == "FlumeTimeoutError" and "0.1 s" in err["message"]
        assert 0.1 <= time.monotonic() - started < 0.45
    # Views the writer does index answer at once; a reader-side view of another version is
    # not the writer's view, so it never catches up either.
    assert [v["i"] for v in reader.run("result = list(db.q.read({'$filter': {'author': '@5'}}))")] == [5]
    reader.run("db.use('count2', Reduce(lambda a, v: a + 1, initial=0, version=2))")
    err = reader.error("db.count2.get(timeout=0.2)")
    assert "'count2'" in err["message"] and "8 entries behind" in err["message"]

    # The writer is stopped altogether: the same, and a default timeout of a readonly open.
    writer.run("db.close()")
    reader2 = spawn()
    reader2.run(
        "import flume.db; assert flume.db.DEFAULT_READER_TIMEOUT == 10.0; "
        "flume.db.DEFAULT_READER_TIMEOUT = 0.3; "
        f"db = declare(flume.open({str(path)!r}, readonly=True))"
    )
    started = time.monotonic()
    err = reader2.error("db.count.get()")
    assert err["error"] == "FlumeTimeoutError" and "0.3 s" in err["message"]
    assert 0.3 <= time.monotonic() - started < 3

    # A writer that declares the view again catches it up; the waiting reader then answers.
    writer.run(f"db = declare(flume.open({str(path)!r}))")
    assert reader.run("result = db.count.get(timeout=20)") == [8, sum(range(8)), 7]
    assert reader2.run("result = db.count.get()") == [8, sum(range(8)), 7]


@pytest.mark.slow
def test_the_default_reader_timeout_is_ten_seconds(tmp_path: Path, spawn: Any) -> None:
    path = tmp_path / "db"
    with flume.open(path) as db:
        db.append(1)
    reader = spawn()
    reader.run(f"db = flume.open({str(path)!r}, readonly=True)")
    started = time.monotonic()
    err = reader.error("db.use('n', Reduce(lambda a, v: a + 1, initial=0)); db.n.get()")
    assert err["error"] == "FlumeTimeoutError" and "10.0 s" in err["message"]
    assert 10 <= time.monotonic() - started < 15


# -- live streams and live queries in a reader -------------------------------------------------

LIVE_READER = PRELUDE + r"""
# Follows the writer with a live log stream and a live query, each in its own thread, and
# records when each seq arrived.
path, n = sys.argv[1], int(sys.argv[2])
db = flume.open(path, readonly=True)
got = {"stream": {}, "query": {}}
def follow(kind, source):
    for e in source:
        got[kind][e.seq] = time.monotonic()
        if e.value["i"] != e.seq:
            got.setdefault("bad", []).append([kind, e.seq, e.value])
        if e.seq >= n - 1:
            return
threads = [
    threading.Thread(target=follow, args=("stream", db.stream(live=True, old=False))),
    threading.Thread(target=follow, args=("query", db.q.read(
        [{"$filter": {"k": {"$gte": 0}}}], live=True, old=False, seqs=True))),
]
for t in threads:
    t.start()
time.sleep(0.3)  # both live sources have polled once
emit(ready=True)
for t in threads:
    t.join()
emit(got=got)
"""

LIVE_WRITER = PRELUDE + r"""
path, n = sys.argv[1], int(sys.argv[2])
db = flume.open(path)
rng = random.Random(5)
sys.stdin.readline()
returned = {}
for k in range(n):
    seq = db.append(value(db.since.value + 1, k=k))
    returned[seq] = time.monotonic()
    time.sleep(rng.uniform(0.002, 0.03))  # random phase against the readers' 20 ms poll
emit(returned=returned)
"""


def test_live_streams_and_queries_in_a_reader_follow_the_writer(
    tmp_path: Path, spawn: Any, record_property: Callable[[str, Any], None]
) -> None:
    path, n = tmp_path / "db", 100
    create_db(path)
    readers = [spawn(Child, LIVE_READER, str(path), str(n)) for _ in range(2)]
    for reader in readers:
        assert reader.next() == {"ready": True}
    writer = spawn(Child, LIVE_WRITER, str(path), str(n))
    writer.send("go")
    returned = {int(k): t for k, t in writer.next()["returned"].items()}
    stream_lat: list[float] = []
    query_lat: list[float] = []
    for reader in readers:
        got = reader.next()["got"]
        assert "bad" not in got
        for kind, samples in (("stream", stream_lat), ("query", query_lat)):
            arrived = {int(k): t for k, t in got[kind].items()}
            assert sorted(arrived) == list(range(n))  # every entry, once, in a live source
            samples.extend(arrived[s] - returned[s] for s in range(n))
    report(record_property, "live stream latency", stream_lat)
    figures = report(record_property, "live query latency", query_lat)
    assert figures["median_ms"] < 200


# -- readers never write -----------------------------------------------------------------------


def test_readers_never_write(tmp_path: Path, spawn: Any) -> None:
    path = tmp_path / "db"
    writer = spawn()
    open_writer(writer, path)
    writer.run("db.append_many([value(i) for i in range(50)]); db.count.get(); db.close()")
    before = tree_state(path)

    reader = spawn()
    reader.run(f"db = declare(flume.open({str(path)!r}, readonly=True))")
    assert len(os.listdir(path / "readers")) == 1  # its private secondary directory
    for call in (
        "db.append(value(50))",
        "db.append_many([value(50), value(51)])",
        "db.append_many([])",
        "db.rebuild()",
        "db.drop('count')",
        "db.drop('q')",
    ):
        assert reader.error(call)["error"] == "ReadOnlyError", call
    # Everything still reads, and reading changes nothing either.
    assert reader.run("result = db.count.get()") == [50, sum(range(50)), 49]
    assert reader.run("result = len(list(db.q.read({'$filter': {'author': '@1'}})))") == 7
    assert reader.run("result = len(list(db.by_author.read()))") == 50
    assert reader.run("result = db.status()['since']") == 49
    reader.run("db.close()")
    assert tree_state(path) == before
    assert os.listdir(path / "readers") == []


def test_a_killed_readers_secondary_directory_is_removed_by_the_next_reader(
    tmp_path: Path, spawn: Any
) -> None:
    path = tmp_path / "db"
    create_db(path)
    doomed = spawn()
    doomed.run(f"db = flume.open({str(path)!r}, readonly=True)")
    (left,) = os.listdir(path / "readers")
    assert left.startswith(f"flume-secondary-{doomed.pid}-")
    doomed.kill()
    assert os.listdir(path / "readers") == [left]
    reader = spawn()
    reader.run(f"db = flume.open({str(path)!r}, readonly=True)")
    (mine,) = os.listdir(path / "readers")
    assert mine.startswith(f"flume-secondary-{reader.pid}-")


# -- one writer at a time ----------------------------------------------------------------------


def test_only_one_writer_and_a_killed_writer_leaves_no_stale_lock(tmp_path: Path, spawn: Any) -> None:
    path = tmp_path / "db"
    first = spawn()
    open_writer(first, path)
    first.run("db.append_many([value(i) for i in range(3)])")

    second = spawn()
    err = second.error(f"flume.open({str(path)!r})")
    assert err["error"] == "LockedError"
    assert f"process {first.pid}" in err["message"] and "readonly=True" in err["message"]
    # Readers open alongside it, in any number.
    assert second.run(f"r = flume.open({str(path)!r}, readonly=True); result = r.since.value; r.close()") == 2

    first.kill()  # SIGKILL: the kernel drops its flock
    assert open_writer(second, path) == 2
    assert second.run("result = db.append(value(3))") == 3
    assert second.run("result = db.count.get()") == [4, 6, 3]
    third = spawn()
    assert f"process {second.pid}" in third.error(f"flume.open({str(path)!r})")["message"]


# -- readers outlive a writer restart ----------------------------------------------------------

LOOP_WRITER = PRELUDE + r"""
# Appends batches forever (until killed), reporting each committed last seq; declares one more
# view when given its name (a new column family while readers are open).
path, batch = sys.argv[1], int(sys.argv[2])
db = declare(flume.open(path))
for name in sys.argv[3:]:
    db.use(name, Reduce(lambda acc, v: acc + 1, initial=0))
emit(opened=db.since.value)
while True:
    first = db.since.value + 1
    last = db.append_many([value(s) for s in range(first, first + batch)])
    emit(last=last)
    time.sleep(0.005)
"""

LOOP_READER = PRELUDE + r"""
# Reads in a loop in two threads until stdin closes, checking each answer against the log;
# reports progress.
path = sys.argv[1]
db = declare(flume.open(path, readonly=True), query=False)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
errors, reads, best = [], [0, 0], [-1]
lock = threading.Lock()

def read_loop(t):
    last_since = -1
    while not stop.is_set():
        try:
            since = db.since.value
            if since < last_since:
                errors.append("since went back from %d to %d" % (last_since, since))
            last_since = since
            n, total, last = db.count.get()
            if n < since + 1 or total != n * (n - 1) // 2 or last != n - 1:
                errors.append("count %r at since %d" % ([n, total, last], since))
            author = "@%d" % (since % AUTHORS)
            found = [e.seq for e in db.q.read({"$filter": {"author": author, "i": {"$gte": since - 20}}}, seqs=True)]
            want = [s for s in range(max(0, since - 20), since + 1) if s % AUTHORS == since % AUTHORS]
            if found[: len(want)] != want:
                errors.append("query at since %d: %r" % (since, found))
            if db.get(since)["i"] != since:
                errors.append("get %d" % since)
            reads[t] += 1
            with lock:
                if n - 1 > best[0]:
                    best[0] = n - 1
                    emit(seen=best[0])
        except Exception as e:
            errors.append("%s: %s" % (type(e).__name__, e))
            time.sleep(0.05)

threads = [threading.Thread(target=read_loop, args=(t,)) for t in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
db.close()
emit(errors=errors[:20], reads=min(reads), seen=best[0])
"""


def test_readers_outlive_a_writer_restart(tmp_path: Path, spawn: Any) -> None:
    path = tmp_path / "db"
    create_db(path)
    writer = spawn(Child, LOOP_WRITER, str(path), "10")
    assert writer.next() == {"opened": -1}
    writer.until(lambda m: m.get("last", -1) >= 200)
    readers = [spawn(Child, LOOP_READER, str(path)) for _ in range(2)]
    for reader in readers:
        reader.until(lambda m: m.get("seen", -1) >= 200)

    for restart in range(3):
        writer.kill()  # SIGKILL, mid-batch or not
        time.sleep(0.2)  # readers keep reading while no writer runs
        writer = spawn(Child, LOOP_WRITER, str(path), "10", f"new{restart}")
        opened = writer.next()["opened"]
        assert opened >= 200 * (restart + 1)
        target = writer.until(lambda m, opened=opened: m.get("last", -1) >= opened + 200)["last"]
        for reader in readers:  # new data after the restart reaches every reader
            reader.until(lambda m, target=target: m.get("seen", -1) >= target)
    # Stop the readers while the writer still runs: with no writer, a read that finds a view
    # behind the log (the last kill came between a commit and its indexing) waits for its
    # timeout, as it should.
    for reader in readers:
        assert reader.proc.stdin is not None
        reader.proc.stdin.close()
        summary = reader.until(lambda m: "errors" in m)
        assert summary["errors"] == [] and summary["reads"] > 0
        assert reader.wait() == 0
    writer.kill()
    assert os.listdir(path / "readers") == []


# -- readers survive the writer's LMDB map growth ----------------------------------------------

SMALL_MAP_WRITER = """
from flume.lock import DirectoryLock
from flume.views.store import RocksStore
os.makedirs(path, exist_ok=True)
lock = DirectoryLock(path)
db = declare(flume.Flume(
    flume.LmdbLog(path + "/log", _map_size=1 << 20), store=RocksStore(path + "/views"), _lock=lock))
"""

SMALL_MAP_READER = """
from flume.views.store import RocksStore
db = declare(flume.Flume(
    flume.LmdbLog(path + "/log", readonly=True, _map_size=1 << 20),
    store=RocksStore(path + "/views", readonly=True, secondaries=path + "/readers"),
    timeout=10.0))
"""


def test_readers_survive_the_writers_map_growth(tmp_path: Path, spawn: Any) -> None:
    path = str(tmp_path / "db")
    writer = spawn()
    writer.run(f"path = {path!r}\n" + SMALL_MAP_WRITER)
    writer.run("db.append_many([value(i) for i in range(10)])")
    # One reader opened the usual way, one whose own map starts as small as the writer's (so
    # that it, too, must adopt each new size: LMDB's MapResizedError).
    usual, small = spawn(), spawn()
    usual.run(f"db = declare(flume.open({path!r}, readonly=True))")
    small.run(f"path = {path!r}\n" + SMALL_MAP_READER)

    def size(agent: Agent) -> int:
        result: int = agent.run("result = db.log._env.info()['map_size']")
        return result

    small_before = size(small)
    assert size(writer) == 1 << 20 and small_before <= 1 << 20

    pad = "x" * 50_000
    last = 9
    for _ in range(12):  # 12 batches of ~1 MB: the map doubles from 1 MB to 16 MB
        last = writer.run(
            f"result = db.append_many([value(s, pad={pad!r}) for s in range(db.since.value + 1, db.since.value + 21)])"
        )
        for reader in (usual, small):
            assert reader.run(f"result = db.get({last})['i']") == last
            assert reader.run("result = db.count.get()") == [last + 1, last * (last + 1) // 2, last]
            assert reader.run(
                f"result = [e.seq for e in db.q.read({{'$filter': {{'author': '@{last % 7}', 'i': {last}}}}}, seqs=True)]"
            ) == [last]
            assert reader.run("result = sum(1 for _ in db.stream(values=False))") == last + 1
    assert size(writer) >= 8 << 20  # it did grow, several times
    assert size(small) > small_before  # and the small reader adopted the new size


# -- the writer changes its views while readers read -------------------------------------------


def test_readers_follow_a_writer_that_declares_rebuilds_and_drops_views(
    tmp_path: Path, spawn: Any
) -> None:
    """New views, rebuilt views and dropped views in the writer (column families created and
    emptied in RocksDB) while readers are open, and readers opened after them."""
    path = tmp_path / "db"
    writer = spawn()
    open_writer(writer, path)
    writer.run("db.append_many([value(i) for i in range(100)]); db.count.get()")
    early = spawn()
    early.run(f"db = declare(flume.open({str(path)!r}, readonly=True))")
    assert early.run("result = db.count.get()")[0] == 100

    writer.run("db.use('extra', Reduce(lambda a, v: a + 1, initial=0)); db.extra.get()")
    writer.run("db.rebuild(); db.append_many([value(i) for i in range(100, 150)]); db.count.get()")
    late = spawn()
    late.run(f"db = declare(flume.open({str(path)!r}, readonly=True))")
    for round_ in range(3):
        last = writer.run(
            "result = db.append_many([value(i) for i in range(db.since.value + 1, db.since.value + 51)])"
        )
        for reader in (early, late):
            for _ in range(30):  # many catch-ups with the writer's history of changes
                assert reader.run("result = db.count.get()") == [last + 1, last * (last + 1) // 2, last]
            assert reader.run(
                f"result = [e.seq for e in db.q.read({{'$filter': {{'author': '@{last % 7}', 'i': {last}}}}}, seqs=True)]"
            ) == [last]
            if round_ == 0:
                reader.run("db.use('extra', Reduce(lambda a, v: a + 1, initial=0))")
            assert reader.run("result = db.extra.get()") == last + 1
    writer.run("db.drop('extra'); db.append(value(db.since.value + 1))")
    for reader in (early, late):
        assert reader.run("result = db.count.get()")[0] == last + 2
        err = reader.error("db.extra.get(timeout=0.2)")
        assert err["error"] == "FlumeTimeoutError" and "'extra'" in err["message"]


# -- the stress test: one writer appending in batches, four readers checking every answer -------

STRESS_WRITER = PRELUDE + r"""
# Appends batches of random sizes for `seconds`; every value carries its seq and a running
# checksum of the log up to it.
path, seconds, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
db = declare(flume.open(path))
emit(ready=True)
sys.stdin.readline()
chk, seq, batches = 0, db.since.value + 1, 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    n = rng.choice([1, 1, 2, 3, 10, rng.randint(1, 300)])
    values = []
    for _ in range(n):
        chk = (chk * 31 + seq) % 1000003
        values.append(value(seq, c=chk, pad="x" * rng.randint(0, 60)))
        seq += 1
    last = db.append_many(values)
    assert last == seq - 1, (last, seq)
    batches += 1
    if rng.random() < 0.3:
        time.sleep(rng.uniform(0, 0.01))
emit(done=last, batches=batches)
db.count.get(), db.by_author.ready(), db.q.ready()
emit(indexed=last)
sys.stdin.readline()
db.close()
"""

STRESS_READER = PRELUDE + r"""
# Streams, gets and queries at random until told the final seq; checks that every answer is
# that of some committed prefix of the log no shorter than the log it saw before asking, and
# no longer than the log it sees after, and that since never goes backwards.
path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
db = declare(flume.open(path, readonly=True, timeout=30.0), query=False)
emit(ready=True)
errors, ops = [], {}
final = [None]
chain = {}  # seq -> checksum, filled by the live stream
last_since = [-1]

def fail(msg):
    if len(errors) < 50:
        errors.append(msg)

def since():
    s = db.since.value
    if s < last_since[0]:
        fail("since went back from %d to %d" % (last_since[0], s))
    last_since[0] = max(last_since[0], s)
    return s

def check_value(seq, v):
    if v["i"] != seq or v["author"] != "@%d" % (seq % AUTHORS):
        fail("value at %d is %r" % (seq, v))
    if seq in chain and v["c"] != chain[seq]:
        fail("checksum at %d" % seq)

def of_author(k, lo, hi):
    # seqs s with lo <= s <= hi and s % AUTHORS == k, ascending
    first = lo + ((k - lo) % AUTHORS)
    return list(range(first, hi + 1, AUTHORS))

def check_run(what, seqs, k, lo, s0, s1):
    # seqs: every seq >= lo of author k in a prefix of length L, s0 + 1 <= L <= s1 + 1
    top = seqs[-1] if seqs else lo - 1
    want = of_author(k, lo, max(top, s0))
    if seqs != want[: len(seqs)] or len(seqs) < len(of_author(k, lo, s0)) or top > s1:
        fail("%s k=%d lo=%d s0=%d s1=%d: %r" % (what, k, lo, s0, s1, seqs[:10] + ["..."] + seqs[-5:]))

live_state = {"stream": -1, "query": -1}

def follow_stream(source):
    chk, expect = 0, 0
    for e in source:
        if e.seq != expect:
            fail("live stream gave %d after %d" % (e.seq, expect - 1))
        chk = (chk * 31 + e.seq) % 1000003
        if e.value["c"] != chk or e.value["i"] != e.seq:
            fail("live stream checksum at %d" % e.seq)
        chain[e.seq] = chk
        expect = e.seq + 1
        live_state["stream"] = e.seq

def follow_query(source):
    expect = 0
    for e in source:
        if e.seq != expect or e.value["i"] != e.seq:
            fail("live query gave %d, expected %d" % (e.seq, expect))
        expect = e.seq + AUTHORS
        live_state["query"] = e.seq

def watch_stdin():
    for line in sys.stdin:
        final[0] = int(line.split()[1])
        return

sources = [db.stream(live=True), db.q.read({"$filter": {"author": "@0"}}, live=True, seqs=True)]
threads = [threading.Thread(target=f, args=(src,), daemon=True)
           for f, src in zip((follow_stream, follow_query), sources)]
for t in threads:
    t.start()
threading.Thread(target=watch_stdin, daemon=True).start()

def op_reduce():
    s0 = since()
    n, total, last = db.count.get()
    s1 = since()
    if not (s0 + 1 <= n <= s1 + 1) or total != n * (n - 1) // 2 or last != n - 1:
        fail("count %r with since %d..%d" % ([n, total, last], s0, s1))

def op_get():
    s0 = since()
    if s0 >= 0:
        seq = rng.randint(0, s0)
        check_value(seq, db.get(seq))

def op_stream():
    s0 = since()
    if s0 < 0:
        return
    a = rng.randint(0, s0)
    b = min(s0, a + rng.randint(0, 300))
    got = list(db.stream(gte=a, lte=b))
    if [e.seq for e in got] != list(range(a, b + 1)):
        fail("stream %d..%d gave %d entries" % (a, b, len(got)))
    for e in got:
        check_value(e.seq, e.value)

def op_stream_tail():
    s0 = since()
    got = [e.seq for e in db.stream(reverse=True, limit=rng.randint(1, 20))]
    s1 = since()
    if got and (got[0] < s0 or got[0] > s1 or got != list(range(got[0], got[0] - len(got), -1))):
        fail("reverse stream %r with since %d..%d" % (got, s0, s1))

def op_index_range():
    s0 = since()
    k = rng.randrange(AUTHORS)
    lo = max(0, s0 - rng.randint(0, 600))
    got = list(db.by_author.read(prefix=("@%d" % k,), gte=("@%d" % k, lo)))
    s1 = since()
    for e in got:
        if e.key != ("@%d" % k, e.seq):
            fail("index key %r at %d" % (e.key, e.seq))
        check_value(e.seq, e.value)
    check_run("index", [e.seq for e in got], k, lo, s0, s1)

def op_index_tail():
    s0 = since()
    k = rng.randrange(AUTHORS)
    got = [e.seq for e in db.by_author.read(prefix=("@%d" % k,), reverse=True, limit=5)]
    s1 = since()
    want = of_author(k, 0, s0)
    top = got[0] if got else -1
    if (want and top < want[-1]) or top > s1 or got != list(range(top, top - AUTHORS * len(got), -AUTHORS)):
        fail("index tail k=%d: %r with since %d..%d" % (k, got, s0, s1))

def op_index_get():
    s0 = since()
    if s0 >= 0:
        seq = rng.randint(0, s0)
        check_value(seq, db.by_author.get(("@%d" % (seq % AUTHORS), seq)))

def op_query_range():
    s0 = since()
    k = rng.randrange(AUTHORS)
    lo = max(0, s0 - rng.randint(0, 600))
    got = list(db.q.read({"$filter": {"author": "@%d" % k, "i": {"$gte": lo}}}, seqs=True))
    s1 = since()
    for e in got:
        check_value(e.seq, e.value)
    check_run("query", [e.seq for e in got], k, lo, s0, s1)

def op_query_count():
    s0 = since()
    k = rng.randrange(AUTHORS)
    (n,) = list(db.q.read([{"$filter": {"author": "@%d" % k}}, {"$reduce": {"$count": True}}]))
    s1 = since()
    if not len(of_author(k, 0, s0)) <= n <= len(of_author(k, 0, s1)):
        fail("query count k=%d: %d with since %d..%d" % (k, n, s0, s1))

def op_query_tail():
    s0 = since()
    k = rng.randrange(AUTHORS)
    got = [v["i"] for v in db.q.read({"$filter": {"author": "@%d" % k}}, reverse=True, limit=3)]
    s1 = since()
    want = of_author(k, 0, s0)
    top = got[0] if got else -1
    if (want and top < want[-1]) or top > s1 or got != list(range(top, top - AUTHORS * len(got), -AUTHORS)):
        fail("query tail k=%d: %r with since %d..%d" % (k, got, s0, s1))

def op_status():
    s0 = since()
    st = db.status()
    for name, info in st["views"].items():
        if info["since"] > st["since"] or info["lag"] < 0:
            fail("status %s: %r" % (name, info))
    if st["since"] < s0:
        fail("status since %d < %d" % (st["since"], s0))

OPS = [op_reduce, op_get, op_stream, op_stream_tail, op_index_range, op_index_tail,
       op_index_get, op_query_range, op_query_count, op_query_tail, op_status]
while final[0] is None:
    op = rng.choice(OPS)
    try:
        op()
    except Exception as e:
        fail("%s: %s: %s" % (op.__name__, type(e).__name__, e))
    ops[op.__name__] = ops.get(op.__name__, 0) + 1

n = final[0] + 1
deadline = time.monotonic() + 60
while (live_state["stream"], live_state["query"]) != (n - 1, (n - 1) // AUTHORS * AUTHORS):
    if time.monotonic() > deadline:
        fail("live sources stopped at %r" % live_state)
        break
    time.sleep(0.01)
for source in sources:
    source.close()  # from another thread: its iteration ends quietly
for t in threads:
    t.join(10)
    if t.is_alive():
        fail("a live source did not end on close()")
if db.count.get() != [n, n * (n - 1) // 2, n - 1]:
    fail("final count %r" % db.count.get())
for k in range(AUTHORS):
    got = [e.seq for e in db.q.read({"$filter": {"author": "@%d" % k}}, seqs=True)]
    if got != of_author(k, 0, n - 1):
        fail("final query k=%d" % k)
since()  # the op loop may have ended before it saw the writer's last append
db.close()
emit(errors=errors, ops=ops, live=live_state, since=last_since[0])
"""


def run_stress(path: Path, spawn: Any, seconds: float, seed: int) -> dict[str, Any]:
    create_db(path)
    writer = spawn(Child, STRESS_WRITER, str(path), str(seconds), str(seed))
    assert writer.next() == {"ready": True}
    readers = [spawn(Child, STRESS_READER, str(path), str(seed * 10 + i)) for i in range(2)]
    for reader in readers:
        assert reader.next() == {"ready": True}
    writer.send("go")
    time.sleep(min(1.0, seconds / 4))
    late = [spawn(Child, STRESS_READER, str(path), str(seed * 10 + i)) for i in range(2, 4)]
    for reader in late:  # two readers open while the writer is appending
        assert reader.next() == {"ready": True}
    readers += late
    done = writer.next(seconds + CHILD_TIMEOUT)
    assert writer.next() == {"indexed": done["done"]}
    for reader in readers:
        reader.send(f"stop {done['done']}")
    summaries = [reader.next(CHILD_TIMEOUT * 2) for reader in readers]
    writer.send("exit")
    assert writer.wait() == 0
    for reader, summary in zip(readers, summaries):
        assert summary["errors"] == [], summary["errors"][:10]
        assert summary["live"]["stream"] == done["done"]
        assert summary["live"]["query"] == max(s for s in range(done["done"] + 1) if s % 7 == 0)
        assert summary["since"] == done["done"]
        assert reader.wait() == 0
    ops = {k: sum(s["ops"].get(k, 0) for s in summaries) for k in summaries[0]["ops"]}
    print(f"\nstress {seconds} s: {done['done'] + 1} entries in {done['batches']} batches; "
          f"reader ops {sum(ops.values())}: {ops}")
    assert len(ops) == 11 and min(ops.values()) > 0
    assert os.listdir(path / "readers") == []
    return {"entries": done["done"] + 1, "ops": ops}


def test_stress_one_writer_four_readers(tmp_path: Path, spawn: Any) -> None:
    run_stress(tmp_path / "db", spawn, seconds=5.0, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_stress_one_writer_four_readers_long(tmp_path: Path, spawn: Any, seed: int) -> None:
    run_stress(tmp_path / "db", spawn, seconds=40.0, seed=seed)


def test_a_readers_stored_query_views_survive_the_writers_rebuild(tmp_path: Path, spawn: Any) -> None:
    """A Query view's definition stays stored through rebuild(), even of an empty log, so a
    reader (or a writer whose code does not declare it) opened afterwards still mounts it."""
    path = tmp_path / "db"
    writer = spawn()
    open_writer(writer, path)
    writer.run("db.rebuild()")
    reader = spawn()
    assert reader.run(f"db = flume.open({str(path)!r}, readonly=True); result = sorted(db.views)") == ["q"]
    writer.run("db.append(value(0)); db.rebuild(); db.close()")
    assert writer.run(f"db = flume.open({str(path)!r}); result = sorted(db.views)") == ["q"]
    assert reader.run("result = [e.seq for e in db.q.read({'$filter': {'author': '@0'}}, seqs=True)]") == [0]


# -- bitmap indexes (issue 14) ---------------------------------------------------------------------


def _bitmap_value(i: int) -> dict[str, Any]:
    return {"i": i, "author": f"@{i % 7}", "kind": "vote" if i % 3 == 0 else "post"}


def test_bitmap_answers_in_a_reader_process_follow_the_writer(tmp_path: Path, spawn: Any) -> None:
    path = tmp_path / "db"
    rule = {"author": "@3", "kind": "vote"}
    count = [{"$filter": rule}, {"$reduce": {"$count": True}}]

    def matching(n: int) -> list[int]:
        return [i for i in range(n) if i % 7 == 3 and i % 3 == 0]

    with flume.open(path) as db:
        db.use("q", Query(indexes={}, bitmaps=[["author"], ["kind"]]))
        db.append_many([_bitmap_value(i) for i in range(3000)])
        reader = spawn(Agent)
        reader.run(f"db = flume.open({str(path)!r}, readonly=True)")
        plan = reader.run(f"result = db.q.explain({count!r})")
        assert plan["bitmap"] and plan["count_keys"], plan
        assert reader.run(f"result = list(db.q.read({count!r}))") == [len(matching(3000))]
        newest = reader.run(f"result = [e.seq for e in db.q.read({rule!r}, reverse=True, limit=4, seqs=True)]")
        assert newest == matching(3000)[::-1][:4]
        # A live bitmap read in the reader, started before the writer appends more.
        reader.run(
            textwrap.dedent(f"""
            got = []
            stream = db.q.read({rule!r}, live=True, old=False, seqs=True)
            def follow():
                for e in stream:
                    got.append(e.seq)
                    if len(got) == {len(matching(4000)) - len(matching(3000))}:
                        break
            follower = threading.Thread(target=follow, daemon=True)
            follower.start()
            time.sleep(0.2)
            """)
        )
        db.append_many([_bitmap_value(i) for i in range(3000, 4000)])
        # Read-your-writes across processes: a read begun after the append returned sees it.
        assert reader.run(f"result = list(db.q.read({count!r}))") == [len(matching(4000))]
        live = reader.run("follower.join(30); stream.close(); result = got")
        assert live == matching(4000)[len(matching(3000)):]
        assert list(db.q.read(count)) == [len(matching(4000))]


def test_a_live_bitmap_read_yields_only_new_matches(tmp_path: Path) -> None:
    with flume.open(tmp_path / "db") as db:
        db.use("q", Query(indexes={}, bitmaps=[["author"], ["kind"]]))
        db.append_many([_bitmap_value(i) for i in range(100)])
        rule = {"author": {"$in": ["@1", "@2"]}, "kind": "vote"}
        assert db.q.explain(rule)["bitmap"]
        expected = [i for i in range(150) if i % 7 in (1, 2) and i % 3 == 0]
        with db.q.read(rule, live=True, seqs=True) as stream:
            db.append_many([_bitmap_value(i) for i in range(100, 150)])
            got = [next(stream).seq for _ in expected]
        assert got == expected
