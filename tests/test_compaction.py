"""Compaction: deleted bytes disappear from disk (the log's LMDB file, the views' RocksDB files).

Real LMDB and RocksDB in temporary directories. The deletes themselves are not built here: a
test overwrites an entry directly in LMDB (a write transaction through the log's own
environment), or deletes a key through a ``RocksStore`` batch, then compacts and reads every
file under the directory, as bytes, for the secret.

Readers in other processes are real subprocesses (``sys.executable -c``); every wait has a
timeout and every child is killed at the end of its test.

The kill test runs a writer that kills itself (``os.kill(os.getpid(), SIGKILL)``) at a named
step of ``compact()`` (the module's ``step`` hook), or in the middle of LMDB's copy (a thread
that watches the copy's file grow), with appends from another thread going on; then the
directory is opened as a program would, and every acknowledged append must be there.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flume
from flume import codec
from flume.errors import ReadOnlyError
from flume.keys import seq_key
from flume.logs import lmdb_compact
from flume.logs.lmdb_log import LmdbLog
from flume.views.store import MemoryStore, RocksStore

CHILD_TIMEOUT = 60.0
ROOT = str(Path(flume.__file__).resolve().parent.parent)


# -- helpers -----------------------------------------------------------------------------------


def files_holding(directory: Path, *needles: bytes) -> list[str]:
    """Every file under ``directory`` whose bytes hold one of ``needles``."""
    hits = []
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            if any(needle in data for needle in needles):
                hits.append(os.path.relpath(path, directory))
    return hits


def overwrite(log: LmdbLog, seq: int, value: Any) -> None:
    """Replace the value at ``seq`` in place, in LMDB (what a delete of the log will do)."""
    with log._env.begin(db=log._db, write=True) as txn:
        assert txn.get(seq_key(seq)) is not None
        txn.put(seq_key(seq), codec.encode(value))


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": ROOT + (os.pathsep + path if path else "")}


class Child:
    """A child Python process running ``script``; its stdout JSON lines go to a queue."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float = CHILD_TIMEOUT) -> Any:
        """The next JSON line the child prints."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child {self.proc.pid} said nothing for {timeout} s") from None
        if line is None:
            self.lines.put(None)
            raise AssertionError(f"child {self.proc.pid} exited ({self.proc.poll()})")
        return json.loads(line)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(CHILD_TIMEOUT)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.kill()


def values(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"i": i, "pad": "p" * (i * 37 % 700)} for i in range(start, start + n)]


def check_entries(log: LmdbLog, expected: dict[int, Any]) -> None:
    assert log.since.value == max(expected)
    got = dict(log.stream())
    assert got == expected


# -- the log: secret bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "size,replacement",
    [
        (60, {"gone": True}),  # in a leaf page, replaced by a smaller value
        (60, {"gone": "r" * 900}),  # in a leaf page, replaced by a larger value
        (3000, {"gone": True}),  # an overflow page of its own
        (200_000, {"gone": "r" * 5000}),  # many overflow pages
    ],
)
def test_log_secret_gone_after_compact(tmp_path: Path, size: int, replacement: Any) -> None:
    secret = secrets.token_hex(32)
    log = LmdbLog(tmp_path / "log")
    expected: dict[int, Any] = {}
    for v in values(300):
        expected[log.append(v)] = v
    secret_value = {"s": "a" * (size // 2) + secret + "b" * (size // 2)}
    target = log.append(secret_value)
    for v in values(300, start=1000):
        expected[log.append(v)] = v
    overwrite(log, target, replacement)
    expected[target] = replacement
    assert files_holding(tmp_path, secret.encode()), "the test must see the secret before"
    log.compact()
    assert not files_holding(tmp_path, secret.encode())
    check_entries(log, expected)
    log.close()
    assert not files_holding(tmp_path, secret.encode())
    assert sorted(os.listdir(tmp_path)) == ["log"]
    reopened = LmdbLog(tmp_path / "log", readonly=True)
    check_entries(reopened, expected)
    reopened.close()


def test_compact_twice_and_appends_after(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "log")
    expected = {log.append(v): v for v in values(500)}
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    seq = log.append({"s": first})
    overwrite(log, seq, {"x": 1})
    expected[seq] = {"x": 1}
    log.compact()
    seq = log.append({"s": second})
    expected.update({log.append(v): v for v in values(100, start=600)})
    overwrite(log, seq, {"x": 2})
    expected[seq] = {"x": 2}
    log.compact()
    expected.update({log.append(v): v for v in values(10, start=900)})
    check_entries(log, expected)
    log.close()
    assert not files_holding(tmp_path, first.encode(), second.encode())
    check = LmdbLog.check_file(tmp_path / "log")
    assert check.problems == []
    again = LmdbLog(tmp_path / "log")
    check_entries(again, expected)
    again.close()


def test_compact_shrinks_the_file(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "log")
    for _ in range(20):
        seq = log.append({"big": "z" * 100_000})
        overwrite(log, seq, {"small": 1})
    before = os.path.getsize(tmp_path / "log" / "data.mdb")
    log.compact()
    after = os.path.getsize(tmp_path / "log" / "data.mdb")
    assert after < before / 4
    log.close()


def test_compact_without_exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where renameat2(RENAME_EXCHANGE) is not supported: two renames."""
    monkeypatch.setattr(lmdb_compact, "_exchange", lambda a, b: False)
    secret = secrets.token_hex(32)
    log = LmdbLog(tmp_path / "log")
    reader = LmdbLog(tmp_path / "log", readonly=True)
    expected = {log.append(v): v for v in values(100)}
    seq = log.append({"s": secret})
    overwrite(log, seq, {"x": 0})
    expected[seq] = {"x": 0}
    log.compact()
    expected[log.append({"after": 1})] = {"after": 1}
    reader.refresh()
    check_entries(reader, expected)
    reader.close()
    log.close()
    assert sorted(os.listdir(tmp_path)) == ["log"]
    assert not files_holding(tmp_path, secret.encode())


