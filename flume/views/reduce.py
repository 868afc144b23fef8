"""Reduce: a view that folds every value of the log into one state (a count, a sum, a map)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flume import codec
from flume.errors import EncodeError, InvalidTypeError
from flume.views.base import FamilyBatch, View, ViewFunctionError

_STATE = b"state"


class Reduce(View):
    """``Reduce(reducer, initial=None, map=None, version=1)``.

    For each value, ``map(value)`` (when given) returns the item to reduce, or None to skip
    the value; then ``acc = reducer(acc, item)``. The state must be storable (see ``codec``);
    it is persisted with the view's ``since`` in one write, so it survives restarts exactly.
    A reducer may update ``acc`` in place and return it. Mounted method: ``get()`` (waits until
    the view has caught up with the log as it was at the call; returns a fresh copy of the
    state).
    """

    kind = "reduce"
    methods = {"get": "async"}

    def __init__(
        self,
        reducer: Callable[[Any, Any], Any],
        initial: Any = None,
        map: Callable[[Any], Any] | None = None,
        version: int = 1,
    ) -> None:
        super().__init__(version)
        if not callable(reducer):
            raise InvalidTypeError(f"reducer must be callable, not {reducer!r}")
        if map is not None and not callable(map):
            raise InvalidTypeError(f"map must be callable or None, not {map!r}")
        self._reducer = reducer
        self._map = map
        self._initial_bytes = codec.encode(initial)
        self._committed = self._initial_bytes
        self._acc: Any = codec.decode(self._initial_bytes)
        self._pending: bytes | None = None

    def open(self, ctx: Any) -> None:
        super().open(ctx)
        self._load()

    def _load(self) -> None:
        stored = self.ctx.family.get(_STATE)
        self._committed = self._initial_bytes if stored is None else stored
        self._acc = codec.decode(self._committed)

    def apply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> None:
        acc = self._acc
        reducer, fmap = self._reducer, self._map
        seq = -1
        try:
            if fmap is None:
                for seq, value in entries:
                    acc = reducer(acc, value)
            else:
                for seq, value in entries:
                    item = fmap(value)
                    if item is not None:
                        acc = reducer(acc, item)
        except Exception as e:
            self.rollback()
            raise ViewFunctionError(seq, e, "the reduce function raised") from e
        try:
            self._pending = codec.encode(acc)
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
        self._acc = codec.decode(self._committed)

    def reset(self) -> None:
        self._pending = None
        self._committed = self._initial_bytes
        self._acc = codec.decode(self._initial_bytes)

    def get(self) -> Any:
        """The reduced state as committed (a copy: changing it changes nothing stored)."""
        if self.ctx.readonly:
            self._load()
        return codec.decode(self._committed)
