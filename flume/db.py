"""Flume: one log, its views, and the indexer that keeps the views up to date.

This is the only module that knows both logs and views. One background thread (the indexer)
reads each batch of new log entries once, decodes it once, hands it to every view that is
behind, and commits each view's changes together with its new ``since`` in one write. Reads of
a view wait until it has reached the log's ``since`` as it was when the read was called.
"""

from __future__ import annotations

import functools
import logging
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flume import fs
from flume.errors import (
    ClosedError,
    CorruptionError,
    FlumeError,
    DirectoryNotFoundError,
    DiskFullError,
    FlumeTimeoutError,
    FormatError,
    InvalidTypeError,
    NotFoundError,
    ReadOnlyError,
    ViewError,
    ViewNameError,
)
from flume.lock import LOCK_FILE, DirectoryLock, read_only_media_error
from flume.logs.base import CHUNK, BaseLog, LogStream, decode_entries
from flume.logs.lmdb_log import LmdbLog
from flume.obv import Obv
from flume.views.base import FamilyBatch, View, ViewContext, ViewFunctionError
from flume.views.store import MemoryStore, RocksStore, Store

# How long a read in a readonly process waits for the writer's views before it gives up.
DEFAULT_READER_TIMEOUT = 10.0
# Readers cannot be woken by the writer's indexer, so they poll its progress this often.
READER_POLL_SECONDS = 0.005
# Views stopped by a full disk retry after this long, doubling up to the maximum.
SPACE_RETRY_FIRST_SECONDS = 0.1
SPACE_RETRY_MAX_SECONDS = 5.0

_UNSET: Any = object()


def open(  # noqa: A001 - flume.open, like io.open
    path: str | os.PathLike[str],
    *,
    readonly: bool = False,
    sync: bool = True,
    timeout: float | None = _UNSET,
) -> Flume:
    """Open (or create) the flume database in directory ``path``.

    The log lives in ``<path>/log`` (LMDB), the views in ``<path>/views`` (RocksDB).

    Args:
        readonly: read alongside the writer (in this or another process); never creates,
            never writes. Reads wait for the writer's views, for at most ``timeout``.
        sync: see :class:`LmdbLog` (``True``: every append durable before it returns).
        timeout: default seconds a view read waits for the view to catch up (None: forever).
            Defaults to None for a writer and ``DEFAULT_READER_TIMEOUT`` for a reader.

    Blocks on: opening LMDB and RocksDB (milliseconds); never on other processes.

    Raises:
        LockedError: another process has the directory open for writing.
        DirectoryNotFoundError: ``readonly`` and the directory does not exist.
        FormatError: the directory is not a flume database, or of an unknown format version.
        CorruptionError: the log is damaged (a damaged views database is rebuilt instead).
    """
    for name, flag in (("readonly", readonly), ("sync", sync)):
        if not isinstance(flag, bool):
            raise InvalidTypeError(f"{name} must be True or False, not {flag!r}")
    directory = os.fspath(path)
    if timeout is _UNSET:
        timeout = DEFAULT_READER_TIMEOUT if readonly else None
    _check_directory(directory, readonly)
    lock = None if readonly else DirectoryLock(directory)
    log: LmdbLog | None = None
    try:
        log = LmdbLog(os.path.join(directory, "log"), readonly=readonly, sync=sync)
        store = _open_views_store(directory, readonly)
        return Flume(log, store=store, timeout=timeout, _lock=lock)
    except BaseException:
        if log is not None:
            log.close()
        if lock is not None:
            lock.release()
        raise


