"""View stores: where views keep their state. ``RocksStore`` on disk, ``MemoryStore`` in memory.

A store holds one keyspace (a *family*) per view plus one meta record per view (its ``since``,
``version``, kind and definition). A :class:`StoreBatch` collects puts and deletes to any
family and meta records, and ``write()`` commits them atomically: this is how a view's data and
its ``since`` always move together.

Bounded scans seek and check keys in Python rather than using RocksDB iterator bounds, which
rocksdict does not set reliably (see the engine notes in the design docs).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol, cast

from rocksdict import (
    AccessType,
    BottommostLevelCompaction,
    CompactOptions,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from flume import codec, fs
from flume.errors import ClosedError, CorruptionError, FlumeError, FormatError, ReadOnlyError

META_FAMILY = "__flume_meta__"
# How long RocksStore.compact() waits for other threads' scans to let go of the database.
_REOPEN_WAIT = 10.0


class Family(Protocol):
    """One view's keyspace: bytes keys in bytewise order, bytes values. Reads see what the
    store's last ``write`` (or, for a reader, its last ``catch_up``) committed. Each call
    blocks on the storage engine only; a store that cannot read raises
    :class:`~flume.CorruptionError` (damage) or :class:`~flume.StorageError`."""

    def get(self, key: bytes) -> bytes | None:
        """The value at ``key``, or None."""
        ...

    def scan(
        self, lower: bytes, upper: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs with ``lower <= key < upper`` (``upper`` None: no end),
        ascending, or descending with ``reverse``."""
        ...

    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        """The keys in ``[lower, upper)`` (``upper`` None: to the end), ascending, without
        their values (what a count from the keys alone reads)."""
        ...


