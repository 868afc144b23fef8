"""Flume: one log and its views; the public API, the mount table and read-your-writes.

This is the only module that knows both logs and views. It mounts views (from the program's
declarations and from the definitions stored in the directory), drives the indexer
(:mod:`flume.indexer`) that keeps them up to date, and makes every read of a view wait until
the view has reached the log's ``since`` as it was when the read was called. In a readonly
process it follows the writer's views database instead of indexing. The directory's layout and
checks are :mod:`flume.directory`'s.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

from flume import codec
from flume.directory import check_directory, open_views_store, views_dir_of
from flume.errors import (
    ClosedError,
    DiskFullError,
    FlumeTimeoutError,
    FormatError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
    ReadOnlyError,
    ViewNameError,
)
from flume.indexer import Indexer
from flume.lock import DirectoryLock
from flume.logs.base import BaseLog, DeleteRecord, LogStream, decode_entries
from flume.logs.lmdb_log import LmdbLog
from flume.mounts import Mount
from flume.obv import Obv
from flume.ranges import MAX_SEQ, check_name, check_path, check_seq, check_timeout
from flume.views.base import FamilyBatch, StaleReadError, View, ViewContext, ViewFunctionError
from flume.views.store import MemoryStore, Store

# How long a read in a readonly process waits for the writer's views before it gives up.
DEFAULT_READER_TIMEOUT = 10.0
# Readers cannot be woken by the writer's indexer, so they poll its progress this often.
READER_POLL_SECONDS = 0.005

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
        timeout: default seconds a view read waits for the view to catch up (None or
            ``math.inf``: forever). Defaults to None for a writer and
            ``DEFAULT_READER_TIMEOUT`` for a reader.

    Blocks on: opening LMDB and RocksDB (milliseconds); never on other processes.

    Raises:
        LockedError: another process has the directory open for writing.
        DirectoryNotFoundError: ``readonly`` and the directory does not exist.
        FormatError: the directory is not a flume database, or of an unknown format version.
        CorruptionError: the log is damaged (a damaged views database is rebuilt instead).
        InvalidTypeError / InvalidArgumentError: a bad argument (``path`` must be a str or a
            ``pathlib.Path``); nothing is created.
    """
    for name, flag in (("readonly", readonly), ("sync", sync)):
        if not isinstance(flag, bool):
            raise InvalidTypeError(f"{name} must be True or False, not {flag!r}")
    directory = check_path(path)
    if timeout is _UNSET:
        timeout = DEFAULT_READER_TIMEOUT if readonly else None
    timeout = check_timeout(timeout)
    check_directory(directory, readonly)
    lock = None if readonly else DirectoryLock(directory)
    log: LmdbLog | None = None
    try:
        log = LmdbLog(os.path.join(directory, "log"), readonly=readonly, sync=sync)
        return Flume(log, timeout=timeout, _lock=lock)
    except BaseException:
        if log is not None:
            log.close()
        if lock is not None:
            lock.release()
        raise


