"""Index: a view that maps each value to zero or more keys, for lookups and range reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from flume import keys
from flume.entry import DELETED
from flume.errors import EncodeError, InvalidArgumentError, InvalidTypeError, NotFoundError
from flume.ranges import check_bool, check_limit
from flume.views.base import (
    FamilyBatch,
    View,
    ViewFunctionError,
    ViewStream,
    snapshot_read,
    with_values,
)

# The first byte of an entry's stored value: whether fn gave a bare scalar or a tuple, so reads
# give keys back the way they were made. The rest is the key's type hint (usually empty).
_SCALAR = b"\x00"
_TUPLE = b"\x01"


class IndexEntry(NamedTuple):
    """One result of ``Index.read``: the key (as ``fn`` returned it), the seq, the value."""

    key: Any
    seq: int
    value: Any


def _key_bytes(key: Any) -> bytes:
    return keys.encode_tuple(key if isinstance(key, tuple) else (key,))


class Index(View):
    """``Index(fn, version=1)``: ``fn(value)`` returns a key (a scalar or a tuple of scalars,
    lists or dicts), a list of keys, or None for none.

    Each key is stored with the entry's seq after it, so equal keys never collide; keys sort in
    flume order (see QUERY.md). Mounted methods: ``get(key)`` and ``read(...)`` (both wait
    until the view has caught up with the log as it was at the call).
    """

    kind = "index"
    methods = {"get": "waits", "read": "stream"}

    def __init__(self, fn: Callable[[Any], Any], version: int = 1) -> None:
        super().__init__(version)
        if not callable(fn):
            raise InvalidTypeError(f"fn must be callable, not {fn!r}")
        self._fn = fn

    def _keys_of(self, value: Any) -> list[Any]:
        result = self._fn(value)
        if result is None:
            return []
        if isinstance(result, list):
            return result
        return [result]

    def apply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> None:
        self._each_entry(entries, batch.put)

    def unapply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> bool:
        """Delete the keys ``fn`` gives for ``entries`` (the same keys ``apply`` put: ``fn`` is
        a pure function of the value)."""
        delete = batch.delete
        self._each_entry(entries, lambda key, _: delete(key))
        return True

    def _each_entry(
        self, entries: Sequence[tuple[int, Any]], write: Callable[[bytes, bytes], None]
    ) -> None:
        """``write(stored key, stored value)`` for every key ``fn`` gives for ``entries``."""
        keys_of = self._keys_of
        seq = -1
        try:
            for seq, value in entries:
                suffix = keys.seq_key(seq)
                for key in keys_of(value):
                    if isinstance(key, tuple):
                        write(keys.encode_tuple(key) + suffix, _TUPLE + keys.type_hint(key))
                    else:
                        write(keys.encode_tuple((key,)) + suffix, _SCALAR + keys.type_hint((key,)))
        except EncodeError as e:
            raise ViewFunctionError(
                seq, e, "the index function returned a key that cannot be stored"
            ) from e
        except Exception as e:
            raise ViewFunctionError(seq, e, "the index function raised") from e

    def _decode(self, raw_key: bytes, raw_value: bytes) -> tuple[Any, int]:
        fields = keys.decode_tuple(raw_key[: -keys.SEQ_BYTES], raw_value[1:])
        key = fields if raw_value[:1] == _TUPLE else fields[0]
        return key, keys.seq_of(raw_key)

    def get(self, key: Any) -> Any:
        """The value of the newest entry (highest seq) with exactly this key.

        Raises:
            NotFoundError (a KeyError): no entry has that key.
            EncodeError: the key is not storable.
        """
        prefix = _key_bytes(key)
        for raw_key, _ in self.ctx.family.scan(prefix, keys.successor(prefix), reverse=True):
            # A key with more fields shares this prefix; only an exact match counts.
            if len(raw_key) == len(prefix) + keys.SEQ_BYTES:
                seq = keys.seq_of(raw_key)
                value = self.ctx.get_values([seq])[0]
                if value is not DELETED:  # (deleted while this read ran)
                    return value
        raise NotFoundError(f"no entry has the key {key!r}")

    def read(
        self,
        *,
        gt: Any = None,
        gte: Any = None,
        lt: Any = None,
        lte: Any = None,
        prefix: Any = None,
        reverse: bool = False,
        limit: int | None = None,
        live: bool = False,
        old: bool = True,
    ) -> ViewStream:
        """Entries in key order (ties by seq) as ``IndexEntry(key, seq, value)``.

        ``gt/gte/lt/lte`` bound the key (a tuple bound covers every key it is a prefix of);
        ``prefix`` is a tuple of leading key fields (or one scalar). ``live=True`` goes on
        yielding new entries whose keys fall in the range, in seq order; ``old=False`` skips
        the existing ones.

        Raises:
            InvalidArgumentError / InvalidTypeError: bad options (checked before reading).
        """
        for name, flag in (("reverse", reverse), ("live", live), ("old", old)):
            check_bool(name, flag)
        limit = check_limit(limit)
        try:
            lower, upper = self._bounds(gt, gte, lt, lte, prefix)
        except EncodeError as e:
            raise InvalidTypeError(
                f"a bound of the read (gt/gte/lt/lte/prefix) is not a key: {e}"
            ) from None
        if live and reverse:
            raise InvalidArgumentError(
                "a live read goes forwards: use reverse=False with live=True"
            )
        old_part = (lambda upto: self._scan(lower, upper, reverse, upto, limit)) if old else None
        live_part = (lambda seq, value: self._matches(lower, upper, seq, value)) if live else None
        return snapshot_read(self.ctx, old_part, live_part, limit, lambda: self.ctx)

    def _bounds(
        self, gt: Any, gte: Any, lt: Any, lte: Any, prefix: Any
    ) -> tuple[bytes, bytes | None]:
        if gt is not None and gte is not None:
            raise InvalidArgumentError("give at most one of gt= and gte=, not both")
        if lt is not None and lte is not None:
            raise InvalidArgumentError("give at most one of lt= and lte=, not both")
        lower = b""
        upper: bytes | None = None
        if prefix is not None:
            lower = _key_bytes(prefix)
            upper = keys.successor(lower)
        if gte is not None:
            lower = max(lower, _key_bytes(gte))
        elif gt is not None:
            after = keys.successor(_key_bytes(gt))
            if after is None:
                return b"", b""
            lower = max(lower, after)
        if lt is not None:
            bound = _key_bytes(lt)
            upper = bound if upper is None else min(upper, bound)
        elif lte is not None:
            bound_or_none = keys.successor(_key_bytes(lte))
            if bound_or_none is not None:
                upper = bound_or_none if upper is None else min(upper, bound_or_none)
        low_given = gt if gt is not None else gte
        high_given = lt if lt is not None else lte
        if (
            low_given is not None
            and high_given is not None
            and keys.compare(low_given, high_given) > 0
        ):
            raise InvalidArgumentError(
                f"inverted range: the lower bound {low_given!r} is above the upper bound "
                f"{high_given!r}; swap them, or use reverse=True to read backwards"
            )
        return lower, upper

    def _matches(self, lower: bytes, upper: bytes | None, seq: int, value: Any) -> list[IndexEntry]:
        """The entries ``value`` (new, at ``seq``) adds in the range, in key order: what the
        stored index would hold, where equal encoded keys are one entry (the last one put)."""
        matched: dict[bytes, Any] = {}
        for key in self._keys_of(value):
            raw = _key_bytes(key)
            if raw >= lower and (upper is None or raw < upper):
                matched[raw] = key
        return [IndexEntry(matched[raw], seq, value) for raw in sorted(matched)]

    def _scan(
        self, lower: bytes, upper: bytes | None, reverse: bool, upto: int, limit: int | None
    ) -> Iterator[IndexEntry]:
        """The stored entries in the range with seq <= ``upto``, in key order."""
        ctx = self.ctx
        pairs = (
            (seq, raw)
            for raw in ctx.family.scan(lower, upper, reverse)
            if (seq := keys.seq_of(raw[0])) <= upto
        )
        decode = self._decode
        for seq, (raw_key, raw_value), value in with_values(pairs, ctx.get_values, limit):
            yield IndexEntry(decode(raw_key, raw_value)[0], seq, value)
