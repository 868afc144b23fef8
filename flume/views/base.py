"""The View protocol: what a view implements, and what the db hands it.

A view is a pure function of the log. A third-party view subclasses :class:`View` and must
give two things; ``flume.testing.ViewConformance`` is the executable spec:

- ``methods``: the read methods mounted as ``db.<name>.<method>``, each with its kind:
  ``"sync"`` answers at once, ``"waits"`` first waits until the view has caught up with the
  log as it was at the call (read-your-writes), ``"stream"`` waits the same way and returns a
  closeable iterator (see :func:`snapshot_read`).
- ``apply(entries, batch)``: index a batch of new entries, in seq order, into ``batch`` (the
  db adds the view's ``since`` to the same batch and commits both in one atomic write).
  Deleted entries are never in it: a batch may skip seqs, and ``batch.last`` is the seq the
  view's ``since`` moves to with it.

Everything else has a default the db relies on, to override when a view needs it:

- ``kind``, ``version`` and ``definition()``: what :meth:`View.fingerprint` digests; a
  stored view is reused only by a view of the same fingerprint, otherwise rebuilt. Views whose
  ``definition()`` is data (Query) can be mounted from the directory without their code.
- ``unapply(entries, batch)`` when values it indexed were deleted: remove from ``batch`` what
  ``apply`` derived from them and return True; the default returns False (putting nothing),
  and the db then rebuilds the view from the log. ``advance(batch)`` for a batch whose
  entries were all deleted (nothing to apply; ``since`` still moves to ``batch.last``).
- ``open(ctx)`` when mounted (load state from ``ctx.family``); ``commit()`` / ``rollback()``
  after the write of the last ``apply``'s batch succeeded or was discarded (for views that keep
  state in memory, like Reduce); ``reset()`` after the view's data was wiped (rebuild);
  ``detach(error)`` when the db stops serving this object (re-declared or dropped); ``close()``.

A view never sees the db, only its :class:`ViewContext`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flume import codec
from flume.entry import DELETED
from flume.errors import ClosedError, FlumeError, InvalidTypeError
from flume.obv import Obv
from flume.views.store import Family, StoreBatch

T = TypeVar("T")

# Values are looked up in batches that grow, so that a `limit=10` read fetches about ten and a
# long read still amortises its lookups.
FIRST_LOOKUP = 16
MAX_LOOKUP = 1024


class ViewFunctionError(Exception):
    """Raised by ``apply`` when the user's function fails on an entry (or returns something
    the view cannot store); the db turns it into a :class:`flume.ViewError` for readers."""

    def __init__(self, seq: int, cause: BaseException, what: str) -> None:
        super().__init__(what)
        self.seq = seq
        self.cause = cause
        self.what = what


class StaleReadError(Exception):
    """Raised by a reader's view method when what it read from the store is older than the
    view's ``since`` said; the db catches up with the writer and calls the method again (it
    never reaches the caller)."""


class FamilyBatch:
    """Puts and deletes of one view, into the db's write batch: ``put(key, value)`` and
    ``delete(key)``; ``last`` is the seq the view's ``since`` moves to with this batch (-1
    when the caller does not say: then it is the batch's last entry), ``deletes`` the number
    of the last delete of the log's journal the view has processed with it."""

    __slots__ = ("delete", "deletes", "last", "put")

    def __init__(self, batch: StoreBatch, name: str, last: int = -1, deletes: int = -1) -> None:
        # Partials, not methods: a put is the indexer's innermost call, once per stored key.
        self.put: Callable[[bytes, bytes], None] = functools.partial(batch.put, name)
        self.delete: Callable[[bytes], None] = functools.partial(batch.delete, name)
        self.last = last
        self.deletes = deletes


@dataclass
class ViewContext:
    """What a mounted view may use: its own keyspace and progress, and read access to the log.

    ``since`` is the last seq the view has committed (readers see the writer's); ``deletes()``
    the number of the last delete of the log's journal it has processed. ``get_values``
    looks seqs up in the log in one read. ``scan_log(upto, reverse)`` iterates ``(seq, value)``
    over the log up to seq ``upto``. ``follow(after)`` is a live stream of ``(seq, value)``
    entries with seq > ``after``, closed when the db closes.
    """

    name: str
    family: Family
    readonly: bool
    since: Obv[int]
    deletes: Callable[[], int]
    get_values: Callable[[Sequence[int]], list[Any]]
    scan_log: Callable[[int, bool], Iterator[tuple[int, Any]]]
    follow: Callable[[int], Any]