class MountedView:
    """What ``db.<name>`` is: the view's methods, wrapped so that reads wait for readiness.

    A handle follows its *name*: after the view is declared again (``db.use(name, ...)``), a
    handle obtained before reads the new declaration; after ``db.drop(name)`` it raises
    :class:`flume.NotFoundError`. Methods of kind ``waits`` and ``stream`` wait until the view
    has processed everything the log held when they were called (read-your-writes), then
    answer; ``sync`` methods answer at once. Every waiting method takes an extra
    ``timeout=`` (seconds; default: the db's).
    """

    def __init__(self, db: Flume, name: str, methods: Mapping[str, str]) -> None:
        self._db = db
        self._name = name
        self._methods = dict(methods)
        for method, kind in methods.items():
            setattr(self, method, self._wrap(method, kind))

    def _wrap(self, method: str, kind: str) -> Callable[..., Any]:
        db, name = self._db, self._name
        doc_source = getattr(db._current(name).view, method)

        if kind == "sync":

            @functools.wraps(doc_source)
            def call_sync(*args: Any, **kwargs: Any) -> Any:
                db._check_open()
                if not db._indexing:
                    db._follow_writer()
                return _method(db._current(name), method)(*args, **kwargs)

            return call_sync

        @functools.wraps(doc_source)
        def call_waiting(*args: Any, timeout: float | None = _UNSET, **kwargs: Any) -> Any:
            timeout = db._timeout if timeout is _UNSET else check_timeout(timeout)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                mounted = db._wait_ready(name, remaining, reported_timeout=timeout)
                try:
                    return _method(mounted, method)(*args, **kwargs)
                except StaleReadError as e:
                    # A reader's copy of the store answered from before the since it showed:
                    # open a fresh copy and ask again, within the same timeout.
                    if deadline is not None and time.monotonic() >= deadline:
                        raise FlumeTimeoutError(
                            f"view {name!r}: the writer's stored state stayed older than the "
                            f"view's since for {timeout} s ({e}); pass a larger timeout=, or "
                            "check the directory with `flume verify`"
                        ) from None
                    db._store.catch_up(reopen=True)
                    time.sleep(READER_POLL_SECONDS)

        return call_waiting

    @property
    def view(self) -> View:
        """The view object now mounted under this name."""
        return self._db._current(self._name).view

    @property
    def since(self) -> Obv[int]:
        """The last seq this view has committed."""
        return self._db._current(self._name).since

    def ready(self, timeout: float | None = _UNSET) -> None:
        """Block until the view has caught up with the log as it is now.

        Raises:
            ViewError: the view stopped on an entry its function failed on.
            FlumeTimeoutError: ``timeout`` seconds passed first.
            NotFoundError: the view was dropped.
        """
        self._db._wait_ready(self._name, timeout)

    def __repr__(self) -> str:
        mounted = self._db._mounted.get(self._name)
        kind = mounted.view.kind if mounted is not None else "dropped"
        return f"<flume view {self._name!r} ({kind})>"


_OTHER_DEFINITION = (
    "the writer stores this view with another kind, version or definition than this program "
    "declares: declare the writer's, or read the view the writer stores",
)


