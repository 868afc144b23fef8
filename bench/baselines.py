"""The baselines: the same workloads done directly on raw LMDB, raw RocksDB and sqlite3.

They are what flume is measured against: the work flume's promises imply, done by hand with
the same engines and no abstraction, plus sqlite3 as the embedded database everyone has.

- **lmdb** (+ msgpack): the log alone. Keys are 8-byte big-endian seqs, values msgpack, as in
  flume's log; every write transaction is durable (``sync=True``: one fsync per commit).
- **rocksdb** (rocksdict, ``raw_mode=True``): the raw work the three benchmark views imply.
  Read the LMDB log once, decode every record once, count by type in a dict (the Reduce), and
  write every index entry (``[author, sequence]``, ``[author, timestamp]``, ``[type,
  timestamp]``, each with the seq appended) in write batches of 1,000 records, each batch also
  carrying a "since" and the Reduce state, as a view commits. Reads: latest 10 of an author by a
  reverse prefix scan plus fetching the 10 records from LMDB; the count of votes by a prefix
  scan of the ``[type, timestamp]`` index.
- **sqlite** (stdlib sqlite3): messages as JSON text in ``log(id INTEGER PRIMARY KEY, value
  TEXT)``, WAL and ``synchronous=FULL`` (durable commits); compound expression indexes on
  ``(author, timestamp)`` and ``(content.type, timestamp)``. The two-field count (votes of one
  author) runs first on those two, an index on each field as the bitmaps are, and then on a
  third index made for it, ``(content.type, author)``, the best sqlite can do for that query.

Every workload starts in a fresh directory. Encoding (msgpack or JSON) is part of the timed
writes, as it is part of flume's appends; decoding is part of every timed read.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import ormsgpack
from rocksdict import Options, Rdict, ReadOptions, WriteBatch

from bench.common import (
    BATCH,
    ERROR,
    FAST_COUNT_ROUNDS,
    MB,
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

#: LMDB map size: large up front (the file grows only as used, see the engine notes).
MAP_SIZE = 64 << 30

_seq_key = struct.Struct(">Q").pack
Pack = Callable[[Any], bytes]
Unpack = Callable[[bytes], Any]


def _msgpack_unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _ormsgpack_packb(value: Any) -> bytes:
    data: bytes = ormsgpack.packb(value)
    return data


#: The msgpack libraries the raw baselines can encode and decode with (``--codec``).
#: Both write the same bytes for these messages.
CODECS: dict[str, tuple[Pack, Unpack]] = {
    "msgpack": (msgpack.packb, _msgpack_unpackb),
    "ormsgpack": (_ormsgpack_packb, ormsgpack.unpackb),
}

_packb, _unpackb = CODECS["ormsgpack"]


def _check(row: Row, ok: bool, what: str) -> Row:
    """Mark ``row`` as an error when its answers were wrong: a fast wrong answer is no result."""
    if not ok:
        row.status = ERROR
        row.note = f"wrong answer: {what}"
    return row


# ----------------------------------------------------------------------------------- lmdb


def open_lmdb(path: Path) -> Any:
    """The LMDB env of a raw log: durable commits, no writemap, a 64 GiB map."""
    return lmdb.open(str(path), map_size=MAP_SIZE, subdir=True, sync=True, metasync=True)


def lmdb_batched_put(env: Any, messages: list[dict[str, Any]], packb: Pack = _packb) -> int:
    """Encode and append every message, 1,000 per durable transaction; return how many."""
    seq = 0
    for chunk in batches(messages):
        with env.begin(write=True) as txn:
            put = txn.put
            for m in chunk:
                if not put(_seq_key(seq), packb(m), append=True):
                    raise RuntimeError(f"LMDB refused appending seq {seq}")
                seq += 1
    return seq


def lmdb_single_put(env: Any, messages: list[dict[str, Any]], packb: Pack = _packb) -> int:
    """Append every message in its own durable transaction (one fsync each)."""
    for seq, m in enumerate(messages):
        with env.begin(write=True) as txn:
            if not txn.put(_seq_key(seq), packb(m), append=True):
                raise RuntimeError(f"LMDB refused appending seq {seq}")
    return len(messages)


def lmdb_scan(env: Any, unpackb: Unpack = _unpackb) -> int:
    """Read every record in seq order with a cursor and decode it; return how many."""
    n = 0
    with env.begin() as txn:
        for _key, value in txn.cursor():
            unpackb(value)
            n += 1
    return n


def lmdb_gets(env: Any, seqs: list[int], unpackb: Unpack = _unpackb) -> int:
    """Fetch and decode the records at ``seqs`` (random order) in one read transaction."""
    keys = [_seq_key(s) for s in seqs]
    with env.begin() as txn:
        get = txn.get
        for k in keys:
            unpackb(get(k))
    return len(keys)


class Lmdb(System):
    """The raw log. Its env stays open for the RocksDB baseline, which reads the log."""

    name = "lmdb"

    def __init__(self, cfg: Config, data: Data, stack: ExitStack) -> None:
        super().__init__(cfg, data, stack)
        self.packb, self.unpackb = CODECS[cfg.codec]
        self.dir = stack.enter_context(fresh_dir(cfg, "lmdb"))
        self.env = open_lmdb(self.dir)
        stack.callback(self.env.close)
        self.phases = {
            "write": self.write,
            "scan": self.scan,
            "get": self.get,
            "single": self.single,
            "disk": self.disk,
        }

    def write(self) -> list[Row]:
        seconds, n = timed(lambda: lmdb_batched_put(self.env, self.data.messages, self.packb))
        return [
            rate_row("lmdb.batched_put", "lmdb", "append, 1000/txn, durable", n, seconds, "rec/s")
        ]

    def scan(self) -> list[Row]:
        seconds, n = timed(lambda: lmdb_scan(self.env, self.unpackb))
        row = rate_row("lmdb.scan", "lmdb", "cursor scan + decode", n, seconds, "rec/s")
        return [_check(row, n == self.cfg.n, f"scanned {n} of {self.cfg.n}")]

    def get(self) -> list[Row]:
        if not self.data.get_seqs:
            return []
        seconds, n = timed(lambda: lmdb_gets(self.env, self.data.get_seqs, self.unpackb))
        return [rate_row("lmdb.get", "lmdb", "random get + decode", n, seconds, "get/s")]

    def single(self) -> list[Row]:
        single = self.data.messages[: self.cfg.single]
        with fresh_dir(self.cfg, "lmdb-single") as path:
            env = open_lmdb(path)
            try:
                seconds, n = timed(lambda: lmdb_single_put(env, single, self.packb))
            finally:
                env.close()
        return [rate_row("lmdb.single_put", "lmdb", "append, 1/txn, durable", n, seconds, "rec/s")]

    def disk(self) -> list[Row]:
        return [Row("lmdb.disk", "lmdb", "disk use of the log", "MB", disk_usage(self.dir) / MB)]


# -------------------------------------------------------------------------------- rocksdb

# Index families as one-byte key prefixes; a key is prefix + field bytes + b"\0" separator
# (author ids and type names hold no NUL) + 8-byte big-endian number + 8-byte seq.
_AUTHOR_SEQ = b"\x01"
_AUTHOR_TS = b"\x02"
_TYPE_TS = b"\x03"
_META_SINCE = b"\x00since"
_META_COUNTS = b"\x00counts"


def rocks_options() -> Options:
    return Options(raw_mode=True)


def rocks_implied_work(
    env: Any, path: Path, packb: Pack = _packb, unpackb: Unpack = _unpackb
) -> tuple[int, int, dict[str, int]]:
    """Build the three views' state from the LMDB log by hand.

    Returns (records read, index entries written, the counts by type).
    """
    db = Rdict(str(path), rocks_options())
    counts: dict[str, int] = {}
    records = entries = 0
    pack = _seq_key
    try:
        with env.begin() as txn:
            wb = WriteBatch(raw_mode=True)
            in_batch = 0
            for seq_key, raw in txn.cursor():
                value = unpackb(raw)["value"]
                author = value["author"].encode() + b"\0"
                kind = value["content"]["type"]
                ts = pack(value["timestamp"])
                counts[kind] = counts.get(kind, 0) + 1
                wb.put(_AUTHOR_SEQ + author + pack(value["sequence"]) + seq_key, b"")
                wb.put(_AUTHOR_TS + author + ts + seq_key, b"")
                wb.put(_TYPE_TS + kind.encode() + b"\0" + ts + seq_key, b"")
                records += 1
                entries += 3
                in_batch += 1
                if in_batch == BATCH:
                    wb.put(_META_SINCE, seq_key)
                    wb.put(_META_COUNTS, packb(counts))
                    db.write(wb)
                    wb = WriteBatch(raw_mode=True)
                    in_batch = 0
            if in_batch:
                wb.put(_META_SINCE, seq_key)
                wb.put(_META_COUNTS, packb(counts))
                db.write(wb)
    finally:
        db.close()
    return records, entries, counts


def rocks_latest10(db: Rdict, env: Any, author: str, unpackb: Unpack = _unpackb) -> list[Any]:
    """The 10 latest messages of ``author``: reverse prefix scan, then fetch + decode from LMDB."""
    prefix = _AUTHOR_TS + author.encode() + b"\0"
    after = prefix[:-1] + b"\x01"  # the prefix with its last byte incremented
    out = []
    with env.begin() as txn:
        it = db.iter()
        it.seek_for_prev(after)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            out.append(unpackb(txn.get(key[-8:])))
            if len(out) == 10:
                break
            it.prev()
        del it
    return out


def rocks_count(db: Rdict, kind: str) -> int:
    """How many records have content type ``kind``: a prefix scan of the [type, ts] index."""
    prefix = _TYPE_TS + kind.encode() + b"\0"
    options = ReadOptions()
    options.set_iterate_upper_bound(prefix[:-1] + b"\x01")  # works in raw mode (engine notes)
    it = db.iter(options)
    it.seek(prefix)
    n = 0
    while it.valid():
        n += 1
        it.next()
    del it
    return n


class RocksDB(System):
    """The views' raw work on RocksDB, over the log that the :class:`Lmdb` baseline wrote."""

    name = "rocksdb"

    def __init__(self, cfg: Config, data: Data, stack: ExitStack, log: Lmdb) -> None:
        super().__init__(cfg, data, stack)
        self.packb, self.unpackb = CODECS[cfg.codec]
        self.log = log
        self.dir = stack.enter_context(fresh_dir(cfg, "rocksdb"))
        self._db: Rdict | None = None
        stack.callback(self._close)
        self.phases = {
            "views": self.implied_work,
            "latest10": self.latest10,
            "count": self.count,
            "disk": self.disk,
        }

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> Rdict:
        """The index database, opened again for reading after the build (as after a restart)."""
        if self._db is None:
            self._db = Rdict(str(self.dir), rocks_options())
        return self._db

    def implied_work(self) -> list[Row]:
        seconds, (records, entries, counts) = timed(
            lambda: rocks_implied_work(self.log.env, self.dir, self.packb, self.unpackb)
        )
        row = Row(
            "rocksdb.implied_work",
            "rocksdb",
            "3-view work: decode all + write index entries",
            "s",
            seconds,
            seconds,
            records,
            note=f"{records / seconds:,.0f} rec/s, {entries / seconds:,.0f} entries/s",
        )
        return [_check(row, counts.get("vote", 0) == self.data.vote_count, "vote count")]

    def latest10(self) -> list[Row]:
        db, env = self.db, self.log.env
        return [
            _latest10_row("rocksdb", self.data, lambda a: rocks_latest10(db, env, a, self.unpackb))
        ]

    def count(self) -> list[Row]:
        db = self.db
        return [_count_row("rocksdb", self.cfg, self.data, lambda: rocks_count(db, "vote"))]

    def disk(self) -> list[Row]:
        self._close()
        size = disk_usage(self.dir) / MB
        return [Row("rocksdb.disk", "rocksdb", "disk use of the indexes", "MB", size)]