class View:
    """Base class of views. Subclasses set ``methods`` and implement ``apply``."""

    kind = "custom"
    methods: dict[str, str] = {}

    def __init__(self, version: int = 1) -> None:
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidTypeError(f"version must be an int, not {version!r}")
        self.version = version
        self._ctx: ViewContext | None = None
        self._gone: FlumeError | None = None

    @property
    def ctx(self) -> ViewContext:
        """What the db handed this view at ``open``.

        Raises:
            NotFoundError: the db replaced or dropped this view (reads under way end so).
            ClosedError: it is not mounted (or its db was closed).
        """
        if self._ctx is None:
            if self._gone is not None:
                raise self._gone
            raise ClosedError("this view is not mounted on a database; db.use(name, view) first")
        return self._ctx

    def definition(self) -> Any:
        """Data that defines the view, stored with it; a change rebuilds it (None for views
        defined by code, which use ``version`` instead)."""
        return None

    def fingerprint(self) -> str:
        """The one canonical digest of what decides this view's stored data: its kind, version
        and definition, order-sensitive (msgpack keeps dict order, and tells ``1`` from
        ``True`` from ``1.0``). A stored view is reused only by a view of the same
        fingerprint; any other difference rebuilds it."""
        encoded = codec.encode([self.kind, self.version, self.definition()])
        return hashlib.sha256(encoded).hexdigest()

    def open(self, ctx: ViewContext) -> None:
        """Mounted on a db: load any state from ``ctx.family``."""
        self._ctx = ctx
        self._gone = None

    def detach(self, error: FlumeError) -> None:
        """The db no longer serves this object under its name (the view was declared again,
        or dropped): every later use of its context, by reads under way too, raises
        ``error``, so that no read ever runs on data stored for another definition."""
        self._gone = error
        self._ctx = None

    def apply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> None:
        """Index ``entries`` (ascending seqs, all new to this view) into ``batch``.

        Raises:
            ViewFunctionError: the user function failed on one of them.
        """
        raise NotImplementedError

    def unapply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> bool:
        """Remove from ``batch`` what ``apply`` stored for ``entries`` (ascending seqs, each
        applied before; their values were deleted from the log) and return True; or return
        False, putting nothing, when the view cannot: the db then rebuilds it from the log.

        Raises:
            ViewFunctionError: the user function failed on one of them.
        """
        return False

    def advance(self, batch: FamilyBatch) -> None:
        """A batch of deleted entries only: nothing to apply, and ``since`` moves to
        ``batch.last`` (for views that store their ``since`` in their own data)."""

    def commit(self) -> None:
        """The last ``apply``'s (or ``unapply``'s) batch was written."""

    def rollback(self) -> None:
        """The last ``apply``'s batch was discarded (an error, or close)."""

    def reset(self) -> None:
        """The view's data was wiped; start again from an empty state."""

    def close(self) -> None:
        self._ctx = None


class ViewStream(Iterator[Any]):
    """A closeable iterator over a view read (a context manager too); ``close()`` ends a live
    read from any thread, and closing the db ends it as well."""

    def __init__(self, items: Iterator[Any], on_close: Callable[[], None] | None = None) -> None:
        self._items = items
        self._on_close = on_close
        self._closed = False

    def __iter__(self) -> ViewStream:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        try:
            return next(self._items)
        except StopIteration:
            self.close()
            raise
        except ClosedError:
            if self._on_close is None:
                raise  # a read of what is there, cut short by close(): say so
            # A live read ends quietly when the database closes, like a live log stream.
            self.close()
            raise StopIteration from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ViewStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_values(
    pairs: Iterable[tuple[int, T]],
    get_values: Callable[[Sequence[int]], list[Any]],
    limit: int | None = None,
) -> Iterator[tuple[int, T, Any]]:
    """``(seq, extra, value)`` for each ``(seq, extra)`` of ``pairs``, the values looked up in
    batches of ``FIRST_LOOKUP`` (or ``limit``, if fewer are wanted), growing x4 up to
    ``MAX_LOOKUP``: the first item comes after a lookup of about what the read wants.

    Blocks on: each batch's lookup (one log read). Raises what ``get_values`` raises.
    """
    want = FIRST_LOOKUP if limit is None else max(1, min(limit, FIRST_LOOKUP))
    pending: list[tuple[int, T]] = []
    for pair in pairs:
        pending.append(pair)
        if len(pending) >= want:
            values = get_values([seq for seq, _ in pending])
            for (seq, extra), value in zip(pending, values):
                if value is not DELETED:  # deleted while this read ran
                    yield seq, extra, value
            pending = []
            want = min(want * 4, MAX_LOOKUP)
    if pending:
        values = get_values([seq for seq, _ in pending])
        for (seq, extra), value in zip(pending, values):
            if value is not DELETED:
                yield seq, extra, value


def snapshot_read(
    ctx: ViewContext,
    old: Callable[[int], Iterator[Any]] | None,
    live: Callable[[int, Any], Iterable[Any]] | None,
    limit: int | None,
    alive: Callable[[], object] = lambda: None,
) -> ViewStream:
    """The one shape of every view read: what the view holds at the call, then (live) what
    comes after, each entry exactly once.

    ``upto`` is the view's ``since`` at the call. ``old(upto)`` yields the stored answer for
    entries with seq <= ``upto`` only (the view may index more before the first ``next()``;
    those belong to the live part). ``live(seq, value)`` gives the items of one new entry; it
    is called for every entry with seq > ``upto``, in seq order, until the stream is closed.
    At most ``limit`` items in all. Nothing is read until the first ``next()``. ``alive()``
    is called before each live entry and raises when the view is gone (dropped, replaced).
    """
    upto = ctx.since.value
    if live is None:
        items = old(upto) if old is not None else iter(())
        return ViewStream(items if limit is None else itertools.islice(items, limit))
    follow = ctx.follow(upto)
    items = _old_then_live(old(upto) if old is not None else None, follow, live, alive)
    if limit is not None:
        items = _take(items, limit)
    return ViewStream(items, follow.close)


def _old_then_live(
    old: Iterator[Any] | None,
    follow: Any,
    live: Callable[[int, Any], Iterable[Any]],
    alive: Callable[[], object],
) -> Iterator[Any]:
    if old is not None:
        yield from old
    try:
        for seq, value in follow:
            alive()
            yield from live(seq, value)
    finally:
        follow.close()


def _take(items: Iterator[Any], n: int) -> Iterator[Any]:
    if n <= 0:
        return
    for item in items:
        yield item
        n -= 1
        if n == 0:
            return
