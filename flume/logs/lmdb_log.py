"""LmdbLog: the default log, an LMDB environment at ``<dir>/log/``.

Keys are 8-byte big-endian seqs from 0, values msgpack; a deleted seq holds an empty value (the
tombstone). A ``meta`` database holds the format version (an unknown one is refused and never
overwritten) and the delete journal: ``b"deleted" + 8-byte number`` -> msgpack ``[seq, the
erased value's bytes or None]``. A log gets format version 2 with its first delete, so that a
flume that does not know tombstones refuses it rather than misreads it.

Operational notes (see also the README's "Process model"):

* **Map growth.** LMDB maps a fixed address range. The log starts with a modest map and, when a
  commit fills it, doubles it and retries the commit; nobody sets ``map_size``. Readers in other
  processes adopt the new size on their next read (``MapResizedError`` is handled here).
* **Threads.** One environment per directory per process, shared by every ``LmdbLog`` on it (a
  writer and readers in one process share it). Reads use short transactions; the map is resized
  only while no transaction of this process is open (a readers-writer lock).
* **Group commit.** Appends from several threads that arrive while a commit is running are
  written together in the next transaction and share its fsync; each still gets its own seq
  and returns only once its data is durable.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

import lmdb

from flume import codec, fs
from flume.errors import ClosedError, CorruptionError, FlumeError, FormatError, StorageError
from flume.keys import SEQ_BYTES, seq_key
from flume.logs import lmdb_compact
from flume.logs.base import TOMBSTONE, BaseLog, DeleteRecord

FORMAT_NAME = "flume-log"
FORMAT_VERSION = 2
# The versions this flume reads: 1 is a log that never had a delete.
_READABLE_VERSIONS = (1, 2)
_JOURNAL = b"deleted"
_JOURNAL_END = b"deletee"  # the successor of the journal's prefix
# The environment's data file in its directory (LMDB's name).
_DATA_FILE = "data.mdb"
_INITIAL_MAP_SIZE = 1 << 30
_MAX_READERS = 1024
# How long a group commit's leader waits for the appenders of the previous commit to queue.
_GATHER_SECONDS = 0.0005
# Entries check_entries reads per step.
_CHECK_CHUNK = 4096
# What LMDB raises when it reads a damaged page: reads turn these into CorruptionError.
_DAMAGE = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.PanicError, lmdb.BadValsizeError)


class _ReadersWriterLock:
    """Many transactions at once, or one map resize alone.

    A waiting resize goes first: new transactions wait for it, so a thread that reads in a
    loop cannot starve it (and with it every append). Not reentrant: never nest ``shared()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    def acquire_shared(self) -> None:
        with self._lock:  # the condition's own lock, without Condition's Python wrapper
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1

    def release_shared(self) -> None:
        with self._lock:
            self._readers -= 1
            if self._readers == 0 and self._waiting_writers:
                self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        self.acquire_shared()
        try:
            yield
        finally:
            self.release_shared()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            except BaseException:
                self._waiting_writers -= 1
                self._cond.notify_all()  # readers held back by this waiter may go on
                raise
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class _SharedEnv:
    """The process's one environment on a directory, opened as its most demanding user
    needs: read-write if any is a writer, with fsyncs if any asked for ``sync=True``."""

    env: lmdb.Environment
    log_db: Any
    meta_db: Any
    readonly: bool
    sync: bool
    lock: _ReadersWriterLock = field(default_factory=_ReadersWriterLock)
    users: int = 0
    # (st_dev, st_ino) of the data file when the environment was opened (read just before):
    # another one there means a compaction swapped the directory (see lmdb_compact).
    data_id: tuple[int, int] | None = None


_envs: dict[str, _SharedEnv] = {}
_envs_lock = threading.Lock()


def _open_env(path: str, *, readonly: bool, map_size: int, sync: bool) -> _SharedEnv:
    """The shared environment of ``path``, opened, or reopened when it lacks what this user
    needs (LMDB allows one open environment per directory per process).

    Blocks on: the transactions of this process in progress, when it reopens.
    """
    with _envs_lock:
        shared = _envs.get(path)
        if shared is None:
            data_id = lmdb_compact.data_id(path)
            try:
                env, meta_db, log_db = _new_env(
                    path, readonly=readonly, map_size=map_size, sync=sync
                )
            except PermissionError as e:
                raise fs.permission_denied(e.filename or path, e.strerror or "") from None
            shared = _envs[path] = _SharedEnv(env, log_db, meta_db, readonly, sync)
            shared.data_id = data_id or lmdb_compact.data_id(path)  # or the file it created
        elif (shared.readonly and not readonly) or (sync and not shared.sync):
            _reopen_env(
                path, shared, readonly=shared.readonly and readonly, sync=shared.sync or sync
            )
        shared.users += 1
        return shared