def test_compact_refused_on_a_reader(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "log")
    log.append(1)
    reader = LmdbLog(tmp_path / "log", readonly=True)
    with pytest.raises(ReadOnlyError):
        reader.compact()
    reader.close()
    log.close()


# -- the log: appends and readers during compact -----------------------------------------------


def test_appends_from_threads_during_compact(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "log", sync=False)
    log.append_many(values(2000))
    got: dict[int, Any] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def appender(t: int) -> None:
        try:
            for i in range(300):
                value = {"t": t, "i": i}
                seq = log.append(value)
                with lock:
                    got[seq] = value
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    compactions = 0
    while any(thread.is_alive() for thread in threads) or compactions < 2:
        log.compact()
        compactions += 1
    stop.set()
    for thread in threads:
        thread.join(CHILD_TIMEOUT)
    assert not errors
    assert sorted(got) == list(range(2000, 2000 + 1200))
    for seq, value in got.items():
        assert log.get(seq) == value
    # Each thread's appends are in its order.
    for t in range(4):
        mine = [got[s]["i"] for s in sorted(got) if got[s]["t"] == t]
        assert mine == list(range(300))
    assert log.since.value == 3199
    log.close()


def test_reader_in_this_process_opened_during_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = LmdbLog(tmp_path / "log")
    expected = {log.append(v): v for v in values(200)}
    opened: list[LmdbLog] = []

    def at(name: str) -> None:
        if name == "copied":
            reader = LmdbLog(tmp_path / "log", readonly=True)
            check_entries(reader, expected)
            opened.append(reader)

    monkeypatch.setattr(lmdb_compact, "step", at)
    log.compact()
    expected[log.append("after")] = "after"
    (reader,) = opened
    reader.refresh()
    check_entries(reader, expected)
    reader.close()
    log.close()


