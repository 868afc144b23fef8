"""The kill test: a writer process is killed with SIGKILL at random moments, many times over,
and every time the directory reopens by itself with nothing acknowledged lost, nothing
half-written, and every view equal to a rebuild from scratch (DESIGN.md promises 2 and 3).

Each iteration starts ``tests/crash_writer.py`` on a directory (fresh, or one a previous
iteration killed a writer on), lets it append single values and batches while its views index
(and, in some iterations, rebuild all the time), kills it at a random moment (during its open
and first catch-up in some iterations), and then checks:

1. before anything reopens the directory read-write, what is on disk: the log's seqs are dense;
   the log is exactly the writer's ops in order, ending at the end of an op (a batch is all or
   nothing), and holds every acknowledged value with its checksum; what earlier iterations
   verified is unchanged; each stored view is at or behind the log, and its stored entries equal
   a rebuild in memory up to its own ``since`` (its data and its ``since`` moved together);
2. after a normal ``flume.open`` (no manual step): every view catches up to the log, its answers
   (Reduce state, Index ``read()``, Query ``read()``) equal those computed directly from the log,
   and its stored entries equal a rebuild from scratch byte for byte.

``KILL_ITERATIONS`` (default suite) and ``KILL_ITERATIONS_SLOW`` (``-m slow``) set the counts;
the environment variable ``FLUME_KILL_SEED`` replays one run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import flume
from flume.logs import LmdbLog, MemoryLog
from flume.views.store import RocksStore

sys.path.insert(0, os.path.dirname(__file__))
import crash_writer  # noqa: E402

WRITER = os.path.join(os.path.dirname(__file__), "crash_writer.py")
KILL_ITERATIONS = 24
KILL_ITERATIONS_SLOW = 300
# Kills per directory before a fresh one is started (so logs stay a few thousand entries long).
CHAIN = 4
STARTUP_TIMEOUT = 60.0
QUERIES: list[Any] = [
    None,
    {"$filter": {"author": "@3"}},
    [{"$filter": {"author": "@1", "ts": {"$gte": 100, "$lt": 600}}}],
    [{"$filter": {"type": "vote"}}, {"$map": {"a": ["author"], "t": ["ts"]}}],
    [{"$filter": {"ts": {"$lt": 50}}}, {"$reduce": {"author": ["author"], "n": {"$count": True}}}],
]


@dataclass
class Run:
    """What one writer process reported before it died."""

    lines: list[str]
    intents: list[tuple[int, int, int]] = field(default_factory=list)  # (op, start, n)
    acked: dict[int, tuple[int, int, list[str]]] = field(default_factory=dict)  # op -> (start, last, crcs)
    rebuilds: int = 0
    ready: bool = False

    @classmethod
    def parse(cls, lines: list[str]) -> Run:
        run = cls(lines)
        for line in lines:
            word, *rest = line.split()
            if word == "ready":
                run.ready = True
            elif word == "T":
                op, start, n = map(int, rest)
                run.intents.append((op, start, n))
            elif word == "A":
                op, start, last = map(int, rest[:3])
                run.acked[op] = (start, last, rest[3:])
            elif word == "R":
                run.rebuilds += 1
        return run


def _pump(stream: Any, out: list[str]) -> None:
    # Only whole lines count: a line cut by the kill was never reported.
    for line in stream:
        if line.endswith("\n"):
            out.append(line.rstrip("\n"))


def kill_writer(directory: Path, rng: random.Random, sync: bool, mode: str, stderr: Path) -> Run:
    """Start a writer on ``directory``, kill it at a random moment, return what it reported."""
    lines: list[str] = []
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, WRITER, str(directory), str(rng.randrange(2**32)), "1" if sync else "0", mode],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            bufsize=1,
        )
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            # Some kills land in the open itself (mounting, wiping, the first catch-up).
            early = rng.random() < 0.2
            marker = "opening" if early else "ready"
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not any(line.startswith(marker) for line in lines):
                if proc.poll() is not None:
                    reader.join(5)
                    pytest.fail(f"the writer exited by itself ({proc.returncode}):\n{stderr.read_text()}")
                assert time.monotonic() < deadline, "the writer never got ready"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.15) if early else rng.uniform(0, 0.8))
            assert proc.poll() is None, f"the writer exited by itself:\n{stderr.read_text()}"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            reader.join(30)
            assert proc.stdout is not None
            proc.stdout.close()
    return Run.parse(lines)


# -- checking ----------------------------------------------------------------------------------


def read_log(directory: Path) -> tuple[list[bytes], list[Any]]:
    """Every stored value of the log, raw and decoded, read read-only; seqs must be dense."""
    log = LmdbLog(directory / "log", readonly=True)
    try:
        since = log.since.value
        raws: list[bytes] = []
        start = 0
        while start <= since:
            chunk = log.read_raw(start, since, False, 4096)  # raises on a gap
            assert chunk and chunk[0][0] == start, f"seq {start} is missing from the log"
            raws.extend(bytes(raw) for _, raw in chunk)
            start = chunk[-1][0] + 1
        assert len(raws) == since + 1
        return raws, [flume.codec.decode(raw) for raw in raws]
    finally:
        log.close()


def check_log(raws: list[bytes], values: list[Any], run: Run, known: list[str]) -> None:
    """The log after the kill: exactly the writer's ops in order, each whole, the last one
    either acknowledged or the one in flight; every acknowledged value intact."""
    crcs = [crash_writer.crc(raw) for raw in raws]
    assert crcs[: len(known)] == known, "the log's earlier entries changed"
    # Every op is whole: its values sit at consecutive seqs, k = 0..of-1.
    seq = 0
    ops: list[int] = []
    while seq < len(values):
        v = values[seq]
        assert v["k"] == 0, f"seq {seq} starts in the middle of op {v['op']} (a cut batch)"
        n = v["of"]
        assert seq + n <= len(values), f"op {v['op']} at seq {seq} is cut: {len(values) - seq} of {n} values"
        for k in range(n):
            assert values[seq + k]["op"] == v["op"] and values[seq + k]["k"] == k, (
                f"op {v['op']} at seq {seq} is not whole"
            )
        ops.append(v["op"])
        seq += n
    # This run's ops: each intended op is in the log where it was announced, up to the end.
    for i, (op, start, n) in enumerate(run.intents):
        acked = op in run.acked
        in_log = start < len(values)
        if acked:
            a_start, a_last, a_crcs = run.acked[op]
            assert (a_start, a_last) == (start, start + n - 1), f"op {op} landed elsewhere"
            assert a_last < len(values), f"acknowledged op {op} (seqs {a_start}..{a_last}) was lost"
            assert crcs[a_start : a_last + 1] == a_crcs, f"acknowledged op {op} is not intact"
        else:
            # Only the last op may be unacknowledged: it was in flight when the writer died.
            assert i == len(run.intents) - 1, f"op {op} was never acknowledged, yet the writer went on"
            if in_log:
                assert values[start]["op"] == op and start + n == len(values)
        if in_log:
            assert values[start]["op"] == op
    if run.intents:
        op, start, n = run.intents[-1]
        assert len(values) in (start, start + n), "the log ends inside the last op"


def rebuild_in_memory(values: list[Any]) -> flume.Flume:
    db = flume.Flume(MemoryLog())
    if values:
        db.append_many(values)
    for name, view in crash_writer.make_views().items():
        db.use(name, view)
    for mounted in db.views.values():
        mounted.ready(timeout=60)
    return db


def entries(store: Any, name: str) -> list[tuple[bytes, bytes]]:
    return [(bytes(k), bytes(v)) for k, v in store.family(name).scan(b"", None)]


def expected_meta(name: str) -> dict[str, Any]:
    view = crash_writer.make_views()[name]
    return {"kind": view.kind, "version": view.version, "definition": view.definition()}


def check_stored_views(directory: Path, values: list[Any], tmp: Path) -> dict[str, int]:
    """Each stored view, as the kill left it, equals a rebuild up to its own since."""
    views_dir = directory / "views"
    if not (views_dir / "CURRENT").exists():
        return {}
    store = RocksStore(views_dir, readonly=True, secondaries=str(tmp / "secondaries"))
    sinces: dict[str, int] = {}
    try:
        store.catch_up()
        metas = store.all_meta()
        assert set(metas) <= set(crash_writer.make_views()), f"unexpected views {sorted(metas)}"
        rebuilt: dict[int, flume.Flume] = {}
        try:
            for name, meta in sorted(metas.items()):
                since = meta["since"]
                sinces[name] = since
                assert {k: meta[k] for k in ("kind", "version", "definition")} == expected_meta(name)
                assert -1 <= since < len(values), f"view {name} at {since} is ahead of the log"
                if since not in rebuilt:
                    rebuilt[since] = rebuild_in_memory(values[: since + 1])
                assert entries(store, name) == entries(rebuilt[since]._store, name), (
                    f"view {name!r} as stored at seq {since} differs from a rebuild up to {since}"
                )
        finally:
            for db in rebuilt.values():
                db.close()
    finally:
        store.close()
    return sinces


def check_reopened(directory: Path, values: list[Any]) -> None:
    """A normal writer open: views catch up and equal both a direct computation and a rebuild."""
    last = len(values) - 1
    with flume.open(directory) as db:
        assert db.since.value == last
        for name, view in crash_writer.make_views().items():
            db.use(name, view)
        for mounted in db.views.values():
            mounted.ready(timeout=60)
        status = db.status()
        assert status["since"] == last
        assert {n: (v["since"], v["state"]) for n, v in status["views"].items()} == {
            n: (last, "ready") for n in crash_writer.make_views()
        }
        # The answers, against the log computed directly.
        assert db.count.get() == crash_writer.fold(values)
        by_author = sorted(((v["author"], v["ts"]), s) for s, v in enumerate(values))
        assert [(e.key, e.seq) for e in db.by_author.read()] == by_author
        by_tag = sorted((t, s) for s, v in enumerate(values) for t in v["tags"])
        assert [(e.key, e.seq) for e in db.by_tag.read()] == by_tag
        assert [e.seq for e in db.q.read({"author": "@3"}, seqs=True)] == [
            s for _, s in sorted((v["ts"], s) for s, v in enumerate(values) if v["author"] == "@3")
        ]
        assert sorted(e.seq for e in db.q.read({"type": "post"}, seqs=True)) == [
            s for s, v in enumerate(values) if v["type"] == "post"
        ]
        # ... against a rebuild from scratch: the same answers, the same stored bytes.
        fresh = rebuild_in_memory(values)
        try:
            for i, query in enumerate(QUERIES):
                reverse = i % 2 == 1
                assert list(db.q.read(query, reverse=reverse)) == list(
                    fresh.q.read(query, reverse=reverse)
                ), f"query {query!r} differs from a rebuild"
            for name in crash_writer.make_views():
                assert entries(db._store, name) == entries(fresh._store, name), (
                    f"view {name!r} differs from a rebuild from scratch"
                )
        finally:
            fresh.close()


def kill_loop(tmp_path: Path, iterations: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    stats = {"kills": 0, "entries": 0, "acked_ops": 0, "in_flight_landed": 0, "rebuilds": 0,
             "early_kills": 0, "views_behind": 0, "killed_in_rebuild": 0}
    directory = tmp_path / "db-0"
    known: list[str] = []
    for i in range(iterations):
        if i % CHAIN == 0:
            directory = tmp_path / f"db-{i // CHAIN}"
            known = []
        sync = rng.random() < 0.75
        mode = "rebuild" if rng.random() < 0.25 else "mixed"
        where = f"iteration {i} (seed {seed}, dir {directory.name}, sync={sync}, mode={mode})"
        run = kill_writer(directory, rng, sync, mode, tmp_path / "stderr.txt")
        try:
            if not (directory / "log" / "data.mdb").exists():
                assert not run.intents
                stats["early_kills"] += 1
                continue
            raws, values = read_log(directory)
            check_log(raws, values, run, known)
            sinces = check_stored_views(directory, values, tmp_path)
            check_reopened(directory, values)
        except AssertionError as e:
            raise AssertionError(f"{where}: {e}\nwriter said (last 5): {run.lines[-5:]}") from e
        known = [crash_writer.crc(raw) for raw in raws]
        stats["kills"] += 1
        stats["entries"] = max(stats["entries"], len(values))
        stats["acked_ops"] += len(run.acked)
        stats["rebuilds"] += run.rebuilds
        stats["early_kills"] += not run.ready
        stats["killed_in_rebuild"] += bool(run.lines) and run.lines[-1] == "R"
        stats["views_behind"] += any(s < len(values) - 1 for s in sinces.values())
        if run.intents and run.intents[-1][0] not in run.acked and run.intents[-1][1] < len(values):
            stats["in_flight_landed"] += 1
    return stats


def _seed() -> int:
    return int(os.environ.get("FLUME_KILL_SEED", random.randrange(2**32)))


def test_kill_writer_dozens_of_times(tmp_path: Path) -> None:
    seed = _seed()
    stats = kill_loop(tmp_path, KILL_ITERATIONS, seed)
    print(f"kill test, seed {seed}: {stats}")
    assert stats["acked_ops"] > 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_kill_writer_hundreds_of_times(tmp_path: Path) -> None:
    seed = _seed()
    stats = kill_loop(tmp_path, KILL_ITERATIONS_SLOW, seed)
    print(f"kill test, seed {seed}: {stats}")
    assert stats["acked_ops"] > 0