def _check_directory(directory: str, readonly: bool) -> None:
    # fs.stat, not os.path.exists: a directory flume may not search must read as a permission
    # problem, never as a missing (lost) file.
    found = fs.stat(directory)
    if found is None:
        if readonly:
            raise DirectoryNotFoundError(
                f"{directory} does not exist; a readonly open never creates a database "
                "(open it once without readonly=True to create it)"
            )
        if fs.read_only_media(directory):
            raise read_only_media_error(directory)
        try:
            os.makedirs(directory)
        except PermissionError as e:
            raise fs.permission_denied(e.filename or directory, e.strerror or "") from None
        except OSError as e:
            if not fs.is_disk_full(directory, str(e), e.errno):
                raise
            raise fs.disk_full(directory, "the database was not created", str(e)) from None
        return
    if not stat.S_ISDIR(found.st_mode):
        raise FormatError(f"{directory} is a file, not a flume database directory")
    if not readonly and fs.read_only_media(directory):
        raise read_only_media_error(directory)
    data = os.path.join(directory, "log", "data.mdb")
    data_found = fs.stat(data)
    if fs.stat(os.path.join(directory, "views", "CURRENT")) is not None and (
        data_found is None or data_found.st_size == 0
    ):
        # Views are only ever created after the log: their presence means a log was here.
        raise CorruptionError(
            f"{data} is {'empty' if data_found is not None else 'missing'}, but "
            f"{os.path.join(directory, 'views')} holds views built from it: the log was lost. "
            "Restore the directory from a copy (or, to start an empty database here, move "
            "the views directory away first); nothing was changed"
        )
    log_found = fs.stat(os.path.join(directory, "log"))
    if log_found is not None and stat.S_ISDIR(log_found.st_mode):
        return
    others = set(fs.listdir(directory)) - {LOCK_FILE, "views", "readers"}
    if readonly or others:
        raise FormatError(
            f"{directory} is not a flume database (it has no log/ directory"
            + (f" and holds {sorted(others)[:3]}" if others else "")
            + "); give flume an empty or new directory"
        )


def _open_views_store(directory: str, readonly: bool) -> Store:
    path = os.path.join(directory, "views")
    current = os.path.join(path, "CURRENT")
    if readonly and fs.stat(current) is None:
        # The writer has not created its views yet (or is recreating them): nothing to read.
        return MemoryStore(readonly=True)
    secondaries = os.path.join(directory, "readers")
    damage: Exception
    if os.path.isdir(path) and fs.stat(current) is None and any(
        name.startswith("MANIFEST-") or name.endswith(".sst") for name in fs.listdir(path)
    ):
        # RocksDB would start a new database here and delete the old files as obsolete.
        damage = CorruptionError(f"{current} is missing")
    else:
        try:
            return RocksStore(path, readonly=readonly, secondaries=secondaries)
        except CorruptionError as e:
            if readonly:
                raise
            damage = e
    # Views are derived from the log: keep the damaged database aside (never delete user data
    # silently) and start an empty one, which the indexer fills again from the log.
    aside = _move_aside(path)
    message = (
        f"the views database at {path} is damaged; it was moved to {aside} and the views are "
        "being rebuilt from the log. Stored Query views this program does not declare are not "
        f"rebuilt: declare them again. Delete {aside} once you no longer need it. The "
        f"damage: {damage}"
    )
    logging.getLogger("flume").warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return RocksStore(path, readonly=False, secondaries=secondaries)


def _move_aside(path: str) -> str:
    base = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, n = base, 1
    while os.path.exists(aside):
        n += 1
        aside = f"{base}-{n}"
    os.rename(path, aside)
    return aside


def _state(error: FlumeError | None, caught_up: bool) -> str:
    if isinstance(error, DiskFullError):
        return "waiting: disk full"
    if error is not None:
        return "failed"
    return "ready" if caught_up else "indexing"


def _views_dir_of(log_dir: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(log_dir)), "views")


@dataclass
class _Mounted:
    """The db's record of one mounted view."""

    name: str
    view: View
    since: Obv[int]
    proxy: MountedView
    error: FlumeError | None = None
    state: str = "indexing"
    expected: dict[str, Any] = field(default_factory=dict)
    # Mounted at open from its stored definition, not (yet) declared by this program, whose
    # own declaration of that name then replaces it (a changed definition rebuilds it).
    stored: bool = False