READER_OPEN = """
import json, sys
from flume.logs.lmdb_log import LmdbLog
log = LmdbLog(sys.argv[1], readonly=True)
print(json.dumps({"since": log.since.value, "n": sum(1 for _ in log.stream())}), flush=True)
for line in sys.stdin:
    log.refresh()
    print(json.dumps({"since": log.since.value, "n": sum(1 for _ in log.stream()),
                      "last": log.get(log.since.value)}), flush=True)
"""


@pytest.mark.parametrize("at_step", ["made-dir", "copied", "exchanged", "swapped", "removed"])
def test_reader_process_opened_during_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, children: list[Child], at_step: str
) -> None:
    """A reader in another process opens the log at each step of compact(), reads every
    entry, and after the compaction, reads the compacted log and the later appends."""
    log = LmdbLog(tmp_path / "log")
    log.append_many(values(300))
    opened: list[Child] = []

    def at(name: str) -> None:
        if name == at_step:
            child = Child(READER_OPEN, str(tmp_path / "log"))
            children.append(child)
            assert child.next() == {"since": 299, "n": 300}
            opened.append(child)

    monkeypatch.setattr(lmdb_compact, "step", at)
    log.compact()
    log.append({"after": 1})
    (child,) = opened
    child.send("refresh")
    assert child.next() == {"since": 300, "n": 301, "last": {"after": 1}}
    log.close()


LIVE_READER = """
import json, sys, time
from flume.logs import lmdb_compact
from flume.logs.lmdb_log import LmdbLog
log = LmdbLog(sys.argv[1], readonly=True)
end = int(sys.argv[2])
mode = sys.argv[3]
seen = []
if mode == "stream":
    for seq, value in log.stream(live=True):
        assert value["i"] == seq, (seq, value)
        seen.append(seq)
        if seq == end:
            break
else:
    seq = 0
    while seq <= end:
        if seq > log.refresh():
            time.sleep(0.002)
            continue
        assert log.get(seq)["i"] == seq
        seen.append(seq)
        seq += 1
print(json.dumps({"dense": seen == list(range(end + 1)), "n": len(seen),
                  "switched": log._shared.data_id == lmdb_compact.data_id(log._path)}), flush=True)
"""


@pytest.mark.parametrize("mode", ["stream", "poll"])
def test_reader_process_follows_the_log_across_compactions(
    tmp_path: Path, children: list[Child], mode: str
) -> None:
    log = LmdbLog(tmp_path / "log", sync=False)
    end = 3999
    log.append_many([{"i": i} for i in range(500)])
    child = Child(LIVE_READER, str(tmp_path / "log"), str(end), mode)
    children.append(child)
    seq = 500
    while seq <= end:
        batch = min(250, end + 1 - seq)
        log.append_many([{"i": i} for i in range(seq, seq + batch)])
        seq += batch
        if seq % 1000 == 0:
            log.compact()
        time.sleep(0.005)
    assert child.next() == {"dense": True, "n": end + 1, "switched": True}
    log.close()


# -- kill -9 during compact --------------------------------------------------------------------

KILLED_WRITER = """
import json, os, signal, sys, threading, time
from flume.logs import lmdb_compact
from flume.logs.lmdb_log import LmdbLog
from flume import codec
from flume.keys import seq_key

path, at, exchange = sys.argv[1], sys.argv[2], sys.argv[3] == "exchange"
if not exchange:
    lmdb_compact._exchange = lambda a, b: False
log = LmdbLog(path)
if log.since.value < 0:
    log.append_many([{"i": i, "pad": "q" * 4000} for i in range(int(sys.argv[4]))])
    with log._env.begin(db=log._db, write=True) as txn:  # free pages: something to compact
        for i in range(0, int(sys.argv[4]), 3):
            txn.put(seq_key(i), codec.encode({"i": i, "pad": ""}))
print(json.dumps({"ready": log.since.value}), flush=True)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def at_step(name):
    if name == at:
        die()
lmdb_compact.step = at_step

if at == "mid-copy":
    parent = os.path.dirname(path)
    def watch():
        while True:
            for name in os.listdir(parent):
                data = os.path.join(parent, name, "data.mdb")
                if name.startswith("log.compact-") and os.path.exists(data) and os.path.getsize(data) > 0:
                    die()
            time.sleep(0.0002)
    threading.Thread(target=watch, daemon=True).start()

def appender():
    i = 0
    while True:
        seq = log.append({"t": i})
        print(json.dumps({"acked": seq, "t": i}), flush=True)
        i += 1
        time.sleep(0.001)

threading.Thread(target=appender, daemon=True).start()
time.sleep(0.02)
for _ in range(3):
    log.compact()
    print(json.dumps({"compacted": True}), flush=True)
    time.sleep(0.01)
print(json.dumps({"survived": True}), flush=True)
"""