def _reopen_env(path: str, shared: _SharedEnv, *, readonly: bool, sync: bool) -> None:
    # With no transaction of this process open (every one runs under the shared lock), and
    # the users reading shared.env and its handles at each transaction.
    with shared.lock.exclusive():
        map_size = shared.env.info()["map_size"]
        shared.env.close()
        data_id = lmdb_compact.data_id(path)
        try:
            opened = _new_env(path, readonly=readonly, map_size=map_size, sync=sync)
        except BaseException:
            # Give the users there already their environment back, then fail this open.
            restored = _new_env(path, readonly=shared.readonly, map_size=map_size, sync=shared.sync)
            shared.env, shared.meta_db, shared.log_db = restored
            raise
        shared.env, shared.meta_db, shared.log_db = opened
        shared.readonly, shared.sync = readonly, sync
        shared.data_id = data_id


def _switch_env(
    shared: _SharedEnv, opened: tuple[lmdb.Environment, Any, Any], data_id: tuple[int, int] | None
) -> None:
    """Make every user of ``shared`` use the environment ``opened`` (of a compacted log
    directory swapped in), then close the old one. Call it holding ``_envs_lock``.

    Blocks on: the transactions of this process in progress."""
    with shared.lock.exclusive():
        old = shared.env
        shared.env, shared.meta_db, shared.log_db = opened
        shared.data_id = data_id
    old.close()


def _release_env(path: str, shared: _SharedEnv) -> None:
    with _envs_lock:
        shared.users -= 1
        if shared.users == 0:
            del _envs[path]
            shared.env.close()


def _new_env(
    path: str, *, readonly: bool, map_size: int, sync: bool
) -> tuple[lmdb.Environment, Any, Any]:
    """Open the environment and its two databases; return ``(env, meta_db, log_db)``.

    A reader's is opened read-only: it never begins a write transaction, so it never takes
    LMDB's writer lock (nor waits for a writer's commit in progress to open)."""
    create = not readonly
    if not create and not os.path.exists(os.path.join(path, _DATA_FILE)):
        raise FormatError(
            f"{path} holds no flume log (no data.mdb): this is not a flume database, "
            "or its log was deleted; point flume at the right directory"
        )
    _check_not_truncated(os.path.join(path, _DATA_FILE))
    # On read-only media nothing can be written, not even the lock file, and no writer can
    # run: open the environment read-only and without locks there.
    frozen = not create and fs.read_only_media(path)
    try:
        env = lmdb.open(
            path,
            map_size=max(map_size, _current_file_size(path)),
            subdir=True,
            max_dbs=2,
            max_readers=_MAX_READERS,
            sync=sync,
            metasync=sync,
            readahead=False,
            create=create,
            readonly=readonly,
            lock=not frozen,
        )
    except lmdb.InvalidError as e:
        raise CorruptionError(
            f"{path}/data.mdb is not a valid LMDB file ({e}); the log is damaged: restore "
            "the directory from a copy"
        ) from None
    except lmdb.Error as e:
        if isinstance(e, lmdb.ReadonlyError) or "Permission denied" in str(e):
            raise fs.permission_denied(path, str(e)) from None
        if fs.is_disk_full(path, str(e)):
            raise fs.disk_full(path, "the log could not be created", str(e)) from None
        raise FormatError(f"cannot open the log at {path}: {e}") from None
    try:
        meta_db, log_db = _open_dbs(env, path, create=create)
    except lmdb.Error as e:
        env.close()
        if fs.is_disk_full(path, str(e)):
            raise fs.disk_full(path, "the log could not be created", str(e)) from None
        raise fs.storage_error(path, "the log could not be created", str(e)) from None
    except BaseException:
        env.close()
        raise
    return env, meta_db, log_db


def _open_dbs(env: lmdb.Environment, path: str, *, create: bool) -> tuple[Any, Any]:
    try:
        with env.begin(write=False) as txn:
            existing = txn.get(b"meta") is not None
    except lmdb.Error as e:
        raise CorruptionError(
            f"{path}/data.mdb cannot be read ({e}); restore it from a copy"
        ) from None
    if not existing:
        if not create:
            raise FormatError(f"{path} holds an LMDB environment but no flume log")
        with env.begin(write=True) as txn:
            if txn.stat()["entries"]:
                raise FormatError(
                    f"{path} holds an LMDB environment that is not a flume log; "
                    "flume will not write into it"
                )
            meta_db = env.open_db(b"meta", txn=txn)
            log_db = env.open_db(b"log", txn=txn)
            txn.put(b"format", _format_record(1), db=meta_db)
        return meta_db, log_db
    try:
        meta_db = env.open_db(b"meta", create=False)
        log_db = env.open_db(b"log", create=False)
    except lmdb.Error as e:
        raise FormatError(
            f"{path} holds an LMDB environment that is not a flume log ({e})"
        ) from None
    with env.begin(write=False) as txn:
        raw = txn.get(b"format", db=meta_db)
    _check_format(path, raw)
    return meta_db, log_db