class MountedView:
    """What ``db.<name>`` is: the view's methods, wrapped so that reads wait for readiness.

    ``async`` and ``source`` methods wait until the view has processed everything the log held
    when they were called (read-your-writes), then answer; ``sync`` methods answer at once.
    Every waiting method takes an extra ``timeout=`` (seconds; default: the db's).
    """

    def __init__(self, db: Flume, mounted: _Mounted) -> None:
        self._db = db
        self._mounted = mounted
        self.view = mounted.view
        for method, kind in mounted.view.methods.items():
            setattr(self, method, self._wrap(method, kind))

    def _wrap(self, method: str, kind: str) -> Callable[..., Any]:
        target = getattr(self.view, method)
        db, mounted = self._db, self._mounted

        if kind == "sync":

            @functools.wraps(target)
            def call_sync(*args: Any, **kwargs: Any) -> Any:
                db._check_open()
                return target(*args, **kwargs)

            return call_sync

        @functools.wraps(target)
        def call_waiting(*args: Any, timeout: float | None = _UNSET, **kwargs: Any) -> Any:
            db._wait_ready(mounted, timeout)
            return target(*args, **kwargs)

        return call_waiting

    @property
    def since(self) -> Obv[int]:
        """The last seq this view has committed."""
        return self._mounted.since

    def ready(self, timeout: float | None = _UNSET) -> None:
        """Block until the view has caught up with the log as it is now.

        Raises:
            ViewError: the view stopped on an entry its function failed on.
            FlumeTimeoutError: ``timeout`` seconds passed first.
        """
        self._db._wait_ready(self._mounted, timeout)

    def __repr__(self) -> str:
        return f"<flume view {self._mounted.name!r} ({self.view.kind})>"