# --------------------------------------------------------------------------------- sqlite

_AUTHOR = "json_extract(value, '$.value.author')"
_TS = "json_extract(value, '$.value.timestamp')"
_TYPE = "json_extract(value, '$.value.content.type')"
SQL_LATEST10 = f"SELECT value FROM log WHERE {_AUTHOR} = ? ORDER BY {_TS} DESC LIMIT 10"
SQL_COUNT = f"SELECT count(*) FROM log WHERE {_TYPE} = ?"
SQL_COUNT_TYPE_AUTHOR = f"SELECT count(*) FROM log WHERE {_TYPE} = ? AND {_AUTHOR} = ?"
SQL_TYPE_AUTHOR_INDEX = f"CREATE INDEX log_type_author ON log ({_TYPE}, {_AUTHOR})"
SQL_INDEXES = (
    f"CREATE INDEX log_author_ts ON log ({_AUTHOR}, {_TS})",
    f"CREATE INDEX log_type_ts ON log ({_TYPE}, {_TS})",
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions explicit), WAL, ``synchronous=FULL``."""
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    return con


def sqlite_create(con: sqlite3.Connection) -> None:
    con.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")


def sqlite_batched_insert(con: sqlite3.Connection, messages: list[dict[str, Any]]) -> int:
    """Insert every message as JSON text, 1,000 per durable transaction."""
    dumps = _dumps
    seq = 0
    for chunk in batches(messages):
        rows = []
        for m in chunk:
            rows.append((seq, dumps(m)))
            seq += 1
        con.execute("BEGIN")
        con.executemany("INSERT INTO log (id, value) VALUES (?, ?)", rows)
        con.execute("COMMIT")
    return seq


def sqlite_single_insert(con: sqlite3.Connection, messages: list[dict[str, Any]]) -> int:
    """Insert every message in its own durable transaction."""
    for seq, m in enumerate(messages):
        con.execute("INSERT INTO log (id, value) VALUES (?, ?)", (seq, _dumps(m)))
    return len(messages)


def sqlite_scan(con: sqlite3.Connection) -> int:
    loads = json.loads
    n = 0
    for (value,) in con.execute("SELECT value FROM log ORDER BY id"):
        loads(value)
        n += 1
    return n


def sqlite_latest10(con: sqlite3.Connection, author: str) -> list[Any]:
    return [json.loads(v) for (v,) in con.execute(SQL_LATEST10, (author,))]


def sqlite_count(con: sqlite3.Connection, kind: str) -> int:
    (n,) = con.execute(SQL_COUNT, (kind,)).fetchone()
    return int(n)


def sqlite_plans(con: sqlite3.Connection) -> dict[str, str]:
    """The query plans of the two indexed reads (to show that the indexes are used)."""

    def plan(sql: str, arg: str) -> str:
        return "; ".join(str(r[-1]) for r in con.execute("EXPLAIN QUERY PLAN " + sql, (arg,)))

    return {"latest10": plan(SQL_LATEST10, "@x"), "count": plan(SQL_COUNT, "vote")}


def sqlite_count_type_author(con: sqlite3.Connection, kind: str, author: str) -> int:
    (n,) = con.execute(SQL_COUNT_TYPE_AUTHOR, (kind, author)).fetchone()
    return int(n)


class Sqlite(System):
    """sqlite3 with JSON text values and expression indexes, durable (WAL, synchronous=FULL)."""

    name = "sqlite"

    def __init__(self, cfg: Config, data: Data, stack: ExitStack) -> None:
        super().__init__(cfg, data, stack)
        self.dir = stack.enter_context(fresh_dir(cfg, "sqlite"))
        self.file = self.dir / "log.sqlite"
        self._writer: sqlite3.Connection | None = sqlite_connect(self.file)
        sqlite_create(self._writer)
        self._reader: sqlite3.Connection | None = None
        stack.callback(self._close)
        self.phases = {
            "write": self.write,
            "scan": self.scan,
            "views": self.index_build,
            "latest10": self.latest10,
            "count": self.count,
            "bitmaps": self.analyze,
            "bitmap_count": lambda: self.count_type_author("sqlite.count_type_author"),
            "composite": self.composite,
            "single": self.single,
            "disk": self.disk,
        }

    def _close(self) -> None:
        for con in (self._reader, self._writer):
            if con is not None:
                con.close()
        self._reader = self._writer = None

    @property
    def con(self) -> sqlite3.Connection:
        """The connection that writes the log and builds the indexes."""
        if self._writer is None:
            self._writer = sqlite_connect(self.file)
        return self._writer

    @property
    def reader(self) -> sqlite3.Connection:
        """A new connection for the indexed reads (as after a restart)."""
        if self._reader is None:
            self._reader = sqlite_connect(self.file)
        return self._reader

    def write(self) -> list[Row]:
        seconds, n = timed(lambda: sqlite_batched_insert(self.con, self.data.messages))
        return [
            rate_row(
                "sqlite.batched_insert", "sqlite", "insert, 1000/txn, durable", n, seconds, "rec/s"
            )
        ]

    def scan(self) -> list[Row]:
        seconds, n = timed(lambda: sqlite_scan(self.con))
        row = rate_row("sqlite.scan", "sqlite", "full scan + json.loads", n, seconds, "rec/s")
        return [_check(row, n == self.cfg.n, f"scanned {n} of {self.cfg.n}")]

    def index_build(self) -> list[Row]:
        def build() -> None:
            self.con.execute("BEGIN")
            for sql in SQL_INDEXES:
                self.con.execute(sql)
            self.con.execute("COMMIT")

        seconds, _ = timed(build)
        label = "build 2 expression indexes"
        return [Row("sqlite.index_build", "sqlite", label, "s", seconds, seconds, self.cfg.n)]

    def latest10(self) -> list[Row]:
        con = self.reader
        row = _latest10_row("sqlite", self.data, lambda a: sqlite_latest10(con, a))
        row.detail["plan"] = sqlite_plans(con)["latest10"]
        return [row]

    def count(self) -> list[Row]:
        con = self.reader
        row = _count_row("sqlite", self.cfg, self.data, lambda: sqlite_count(con, "vote"))
        row.detail["plan"] = sqlite_plans(con)["count"]
        return [row]

    def analyze(self) -> list[Row]:
        """``ANALYZE``: without statistics sqlite answers the two-field count from the type
        index (a third of the log) rather than the author's; with them, it picks the author's."""
        seconds, _ = timed(lambda: self.con.execute("ANALYZE"))
        return [Row("sqlite.analyze", "sqlite", "ANALYZE (index statistics)", "s", seconds)]

    def composite(self) -> list[Row]:
        seconds, _ = timed(lambda: self.con.execute(SQL_TYPE_AUTHOR_INDEX))
        label = "build a (type, author) expression index"
        built = Row("sqlite.type_author_index", "sqlite", label, "s", seconds, seconds, self.cfg.n)
        return [built, *self.count_type_author("sqlite.count_type_author_composite")]

    def count_type_author(self, rid: str) -> list[Row]:
        """The median time of the two-field count, in ms, with the plan sqlite chose."""
        con, data = self.reader, self.data
        times = []
        answer = -1
        for _ in range(FAST_COUNT_ROUNDS):
            seconds, answer = timed(lambda: sqlite_count_type_author(con, "vote", data.vote_author))
            times.append(seconds)
        ms = median(times) * 1000
        label = "count of one author's votes" + (" (composite)" if "composite" in rid else "")
        row = Row(rid, "sqlite", label, "ms", ms, sum(times), len(times))
        fresh = sqlite_connect(self.file)  # a cached EXPLAIN would show the plan before the index
        try:
            explained = fresh.execute(
                "EXPLAIN QUERY PLAN " + SQL_COUNT_TYPE_AUTHOR, ("vote", data.vote_author)
            )
            row.detail["plan"] = "; ".join(str(r[-1]) for r in explained)
        finally:
            fresh.close()
        row.note = row.detail["plan"][:60]
        expected = data.vote_author_count
        return [_check(row, answer == expected, f"counted {answer}, expected {expected}")]

    def single(self) -> list[Row]:
        single = self.data.messages[: self.cfg.single]
        with fresh_dir(self.cfg, "sqlite-single") as path:
            con = sqlite_connect(path / "log.sqlite")
            try:
                sqlite_create(con)
                seconds, n = timed(lambda: sqlite_single_insert(con, single))
            finally:
                con.close()
        label = "insert, 1/txn, durable"
        return [rate_row("sqlite.single_insert", "sqlite", label, n, seconds, "rec/s")]

    def disk(self) -> list[Row]:
        self._close()  # the last close checkpoints the WAL into the file
        size = disk_usage(self.dir) / MB
        return [Row("sqlite.disk", "sqlite", "disk use (table + indexes)", "MB", size)]


# ----------------------------------------------------------------------- shared read rows


def _keys(result: list[Any]) -> list[str]:
    return [m["key"] for m in result]


def _latest10_row(system: str, data: Data, query: Callable[[str], list[Any]]) -> Row:
    """Time ``query`` on every author of ``data.query_authors``; check a few answers first."""
    checked = data.query_authors[:5]
    wrong = [a for a in checked if _keys(query(a)) != data.latest10(a)]
    authors = data.query_authors
    t0 = time.perf_counter()
    for a in authors:
        query(a)
    seconds = time.perf_counter() - t0
    row = latency_row(f"{system}.latest10", system, "latest 10 of an author", len(authors), seconds)
    return _check(row, not wrong, f"latest 10 of {len(wrong)} of {len(checked)} checked authors")


def _count_row(system: str, cfg: Config, data: Data, count: Callable[[], int]) -> Row:
    """Median time of ``cfg.count_repeats`` counts of votes, in ms; checks the answer."""
    times = []
    answer = -1
    for _ in range(max(1, cfg.count_repeats)):
        seconds, answer = timed(count)
        times.append(seconds)
    ms = median(times) * 1000
    row = Row(f"{system}.count_votes", system, "count of votes", "ms", ms, sum(times), len(times))
    return _check(row, answer == data.vote_count, f"counted {answer}, expected {data.vote_count}")


def systems(cfg: Config, data: Data, stack: ExitStack) -> list[System]:
    """The three baselines, ready to run their phases; closed and removed by ``stack``."""
    log = Lmdb(cfg, data, stack)
    return [log, RocksDB(cfg, data, stack, log), Sqlite(cfg, data, stack)]