KILL_POINTS = [
    ("exchange", "mid-copy"),
    ("exchange", "made-dir"),
    ("exchange", "copied"),
    ("exchange", "synced"),
    ("exchange", "exchanged"),
    ("exchange", "swapped"),
    ("exchange", "removed"),
    ("renames", "moved-old"),
    ("renames", "moved-new"),
    ("renames", "removed"),
]


@pytest.mark.parametrize("how,at", KILL_POINTS)
def test_kill_during_compact(tmp_path: Path, how: str, at: str) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    log_dir = directory / "log"
    n = 2000
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(log_dir), at, how, str(n)],
        capture_output=True, text=True, timeout=CHILD_TIMEOUT, env=child_env(),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    messages = [json.loads(line) for line in proc.stdout.splitlines()]
    assert messages[0] == {"ready": n - 1}
    acked = {m["acked"]: {"t": m["t"]} for m in messages if "acked" in m}
    leftovers = [name for name in os.listdir(directory) if name != "log"]
    if at in ("made-dir", "copied", "synced", "exchanged", "swapped", "mid-copy", "moved-old"):
        assert leftovers, "the kill point must leave something to clean up"
    if at == "moved-old":
        assert not log_dir.exists()

    # A program opens the directory as it always does.
    db = flume.open(directory)
    try:
        assert sorted(os.listdir(directory)) == ["log", "views", "writer.lock"]
        log = db.log
        assert isinstance(log, LmdbLog)
        since = log.since.value
        assert since >= n - 1 + len(acked)
        got = dict(log.stream())
        assert sorted(got) == list(range(since + 1))
        for i in range(n):
            assert got[i]["i"] == i
        for seq, value in acked.items():
            assert got[seq] == value
        # It still compacts.
        log.compact()
        assert dict(log.stream()) == got
    finally:
        db.close()
    assert LmdbLog.check_file(log_dir).problems == []


# -- the views: secret bytes -------------------------------------------------------------------


def test_views_secret_gone_after_compact(tmp_path: Path) -> None:
    path = tmp_path / "views"
    store = RocksStore(path)
    key_secret, value_secret = secrets.token_hex(32).encode(), secrets.token_hex(32).encode()
    batch = store.batch()
    for i in range(200):
        batch.put("v1", b"k%04d" % i, b"value %d" % i)
        batch.put("v2", b"k%04d" % i, b"other %d" % i)
    batch.put_meta("v1", {"since": 10})
    batch.put("v1", b"s-" + key_secret, b"value-" + value_secret)
    store.write(batch)
    store.family("v1").get(b"k0001")
    # Some of it in a table file, some only in the WAL and memtable.
    store._cf("v1").flush()
    batch = store.batch()
    batch.put("v1", b"t-" + key_secret, b"again-" + value_secret)
    store.write(batch)
    assert files_holding(tmp_path, key_secret, value_secret)
    batch = store.batch()
    batch.delete("v1", b"s-" + key_secret)
    batch.delete("v1", b"t-" + key_secret)
    store.write(batch)
    store.compact()
    assert not files_holding(tmp_path, key_secret, value_secret)
    fam, other = store.family("v1"), store.family("v2")
    assert [k for k, _ in fam.scan(b"", None)] == [b"k%04d" % i for i in range(200)]
    assert other.get(b"k0199") == b"other 199"
    assert store.read_meta("v1") == {"since": 10}
    store.close()
    assert not files_holding(tmp_path, key_secret, value_secret)
    again = RocksStore(path, readonly=True)
    assert again.family("v1").get(b"k0042") == b"value 42"
    assert again.family("v1").get(b"s-" + key_secret) is None
    again.close()


