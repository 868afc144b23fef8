"""The Log protocol, ``Entry``, and the stream machinery every log shares.

A log stores values under dense seqs from 0 and never changes a stored value, except to delete
it: a deleted seq keeps its place and holds :data:`TOMBSTONE` (no encoded value is empty), and
the log's **delete journal** records each delete, numbered densely from 0, with the value it
erased until compaction forgets it (views that were built with the value use it to remove what
they derived from it, also after a crash). Concrete logs implement a handful of primitives
(``read_raw``, ``_commit``, ``_commit_deletes``, ``read_deletes``, ``_get_raw``, ``refresh``);
reading streams, live streams, option checking and closing live here, once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple, Protocol, cast, runtime_checkable

from flume import codec
from flume.entry import DELETED, Entry
from flume.errors import (
    ClosedError,
    CorruptionError,
    DeletedError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
    ReadOnlyError,
)
from flume.obv import Obv
from flume.ranges import (
    SeqRange,
    check_bool,
    check_limit,
    check_seq,
    check_values,
    seq_range,
)

# Entries read per step of a stream: large enough to amortise a read transaction, small enough
# that a stream never pins the log's pages for long.
CHUNK = 2048
_decode = codec.decode
_decode_fast = codec.decode_fast
_SEQS, _ENTRIES, _VALUES = 0, 1, 2

#: What a deleted seq holds in the log (every encoded value is at least one byte).
TOMBSTONE: Final = b""


class DeleteRecord(NamedTuple):
    """One delete in a log's journal: its ``number`` (dense from 0, in commit order), the
    ``seq`` it deleted, and the value it erased as stored (``old``), or None once compaction
    has forgotten it."""

    number: int
    seq: int
    old: bytes | None


def decode_entries(raw: Sequence[tuple[int, bytes]], where: str | None) -> list[tuple[int, Any]]:
    """Decode ``(seq, encoded value)`` pairs, a deleted one to ``(seq, DELETED)``; a value that
    does not decode raises :class:`CorruptionError` naming the log (``where``, its directory)
    and the seq."""
    decode = codec.decode
    try:
        return [(seq, decode(data)) for seq, data in raw]
    except CorruptionError:
        out = []
        for seq, data in raw:
            if data == TOMBSTONE:
                out.append((seq, DELETED))
                continue
            try:
                out.append((seq, decode(data)))
            except CorruptionError as bad:
                raise CorruptionError(f"{where or 'the log'}: seq {seq}: {bad}") from None
        return out


def check_seqs(seqs: Any) -> list[int]:
    """The distinct seqs of ``seqs`` (an int, or an iterable of ints), ascending.

    Raises:
        InvalidTypeError: not an int or an iterable of ints (a str, a float, a bool...).
    """
    if isinstance(seqs, int) and not isinstance(seqs, bool):
        return [seqs]
    if isinstance(seqs, (str, bytes, bytearray, dict)) or not hasattr(seqs, "__iter__"):
        raise InvalidTypeError(f"seqs must be an int or an iterable of int seqs, not {seqs!r:.60}")
    out = set()
    for i, seq in enumerate(seqs):
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise InvalidTypeError(f"seqs[{i}] must be an int seq, not {seq!r:.60}")
        out.add(seq)
    return sorted(out)


@runtime_checkable
class Log(Protocol):
    """What flume needs of a log. ``MemoryLog`` and ``LmdbLog`` implement it; so can yours:
    subclass :class:`BaseLog` (which supplies streams, option checks and closing) and run
    ``flume.testing.LogConformance`` against it, which is this protocol's executable spec.

    The public half is what users call through ``Flume``:

    - ``since``: the last committed seq (-1 when empty), an :class:`Obv` that is set after
      each commit, so waiters wake.
    - ``dir``: the directory the log is stored in, or None for a log in memory (its views
      are then kept in memory too). ``readonly``: opened to read what another process writes.
    - ``append(value) -> seq`` and ``append_many(values) -> last seq``: return once committed;
      a batch is all or nothing; an unstorable value raises ``EncodeError`` and writes nothing.
    - ``get(seq)``, ``stream(...)`` (the range vocabulary ``gt/gte/lt/lte/reverse/live/old/
      limit``, plus ``seqs``/``values``/``tombstones``), ``close()`` (idempotent; ends live
      streams).
    - ``delete_many(seqs)``: replace those values by tombstones and journal each delete, in
      one atomic commit; ``deletes``: the number of the last delete (-1 for none), an
      :class:`Obv` like ``since``. ``read_deletes(start, end)``: the journal's records.

    Three primitives serve flume's own machinery, each for a reason:

    - ``read_raw(start, end, reverse, n)``: encoded values in a seq range, so the indexer
      reads a batch once and decodes it once for every view that is behind.
    - ``get_many(seqs)``: values of many seqs in one read, for view reads that look up the
      values their keys point to.
    - ``refresh()``: re-read ``since`` from storage, for readers of a log that another
      process writes (a log written only in this process returns ``since.value``).
    """

    since: Obv[int]
    deletes: Obv[int]
    dir: str | None
    readonly: bool

    def append(self, value: Any) -> int: ...
    def append_many(self, values: Iterable[Any]) -> int: ...
    def get(self, seq: int) -> Any: ...
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
    ) -> LogStream: ...
    def delete_many(self, seqs: Iterable[int]) -> list[DeleteRecord]: ...
    def read_deletes(self, start: int, end: int) -> list[DeleteRecord]: ...
    def read_raw(self, start: int, end: int, reverse: bool, n: int) -> list[tuple[int, bytes]]: ...
    def get_many(self, seqs: Sequence[int]) -> list[Any]: ...
    def refresh(self) -> int: ...
    def close(self) -> None: ...


class BaseLog:
    """The shared half of every log: ``since``, streams, option checks, close.

    Subclasses implement ``read_raw`` (encoded values in a seq range), ``_commit`` (store
    encoded values, return the last seq), ``_commit_deletes``, ``read_deletes``, ``_get_raw``
    and, for logs other processes write, ``refresh``.
    """

    dir: str | None = None

    def __init__(self, readonly: bool = False) -> None:
        self.readonly = readonly
        self.since: Obv[int] = Obv(-1)
        self.deletes: Obv[int] = Obv(-1)
        self._closed = False
        # Weak: the log closes the streams still open when it closes, but holds none alive;
        # a stream its reader dropped (an abandoned `for ... break`) is freed with it.
        self._streams: weakref.WeakSet[LogStream] = weakref.WeakSet()
        self._streams_lock = threading.Lock()

    # -- primitives for subclasses -------------------------------------------------------------

    def read_raw(self, start: int, end: int, reverse: bool, n: int) -> list[tuple[int, bytes]]:
        """Up to ``n`` ``(seq, encoded value)`` pairs with ``start <= seq <= end``, ascending
        from ``start`` (or descending from ``end`` when ``reverse``). Blocks on a read txn."""
        raise NotImplementedError

    def _get_raw(self, seq: int) -> bytes | None:
        raise NotImplementedError

    def _commit(self, encoded: list[bytes]) -> int:
        raise NotImplementedError

    def _commit_deletes(self, seqs: list[int]) -> list[DeleteRecord]:
        """In one atomic commit, put :data:`TOMBSTONE` at each of ``seqs`` (distinct, ascending,
        all in the log) not deleted yet, and journal each such delete with the value it
        erased; return the new journal records and set ``deletes``."""
        raise NotImplementedError

    def read_deletes(self, start: int, end: int) -> list[DeleteRecord]:
        """The journal's records numbered ``start`` to ``end`` (inclusive), in order.
        Blocks on a read transaction."""
        raise NotImplementedError

    def refresh(self) -> int:
        """Re-read ``since`` (and ``deletes``) from storage (for logs another process writes);
        return ``since``."""
        return self.since.value

    # -- public API ----------------------------------------------------------------------------

    def append(self, value: Any) -> int:
        """Append one value; return its seq once it is committed.

        Raises:
            EncodeError: the value is not storable (nothing is written).
            ReadOnlyError, ClosedError.
        """
        self._check_writable()
        return self._commit([codec.encode(value)])

    def append_many(self, values: Iterable[Any]) -> int:
        """Append every value in one atomic commit (all or nothing); return the last seq.

        An empty batch writes nothing and returns ``since``.

        Raises:
            EncodeError: an item is not storable (names its position; nothing is written).
            InvalidTypeError: ``values`` is not an iterable of values (see
                :func:`flume.ranges.check_values`: a generator is read whole first).
        """
        self._check_writable()
        encoded = codec.encode_many(check_values(values))
        if not encoded:
            return self.since.value
        return self._commit(encoded)

    def get(self, seq: int) -> Any:
        """Return the value stored at ``seq``.

        Raises:
            NotFoundError (a KeyError): no entry has that seq.
            InvalidTypeError: ``seq`` is not an int.
        """
        self._check_open()
        check_seq("seq", seq)
        raw = self._get_raw(seq) if seq >= 0 else None
        if raw is None:
            raise self._not_found(seq)
        try:
            return _decode_fast(raw)
        except Exception:
            if raw == TOMBSTONE:
                raise DeletedError(
                    f"seq {seq} was deleted: its place in the log stays, its value is gone"
                ) from None
            return decode_entries([(seq, raw)], self.dir)[0][1]

    def _not_found(self, seq: int) -> NotFoundError:
        return NotFoundError(
            f"seq {seq} is not in the log (it holds seqs 0..{self.since.value}); "
            "read db.since for the last one"
        )

    def get_many(self, seqs: Sequence[int]) -> list[Any]:
        """The values at ``seqs``, in that order, read together (one read transaction); a
        deleted one is :data:`~flume.DELETED` (a view read that raced a delete skips it).

        Raises:
            NotFoundError: one of them is not in the log.
        """
        self._check_open()
        found = self._get_raw_many(seqs)
        if None in found:
            raise self._not_found(seqs[found.index(None)])
        raws = cast("list[bytes]", found)
        try:
            return list(map(_decode_fast, raws))  # one C call per value in the common case
        except Exception:
            return [value for _, value in decode_entries(list(zip(seqs, raws)), self.dir)]

    def delete_many(self, seqs: Iterable[int]) -> list[DeleteRecord]:
        """Delete the values at ``seqs`` (an int, or an iterable of them) in one atomic
        commit: each keeps its place and reads as deleted from then on. Seqs deleted before
        are left as they are. Returns the journal records of the new deletes.

        Blocks on: the commit (queued with appends; durable as they are).

        Raises:
            NotFoundError: a seq is not in the log (nothing is deleted).
            InvalidTypeError: not an int or an iterable of ints (nothing is deleted).
            ReadOnlyError, ClosedError.
        """
        self._check_writable()
        wanted = check_seqs(seqs)
        since = self.since.value
        outside = [seq for seq in wanted if not 0 <= seq <= since]
        if outside:
            raise NotFoundError(
                f"seq {outside[0]} is not in the log (it holds seqs 0..{since}); nothing was "
                "deleted"
            )
        if not wanted:
            return []
        return self._commit_deletes(wanted)

    def _get_raw_many(self, seqs: Sequence[int]) -> list[bytes | None]:
        return [self._get_raw(seq) for seq in seqs]

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
        """Stream entries in seq order (newest first with ``reverse``); see :class:`LogStream`.
        Deleted entries are skipped, unless ``tombstones``: then each yields
        :data:`~flume.DELETED` as its value.

        Raises:
            InvalidTypeError / InvalidArgumentError: a bad option (checked before reading).
        """
        self._check_open()
        rng = seq_range(gt, gte, lt, lte)
        for name, flag in (("reverse", reverse), ("live", live), ("old", old)):
            check_bool(name, flag)
        check_bool("seqs", seqs)
        check_bool("values", values)
        check_bool("tombstones", tombstones)
        if reverse and live:
            raise InvalidArgumentError(
                "a live stream reads forwards: use reverse=False with live=True"
            )
        stream = LogStream(
            self,
            rng,
            reverse=reverse,
            live=live,
            old=old,
            limit=check_limit(limit),
            seqs=seqs,
            values=values,
            tombstones=tombstones,
        )
        with self._streams_lock:
            self._streams.add(stream)
        return stream

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the log and end every open stream (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._streams_lock:
            streams = list(self._streams)
        for s in streams:
            s.close()
        self._close_storage()

    def _close_storage(self) -> None:
        pass

    def _forget(self, stream: LogStream) -> None:
        with self._streams_lock:
            self._streams.discard(stream)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the log is closed; open the database again to use it")

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise ReadOnlyError(
                "this database was opened readonly=True; append from the process that opened "
                "it for writing"
            )


class LogStream(Iterator[Any]):
    """An iterator over log entries, and a context manager; ``close()`` ends it.

    Yields ``Entry(seq, value)``, or bare values (``seqs=False``), or bare seqs
    (``values=False``). A non-live stream reads what was committed when it was created. A live
    stream then blocks for new entries and yields each exactly once, until it reaches ``lt/lte``,
    its ``limit``, or is closed (from any thread; closing the db closes it too).
    Memory is bounded: entries are read in chunks of a few thousand, each in its own short read
    transaction, so a slow consumer never pins the log.
    """

    # Readers of a log that another process writes cannot be woken by it, so live streams of
    # such logs poll at this interval (a cheap read of the last key).
    POLL_SECONDS = 0.02

    def __init__(
        self,
        log: BaseLog,
        rng: SeqRange,
        *,
        reverse: bool,
        live: bool,
        old: bool,
        limit: int | None,
        seqs: bool,
        values: bool,
        tombstones: bool = False,
    ) -> None:
        self._log = log
        self._tombstones = tombstones
        self._reverse = reverse
        self._live = live
        self._left = limit
        self._seqs = seqs
        self._values = values
        self._closed = False
        since = log.refresh() if log.readonly else log.since.value
        self._lo = rng.lo if old else max(rng.lo, since + 1)
        self._hi = rng.hi
        # Non-live streams end at what was committed when they were created.
        self._end = since if self._hi is None else min(self._hi, since)
        if reverse:
            self._next = self._end
        else:
            self._next = self._lo
        self._mode = _SEQS if not values else _ENTRIES if seqs else _VALUES
        self._items = self._iterate()

    def __iter__(self) -> Iterator[Any]:
        return self._items

    def __next__(self) -> Any:
        return next(self._items)

    def _iterate(self) -> Iterator[Any]:
        # The hot path, a generator (resuming one is cheaper than a __next__ call): each raw
        # entry is decoded as it is yielded, not a chunk at a time, so a consumer that drops
        # each value keeps memory and the garbage collector quiet.
        mode = self._mode
        decode_fast = _decode_fast
        new_tuple = tuple.__new__  # Entry's own __new__ is Python code: 3x slower
        while True:
            buffer = self._refill()
            if not buffer:
                return
            # _shape dropped the deleted entries the log knew of when the chunk was read; one
            # deleted since (a reader learns of deletes only at refresh()) is dropped here.
            shown = self._tombstones
            if mode == _SEQS:
                for seq, data in buffer:
                    if self._closed:
                        return
                    if data or shown:
                        yield seq
                continue
            for seq, data in buffer:
                if self._closed:
                    return
                try:
                    value = decode_fast(data)
                except Exception:
                    if data == TOMBSTONE:
                        if not shown:
                            continue
                        value = DELETED
                    else:
                        value = self._decode(seq, data)
                yield new_tuple(Entry, (seq, value)) if mode == _ENTRIES else value

    def _refill(self) -> list[tuple[int, bytes]]:
        if self._closed:
            return []
        try:
            buffer = self._fill()
        except ClosedError:
            if not self._closed:
                raise
            buffer = []  # closed (by db.close() too) while reading: end quietly
        if not buffer:
            self.close()
        return buffer

    def _decode(self, seq: int, data: bytes) -> Any:
        try:
            return _decode(data)
        except CorruptionError as bad:
            raise CorruptionError(f"{self._log.dir or 'the log'}: seq {seq}: {bad}") from None

    def _fill(self) -> list[tuple[int, bytes]]:
        while not self._closed and self._left != 0:
            if self._reverse:
                if self._next < self._lo:
                    return []
                raw = self._log.read_raw(self._lo, self._next, True, self._chunk())
                if not raw:
                    return []
                self._next = raw[-1][0] - 1
                shaped = self._shape(raw)
                if shaped:
                    return shaped
                continue  # a chunk of deleted entries only
            if self._hi is not None and self._next > self._hi:
                return []
            if self._next <= self._end:
                raw = self._log.read_raw(self._next, self._end, False, self._chunk())
                if raw:
                    self._next = raw[-1][0] + 1
                    shaped = self._shape(raw)
                    if shaped:
                        return shaped
                    continue
                self._next = self._end + 1
            if not self._live:
                return []
            self._wait_for_more()
        return []

    def _wait_for_more(self) -> None:
        since = self._log.since
        while not self._closed:
            generation = since.generation
            current = self._log.refresh() if self._log.readonly else since.value
            if current >= self._next:
                self._end = current if self._hi is None else min(self._hi, current)
                return
            if self._log.closed:
                self.close()
                return
            since.wait_change(generation, self.POLL_SECONDS if self._log.readonly else None)

    def _chunk(self) -> int:
        return CHUNK if self._left is None else min(CHUNK, self._left)

    def _shape(self, raw: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        if not self._tombstones and self._log.deletes.value >= 0:
            raw = [entry for entry in raw if entry[1] != TOMBSTONE]
        if self._left is not None:
            raw = raw[: self._left]
            self._left -= len(raw)
        return raw

    def close(self) -> None:
        """End the stream (idempotent, from any thread): a blocked ``next()`` stops quietly."""
        if self._closed:
            return
        self._closed = True
        self._log._forget(self)
        self._log.since.wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