class Flume:
    """A flume database: one log and any number of views.

    Thread-safe: appends from several threads land whole with distinct seqs; reads and
    streams run alongside them. Use ``flume.open(path)`` for a database on disk, or
    ``Flume(MemoryLog())`` for one in memory (its views in memory too).
    """

    def __init__(
        self,
        log: BaseLog,
        *,
        store: Store | None = None,
        timeout: float | None = None,
        _lock: DirectoryLock | None = None,
    ) -> None:
        self.log = log
        self.readonly = log.readonly
        if store is None:
            store = (
                MemoryStore()
                if log.dir is None
                else RocksStore(_views_dir_of(log.dir), readonly=log.readonly)
            )
        self._store = store
        # Views are indexed here when their store is writable; otherwise (a readonly open) the
        # writer process indexes them and this db follows its progress.
        self._indexing = not store.readonly
        self._lock = _lock
        self._timeout = timeout
        self._mounted: dict[str, _Mounted] = {}
        self._views_proxy: Mapping[str, MountedView] = MappingProxyType({})
        self._engine = threading.RLock()
        self._wakeup = threading.Condition(threading.Lock())
        self._pending_wake = False
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._space_timer: threading.Timer | None = None
        self._space_backoff = SPACE_RETRY_FIRST_SECONDS
        self._unsubscribe = log.since.subscribe(lambda _: self._wake())
        self._mount_stored_views()

    # -- the log -------------------------------------------------------------------------------

    @property
    def since(self) -> Obv[int]:
        """The last committed seq (-1 when the log is empty), as an observable."""
        if self.readonly:
            self.log.refresh()
        return self.log.since

    def append(self, value: Any) -> int:
        """Append a value; return its seq once committed (durable with ``sync=True``).

        Blocks on: the commit (an fsync with ``sync=True``; concurrent appends share one).

        Raises:
            EncodeError (a TypeError): the value is not storable; nothing is written.
            ReadOnlyError, ClosedError.
        """
        self._check_writable()
        return self.log.append(value)

    def append_many(self, values: Sequence[Any]) -> int:
        """Append a batch in one atomic commit (all or nothing); return the last seq.

        Raises:
            EncodeError: an item is not storable (named by position); nothing is written.
            ReadOnlyError, ClosedError.
        """
        self._check_writable()
        return self.log.append_many(values)

    def get(self, seq: int) -> Any:
        """The value at ``seq``.

        Raises:
            NotFoundError (a KeyError): no such seq. InvalidTypeError: not an int.
        """
        self._check_open()
        if self.readonly:
            self.log.refresh()
        return self.log.get(seq)

    def stream(
        self,
        *,
        gt: int | None = None,
        gte: int | None = None,
        lt: int | None = None,
        lte: int | None = None,
        reverse: bool = False,
        live: bool = False,
        old: bool = True,
        limit: int | None = None,
        seqs: bool = True,
        values: bool = True,
    ) -> LogStream:
        """Stream log entries; a closeable iterator of ``Entry(seq, value)`` (or bare values
        with ``seqs=False``, bare seqs with ``values=False``).

        A live stream yields the existing entries (unless ``old=False``), then blocks for new
        ones, each exactly once, until closed (``db.close()`` closes it too).

        Raises:
            InvalidTypeError / InvalidArgumentError: a bad option (before anything is read).
        """
        self._check_open()
        return self.log.stream(
            gt=gt, gte=gte, lt=lt, lte=lte, reverse=reverse, live=live, old=old,
            limit=limit, seqs=seqs, values=values,
        )

    # -- views ---------------------------------------------------------------------------------

    @property
    def views(self) -> Mapping[str, MountedView]:
        """The mounted views by name (read-only mapping)."""
        return self._views_proxy

    def use(self, name: str, view: View) -> Flume:
        """Mount ``view`` as ``db.<name>``; return the db (chainable).

        A view whose stored version or definition differs from ``view``'s, or that is ahead of
        the log, is wiped and rebuilt; otherwise it resumes from its stored ``since``. In a
        readonly db the view reads what the writer's view of that name has stored.

        Raises:
            ViewNameError: ``name`` clashes with a Flume attribute or another view.
            InvalidTypeError: ``view`` is not a View.
        """
        self._check_open()
        if not isinstance(view, View):
            raise InvalidTypeError(f"use() takes a view (Reduce, Index, Query, ...), not {view!r}")
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ViewNameError(
                f"view name {name!r} must be a Python identifier not starting with '_' "
                "(it becomes db.<name>)"
            )
        with self._engine:
            existing = self._mounted.get(name)
            if (
                existing is not None
                and not existing.stored
                and not self._is_redeclaration(existing, view)
            ):
                raise ViewNameError(f"a view named {name!r} is already mounted; pick another name")
            if existing is None and hasattr(self, name):
                raise ViewNameError(f"{name!r} is a Flume attribute; pick another view name")
            if existing is not None:
                self._unmount(existing)
            self._mount(name, view)
        self._wake()
        return self

    def drop(self, name: str) -> None:
        """Unmount the view ``name`` and delete everything stored for it (its data and its
        meta record, so a stored Query view is no longer mounted on open).

        Raises:
            NotFoundError: no view of that name is mounted or stored.
            ReadOnlyError: in a readonly db.
        """
        self._check_open()
        if not self._indexing:
            raise ReadOnlyError("this database was opened readonly=True; drop views from the writer")
        with self._engine:
            mounted = self._mounted.get(name)
            if mounted is None and self._store.read_meta(name) is None:
                raise NotFoundError(f"no view named {name!r}; views: {sorted(self._mounted)}")
            if mounted is not None:
                self._unmount(mounted)
                mounted.error = ClosedError(f"view {name!r} was dropped")
                mounted.since.wake()
            self._store.drop(name)

    def _is_redeclaration(self, existing: _Mounted, view: View) -> bool:
        # A Query view stored in the directory is mounted at open; declaring it again with the
        # same definition is the normal case for a program that declares its views.
        return (
            existing.view.kind == view.kind
            and existing.view.definition() is not None
            and existing.view.definition() == view.definition()
            and existing.view.version == view.version
        )

    def _expected_meta(self, view: View) -> dict[str, Any]:
        return {"kind": view.kind, "version": view.version, "definition": view.definition()}

    def _meta_matches(self, meta: dict[str, Any] | None, expected: dict[str, Any]) -> bool:
        return meta is not None and all(meta.get(k) == v for k, v in expected.items())

    def _mount(self, name: str, view: View) -> None:
        expected = self._expected_meta(view)
        meta = self._store.read_meta(name)
        since = -1
        if self._meta_matches(meta, expected):
            assert meta is not None
            since = int(meta.get("since", -1))
        if self._indexing:
            if since > self.log.since.value or since == -1:
                # Changed definition, version or kind; or ahead of the log (it lost appends a
                # non-durable commit had not flushed); or never written: start from empty.
                self._store.wipe(name)
                since = -1
                # Store the meta record now, not with the first batch: a view declared on an
                # empty log is stored too, so a Query view declared there is mounted by every
                # later open (and kept current by every writer).
                batch = self._store.batch()
                batch.put_meta(name, {**expected, "since": -1})
                self._store.write(batch)
        since_obv: Obv[int] = Obv(since)
        mounted = _Mounted(name=name, view=view, since=since_obv, proxy=None, expected=expected)  # type: ignore[arg-type]
        mounted.proxy = MountedView(self, mounted)
        ctx = ViewContext(
            name=name,
            family=self._store.family(name),
            readonly=not self._indexing,
            since=since_obv,
            get_values=self._get_values,
            scan_log=self._scan_log,
            follow=self._follow,
        )
        view.open(ctx)
        self._mounted[name] = mounted
        self._views_proxy = MappingProxyType({k: m.proxy for k, m in self._mounted.items()})
        if self._indexing and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flume-indexer", daemon=True)
            self._thread.start()

    def _unmount(self, mounted: _Mounted) -> None:
        del self._mounted[mounted.name]
        mounted.view.close()
        self._views_proxy = MappingProxyType({k: m.proxy for k, m in self._mounted.items()})

    def _mount_stored_views(self) -> None:
        from flume.views.registry import view_from_meta

        for name, meta in sorted(self._store.all_meta().items()):
            try:
                view = view_from_meta(meta)
            except Exception as e:
                # A definition this flume cannot read (a newer release's, or damaged): leave
                # the view's data as it is, and open the rest of the database.
                message = (
                    f"the stored view {name!r} was not mounted: its stored definition cannot "
                    f"be read ({type(e).__name__}: {e}); declare it again with use() to "
                    "rebuild it, or drop it"
                )
                logging.getLogger("flume").warning(message)
                warnings.warn(message, RuntimeWarning, stacklevel=4)
                continue
            if view is not None and name not in self._mounted:
                with self._engine:
                    self._mount(name, view)
                    self._mounted[name].stored = True

    def __getattr__(self, name: str) -> MountedView:
        # Only called when normal lookup fails: db.<view name>.
        mounted: _Mounted | None = self.__dict__.get("_mounted", {}).get(name)
        if mounted is None:
            raise AttributeError(
                f"Flume has no attribute or view {name!r}; mounted views: "
                f"{sorted(self.__dict__.get('_mounted', {}))}"
            )
        return mounted.proxy

    def _get_values(self, seqs: Sequence[int]) -> list[Any]:
        return self.log.get_many(seqs)

    def _scan_log(self, upto: int, reverse: bool) -> Iterator[tuple[int, Any]]:
        if upto < 0:
            return iter(())
        return self.log.stream(lte=upto, reverse=reverse)

    def _follow(self, after: int) -> LogStream:
        return self.log.stream(gt=after, live=True)

    # -- readiness -----------------------------------------------------------------------------

    def _wait_ready(self, mounted: _Mounted, timeout: float | None) -> None:
        self._check_open()
        if timeout is _UNSET:
            timeout = self._timeout
        target = self.log.refresh() if self.readonly else self.log.since.value
        deadline = None if timeout is None else time.monotonic() + timeout
        since = mounted.since
        while True:
            if mounted.error is not None:
                raise mounted.error
            if self._closed:
                raise ClosedError("the database was closed while a read waited for a view")
            generation = since.generation
            if not self._indexing:
                self._poll_writer(mounted)
            if since.value >= target:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise self._timeout_error(mounted, target, timeout)
            wait = remaining
            if not self._indexing:
                wait = READER_POLL_SECONDS if wait is None else min(wait, READER_POLL_SECONDS)
            since.wait_change(generation, wait)

    def _timeout_error(self, mounted: _Mounted, target: int, timeout: float | None) -> FlumeTimeoutError:
        behind = target - mounted.since.value
        who = (
            "the writer process is not running, or does not index this view"
            if not self._indexing
            else "the indexer is still catching up"
        )
        return FlumeTimeoutError(
            f"view {mounted.name!r} is at seq {mounted.since.value}, {behind} entries behind the "
            f"log's {target}, after {timeout} s: {who}. Pass a larger timeout=, or check "
            "db.status()"
        )

    def _poll_writer(self, mounted: _Mounted) -> None:
        self._store.catch_up()
        meta = self._store.read_meta(mounted.name)
        since = int(meta.get("since", -1)) if self._meta_matches(meta, mounted.expected) and meta else -1
        if since != mounted.since.value:
            mounted.since.set(since)

    def status(self) -> dict[str, Any]:
        """The log's ``since`` and, per view, its ``since``, ``lag`` and ``state``
        (``ready``, ``indexing``, ``failed``, or ``waiting: disk full`` until space is freed;
        with the ``error`` message when failed or waiting)."""
        self._check_open()
        mounted_views = list(self._mounted.items())
        sinces: dict[str, int] = {}
        for name, mounted in mounted_views:
            if not self._indexing:
                self._poll_writer(mounted)
            sinces[name] = mounted.since.value
        # The log's since after the views': a view never shows ahead of the log.
        log_since = self.log.refresh() if self.readonly else self.log.since.value
        views: dict[str, Any] = {}
        for name, mounted in mounted_views:
            since = sinces[name]
            info: dict[str, Any] = {
                "kind": mounted.view.kind,
                "since": since,
                "lag": max(0, log_since - since),
                "state": _state(mounted.error, since >= log_since),
            }
            if mounted.error is not None:
                info["error"] = str(mounted.error)
            views[name] = info
        return {"since": log_since, "views": views}

    def rebuild(self, timeout: float | None = None) -> None:
        """Wipe every view and return once all have caught up again with the log as it was
        at the call. Appends and reads go on meanwhile (reads wait for their view).

        Raises:
            ReadOnlyError: in a readonly db. ViewError: a view failed while rebuilding.
            FlumeTimeoutError: ``timeout`` passed first.
        """
        self._check_open()
        if not self._indexing:
            raise ReadOnlyError(
                "this database was opened readonly=True; rebuild from the process that opened it "
                "for writing (or with `flume rebuild DIR` while no writer runs)"
            )
        with self._engine:
            for mounted in self._mounted.values():
                self._wipe(mounted)
        self._wake()
        for mounted in list(self._mounted.values()):
            self._wait_ready(mounted, timeout)

    def _wipe(self, mounted: _Mounted) -> None:
        self._store.wipe(mounted.name)
        # Keep the definition stored (since -1), as _mount does: a Query view rebuilt on an
        # empty log is still mounted by every later open, readers' and writers'.
        batch = self._store.batch()
        batch.put_meta(mounted.name, {**mounted.expected, "since": -1})
        self._store.write(batch)
        mounted.view.reset()
        mounted.error = None
        mounted.since.set(-1)

    # -- the indexer ---------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._wakeup:
            self._pending_wake = True
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending_wake and not self._closing:
                    self._wakeup.wait()
                self._pending_wake = False
            if self._closing:
                return
            try:
                while not self._closing and self._index_step():
                    pass
            except BaseException as e:
                # Not a view's function (that fails its view alone): stop every view with the
                # error, rather than leave their readers waiting for an indexer that is gone.
                for m in list(self._mounted.values()):
                    self._fail(m, m.since.value + 1, e, "the indexer stopped")
                return

    def _index_step(self) -> bool:
        """Index one batch for every view that is behind; return whether there was work."""
        with self._engine:
            target = self.log.since.value
            behind = [
                m for m in self._mounted.values() if m.error is None and m.since.value < target
            ]
            if not behind:
                return False
            start = min(m.since.value for m in behind) + 1
            try:
                raw = self.log.read_raw(start, target, False, CHUNK)
                entries = decode_entries(raw, self.log.dir)
            except Exception as e:
                for m in behind:
                    self._fail(m, start, e, "the log could not be read")
                return False
            for m in behind:
                if self._closing:
                    break
                offset = m.since.value + 1 - start
                todo = entries[offset:] if offset > 0 else entries
                if todo:
                    self._apply(m, todo)
            return True

    def _apply(self, mounted: _Mounted, entries: list[tuple[int, Any]]) -> None:
        try:
            batch = self._store.batch()
        except DiskFullError as e:
            self._wait_for_space(mounted, e)
            return
        try:
            mounted.view.apply(entries, FamilyBatch(batch, mounted.name))
        except ViewFunctionError as e:
            self._fail(mounted, e.seq, e.cause, e.what)
            return
        except BaseException as e:  # SystemExit too: it would end the indexer thread
            mounted.view.rollback()
            self._fail(mounted, entries[0][0], e, "the view raised")
            return
        last = entries[-1][0]
        batch.put_meta(mounted.name, {**mounted.expected, "since": last})
        try:
            self._store.write(batch)
        except DiskFullError as e:
            mounted.view.rollback()
            self._wait_for_space(mounted, e)
            return
        except Exception as e:
            mounted.view.rollback()
            self._fail(mounted, entries[0][0], e, "its batch could not be written")
            return
        mounted.view.commit()
        mounted.since.set(last)
        self._space_backoff = SPACE_RETRY_FIRST_SECONDS

    def _fail(self, mounted: _Mounted, seq: int, cause: BaseException, what: str) -> None:
        mounted.error = ViewError(
            f"view {mounted.name!r} stopped at seq {seq}: {what}: {type(cause).__name__}: "
            f"{cause}. The log and the other views go on; fix the view's function and declare "
            "it with a new version= to rebuild it",
            view=mounted.name,
            seq=seq,
            cause=cause,
        )
        mounted.since.wake()

    # -- a full disk: views wait, then resume by themselves ----------------------------------

    def _wait_for_space(self, mounted: _Mounted, cause: DiskFullError) -> None:
        """Stop ``mounted`` until a retry: its reads raise a DiskFullError meanwhile (rather
        than wait with no end in sight), its ``since`` stays where it was, and a timer clears
        the error and wakes the indexer after a backoff."""
        mounted.error = DiskFullError(
            f"view {mounted.name!r} is waiting at seq {mounted.since.value}: {cause}. It "
            "resumes by itself once space is freed (nothing is lost)",
            cause.filename,
        )
        mounted.error.__cause__ = cause
        mounted.since.wake()
        with self._wakeup:
            if self._closing or self._space_timer is not None:
                return
            delay = self._space_backoff
            self._space_backoff = min(delay * 2, SPACE_RETRY_MAX_SECONDS)
            timer = self._space_timer = threading.Timer(delay, self._retry_after_disk_full)
        timer.daemon = True
        timer.start()

    def _retry_after_disk_full(self) -> None:
        with self._engine:
            with self._wakeup:
                self._space_timer = None
                if self._closing:
                    return
            for mounted in self._mounted.values():
                if isinstance(mounted.error, DiskFullError):
                    mounted.error = None
        self._wake()

    # -- lifecycle -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the database is closed; open it again to use it")

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise ReadOnlyError(
                "this database was opened readonly=True; write from the process that opened it "
                "for writing"
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the indexer (after its current batch, which commits), end every live stream,
        close views, the views store and the log, and release the writer lock. Idempotent.

        Every step runs even when an earlier one fails (a full disk, a failing disk), and the
        writer lock is always released; then the first failure is raised.

        Blocks on: the indexer's current batch.

        Raises:
            StorageError: the disk refused to flush the log (``sync=False``) or the views.
        """
        if self._closed:
            return
        self._closed = True
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
            timer, self._space_timer = self._space_timer, None
        if timer is not None:
            timer.cancel()
        failures: list[BaseException] = []

        def attempt(step: Callable[[], None]) -> None:
            try:
                step()
            except Exception as e:
                failures.append(e)

        try:
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join()
            self._unsubscribe()
            for mounted in list(self._mounted.values()):
                mounted.since.wake()
            attempt(self.log.close)
            with self._engine:
                for mounted in self._mounted.values():
                    attempt(mounted.view.close)
            attempt(self._store.close)
        finally:
            if self._lock is not None:
                self._lock.release()
        if failures:
            raise failures[0]

    def __enter__(self) -> Flume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.log.dir or "memory"
        mode = "readonly " if self.readonly else ""
        return f"<flume {mode}db at {where}: since {self.log.since.value}, views {sorted(self._mounted)}>"