def _format_record(version: int) -> bytes:
    return codec.encode({"name": FORMAT_NAME, "version": version})


def _check_format(path: str, raw: bytes | None) -> None:
    try:
        meta = codec.decode(raw) if raw is not None else None
    except CorruptionError:
        meta = None
    if not isinstance(meta, dict) or meta.get("name") != FORMAT_NAME:
        raise FormatError(f"{path} holds an LMDB environment with no flume format record")
    version = meta.get("version")
    if version not in _READABLE_VERSIONS:
        raise FormatError(
            f"{path} is a flume log of format version {version!r}, and this flume reads "
            f"versions {', '.join(map(str, _READABLE_VERSIONS))}; open it with the flume "
            "release that wrote it (nothing was changed)"
        )


# LMDB's meta page layout on 64-bit little-endian platforms (mdb.c: a 16-byte page header,
# then MDB_meta).
_MDB_MAGIC = 0xBEEFC0DE
_META_MAGIC = 16  # uint32 mm_magic
_META_PAGESIZE = 40  # mm_dbs[FREE_DBI].md_pad holds the page size
_META_LAST_PAGE = 136  # size_t mm_last_pg, then size_t mm_txnid
_MIN_PAGE = 4096


class _FileDamage(NamedTuple):
    """What the meta pages of an LMDB data file say is wrong with it: ``unmappable`` when the
    file is shorter than they need (mapping it would fault), else a damaged meta page."""

    unmappable: bool
    problem: str