def _method(mounted: Mount, method: str) -> Callable[..., Any]:
    if method not in mounted.view.methods:
        raise ViewNameError(
            f"view {mounted.name!r} is now a {mounted.view.kind} view, which has no {method}(); "
            f"its methods: {sorted(mounted.view.methods)}"
        )
    target: Callable[..., Any] = getattr(mounted.view, method)
    return target


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
        self._views_path = None if log.dir is None else views_dir_of(log.dir)
        if store is None:
            store = (
                MemoryStore()
                if self._views_path is None
                else open_views_store(self._views_path, log.readonly)
            )
        self._store = store
        # Views are indexed here when their store is writable; otherwise (a readonly open) the
        # writer process indexes them and this db follows its progress and its stored views.
        self._indexing = not store.readonly
        self._lock = _lock
        self._timeout = check_timeout(timeout)
        self._mounted: dict[str, Mount] = {}
        self._proxies: dict[str, MountedView] = {}
        self._views_proxy: Mapping[str, MountedView] = MappingProxyType({})
        # Guards the mount table, and keeps the indexer's batches apart from mounting,
        # dropping and rebuilding views.
        self._views_lock = threading.RLock()
        self._closed = False
        self._indexer = Indexer(
            mounted=self._mounted,
            lock=self._views_lock,
            store=store,
            read=self._read_entries,
            last=lambda: self.log.since.value,
            meta=self._meta,
        )
        self._unsubscribe = log.since.subscribe(lambda _: self._indexer.wake())
        if self._indexing:
            self._mount_stored_views(self._store.all_meta())
        else:
            self._follow_writer()

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

    def append_many(self, values: Iterable[Any]) -> int:
        """Append a batch in one atomic commit (all or nothing); return the last seq.

        ``values`` is a list, a tuple or any iterable (a generator is read whole before
        anything is written); not a str, bytes, dict or set.

        Raises:
            EncodeError: an item is not storable (named by position); nothing is written.
            InvalidTypeError: ``values`` is not such an iterable; nothing is written.
            ReadOnlyError, ClosedError.
        """
        self._check_writable()
        return self.log.append_many(values)

    def delete(self, seq: int) -> bool:
        """Delete the value at ``seq``: see :meth:`delete_many`. Returns whether it was there
        (False when it was deleted before).

        Raises:
            NotFoundError: no such seq. InvalidTypeError: not an int. ReadOnlyError, ClosedError.
        """
        check_seq("seq", seq)
        return self.delete_many([seq]) == 1

    def delete_many(self, seqs: Iterable[int]) -> int:
        """Delete the values at ``seqs`` in one atomic commit, and forget them in every view;
        return how many were deleted (seqs deleted before are left as they are).

        A deleted seq keeps its place: later seqs never move, ``get`` raises
        :class:`~flume.DeletedError`, streams skip it (``tombstones=True`` shows it). Each
        mounted view removes what it derived from the values (an Index or Query view its
        keys and bitmaps, a Reduce view with ``unreduce`` its state) in one atomic write, or
        is rebuilt from the log; a view mounted later catches up on the deletes it missed
        first. A read that begins after this returns sees the deletes in every view, in this
        process and in readers. The values' bytes stay on disk (in the log's free pages, the
        delete journal, the views' files) until :meth:`compact`.

        Blocks on: the log's commit (durable as appends are), the indexer's current batch, and
        the views' write.

        Raises:
            NotFoundError: a seq is not in the log. InvalidTypeError: not an iterable of int
                seqs. (These before anything is deleted.) ReadOnlyError, ClosedError.
            ViewError: (in the view's later reads) a view function failed on a deleted value.
        """
        self._check_writable()
        with self._views_lock:
            records = self.log.delete_many(seqs)
            if records:
                self._forget(list(self._mounted.values()), records)
        return len(records)

    def delete_where(self, query: Any, *, view: str | None = None) -> int:
        """Delete every value ``query`` (a map-filter-reduce query of ``$filter`` stages)
        matches, answered by the Query view ``view`` (its indexes) or by a scan of the log;
        return how many were deleted. One atomic commit, as :meth:`delete_many`.

        Raises:
            QueryError: a malformed query, or one with other stages than ``$filter``.
            InvalidArgumentError: a query with no ``$filter`` (it would delete everything).
            NotFoundError: no view ``view``. ReadOnlyError, ClosedError.
        """
        from flume.query import execute, parse_query
        from flume.query.execute import check_seqs as check_query_seqs

        self._check_writable()
        parsed = parse_query(query)
        check_query_seqs(parsed, True)
        if parsed.first_filter is None:
            # A query of no filter matches every value: a slip, more likely than meant.
            raise InvalidArgumentError(
                "delete_where needs a $filter; to delete every value, say so: "
                '[{"$filter": {}}]'
            )
        if view is None:
            entries = ((e.seq, e.value) for e in self.log.stream())
            seqs = [seq for seq, _ in execute(parsed, entries, seqs=True)]
        else:
            found = self._mounted.get(check_name(view))
            if found is None or found.view.kind != "query":
                raise NotFoundError(
                    f"no Query view named {view!r}; views: {sorted(self._mounted)}"
                )
            seqs = [e.seq for e in getattr(self, view).read(query, seqs=True)]
        return self.delete_many(seqs)

    def _forget(self, mounts: list[Mount], records: list[DeleteRecord]) -> None:
        """Have ``mounts`` forget the deletes ``records`` (consecutive journal records, the
        views' data having processed every delete before the first): the views that can update
        themselves do, in one atomic write with their new delete number; the others (and any
        that needs a value compaction has erased) are rebuilt from the log. Called under the
        views lock, so no indexer batch runs meanwhile."""
        last = records[-1].number
        batch = self._store.batch()
        updated: list[Mount] = []
        rebuild: list[Mount] = []
        decoded: dict[int, Any] = {}
        for mounted in mounts:
            if mounted.error is not None or mounted.deletes >= last:
                continue
            todo = [r for r in records if r.number > mounted.deletes]
            indexed = [r for r in todo if r.seq <= mounted.since.value]
            if any(r.old is None for r in indexed):
                rebuild.append(mounted)  # compaction erased a value it derived data from
                continue
            entries = []
            for r in indexed:
                if r.seq not in decoded:
                    decoded[r.seq] = codec.decode(cast(bytes, r.old))
                entries.append((r.seq, decoded[r.seq]))
            entries.sort(key=lambda e: e[0])
            family_batch = FamilyBatch(batch, mounted.name, mounted.since.value, last)
            try:
                done = not entries or mounted.view.unapply(entries, family_batch)
            except ViewFunctionError as e:
                mounted.view.rollback()
                self._indexer.fail(mounted, e.seq, e.cause, e.what)
                continue
            if not done:
                rebuild.append(mounted)
                continue
            meta = self._meta(mounted, mounted.since.value)
            batch.put_meta(mounted.name, {**meta, "deletes": last})
            updated.append(mounted)
        if updated:
            try:
                self._store.write(batch)
            except Exception as e:
                # The log holds the deletes; these views do not: stop them (their reads would
                # wait for the deletes forever). The next open processes the deletes again.
                for mounted in updated:
                    mounted.view.rollback()
                    self._indexer.fail(mounted, records[0].seq, e, "a delete could not be written")
                raise
            for mounted in updated:
                mounted.view.commit()
                mounted.deletes = last
                mounted.since.wake()
        if rebuild:
            for mounted in rebuild:
                mounted.deletes = self.log.deletes.value
            self._store.reset({m.name: self._meta(m, -1) for m in rebuild})
            for mounted in rebuild:
                mounted.view.reset()
                mounted.reached_end = False
                mounted.since.set(-1)
            self._indexer.wake()

    def compact(self) -> dict[str, int]:
        """Leave no copy of a deleted value on disk: erase the values the log's delete journal
        keeps, rewrite the log (LMDB's compacting copy, swapped in with readers present) and
        compact the views database (deleted keys and overwritten values leave its files).
        Stored views this process cannot update (declared by code but not mounted now, or
        failed) that missed a delete are wiped first; each is rebuilt when next declared.
        Returns ``{"erased": values erased from the journal, "wiped": views wiped}``.

        Blocks on: the indexer's current batch, appends (held during the log's copy), and the
        time it takes to copy the log and rewrite the views' files.

        Raises:
            ReadOnlyError, ClosedError. CompactionError / StorageError: the log could not be
                rewritten (it is as it was).
        """
        self._check_writable()
        with self._views_lock:
            last = self.log.deletes.value
            stale = {}
            for name, meta in self._store.all_meta().items():
                mounted = self._mounted.get(name)
                if mounted is not None and mounted.error is None:
                    continue  # it processed every delete (delete_many waits for it)
                if int(meta.get("deletes", -1)) < last and int(meta.get("since", -1)) >= 0:
                    stale[name] = {**meta, "since": -1, "deletes": last}
            if stale:
                self._store.reset(stale)
                for name in stale:
                    mounted = self._mounted.get(name)
                    if mounted is not None:
                        mounted.deletes = last
                        mounted.since.set(-1)
            forget = getattr(self.log, "forget_deleted", None)
            erased = forget() if forget is not None else 0
            compact_log = getattr(self.log, "compact", None)
            if compact_log is not None:
                compact_log()
            self._store.compact()
        return {"erased": erased, "wiped": len(stale)}

    def get(self, seq: int) -> Any:
        """The value at ``seq``.

        Raises:
            NotFoundError (a KeyError): no such seq. InvalidTypeError: not an int.
        """
        self._check_open()
        if check_seq("seq", seq) > MAX_SEQ:
            # Beyond any seq a log can hold: not in it, like any other seq past the end.
            raise NotFoundError(f"seq {seq} is not in the log (no log holds seqs above 2**64-1)")
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
        tombstones: bool = False,
    ) -> LogStream:
        """Stream log entries; a closeable iterator of ``Entry(seq, value)`` (or bare values
        with ``seqs=False``, bare seqs with ``values=False``). Deleted entries are skipped, or
        with ``tombstones=True`` yielded with the value :data:`~flume.DELETED`.

        A live stream yields the existing entries (unless ``old=False``), then blocks for new
        ones, each exactly once, until closed (``db.close()`` closes it too).

        Raises:
            InvalidTypeError / InvalidArgumentError: a bad option (before anything is read).
        """
        self._check_open()
        return self.log.stream(
            gt=gt, gte=gte, lt=lt, lte=lte, reverse=reverse, live=live, old=old,
            limit=limit, seqs=seqs, values=values, tombstones=tombstones,
        )

    # -- views ---------------------------------------------------------------------------------

    @property
    def views(self) -> Mapping[str, MountedView]:
        """The mounted views by name (read-only mapping). In a readonly db this includes the
        Query views the writer stores now, as they are added, changed and dropped."""
        if not self._indexing and not self._closed:
            self._follow_writer()
        return self._views_proxy

    def use(self, name: str, view: View) -> Flume:
        """Mount ``view`` as ``db.<name>``; return the db (chainable).

        A stored view of that name is reused only when its fingerprint (kind, version and
        definition, see :meth:`View.fingerprint`) is the declared view's and it is not ahead
        of the log; otherwise it is wiped and rebuilt, its new definition stored in the same
        atomic write. Declaring a mounted name again replaces that view (handles to it follow
        the new one), except a view defined by code with the same version, which is a clash.
        In a readonly db the view reads what the writer's view of that name has stored.

        Raises:
            ViewNameError: ``name`` clashes with a Flume attribute, or with a view defined by
                code mounted under it with the same version.
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
        with self._views_lock:
            existing = self._mounted.get(name)
            if existing is None and (hasattr(Flume, name) or name in vars(self)):
                raise ViewNameError(f"{name!r} is a Flume attribute; pick another view name")
            if (
                existing is not None
                and not existing.stored
                and existing.fingerprint == view.fingerprint()
                and view.definition() is None
            ):
                # Views defined by code: the same version cannot tell another function apart.
                raise ViewNameError(
                    f"a view named {name!r} is already mounted with version {view.version}; "
                    "declare it with a new version= to replace it (that rebuilds it), or pick "
                    "another name"
                )
            if existing is not None and existing.fingerprint == view.fingerprint():
                # The same data: keep its progress and family, serve it through the new object
                # (reads already under way on the old one go on, their answers identical).
                self._remount_same(existing, view)
            else:
                self._mount(name, view)
        self._indexer.wake()
        return self

    def drop(self, name: str) -> None:
        """Unmount the view ``name`` and delete everything stored for it (its data and its
        definition, in one atomic write, so a stored Query view is no longer mounted on open).
        Handles to it raise :class:`NotFoundError` from then on.

        Raises:
            NotFoundError: no view of that name is mounted or stored.
            ReadOnlyError: in a readonly db. InvalidTypeError: ``name`` is not a str.
        """
        self._check_open()
        check_name(name)
        if not self._indexing:
            raise ReadOnlyError(
                "this database was opened readonly=True; drop views from the writer"
            )
        with self._views_lock:
            mounted = self._mounted.get(name)
            if mounted is None and self._store.read_meta(name) is None:
                raise NotFoundError(f"no view named {name!r}; views: {sorted(self._mounted)}")
            self._store.drop(name)
            if mounted is not None:
                self._unmount(mounted)

    def _current(self, name: str) -> Mount:
        """The view mounted as ``name`` now (a handle follows its name)."""
        mounted = self._mounted.get(name)
        if mounted is None:
            self._check_open()
            raise NotFoundError(
                f"view {name!r} was dropped" + ("" if self._indexing else " by the writer")
                + f"; views now: {sorted(self._mounted)}"
            )
        return mounted

    def _meta(self, mounted: Mount, since: int) -> dict[str, Any]:
        view = mounted.view
        return {
            "kind": view.kind,
            "version": view.version,
            "definition": view.definition(),
            "fingerprint": mounted.fingerprint,
            "since": since,
            "deletes": mounted.deletes,
        }

    def _mount(self, name: str, view: View, stored: bool = False) -> None:
        """Mount ``view`` as ``name``, replacing what is mounted there; a stored view of
        another fingerprint (or ahead of the log) is wiped and its new definition stored, in
        one atomic write."""
        fingerprint = view.fingerprint()
        meta = self._store.read_meta(name)
        since = -1
        if meta is not None and meta.get("fingerprint") == fingerprint:
            since = int(meta.get("since", -1))
        mounted = Mount(name=name, view=view, since=Obv(since), fingerprint=fingerprint,
                        stored=stored, reached_end=since >= self.log.since.value)
        if since != -1 and meta is not None:
            mounted.deletes = int(meta.get("deletes", -1))
        if self._indexing and (since == -1 or since > self.log.since.value):
            mounted.deletes = self.log.deletes.value  # built from the log as it is now
            # Changed definition, version or kind (or a record from before fingerprints); or
            # ahead of the log (it lost appends a non-durable commit had not flushed); or never
            # written: start from empty. The definition is stored now, not with the first
            # batch, so a Query view declared on an empty log is mounted by every later open.
            self._store.reset({name: self._meta(mounted, -1)})
            mounted.since.set(-1)
            mounted.reached_end = self.log.since.value < 0
        view.open(self._context(mounted))
        previous = self._mounted.get(name)
        if previous is not None:
            self._retire(previous)
            previous.view.detach(NotFoundError(
                f"view {name!r} was declared again while this read ran (its data is being "
                "rebuilt for the new declaration): read it again"
            ))
        self._mounted[name] = mounted
        if self._indexing and mounted.deletes < self.log.deletes.value:
            # Deletes it has not processed (it was not mounted then, or the process stopped
            # between a delete and its views' write): process them now, before any read.
            last = self.log.deletes.value
            self._forget([mounted], self.log.read_deletes(mounted.deletes + 1, last))
        self._publish(name, view)
        if self._indexing:
            self._indexer.start()

    def _remount_same(self, existing: Mount, view: View) -> None:
        view.open(self._context(existing))
        existing.view = view
        existing.stored = False
        self._publish(existing.name, view)

    def _context(self, mounted: Mount) -> ViewContext:
        return ViewContext(
            name=mounted.name,
            family=self._store.family(mounted.name),
            readonly=not self._indexing,
            since=mounted.since,
            deletes=lambda: mounted.deletes,
            get_values=self._get_values,
            scan_log=self._scan_log,
            follow=self._follow,
        )

    def _publish(self, name: str, view: View) -> None:
        proxy = self._proxies.get(name)
        if proxy is None or proxy._methods != view.methods:
            self._proxies[name] = MountedView(self, name, view.methods)
        self._views_proxy = MappingProxyType(
            {k: self._proxies[k] for k in sorted(self._mounted)}
        )

    def _retire(self, mounted: Mount) -> None:
        mounted.retired = True
        mounted.since.wake()  # waiters look the name up again

    def _unmount(self, mounted: Mount) -> None:
        del self._mounted[mounted.name]
        self._proxies.pop(mounted.name, None)
        self._retire(mounted)
        mounted.view.detach(NotFoundError(
            f"view {mounted.name!r} was dropped" + ("" if self._indexing else " by the writer")
            + " while this read ran"
        ))
        self._views_proxy = MappingProxyType(
            {k: self._proxies[k] for k in sorted(self._mounted)}
        )

    def _mount_stored_views(self, metas: Mapping[str, dict[str, Any]]) -> None:
        """Mount the views stored in the directory that can be built from their stored
        definition (Query views) and are not mounted yet."""
        from flume.views.registry import view_from_meta

        for name, meta in sorted(metas.items()):
            if name in self._mounted:
                continue
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
            if view is not None:
                with self._views_lock:
                    self._mount(name, view, stored=True)

    def __getattr__(self, name: str) -> MountedView:
        # Only called when normal lookup fails: db.<view name>.
        proxies: dict[str, MountedView] = self.__dict__.get("_proxies", {})
        if name not in proxies and not name.startswith("_") and "_proxies" in self.__dict__:
            if not self._indexing and not self._closed:
                self._follow_writer()  # the writer may have declared it since
        proxy = proxies.get(name)
        if proxy is None:
            raise AttributeError(
                f"Flume has no attribute or view {name!r}; mounted views: {sorted(proxies)}"
            )
        return proxy

    def _read_entries(self, start: int, end: int, n: int) -> list[tuple[int, Any]]:
        return decode_entries(self.log.read_raw(start, end, False, n), self.log.dir)

    def _get_values(self, seqs: Sequence[int]) -> list[Any]:
        return self.log.get_many(seqs)

    def _scan_log(self, upto: int, reverse: bool) -> Iterator[tuple[int, Any]]:
        if upto < 0:
            return iter(())
        return self.log.stream(lte=upto, reverse=reverse)

    def _follow(self, after: int) -> LogStream:
        return self.log.stream(gt=after, live=True)

    # -- readiness -----------------------------------------------------------------------------

    def _wait_ready(
        self, name: str, timeout: float | None, reported_timeout: float | None = _UNSET
    ) -> Mount:
        """Wait until the view mounted as ``name`` has reached the log's ``since`` as it is
        now; return its record (the one mounted then: a re-declaration switches to it).
        ``reported_timeout``: the timeout the caller gave, for the error (when ``timeout`` is
        what is left of it)."""
        self._check_open()
        timeout = self._timeout if timeout is _UNSET else check_timeout(timeout)
        if reported_timeout is _UNSET:
            reported_timeout = timeout
        target = self.log.refresh() if self.readonly else self.log.since.value
        target_deletes = self.log.deletes.value
        deadline = None if timeout is None else time.monotonic() + timeout
        retried = False
        while True:
            if not self._indexing:
                self._follow_writer()
            mounted = self._current(name)
            since = mounted.since
            generation = since.generation
            if mounted.error is not None:
                if isinstance(mounted.error, DiskFullError) and self._indexing and not retried:
                    # Space may be back since the last try: try again now, not at the timer.
                    retried = True
                    self._indexer.retry_after_disk_full()
                    continue
                raise mounted.error
            if self._closed:
                raise ClosedError("the database was closed while a read waited for a view")
            if since.value >= target and mounted.deletes >= target_deletes and not mounted.retired:
                return mounted
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise self._timeout_error(mounted, target, reported_timeout)
            wait = remaining
            if not self._indexing:
                wait = READER_POLL_SECONDS if wait is None else min(wait, READER_POLL_SECONDS)
            if not mounted.retired:
                since.wait_change(generation, wait)

    def _timeout_error(
        self, mounted: Mount, target: int, timeout: float | None
    ) -> FlumeTimeoutError:
        behind = target - mounted.since.value
        if self._indexing:
            who = "the indexer is still catching up"
        else:
            meta = self._store.read_meta(mounted.name)
            if meta is not None and meta.get("fingerprint") != mounted.fingerprint:
                who = (
                    "the writer stores this view with another kind, version or definition than "
                    "this program declares"
                )
            else:
                who = "the writer process is not running, or does not index this view"
        return FlumeTimeoutError(
            f"view {mounted.name!r} is at seq {mounted.since.value}, {behind} entries behind the "
            f"log's {target}, after {timeout} s: {who}. Pass a larger timeout=, or check "
            "db.status()"
        )

    def _follow_writer(self) -> None:
        """Readers: catch up with the writer's views database and bring the mount table in
        line with it: each view's ``since``, and the stored Query views as the writer adds,
        changes and drops them (a view this program declared itself stays mounted)."""
        with self._views_lock:
            if self._closed:
                return
            self._open_writers_store()
            self._store.catch_up()
            metas = self._store.all_meta()
            for name, mounted in list(self._mounted.items()):
                meta = metas.get(name)
                stored_fingerprint = None if meta is None else meta.get("fingerprint")
                if mounted.stored and stored_fingerprint != mounted.fingerprint:
                    self._unmount(mounted)  # dropped or changed by the writer
                    continue
                since = -1
                if meta is not None and meta.get("fingerprint") == mounted.fingerprint:
                    since = int(meta.get("since", -1))
                    mounted.deletes = int(meta.get("deletes", -1))
                    if mounted.error is not None and mounted.error.args == _OTHER_DEFINITION:
                        mounted.error = None  # the writer's definition is this one again
                        mounted.view.open(self._context(mounted))
                elif meta is not None and mounted.error is None:
                    # The writer stores this name with another definition: its data is laid
                    # out for that one. Reads under way stop; later ones say why at once.
                    mounted.error = FormatError(*_OTHER_DEFINITION)
                    mounted.view.detach(FormatError(*_OTHER_DEFINITION))
                    mounted.since.wake()
                if since != mounted.since.value:
                    mounted.since.set(since)
            self._mount_stored_views(metas)

    def _open_writers_store(self) -> None:
        """Readers opened before the writer created its views database read an empty stand-in;
        once the database exists, switch to it (and remount every view on it)."""
        if self._views_path is None or not isinstance(self._store, MemoryStore):
            return
        if not os.path.exists(os.path.join(self._views_path, "CURRENT")):
            return
        store = open_views_store(self._views_path, readonly=True)
        if isinstance(store, MemoryStore):
            return
        self._store.close()
        self._store = store
        for mounted in self._mounted.values():
            mounted.view.open(self._context(mounted))

    def status(self) -> dict[str, Any]:
        """The log's ``since`` and, per view, its ``since``, ``lag`` and ``state``
        (``ready``, ``indexing``, ``failed``, or ``waiting: disk full`` until space is freed;
        with the ``error`` message when failed or waiting)."""
        self._check_open()
        if not self._indexing:
            self._follow_writer()
        mounted_views = list(self._mounted.items())
        sinces = {name: mounted.since.value for name, mounted in mounted_views}
        # The log's since after the views': a view never shows ahead of the log.
        log_since = self.log.refresh() if self.readonly else self.log.since.value
        views: dict[str, Any] = {}
        for name, mounted in mounted_views:
            since = sinces[name]
            info: dict[str, Any] = {
                "kind": mounted.view.kind,
                "since": since,
                "lag": max(0, log_since - since),
                "state": mounted.state(since >= log_since),
            }
            if mounted.error is not None:
                info["error"] = str(mounted.error)
            views[name] = info
        return {"since": log_since, "deleted": self.log.deletes.value + 1, "views": views}

    def rebuild(self, name: str | None = None, *, timeout: float | None = None) -> None:
        """Wipe the view ``name`` (default: every view; in one atomic write that keeps their
        definitions, so a rebuild cut short by a crash resumes on the next open) and return
        once it has caught up again with the log as it was at the call. Appends and reads go on
        meanwhile (reads wait for their view).

        Raises:
            NotFoundError: no view ``name`` is mounted. InvalidTypeError / InvalidArgumentError:
                a bad argument. (These before anything is wiped.)
            ReadOnlyError: in a readonly db. ViewError: a view failed while rebuilding.
            FlumeTimeoutError: ``timeout`` passed first.
        """
        self._check_open()
        if name is not None and check_name(name) not in self._mounted:
            raise NotFoundError(
                f"no view named {name!r} is mounted; views: {sorted(self._mounted)}"
            )
        timeout = check_timeout(timeout)
        if not self._indexing:
            raise ReadOnlyError(
                "this database was opened readonly=True; rebuild from the process that opened it "
                "for writing (or with `flume rebuild DIR` while no writer runs)"
            )
        with self._views_lock:
            # (A view dropped by another thread since the check above is not rebuilt.)
            names = [n for n in sorted(self._mounted) if name is None or n == name]
            for n in names:
                self._mounted[n].deletes = self.log.deletes.value
            self._store.reset({n: self._meta(self._mounted[n], -1) for n in names})
            for n in names:
                mounted = self._mounted[n]
                mounted.view.reset()
                mounted.error = None
                mounted.reached_end = False
                mounted.since.set(-1)
        self._indexer.wake()
        for n in names:
            self._wait_ready(n, timeout)

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
        failures: list[BaseException] = []

        def attempt(step: Callable[[], None]) -> None:
            try:
                step()
            except Exception as e:
                failures.append(e)

        try:
            self._indexer.stop()
            self._unsubscribe()
            for mounted in list(self._mounted.values()):
                mounted.since.wake()
            attempt(self.log.close)
            with self._views_lock:
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
        since, views = self.log.since.value, sorted(self._mounted)
        return f"<flume {mode}db at {where}: since {since}, views {views}>"

