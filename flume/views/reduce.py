"""Reduce: a view that folds every value of the log into one state (a count, a sum, a map)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flume import codec
from flume.errors import EncodeError, FlumeError, InvalidTypeError
from flume.views.base import FamilyBatch, StaleReadError, View, ViewFunctionError

_STATE = b"state"


class Reduce(View):
    """``Reduce(reducer, initial=None, map=None, version=1, unreduce=None)``.

    For each value, ``map(value)`` (when given) returns the item to reduce, or None to skip
    the value; then ``acc = reducer(acc, item)``. The state must be storable (see ``codec``);
    it is persisted with the view's ``since`` in one write, so it survives restarts exactly.
    A reducer may update ``acc`` in place and return it. Mounted method: ``get()`` (waits until
    the view has caught up with the log as it was at the call; returns a fresh copy of the
    state).

    When values are deleted from the log, the state is rebuilt from the log; or, with
    ``unreduce``, the inverse of ``reducer`` (``unreduce(reducer(acc, item), item) == acc``),
    updated in place: ``acc = unreduce(acc, item)`` for each deleted value's item.

    The stored record is ``[since, state, deletes]``: a reader checks that the state it read is
    at least as new as the ``since`` and delete it waited for, whatever its copy of the store
    did.
    """

    kind = "reduce"
    methods = {"get": "waits"}

    def __init__(
        self,
        reducer: Callable[[Any, Any], Any],
        initial: Any = None,
        map: Callable[[Any], Any] | None = None,
        version: int = 1,
        unreduce: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(version)
        if not callable(reducer):
            raise InvalidTypeError(f"reducer must be callable, not {reducer!r}")
        if map is not None and not callable(map):
            raise InvalidTypeError(f"map must be callable or None, not {map!r}")
        if unreduce is not None and not callable(unreduce):
            raise InvalidTypeError(f"unreduce must be callable or None, not {unreduce!r}")
        self._reducer = reducer
        self._unreduce = unreduce
        self._map = map
        self._initial = codec.encode([-1, initial])
        self._committed = self._initial
        self._acc: Any = _state_of(self._initial)
        self._pending: bytes | None = None

    def open(self, ctx: Any) -> None:
        super().open(ctx)
        self._committed = self._stored()
        self._acc = _state_of(self._committed)

    def _stored(self) -> bytes:
        stored = self.ctx.family.get(_STATE)
        if stored is None or not _is_record(stored):
            # Nothing yet; or a record of a release before [since, state] records, which a
            # writer rebuilds (its meta record has no fingerprint) and a reader waits for.
            return self._initial
        return stored

    def apply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> None:
        acc = self._acc
        reducer, fmap = self._reducer, self._map
        seq = -1
        try:
            if fmap is None:
                for seq, value in entries:  # noqa: B007 - seq names the failing entry below
                    acc = reducer(acc, value)
            else:
                for seq, value in entries:  # noqa: B007 - seq names the failing entry below
                    item = fmap(value)
                    if item is not None:
                        acc = reducer(acc, item)
        except Exception as e:
            self.rollback()
            raise ViewFunctionError(seq, e, "the reduce function raised") from e
        self._write(acc, max(batch.last, entries[-1][0]), batch, seq)

    def unapply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> bool:
        unreduce = self._unreduce
        if unreduce is None:
            return False
        acc = self._acc
        fmap = self._map
        seq = -1
        try:
            for seq, value in entries:  # noqa: B007 - seq names the failing entry below
                item = value if fmap is None else fmap(value)
                if item is not None or fmap is None:
                    acc = unreduce(acc, item)
        except Exception as e:
            self.rollback()
            raise ViewFunctionError(seq, e, "the unreduce function raised") from e
        self._write(acc, self.ctx.since.value, batch, seq)
        return True

    def advance(self, batch: FamilyBatch) -> None:
        self._write(self._acc, batch.last, batch, batch.last)

    def _write(self, acc: Any, since: int, batch: FamilyBatch, seq: int) -> None:
        try:
            self._pending = codec.encode([since, acc, batch.deletes])
        except EncodeError as e:
            self.rollback()
            raise ViewFunctionError(seq, e, "the reduce state is not storable") from e
        self._acc = acc
        batch.put(_STATE, self._pending)

    def commit(self) -> None:
        if self._pending is not None:
            self._committed = self._pending
            self._pending = None

    def rollback(self) -> None:
        # The reducer may have changed the state in place: go back to what was committed.
        self._pending = None
        self._acc = _state_of(self._committed)

    def reset(self) -> None:
        self._pending = None
        self._committed = self._initial
        self._acc = _state_of(self._initial)

    def get(self) -> Any:
        """The reduced state as committed (a copy: changing it changes nothing stored).

        Raises:
            StaleReadError: (readers only, handled by the db, which catches up and asks
                again) the stored state is older than the ``since`` the read waited for.
        """
        if not self.ctx.readonly:
            return _state_of(self._committed)
        record = self._stored()
        since, state, *rest = codec.decode(record)
        deletes = rest[0] if rest else -1
        if since < self.ctx.since.value or deletes < self.ctx.deletes():
            raise StaleReadError(
                f"reduce state at seq {since} and delete {deletes}, view at "
                f"{self.ctx.since.value} and {self.ctx.deletes()}"
            )
        return state


def _state_of(record: bytes) -> Any:
    return codec.decode(record)[1]


def _is_record(data: bytes) -> bool:
    try:
        record = codec.decode(data)
    except FlumeError:
        return False
    return (
        isinstance(record, list)
        and len(record) in (2, 3)
        and isinstance(record[0], int)
        and not isinstance(record[0], bool)
    )