def _read_meta_pages(data: str) -> _FileDamage | None:
    """Read the two meta pages of the LMDB data file ``data`` without mapping it; the damage
    they show, or None (also on a platform whose layout this does not read).

    Raises:
        OSError: the file cannot be read.
    """
    if sys.maxsize <= 2**32 or sys.byteorder != "little":
        return None
    with open(data, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(2 * 65536)
    page_size = struct.unpack_from("<I", head, _META_PAGESIZE)[0] if len(head) >= 44 else 0
    valid = page_size >= _MIN_PAGE and not page_size & (page_size - 1)
    if len(head) < 2 * _MIN_PAGE or (valid and len(head) < 2 * page_size):
        return _FileDamage(True, (
            f"{data} is truncated to {size:,} bytes (an LMDB file holds at least two pages)"
        ))
    if not valid:
        return _FileDamage(False, f"{data}: the first meta page is damaged (page size {page_size})")
    metas = []
    for i in (0, 1):
        base = i * page_size
        if struct.unpack_from("<I", head, base + _META_MAGIC)[0] != _MDB_MAGIC:
            return _FileDamage(False, f"{data}: meta page {i} is damaged (not an LMDB meta page)")
        last_page, txnid = struct.unpack_from("<QQ", head, base + _META_LAST_PAGE)
        metas.append((txnid, last_page))
    _, last_page = max(metas)
    needed = (last_page + 1) * page_size
    if size < needed:
        return _FileDamage(True, (
            f"{data} is truncated: {size:,} bytes, but its last committed transaction uses "
            f"{needed:,} bytes"
        ))
    return None


def _check_not_truncated(data: str) -> None:
    """Refuse a data file shorter than its last committed transaction needs, before LMDB maps
    it: reading a page past the end of a mapped file kills the process with SIGBUS. (Bad meta
    pages are left to LMDB, which reports them as MDB_INVALID.)"""
    try:
        if os.path.getsize(data) == 0:
            return  # a new (empty) file
    except OSError:
        return
    damage = _read_meta_pages(data)
    if damage is not None and damage.unmappable:
        raise CorruptionError(
            f"{damage.problem}; the log is damaged: restore the directory from a copy "
            "(nothing was changed)"
        )


def _error_text(e: BaseException) -> str:
    return str(e) if isinstance(e, FlumeError) else f"{type(e).__name__}: {e}"


def _current_file_size(path: str) -> int:
    try:
        return os.path.getsize(os.path.join(path, _DATA_FILE))
    except OSError:
        return 0


def _last_delete(txn: Any, meta_db: Any) -> int:
    """The number of the journal's last delete in ``txn``, or -1."""
    cursor = txn.cursor(db=meta_db)
    if cursor.set_range(_JOURNAL_END):
        if not cursor.prev():
            return -1
    elif not cursor.last():
        return -1
    key = cursor.key()
    if not key.startswith(_JOURNAL) or len(key) != len(_JOURNAL) + SEQ_BYTES:
        return -1
    return int.from_bytes(key[len(_JOURNAL) :], "big")


class FileCheck(NamedTuple):
    """What :meth:`LmdbLog.check_file` found: the log's data file (``path``), its size in
    bytes (0 when missing), and ``problems``, one sentence each (empty when intact)."""

    path: str
    size: int
    problems: list[str]


class EntriesCheck(NamedTuple):
    """What :meth:`LmdbLog.check_entries` found: ``since`` (the last seq, -1 when empty or
    unknown), how many ``entries`` were read, and ``problems`` (empty when intact)."""

    since: int
    entries: int
    problems: list[str]


class _Pending:
    """One append (or, with ``deletes``, one delete of those seqs) waiting in the group-commit
    queue. Its thread blocks on ``wake`` (held from creation), which is released once: when
    ``done`` (``last``, ``records`` or ``error`` set), or when it is handed the lead (``lead``)
    and commits the queue itself."""

    __slots__ = ("encoded", "deletes", "forget", "records", "last", "error", "done", "lead", "wake")

    def __init__(
        self, encoded: list[bytes], deletes: list[int] | None = None, forget: bool = False
    ) -> None:
        self.encoded = encoded
        self.deletes = deletes
        self.forget = forget  # erase the values the journal keeps (forget_deleted)
        self.records: list[DeleteRecord] = []
        self.last = -1
        self.error: BaseException | None = None
        self.done = False
        self.lead = False
        self.wake = threading.Lock()
        self.wake.acquire()


class LmdbLog(BaseLog):
    """The log in an LMDB environment at ``path`` (usually ``<db dir>/log``).

    Args:
        path: the environment's directory; created when missing unless ``readonly``.
        readonly: open for reading only (several processes may, next to one writer).
        sync: ``True`` (default) makes every commit durable (an fsync) before ``append``
            returns: an acknowledged append survives ``kill -9`` and power loss.
            ``False`` skips the fsync: much faster, and a process crash still loses nothing
            that returned, but an OS crash or power loss can lose the latest appends and, as
            LMDB does not order its writes without fsync, may damage the log.

    Raises:
        FormatError: not a flume log, or one of an unknown format version (never overwritten).
        CorruptionError: the LMDB file is damaged.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        sync: bool = True,
        _map_size: int = _INITIAL_MAP_SIZE,
    ) -> None:
        super().__init__(readonly=readonly)
        self.dir = os.fspath(path)
        self._path = os.path.realpath(self.dir)
        if not readonly:
            try:
                lmdb_compact.recover(self._path)  # what a compaction that died left behind
                os.makedirs(self._path, exist_ok=True)
            except PermissionError as e:
                raise fs.permission_denied(e.filename or self._path, e.strerror or "") from None
        self._shared = _open_env(self._path, readonly=readonly, map_size=_map_size, sync=sync)
        self._rw = self._shared.lock
        self._sync = sync
        # Group commit: appends queue here; one of them, the leader, commits the queue. While
        # _committing, the queue is someone's to commit; when not, it is empty.
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._idle = threading.Condition(self._queue_lock)  # notified when _committing ends
        self._committing = False
        self._gather_wake: Any = None  # the lock a gathering leader waits on, or None
        self._gather_want = 0
        self._last_batch = 1
        self._page_size: int = self._env.stat()["psize"]
        last, deletes = self._read_ends()
        self.since.set(last)
        self.deletes.set(deletes)

    # The environment and the log's handle are read from the shared record at each use: another
    # open in this process may reopen the environment (see _open_env), never under a transaction.
    @property
    def _env(self) -> lmdb.Environment:
        return self._shared.env

    @property
    def _db(self) -> Any:
        return self._shared.log_db

    # -- reading -------------------------------------------------------------------------------

    def _begin_read(self) -> Any:
        """Take the shared lock and begin a read transaction; the caller ends both with
        :meth:`_end_read`. A map another process grew is adopted first (with no txn of ours
        open)."""
        rw = self._rw
        while True:
            rw.acquire_shared()
            try:
                if self._closed:
                    # Checked under the lock: close() waits for the transactions that began.
                    raise ClosedError("the log is closed; open the database again to use it")
                return self._env.begin(db=self._db, write=False)
            except lmdb.MapResizedError:
                rw.release_shared()
            except BaseException:
                rw.release_shared()
                raise
            with rw.exclusive():
                self._env.set_mapsize(0)

    def _end_read(self, txn: Any) -> None:
        txn.abort()
        self._rw.release_shared()

    def _damaged(self, e: BaseException) -> CorruptionError:
        return CorruptionError(
            f"{self.dir}: the log is damaged ({type(e).__name__}: {e}); run "
            "`flume verify` and restore it from a copy"
        )

    @contextmanager
    def _read_txn(self) -> Iterator[Any]:
        txn = self._begin_read()
        try:
            yield txn
        except _DAMAGE as e:
            raise self._damaged(e) from None
        finally:
            self._end_read(txn)

    def _read_ends(self) -> tuple[int, int]:
        """The last seq and the number of the last delete, read together."""
        with self._read_txn() as txn:
            cursor = txn.cursor()
            if not cursor.last():
                return -1, -1
            key = cursor.key()
            if len(key) != SEQ_BYTES:
                raise CorruptionError(
                    f"{self.dir}: the log holds a key that is not a seq ({key!r})"
                )
            return int.from_bytes(key, "big"), _last_delete(txn, self._shared.meta_db)

    def refresh(self) -> int:
        """Re-read the last seq (and delete) another process committed; update and return
        ``since``.

        A reader first follows a compaction of the log (a new ``data.mdb``, see
        :meth:`compact`): it reopens its environment on the compacted directory.

        Blocks on: a read transaction; after a compaction, this process's transactions
        in progress (the reopen)."""
        if self.readonly and not self._closed:
            self._follow_compaction()
            last, deletes = self._read_ends()
            if deletes != self.deletes.value:
                self.deletes.set(deletes)
            if last != self.since.value:
                self.since.set(last)
        return self.since.value

    def read_deletes(self, start: int, end: int) -> list[DeleteRecord]:
        out: list[DeleteRecord] = []
        if start > end:
            return out
        with self._read_txn() as txn:
            cursor = txn.cursor(db=self._shared.meta_db)
            if not cursor.set_range(_JOURNAL + seq_key(max(start, 0))):
                return out
            for key, value in cursor.iternext(keys=True, values=True):
                if not key.startswith(_JOURNAL):
                    break
                number = int.from_bytes(key[len(_JOURNAL) :], "big")
                if number > end:
                    break
                seq, old = codec.decode(value)
                out.append(DeleteRecord(number, seq, old))
        return out

    def reclaimable_bytes(self) -> int:
        """About how much of the file a :meth:`compact` would give back: its free pages (which
        hold the bytes of overwritten and deleted values) and the deleted values the journal
        keeps. Blocks on a read transaction."""
        with self._read_txn() as txn:
            used = 2  # the meta pages
            for db in (None, self._shared.meta_db, self._db):
                stat = txn.stat(db) if db is not None else self._env.stat()
                used += stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
            last_page = self._env.info()["last_pgno"]
            kept = sum(len(r.old) for r in self._journal_in(txn) if r.old is not None)
        return max(0, last_page + 1 - used) * self._page_size + kept

    def forget_deleted(self) -> int:
        """Erase the values the delete journal keeps (each record keeps its seq), in one
        durable commit; return how many it erased. What compaction does first: afterwards no
        view that missed a delete can be updated for it, only rebuilt.

        Blocks on: the commits in progress (it is queued like them).

        Raises:
            ReadOnlyError, ClosedError; StorageError when the disk refuses the commit.
        """
        self._check_writable()
        return len(self._run(_Pending([], forget=True)).records)

    def _get_raw(self, seq: int) -> bytes | None:
        # The hot path of get(): no context manager (two generators) around one lookup.
        txn = self._begin_read()
        try:
            raw: bytes | None = txn.get(seq_key(seq))
            return raw
        except _DAMAGE as e:
            raise self._damaged(e) from None
        finally:
            self._end_read(txn)

    def _get_raw_many(self, seqs: Sequence[int]) -> list[bytes | None]:
        txn = self._begin_read()  # as in _get_raw: the lookups of a small read are this cheap
        try:
            get = txn.get
            return [get(seq_key(seq)) if seq >= 0 else None for seq in seqs]
        except _DAMAGE as e:
            raise self._damaged(e) from None
        finally:
            self._end_read(txn)

    def read_raw(self, start: int, end: int, reverse: bool, n: int) -> list[tuple[int, bytes]]:
        if start > end or n <= 0:
            return []
        out: list[tuple[int, bytes]] = []
        with self._read_txn() as txn:
            cursor = txn.cursor()
            if reverse:
                if not cursor.set_range(seq_key(end)):
                    if not cursor.last():
                        return out
                elif cursor.key() != seq_key(end) and not cursor.prev():
                    return out
                for key, value in cursor.iterprev(keys=True, values=True):
                    seq = int.from_bytes(key, "big")
                    if seq < start or len(out) >= n:
                        break
                    out.append((seq, value))
            else:
                if not cursor.set_range(seq_key(start)):
                    return out
                first = int.from_bytes(cursor.key(), "big")
                # Seqs are dense, so the i-th value from `first` is seq `first + i`; the last
                # key read is checked, so a gap (a damaged log) cannot go unnoticed.
                limit = min(n, end - first + 1)
                values = list(islice(cursor.iternext(keys=False, values=True), limit))
                if not values:
                    return out
                last = first + len(values) - 1
                if len(values) < limit:
                    cursor.last()  # the values ran out: the last one read is the log's last
                if cursor.key() != seq_key(last):
                    raise CorruptionError(
                        f"{self.dir}: the log has a gap near seq {first}; it is damaged: "
                        "run `flume verify` and restore it from a copy"
                    )
                out = list(zip(range(first, last + 1), values))
        return out

    # -- checking ------------------------------------------------------------------------------

    @staticmethod
    def check_file(path: str | os.PathLike[str]) -> FileCheck:
        """Check the structure of the data file of the log at ``path`` without mapping it
        (reading a truncated LMDB file kills the reading process with SIGBUS): both meta
        pages are valid, and the file is as long as its last committed transaction needs.

        Raises:
            PermissionDeniedError: the file may not be read (not damage).
        """
        data = os.path.join(os.fspath(path), _DATA_FILE)
        found = fs.stat(data)
        if found is None:
            return FileCheck(data, 0, [f"{data} is missing"])
        try:
            damage = _read_meta_pages(data)
        except PermissionError as e:
            raise fs.permission_denied(data, e.strerror or "") from None
        return FileCheck(data, found.st_size, [] if damage is None else [damage.problem])

    @classmethod
    def check_entries(cls, path: str | os.PathLike[str], max_problems: int) -> EntriesCheck:
        """Open the log at ``path`` read-only and read every entry: its keys are the dense
        seqs ``0..since``, and every value decodes (or is a deleted entry's tombstone). Stops
        after ``max_problems`` problems.

        Run it only on a file :meth:`check_file` passes, and in a process of its own: LMDB
        aborts or faults, rather than raising, on some kinds of damaged pages.
        """
        try:
            log = cls(path, readonly=True)
        except Exception as e:  # noqa: BLE001 (any failure to open is a finding)
            return EntriesCheck(-1, 0, [_error_text(e)])
        problems: list[str] = []
        entries = 0
        try:
            since = log.since.value
            start = 0
            while start <= since and len(problems) < max_problems:
                try:
                    raw = log.read_raw(start, since, False, _CHECK_CHUNK)
                except Exception as e:  # noqa: BLE001 (any failure to read is a finding)
                    problems.append(f"the log cannot be read from seq {start} on: {_error_text(e)}")
                    break
                if not raw:
                    problems.append(f"seqs {start}..{since} are missing (the log ends early)")
                    break
                if raw[0][0] != start:
                    problems.append(f"seqs {start}..{raw[0][0] - 1} are missing (a gap in the log)")
                for seq, data in raw:
                    if data == TOMBSTONE:  # a deleted entry
                        entries += 1
                        continue
                    try:
                        codec.decode(data)
                    except FlumeError as e:
                        problems.append(f"the value at seq {seq} does not decode: {e}")
                        if len(problems) >= max_problems:
                            break
                    entries += 1
                start = raw[-1][0] + 1
        finally:
            log.close()
        return EntriesCheck(since, entries, problems)

    # -- writing -------------------------------------------------------------------------------

    def _commit(self, encoded: list[bytes]) -> int:
        return self._run(_Pending(encoded)).last

    def _commit_deletes(self, seqs: list[int]) -> list[DeleteRecord]:
        return self._run(_Pending([], deletes=seqs)).records

    def _run(self, request: _Pending) -> _Pending:
        """Queue ``request`` for the next group commit; return it once it is committed.

        Raises:
            what its commit raised (every request of that commit raises it)."""
        with self._queue_lock:
            self._queue.append(request)
            lead = not self._committing
            if lead:
                self._committing = True
            elif self._gather_wake is not None and len(self._queue) >= self._gather_want:
                self._gather_wake.release()  # the leader has all it waits for
                self._gather_wake = None
        if not lead:
            # Woken once, for this request alone: its commit is over, or it leads the next.
            try:
                request.wake.acquire()
            except BaseException:
                self._withdraw(request, leading=False)
                raise
            if not request.done:
                lead = True
        if lead:
            self._lead(request)
        if request.error is not None:
            raise request.error
        return request

    def _lead(self, request: _Pending) -> None:
        """Commit the queue (which holds ``request``) in one transaction, then hand the lead to
        the first append queued meanwhile and wake the others of the batch."""
        try:
            self._gather()
        except BaseException:
            self._withdraw(request, leading=True)
            raise
        with self._queue_lock:
            batch, self._queue = self._queue, []
        self._last_batch = len(batch)
        try:
            self._write_batch(batch)
        finally:
            self._pass_lead()
            for other in batch:
                if other is not request:
                    other.wake.release()

    def _gather(self) -> None:
        """When the last commit carried several appenders, wait briefly (far less than an
        fsync) for as many to queue again: threads woken by that commit are still on their way
        back, and without the wait the first of them would commit alone. A lone appender never
        waits (its last batch was 1). Only the append that completes the count wakes the
        leader, not every one that queues."""
        want = self._last_batch
        with self._queue_lock:
            if want <= 1 or len(self._queue) >= want:
                return
            wake = threading.Lock()
            wake.acquire()
            self._gather_wake, self._gather_want = wake, want
        try:
            wake.acquire(timeout=_GATHER_SECONDS)
        finally:
            with self._queue_lock:
                self._gather_wake = None

    def _pass_lead(self) -> None:
        """Hand the lead to the first queued append, or end committing when none is queued."""
        with self._queue_lock:
            if self._queue:
                head = self._queue[0]
                head.lead = True
                head.wake.release()
            else:
                self._committing = False
                self._idle.notify_all()

    def _withdraw(self, request: _Pending, *, leading: bool) -> None:
        """An append interrupted while it waited (KeyboardInterrupt): take it out of the queue
        if no commit has taken it (then nothing of it is written), and pass on the lead if it
        led, or had been handed the lead."""
        with self._queue_lock:
            if request in self._queue:
                self._queue.remove(request)
            leading = leading or (request.lead and not request.done)
        if leading:
            self._pass_lead()

    def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            self._check_writable()
            last = self._put_with_growth(batch)
        except BaseException as e:
            for request in batch:
                request.error = e
                request.done = True
            return
        for request in batch:
            request.done = True
        deleted = [r.records[-1].number for r in batch if r.records and not r.forget]
        if deleted:
            self.deletes.set(max(deleted))
        self.since.set(last)

    def _put_with_growth(self, batch: list[_Pending]) -> int:
        self._make_room(batch)
        while True:
            try:
                with self._rw.shared():
                    txn = self._env.begin(db=self._db, write=True)
                    try:
                        cursor = txn.cursor()
                        seq = self._next_seq(cursor)
                        for request in batch:
                            if request.forget:
                                request.records = self._erase_journal_values(txn)
                                continue
                            if request.deletes is not None:
                                request.records = self._put_deletes(txn, request.deletes)
                                continue
                            items = [
                                (seq_key(seq + i), data) for i, data in enumerate(request.encoded)
                            ]
                            _, added = cursor.putmulti(items, append=True)
                            if added != len(items):
                                raise CorruptionError(
                                    f"{self.dir}: LMDB refused to append at seq {seq}; "
                                    "the log's keys are out of order (damaged)"
                                )
                            seq += len(items)
                            request.last = seq - 1
                    except lmdb.MapFullError:
                        pass  # aborted below, once no read transaction of ours runs
                    except BaseException:
                        txn.abort()
                        raise
                    else:
                        txn.commit()
                        return seq - 1
                # The estimate fell short. Aborting a transaction that filled the map while
                # other threads read can hang py-lmdb 3.0: abort it with the readers held off.
                with self._rw.exclusive():
                    txn.abort()
                self._grow()
            except _DAMAGE as e:
                raise CorruptionError(
                    f"{self.dir}: the log is damaged ({type(e).__name__}: {e}); nothing was "
                    "appended: run `flume verify` and restore it from a copy"
                ) from None
            except lmdb.Error as e:
                # The commit failed and LMDB kept the log as it was: nothing of this batch is
                # in it, and later commits work again once the disk does.
                raise self._write_failed(
                    e, "the values of this append were not written (the log holds everything "
                    "appended before them)"
                ) from None

    def _erase_journal_values(self, txn: Any) -> list[DeleteRecord]:
        meta_db = self._shared.meta_db
        erased = []
        for record in self._journal_in(txn):
            if record.old is not None:
                key = _JOURNAL + seq_key(record.number)
                txn.put(key, codec.encode([record.seq, None]), db=meta_db)
                erased.append(record)
        return erased

    def _put_deletes(self, txn: Any, seqs: list[int]) -> list[DeleteRecord]:
        """Tombstone ``seqs`` (those not deleted yet) and journal them in ``txn``."""
        meta_db = self._shared.meta_db
        number = _last_delete(txn, meta_db) + 1
        records = []
        for seq in seqs:
            key = seq_key(seq)
            old = txn.get(key)
            if old is None:
                raise CorruptionError(
                    f"{self.dir}: seq {seq} is missing from the log below its last seq; it is "
                    "damaged: run `flume verify` and restore it from a copy"
                )
            if old == TOMBSTONE:
                continue
            txn.put(key, TOMBSTONE)
            txn.put(_JOURNAL + seq_key(number), codec.encode([seq, old]), db=meta_db)
            records.append(DeleteRecord(number, seq, old))
            number += 1
        if records:
            txn.put(b"format", _format_record(FORMAT_VERSION), db=meta_db)
        return records

    def _journal_in(self, txn: Any) -> list[DeleteRecord]:
        cursor = txn.cursor(db=self._shared.meta_db)
        out: list[DeleteRecord] = []
        if not cursor.set_range(_JOURNAL):
            return out
        for key, value in cursor.iternext(keys=True, values=True):
            if not key.startswith(_JOURNAL):
                break
            seq, old = codec.decode(value)
            out.append(DeleteRecord(int.from_bytes(key[len(_JOURNAL) :], "big"), seq, old))
        return out

    def _write_failed(self, e: lmdb.Error, what: str) -> StorageError:
        if fs.is_disk_full(self._path, str(e)):
            return fs.disk_full(self._path, what, str(e))
        return fs.storage_error(self._path, what, str(e))

    def _next_seq(self, cursor: Any) -> int:
        if not cursor.last():
            return 0
        return int.from_bytes(cursor.key(), "big") + 1

    def _make_room(self, batch: list[_Pending]) -> None:
        """Grow the map before a commit that might not fit, rather than after MapFullError.

        Growing ahead is cheaper (no failed transaction) and avoids aborting a write
        transaction that filled the map while other threads read, which can hang py-lmdb 3.0.
        The estimate is generous: twice the payload plus a page per value for the B-tree and
        free pages, so MapFullError stays the rare fallback.
        """
        with self._rw.shared():
            info = self._env.info()
        page = self._page_size
        used = (info["last_pgno"] + 1) * page
        payload = sum(len(data) + page for request in batch for data in request.encoded)
        needed = used + 2 * payload + 64 * page
        if needed > info["map_size"]:
            self._grow(needed)

    def _grow(self, at_least: int = 0) -> None:
        with self._rw.exclusive():
            size = self._env.info()["map_size"]
            target = size * 2
            while target < at_least:
                target *= 2
            self._env.set_mapsize(target)

    # -- compacting ----------------------------------------------------------------------------

    def compact(self) -> None:
        """Rewrite the log so that no free page of its file survives (the bytes of overwritten
        or deleted values, which LMDB keeps in free pages until it reuses them), and swap the
        compacted directory in for ``log/`` (see :mod:`flume.logs.lmdb_compact`).

        Appends are held from the start of the copy until the swap is done, then go on (an
        append from another thread meanwhile waits, then gets its seq as usual). Readers in
        this process switch to the new file at once; readers in other processes go on reading
        the old one (whole, though no longer in the directory) and switch at their next
        ``refresh()``. A ``kill -9`` at any moment leaves a log with every committed entry;
        the next writer open removes what the compaction left behind.

        Needs as much free disk as the entries take. It requires this log to be the only
        writer of its directory (as flume's writer lock ensures).

        Blocks on: a commit in progress; reading and writing every page in use (about the
        time of a file copy); then this process's read transactions in progress (the switch).

        Raises:
            ReadOnlyError: a reader's log. ClosedError: the log is closed.
            CompactionError: the copy or the swap failed (no space, I/O error); the log is
                as it was.
        """
        self._check_writable()
        with self._idle:
            while self._committing:
                self._idle.wait()
            self._committing = True  # appends queue up behind, as behind a commit
        try:
            self._check_writable()
            compaction = lmdb_compact.Compaction(self._path)
            with self._rw.shared():
                map_size = self._env.info()["map_size"]
                dbs = [(b"meta", self._shared.meta_db), (b"log", self._shared.log_db)]
                compaction.copy(self._env, dbs, map_size)
            try:
                # Opened at its temporary name, before any other process can see it there.
                opened = _new_env(
                    compaction.new_path, readonly=False, map_size=map_size,
                    sync=self._shared.sync,
                )
            except BaseException:
                compaction.abandon()
                raise
            new_id = lmdb_compact.data_id(compaction.new_path)
            # Under _envs_lock: no reader of this process may open the new file itself (one
            # environment per file per process) between the swap and the switch.
            with _envs_lock:
                try:
                    compaction.swap()
                except BaseException:
                    opened[0].close()
                    raise
                _switch_env(self._shared, opened, new_id)
            compaction.finish()
        finally:
            self._pass_lead()

    def _follow_compaction(self) -> None:
        """When the log directory was swapped for a compacted one since this process opened
        its environment, open the new one and switch every user in this process to it (one
        stat when it was not). Keeps the old one if the new cannot be opened.

        Raises:
            FormatError / CorruptionError / PermissionDeniedError: the new one cannot be
                opened (the old one stays in use).
        """
        shared = self._shared
        current = lmdb_compact.data_id(self._path)
        if current is None or current == shared.data_id:
            return  # the same file, or a swap by two renames in progress
        with _envs_lock:
            current = lmdb_compact.data_id(self._path)  # read before the open, as at open
            if current is None or current == shared.data_id or self._closed:
                return
            with self._rw.shared():
                map_size = shared.env.info()["map_size"]
            opened = _new_env(
                self._path, readonly=shared.readonly, map_size=map_size, sync=shared.sync
            )
            _switch_env(shared, opened, current)

    # -- closing -------------------------------------------------------------------------------

    def _close_storage(self) -> None:
        with self._idle:
            while self._committing:
                self._idle.wait()
        # Let read transactions other threads began end (later ones see the log closed):
        # closing the environment under them would fail them with a raw lmdb.Error.
        with self._rw.exclusive():
            pass
        try:
            if not self.readonly and not self._sync:
                try:
                    with self._rw.shared():
                        self._env.sync(True)
                except lmdb.Error as e:
                    raise self._write_failed(
                        e, "the latest appends (made with sync=False) may not be durable"
                    ) from None
        finally:
            _release_env(self._path, self._shared)