def test_views_compact_with_readers_and_writes_around(tmp_path: Path) -> None:
    path = tmp_path / "views"
    store = RocksStore(path)
    reader = RocksStore(path, readonly=True)
    batch = store.batch()
    for i in range(100):
        batch.put("v", b"k%03d" % i, b"%d" % i)
    store.write(batch)
    reader.catch_up()
    assert reader.family("v").get(b"k005") == b"5"
    begun = store.batch()  # begun before the compaction, written after
    begun.put("v", b"late", b"1")
    store.compact()
    store.write(begun)
    batch = store.batch()
    batch.delete("v", b"k005")
    batch.put("w", b"new", b"2")
    store.write(batch)
    store.compact()
    store.compact()
    assert store.family("v").get(b"late") == b"1"
    reader.catch_up()
    assert reader.family("v").get(b"k005") is None
    assert reader.family("v").get(b"k006") == b"6"
    assert reader.family("v").get(b"late") == b"1"
    assert reader.family("w").get(b"new") == b"2"
    reader.close()
    with pytest.raises(ReadOnlyError):
        RocksStore(path, readonly=True).compact()
    store.close()


def test_memory_store_compact_is_a_no_op() -> None:
    store = MemoryStore()
    batch = store.batch()
    batch.put("v", b"k", b"v")
    store.write(batch)
    store.compact()
    assert store.family("v").get(b"k") == b"v"


VIEWS_READER = textwrap.dedent("""
    import json, sys
    from flume.views.store import RocksStore
    store = RocksStore(sys.argv[1], readonly=True)
    for line in sys.stdin:
        store.catch_up()
        fam = store.family("v")
        print(json.dumps({"n": sum(1 for _ in fam.scan(b"", None)),
                          "k1": (fam.get(b"k1") or b"").decode()}), flush=True)
""")


def test_views_reader_process_across_compact(tmp_path: Path, children: list[Child]) -> None:
    path = tmp_path / "views"
    store = RocksStore(path)
    batch = store.batch()
    for i in range(50):
        batch.put("v", b"k%d" % i, b"%d" % i)
    store.write(batch)
    child = Child(VIEWS_READER, str(path))
    children.append(child)
    child.send("x")
    assert child.next() == {"n": 50, "k1": "1"}
    batch = store.batch()
    batch.delete("v", b"k1")
    store.write(batch)
    store.compact()
    child.send("x")
    assert child.next() == {"n": 49, "k1": ""}
    batch = store.batch()
    batch.put("v", b"k1", b"back")
    store.write(batch)
    child.send("x")
    assert child.next() == {"n": 50, "k1": "back"}
    store.close()


def test_views_compact_with_gets_scans_and_writes_in_other_threads(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "views")
    batch = store.batch()
    for i in range(1000):
        batch.put("v", b"k%04d" % i, b"%d" % i)
    store.write(batch)
    errors: list[BaseException] = []
    stop = threading.Event()
    written: list[int] = []

    def getter() -> None:
        fam = store.family("v")
        while not stop.is_set():
            assert fam.get(b"k0005") == b"5"

    def scanner() -> None:
        fam = store.family("v")
        while not stop.is_set():
            assert sum(1 for _ in fam.scan(b"k01", b"k02")) == 100

    def writer() -> None:
        i = 0
        while not stop.is_set():
            batch = store.batch()
            batch.put("v", b"w%06d" % i, b"x")
            store.write(batch)
            written.append(i)
            i += 1

    def run(target: Any) -> None:
        try:
            target()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(f,)) for f in (getter, scanner, writer)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            store.compact()
    finally:
        stop.set()
        for thread in threads:
            thread.join(CHILD_TIMEOUT)
    assert not errors
    fam = store.family("v")
    assert [k for k in fam.keys(b"w", None)] == [b"w%06d" % i for i in written]
    store.close()