class StoreBatch(Protocol):
    """Changes to several families, written together by :meth:`Store.write`, all or none."""

    def put(self, family: str, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value`` in ``family``."""
        ...

    def delete(self, family: str, key: bytes) -> None:
        """Remove ``key`` from ``family`` (nothing if absent)."""
        ...

    def put_meta(self, family: str, meta: dict[str, Any]) -> None:
        """Set the meta record of the view ``family`` (kind, version, definition, fingerprint,
        since): it moves only together with the view's data."""
        ...


class Store(Protocol):
    """What the db needs of a view store. ``RocksStore`` and ``MemoryStore`` implement it;
    ``flume.testing.ViewConformance`` and ``OnDiskViewConformance`` run views on them.

    - ``family(name)``: the view's keyspace (created on first write).
    - ``read_meta(name)`` / ``all_meta()``: the stored meta records, by view name.
    - ``batch()`` then ``write(batch)``: one atomic, durable write of data and meta records
      (the indexer's only write path). Raises DiskFullError when the disk is full (nothing is
      written) and StorageError otherwise.
    - ``reset(metas)``: wipe each named view's data and store its new meta record, in one
      atomic write (rebuild, re-declaration). ``drop(name)``: delete a view's data and meta.
    - ``catch_up(reopen=False)``: for a reader of a store another process writes, see what
      it has committed since (``reopen``: open a fresh copy); nothing for a writer.
    - ``compact()``: a writer's store rewrites its files so that the bytes of deleted keys
      and values are in none of them (nothing for a store in memory).
    - ``readonly``: a reader's store, whose writes raise. ``close()``: idempotent.
    """

    readonly: bool

    def family(self, name: str) -> Family: ...
    def read_meta(self, name: str) -> dict[str, Any] | None: ...
    def all_meta(self) -> dict[str, dict[str, Any]]: ...
    def batch(self) -> StoreBatch: ...
    def write(self, batch: StoreBatch) -> None: ...
    def reset(self, metas: dict[str, dict[str, Any]]) -> None: ...
    def drop(self, name: str) -> None: ...
    def catch_up(self, reopen: bool = False) -> None: ...
    def compact(self) -> None: ...
    def close(self) -> None: ...


# -- in memory ---------------------------------------------------------------------------------


class MemoryFamily:
    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._values: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def scan(
        self, lower: bytes, upper: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = self._keys
        i = bisect.bisect_left(keys, lower)
        j = len(keys) if upper is None else bisect.bisect_left(keys, upper)
        # Snapshot the slice: a concurrent write must not shift what this scan reads.
        window = keys[i:j]
        if reverse:
            window.reverse()
        values = self._values
        for key in window:
            value = values.get(key)
            if value is not None:
                yield key, value

    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        keys = self._keys
        i = bisect.bisect_left(keys, lower)
        j = len(keys) if upper is None else bisect.bisect_left(keys, upper)
        return iter(keys[i:j])

    def _put(self, key: bytes, value: bytes) -> None:
        if key not in self._values:
            bisect.insort(self._keys, key)
        self._values[key] = value

    def _delete(self, key: bytes) -> None:
        if self._values.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]


class _MemoryHandle:
    """A family by name, so that a wiped (replaced) family is never read through a stale one."""

    def __init__(self, store: MemoryStore, name: str) -> None:
        self._store = store
        self._name = name

    def get(self, key: bytes) -> bytes | None:
        return self._store._family(self._name).get(key)

    def scan(
        self, lower: bytes, upper: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._store._family(self._name).scan(lower, upper, reverse)

    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        return self._store._family(self._name).keys(lower, upper)


class MemoryBatch:
    def __init__(self) -> None:
        self.ops: list[tuple[str, str, bytes, bytes | None]] = []
        self.meta: dict[str, dict[str, Any]] = {}

    def put(self, family: str, key: bytes, value: bytes) -> None:
        self.ops.append(("put", family, key, value))

    def delete(self, family: str, key: bytes) -> None:
        self.ops.append(("delete", family, key, None))

    def put_meta(self, family: str, meta: dict[str, Any]) -> None:
        self.meta[family] = dict(meta)


class MemoryStore:
    """Views of a log without a directory: everything in dicts and sorted lists.

    ``readonly=True`` makes an empty store that nobody indexes into (a reader's stand-in
    for a writer's views that do not exist yet).
    """

    def __init__(self, readonly: bool = False) -> None:
        self.readonly = readonly
        self._families: dict[str, MemoryFamily] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def family(self, name: str) -> Family:
        with self._lock:
            self._families.setdefault(name, MemoryFamily())
        return _MemoryHandle(self, name)

    def _family(self, name: str) -> MemoryFamily:
        return self._families[name]

    def read_meta(self, name: str) -> dict[str, Any] | None:
        meta = self._meta.get(name)
        return None if meta is None else dict(meta)

    def all_meta(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._meta.items()}

    def batch(self) -> MemoryBatch:
        return MemoryBatch()

    def write(self, batch: StoreBatch) -> None:
        assert isinstance(batch, MemoryBatch)
        with self._lock:
            for op, name, key, value in batch.ops:
                fam = self._families.setdefault(name, MemoryFamily())
                if op == "put":
                    assert value is not None
                    fam._put(key, value)
                else:
                    fam._delete(key)
            self._meta.update(batch.meta)

    def reset(self, metas: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            for name, meta in metas.items():
                self._families[name] = MemoryFamily()
                self._meta[name] = dict(meta)

    def drop(self, name: str) -> None:
        with self._lock:
            self._meta.pop(name, None)
            self._families.pop(name, None)

    def catch_up(self, reopen: bool = False) -> None:
        pass

    def compact(self) -> None:
        """Nothing: a store in memory keeps no deleted bytes."""

    def close(self) -> None:
        pass


# -- RocksDB -----------------------------------------------------------------------------------


def _options() -> Options:
    # raw_mode in every process: rocksdict rewrites its config file on every open, and a
    # non-raw open would flip a raw database into one it can no longer read.
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    # RocksDB opens files with a pool of 16 threads by default, and a secondary instance starts
    # that pool on every catch-up: 2-3 ms per column family. One thread makes it ~30 µs.
    opts.set_max_file_opening_threads(1)
    # Bounded memory however many views: memtables of all families share 64 MB (RocksDB's
    # default is 64 MB per family, times two), which also bounds the WAL replayed on reopen.
    opts.set_db_write_buffer_size(64 << 20)
    opts.set_write_buffer_size(16 << 20)
    opts.set_max_write_buffer_number(2)
    return opts


class RocksFamily:
    """A column family by name, resolved at each call: a wiped view's family is dropped and
    created anew, and no handle to the old one may linger."""

    def __init__(self, store: RocksStore, name: str) -> None:
        self._store = store
        self._name = name

    def get(self, key: bytes) -> bytes | None:
        fam = self._store._cf(self._name)
        try:
            value = fam.get(key)
        except Exception as e:
            if "Corruption" in str(e) or "IO error" in str(e):
                raise self._store._damaged(e) from None
            raise
        return None if value is None else bytes(value)

    def scan(
        self, lower: bytes, upper: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        it = self._store._cf(self._name).iter()
        try:
            if reverse:
                if upper is None:
                    it.seek_to_last()
                else:
                    it.seek_for_prev(upper)
                    if it.valid() and it.key() >= upper:
                        it.prev()
                while it.valid():
                    key = it.key()
                    if key < lower:
                        return
                    yield key, it.value()
                    it.prev()
                _check_status(self._store, it)
            else:
                it.seek(lower)
                while it.valid():
                    key = it.key()
                    if upper is not None and key >= upper:
                        return
                    yield key, it.value()
                    it.next()
                _check_status(self._store, it)
        finally:
            # An iterator alive at close() keeps RocksDB's LOCK held; drop it promptly.
            del it


    def keys(self, lower: bytes, upper: bytes | None) -> Iterator[bytes]:
        # Keys only: values are never copied into Python. takewhile with a C comparison, not
        # a generator: this is the loop of every count from the keys.
        keys = cast(Iterator[bytes], self._store._cf(self._name).keys(from_key=lower))
        return keys if upper is None else itertools.takewhile(upper.__gt__, keys)


def _check_status(store: RocksStore, it: Any) -> None:
    """An iterator stops (``valid()`` False) at the end of the data or on an error, such as
    a block whose checksum fails: tell them apart, so damage never reads as fewer entries."""
    status = getattr(it, "status", None)
    if status is None:
        return
    try:
        status()
    except Exception as e:
        raise store._damaged(e) from None


class _EmptyFamily:
    def get(self, key: bytes) -> None:
        return None

    def iter(self) -> Any:
        return _EmptyIter()

    def keys(self, from_key: bytes = b"") -> Iterator[bytes]:
        return iter(())


class _EmptyIter:
    def seek(self, key: bytes) -> None: ...
    def seek_to_last(self) -> None: ...
    def seek_for_prev(self, key: bytes) -> None: ...
    def valid(self) -> bool:
        return False


_EMPTY: Any = _EmptyFamily()


class RocksBatch:
    def __init__(self, store: RocksStore) -> None:
        self._store = store
        # The column family handles it holds belong to this opening of the database.
        self.generation = store._generation
        self.wb = WriteBatch(raw_mode=True)
        self._handles = store._handles

    def put(self, family: str, key: bytes, value: bytes) -> None:
        handle = self._handles.get(family)
        if handle is None:
            handle = self._store._handle(family)
        self.wb.put(key, value, handle)

    def delete(self, family: str, key: bytes) -> None:
        self.wb.delete(key, self._store._handle(family))

    def put_meta(self, family: str, meta: dict[str, Any]) -> None:
        self.wb.put(family.encode(), codec.encode(meta), self._store._handle(META_FAMILY))


# A reader's secondary directory is named ``flume-secondary-<pid>-<random>`` and holds
# ``flume-secondary.lock``, on which its process holds an flock for as long as it uses it. Only
# directories with both the name and the lock file are ever removed by another process, and only
# when their lock can be taken: the kernel drops an flock when its holder exits however it exits,
# so a taken lock proves the owner gone (a pid alone does not: pids are reused).
_SECONDARY_PREFIX = "flume-secondary-"
_OWNER_FILE = "flume-secondary.lock"


class _SecondaryDir:
    """One secondary instance's private directory, and the lock that marks it in use.

    ``fd`` is None for a private temporary directory (made when the readers directory cannot
    be created), which no other process ever scans or removes."""

    def __init__(self, path: str, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    def remove(self) -> None:
        """Delete the directory, then release its lock (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _shadow_dir(path: str) -> _SecondaryDir:
    """A private directory of symlinks to the files of the RocksDB database at ``path``, for
    opening a database on read-only media: rocksdict rewrites its config file in the database
    directory on every open, and RocksDB writes its info log there. Open it read-only: files
    the database creates later (by a writer, which read-only media cannot have) are not
    linked."""
    shadow = tempfile.mkdtemp(prefix="flume-")
    try:
        for name in os.listdir(path):
            if name in ("LOCK", "LOG", "rocksdict-config.json") or name.startswith("LOG.old"):
                continue
            os.symlink(os.path.join(os.path.abspath(path), name), os.path.join(shadow, name))
    except BaseException:
        shutil.rmtree(shadow, ignore_errors=True)
        raise
    return _SecondaryDir(shadow, None)


def _make_secondary_dir(parent: str) -> _SecondaryDir:
    """A private directory for one secondary instance under ``parent`` (created when
    missing), locked by this process; then removes the directories there that flume's readers
    left behind when they died without closing. When ``parent`` cannot be created or written
    (read-only media), a private temporary directory instead, removed on close.

    Raises:
        OSError: not even a temporary directory can be made.
    """
    try:
        os.makedirs(parent, exist_ok=True)
        path = tempfile.mkdtemp(prefix=f"{_SECONDARY_PREFIX}{os.getpid()}-", dir=parent)
    except OSError:
        return _SecondaryDir(tempfile.mkdtemp(prefix="flume-"), None)
    try:
        fd = _lock_new_dir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        return _SecondaryDir(tempfile.mkdtemp(prefix="flume-"), None)
    fs.remove_abandoned(parent, _SECONDARY_PREFIX, _OWNER_FILE)
    return _SecondaryDir(path, fd)


def _lock_new_dir(path: str) -> int:
    """Create the lock file of the new directory ``path``, locked. It gets its marking name
    only once locked (a rename), so no other process can see it marked and unlocked."""
    staging = os.path.join(path, ".owner")
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"flume reader secondary instance, process {os.getpid()}\n".encode())
        os.rename(staging, os.path.join(path, _OWNER_FILE))
    except BaseException:
        os.close(fd)
        raise
    return fd


class RocksStore:
    """One RocksDB database at ``path`` (``<db dir>/views``), one column family per view.

    A read-only store opens RocksDB as a *secondary* instance with a private directory of its
    own under ``secondaries`` (default: ``readers/`` next to ``path``, in the database
    directory), removed on close, or by the next reader if this one died; when that directory
    cannot be created, in a private temporary directory removed on close. It sees the writer's
    commits after :meth:`catch_up`. On read-only media, where no writer can run, it opens a
    frozen read-only instance instead (through a private directory of links).

    A write that fails for lack of space leaves RocksDB refusing every later write: the store
    then reopens the database at the next :meth:`batch`, and raises ``DiskFullError`` until
    that succeeds.

    Raises:
        CorruptionError: RocksDB reports the database damaged.
        PermissionDeniedError: a file or directory of it is not accessible.
        DiskFullError: opening it for writing needs space its disk does not have.
        FormatError: it cannot be opened for another reason.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        secondaries: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        # Inside the database directory (the parent of its views/): never anywhere else, as
        # stale secondary directories are removed from there.
        self._secondaries = secondaries or os.path.join(
            os.path.dirname(os.path.abspath(self.path)), "readers"
        )
        self.readonly = readonly
        # Read-only media cannot have a live writer: a frozen read-only instance is exact.
        self._frozen = readonly and fs.read_only_media(self.path)
        self._lock = threading.RLock()
        # A write failed for lack of space (RocksDB refuses writes until reopened); and the
        # reopen failed too, so that no database is open.
        self._stalled = False
        self._detached = False
        self._generation = 0
        self._secondary_dir: _SecondaryDir | None = None
        self._families: dict[str, Rdict] = {}
        self._handles: dict[str, Any] = {}
        self._closed = False
        self._db = self._open()

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Whether a views database is at ``path`` (RocksDB's CURRENT file names its state).

        Raises:
            PermissionDeniedError: a directory on the way cannot be searched.
        """
        return fs.stat(os.path.join(os.fspath(path), "CURRENT")) is not None

    @staticmethod
    def lost_current(path: str | os.PathLike[str]) -> bool:
        """Whether the views database at ``path`` lost its CURRENT file while its other files
        remain: RocksDB would start a new database there and delete them as obsolete.

        Raises:
            PermissionDeniedError: a directory on the way cannot be searched.
        """
        path = os.fspath(path)
        return (
            not RocksStore.exists(path)
            and os.path.isdir(path)
            and any(n.startswith("MANIFEST-") or n.endswith(".sst") for n in fs.listdir(path))
        )

    @staticmethod
    def check_files(path: str | os.PathLike[str]) -> str | None:
        """The damage to the files of the views database at ``path`` that opening a read-only
        store does not report, as a sentence; None when there is none (or no database).

        It lost its CURRENT file while its other files remain (opening it for writing would
        start a new database and delete them as obsolete); or a table file cannot be opened,
        or its size or footer is wrong (a secondary instance, which a read-only store is,
        silently skips those). This opens the database read-only, which opens every table
        file; retried, as a running writer may delete a compacted file between the read of
        the MANIFEST and the opening of that file. On read-only media the check is the
        read-only store itself, and is skipped here.

        Raises:
            PermissionDeniedError: a file or directory of it may not be read (not damage).
        """
        path = os.fspath(path)
        if not RocksStore.exists(path):
            if RocksStore.lost_current(path):
                return (
                    f"the views database at {path} has lost its CURRENT file (opening the "
                    "database for writing moves it aside and rebuilds the views)"
                )
            return None
        if fs.read_only_media(path):
            return None
        problem = None
        for _ in range(3):
            try:
                names = Rdict.list_cf(path, _options())
                db = Rdict(
                    path,
                    _options(),
                    column_families={n: _options() for n in names if n != "default"},
                    access_type=AccessType.read_only(),
                )
            except Exception as e:
                if isinstance(e, PermissionError) or "Permission denied" in str(e):
                    raise fs.permission_denied(path, str(e)) from None
                problem = f"the views database cannot be opened: {path} is damaged ({e})"
                continue
            db.close()
            return None
        return problem

    def _open(self) -> Rdict:
        """Open the database (a secondary instance in a new private directory when readonly);
        sets ``_manifest``, ``_opened`` and ``_secondary_dir`` only when it succeeds."""
        manifest = self._current_manifest()
        existing = self._existing_families()
        families = {name: _options() for name in existing if name != "default"}
        secondary_dir = None
        try:
            if self._frozen:
                secondary_dir = _shadow_dir(self.path)
                db = Rdict(
                    secondary_dir.path,
                    _options(),
                    column_families=families,
                    access_type=AccessType.read_only(),
                )
            elif self.readonly:
                secondary_dir = _make_secondary_dir(self._secondaries)
                db = Rdict(
                    self.path,
                    _options(),
                    column_families=families,
                    access_type=AccessType.secondary(secondary_dir.path),
                )
            else:
                db = Rdict(self.path, _options(), column_families=families)
                if META_FAMILY not in existing:
                    db.create_column_family(META_FAMILY, _options())
        except Exception as e:
            if secondary_dir is not None:
                secondary_dir.remove()
            message = str(e)
            if isinstance(e, PermissionError) or "Permission denied" in message:
                raise fs.permission_denied(self.path, message) from None
            if fs.is_disk_full(self.path, message):
                what = "read" if self.readonly else "written"
                raise fs.disk_full(
                    self.path, f"the views database could not be opened to be {what}", message
                ) from None
            if "Corruption" in message:
                raise CorruptionError(
                    f"the views database at {self.path} is damaged ({message}); views are "
                    "derived from the log: opening the database for writing moves that "
                    "directory aside and rebuilds them"
                ) from None
            raise FormatError(f"cannot open the views database at {self.path}: {message}") from None
        self._manifest = manifest
        # A secondary instance sees only the column families it was opened with.
        self._opened = set(existing)
        self._secondary_dir = secondary_dir
        return db

    def _existing_families(self) -> list[str]:
        if not os.path.exists(os.path.join(self.path, "CURRENT")):
            return []
        try:
            return list(Rdict.list_cf(self.path, _options()))
        except Exception as e:
            if isinstance(e, PermissionError) or "Permission denied" in str(e):
                raise fs.permission_denied(self.path, str(e)) from None
            raise CorruptionError(
                f"the views database at {self.path} cannot be read ({e}); views are derived "
                "from the log: opening the database for writing moves that directory aside "
                "and rebuilds them"
            ) from None

    def _damaged(self, e: BaseException) -> CorruptionError:
        return CorruptionError(
            f"the views database at {self.path} is damaged ({e}); views are derived from the "
            f"log: close the database, move {self.path} aside (or delete it) and open it again "
            "to rebuild them"
        )

    def _handle(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            self._cf(name)
            handle = self._handles[name] = self._db.get_column_family_handle(name)
        return handle

    def family(self, name: str) -> RocksFamily:
        self._cf(name)
        return RocksFamily(self, name)

    def _cf(self, name: str) -> Rdict:
        fam = self._families.get(name)
        if fam is not None:
            return fam
        with self._lock:
            if self._detached:
                raise fs.disk_full(
                    self.path, "the views database is closed until it can be reopened",
                    "a write failed for lack of space",
                )
            if self.readonly:
                if name not in self._opened and name in self._db_families():
                    self._reopen()  # the writer created it after this reader opened
                if name not in self._opened:
                    # A reader asking for a family the writer has not created yet: empty.
                    empty: Rdict = _EMPTY
                    return empty
            elif name not in self._db_families():
                try:
                    self._db.create_column_family(name, _options())
                except Exception as e:
                    if not fs.is_disk_full(self.path, str(e)):
                        raise
                    raise fs.disk_full(
                        self.path, f"the view {name!r} could not be created", str(e)
                    ) from None
            fam = self._families[name] = self._db.get_column_family(name)
            return self._families[name]

    def _db_families(self) -> set[str]:
        return set(Rdict.list_cf(self.path, _options()))

    def read_meta(self, name: str) -> dict[str, Any] | None:
        raw = self._meta_family().get(name.encode())
        if raw is None:
            return None
        meta = codec.decode(bytes(raw))
        if not isinstance(meta, dict):
            raise CorruptionError(
                f"the views database at {self.path} holds a bad record for {name!r}"
            )
        return meta

    def all_meta(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key, raw in RocksFamily(self, META_FAMILY).scan(b"", None):
            meta = codec.decode(raw)
            if isinstance(meta, dict):
                out[key.decode()] = meta
        return out

    def _meta_family(self) -> Rdict:
        return self._cf(META_FAMILY)

    def batch(self) -> RocksBatch:
        """A new batch. After a write failed for lack of space, first reopens the database.

        Raises:
            DiskFullError: that reopen failed (the disk is still full).
        """
        if self._stalled:
            self._recover()
        return RocksBatch(self)

    def write(self, batch: StoreBatch, durable: bool = False) -> None:
        """Commit ``batch`` atomically; ``durable``: synced to disk before it returns.

        Raises:
            DiskFullError: the disk is full; nothing of the batch was written.
        """
        assert isinstance(batch, RocksBatch)
        with self._lock:
            if batch.generation != self._generation or self._stalled:
                raise fs.disk_full(
                    self.path, "the batch was not written; write a new one",
                    "an earlier write failed for lack of space",
                )
        try:
            # Under the lock: compact() reopens the database (a batch holds column family
            # ids, not the opening's handles, so it stays good across that reopen).
            with self._lock:
                if durable:
                    options = WriteOptions()
                    options.sync = True
                    self._db.write(batch.wb, options)
                else:
                    self._db.write(batch.wb)
        except Exception as e:
            if not fs.is_disk_full(self.path, str(e)):
                raise
            with self._lock:
                self._stalled = True
            raise fs.disk_full(self.path, "the batch was not written", str(e)) from None

    def _recover(self) -> None:
        """Reopen the database after a write failed for lack of space: RocksDB refuses every
        later write until then. Everything committed before is in its write-ahead log.

        Raises:
            DiskFullError: the reopen failed (a reopen writes a little itself; or a read of
                the old opening still runs): the next :meth:`batch` tries again.
        """
        with self._lock:
            if not self._stalled:
                return
            self._families.clear()
            self._handles.clear()
            if not self._detached:
                self._detached = True
                # Refuses with "Writer has previous error": closed all the same.
                with contextlib.suppress(Exception):
                    self._db.close()
            try:
                self._db = self._open()
            except FlumeError as e:
                raise fs.disk_full(
                    self.path, "the views database cannot be reopened yet", str(e)
                ) from None
            self._detached = False
            self._stalled = False
            self._generation += 1

    def reset(self, metas: dict[str, dict[str, Any]]) -> None:
        """Empty the families of the views named in ``metas`` and store their meta records,
        all in one atomic, durable write: a view's definition is never absent, even for an
        instant a crash could catch (a Query view's definition exists nowhere else)."""
        with self._lock:
            batch = self.batch()
            for name, meta in metas.items():
                self._cf(name)  # created when missing
                self._clear_into(batch, name)
                batch.put_meta(name, meta)
            self._write_durably(batch)

    def drop(self, name: str) -> None:
        """Delete a view's data and meta record for good (its column family stays, empty),
        in one atomic, durable write."""
        with self._lock:
            batch = self.batch()
            batch.wb.delete(name.encode(), self._handle(META_FAMILY))
            if name in self._db_families():
                self._clear_into(batch, name)
            self._write_durably(batch)

    def _clear_into(self, batch: RocksBatch, name: str) -> None:
        # Column families are emptied with a range delete, never dropped: a secondary instance
        # (a reader) opened after the primary dropped a column family can crash in RocksDB's
        # catch-up (a segfault in TryCatchUpWithPrimary, RocksDB 9.8).
        it = self._cf(name).iter()
        it.seek_to_last()
        last = it.key() if it.valid() else None
        del it
        if last is not None:
            handle = self._handle(name)
            batch.wb.delete_range(b"", last, handle)
            batch.wb.delete(last, handle)

    def _write_durably(self, batch: RocksBatch) -> None:
        # Views' data is derived and may lag after a power loss (it is rebuilt from its since);
        # their definitions are not derived from anything: those writes are synced.
        self.write(batch, durable=True)

    def compact(self) -> None:
        """Rewrite the database so that keys and values deleted before the call are in no
        file under its directory any more: flush every column family's memtable, compact
        each one fully (the bottommost level too, so that tombstones and what they cover are
        dropped), then reopen the database, which writes a new MANIFEST holding only the
        current files (the old one names the smallest and largest key of every table file it
        ever had) and deletes the old write-ahead log; the info logs of earlier openings
        (``LOG.old.*``) are removed.

        Readers (secondary instances) go on: their next :meth:`catch_up` sees the new
        MANIFEST and reopens. Writes from other threads wait for the compaction; a batch
        begun before it can still be written after.

        It needs every scan of this store in other threads to have ended (an iterator keeps
        the database open); it waits up to ``_REOPEN_WAIT`` seconds for them.

        Blocks on: RocksDB rewriting every table file (about the time of copying them).

        Raises:
            ReadOnlyError: a reader's store. ClosedError: the store is closed.
            DiskFullError: no space for the rewritten files (the data is as it was).
            StorageError: the disk refused the flush or the compaction, or the reopen did not
                succeed (a scan in another thread held the database); the next
                :meth:`batch` reopens it.
        """
        if self.readonly:
            raise ReadOnlyError("a reader's views store cannot be compacted; compact the writer's")
        with self._lock:
            if self._closed:
                raise ClosedError("the views store is closed")
            if self._stalled:
                self._recover()
            names = sorted(self._db_families())
            options = CompactOptions()
            options.set_bottommost_level_compaction(BottommostLevelCompaction.force())
            try:
                for name in names:
                    self._cf(name).flush()
                self._db.flush_wal(True)
                for name in names:
                    self._cf(name).compact_range(None, None, options)
            except Exception as e:
                if fs.is_disk_full(self.path, str(e)):
                    raise fs.disk_full(self.path, "the views were not compacted", str(e)) from None
                raise fs.storage_error(self.path, "the views were not compacted", str(e)) from None
            self._reopen_writer()
            for name in fs.listdir(self.path):
                if name.startswith("LOG.old"):
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(self.path, name))

    def _reopen_writer(self) -> None:
        """Close and open the (primary) database again, waiting for the scans of other
        threads to let go of it. On failure the store is detached, and :meth:`batch`
        reopens it.

        Raises:
            StorageError: it could not be reopened.
        """
        self._families.clear()
        self._handles.clear()
        self._db.close()
        deadline = time.monotonic() + _REOPEN_WAIT
        while True:
            try:
                self._db = self._open()
                return
            except FlumeError as e:
                held = "lock hold by current process" in str(e)
                if not held or time.monotonic() > deadline:
                    self._detached = self._stalled = True
                    raise fs.storage_error(
                        self.path,
                        "the views were compacted but the database could not be reopened"
                        + (" (a scan in another thread still held it)" if held else ""),
                        str(e),
                    ) from None
            time.sleep(0.01)

    def catch_up(self, reopen: bool = False) -> None:
        """Secondary instances only: see what the writer has committed since.

        A writer that restarted wrote a new MANIFEST, which a secondary instance does not
        follow: then the secondary is reopened (a few ms, once per writer restart). So it is
        when the catch-up fails: RocksDB refuses to catch up past the creation of a column
        family the secondary did not open ("MANIFEST record referencing unknown column
        family"), which is what a writer declaring a new view does; and when the database was
        deleted and made anew (its IDENTITY changed). ``reopen``: reopen in any
        case (a read found the secondary's state older than it showed).
        """
        if not self.readonly or self._frozen:
            return
        with self._lock:
            if reopen or self._current_manifest() != self._manifest:
                self._reopen()
                return
            try:
                self._db.try_catch_up_with_primary()
            except Exception:
                self._reopen()

    def _current_manifest(self) -> bytes:
        """What names the writer's current database state: the MANIFEST that CURRENT names,
        and the database's unique id (RocksDB's IDENTITY file). A database deleted and made
        anew restarts its MANIFEST numbering, so CURRENT alone would not tell it apart."""
        parts = []
        for name in ("CURRENT", "IDENTITY"):
            try:
                with open(os.path.join(self.path, name), "rb") as f:
                    parts.append(f.read())
            except OSError:
                parts.append(b"")
        return b"\0".join(parts)

    def _reopen(self) -> None:
        """Replace the secondary instance with a new one (it cannot see column families
        created after it opened, nor follow a new MANIFEST).

        The old instance is dropped, not closed: scans in other threads hold it (through
        their iterators and family handles) and finish on the state they began with; it
        closes when the last of them lets go. If the new one cannot be opened, the old one
        stays in use and the next catch-up tries again.

        Raises:
            CorruptionError, FormatError: the new instance could not be opened.
        """
        old_dir = self._secondary_dir
        self._db = self._open()
        self._families.clear()
        self._handles.clear()
        if old_dir is not None:
            # Only the old instance's info log is there: nothing it still reads.
            old_dir.remove()

    def close(self) -> None:
        """Flush and close the database (idempotent). Closes it even when that fails.

        Raises:
            StorageError: the disk refused the flush or the close for another reason than
                lack of space (everything committed is still in the write-ahead log).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            failure: Exception | None = None
            try:
                if not self.readonly and not self._stalled:
                    # Flushed memtables make the next open fast: nothing to replay from the
                    # WAL. Without space, skip it: the WAL holds everything committed.
                    for name in self._db_families():
                        self._cf(name).flush()
            except Exception as e:
                failure = e
            self._families.clear()
            self._handles.clear()
            try:
                if not self._detached:
                    self._db.close()
            except Exception as e:
                failure = failure or e
            finally:
                self._remove_secondary_dir()
            if failure is not None and not (
                self._stalled or fs.is_disk_full(self.path, str(failure))
            ):
                raise fs.storage_error(
                    self.path, "the views database was closed without a flush", str(failure)
                ) from None

    def _remove_secondary_dir(self) -> None:
        if self._secondary_dir is not None:
            self._secondary_dir.remove()
            self._secondary_dir = None
