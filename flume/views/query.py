"""Query: a view of compound indexes over paths of the stored values, queried with the
map-filter-reduce language of QUERY.md.

Every stored value has an entry in every index (a missing field indexed as missing), keyed by
the index's number (one byte, in declaration order), the encoded fields and the seq. A read
parses the query, lets the planner pick an index and one key range, reads that range (or the
whole log when no index helps), looks the values up in the log — or, for a covered query,
rebuilds them from the keys alone — and runs the whole query over them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice, starmap
from typing import Any

from flume import keys
from flume.entry import Entry
from flume.errors import EncodeError, InvalidArgumentError, InvalidTypeError
from flume.keys import MISSING, SEQ_BYTES, seq_key, seq_of
from flume.query import ParsedQuery, compile_live, execute
from flume.query.execute import check_seqs
from flume.query.indexkeys import decode_index_key, index_entry
from flume.query.paths import Path
from flume.query.plan import Plan, normalise_bitmaps, normalise_indexes
from flume.query.shapes import PlanCache
from flume.ranges import check_bool, check_limit
from flume.views import bitmaps as bitmaps_store
from flume.views.base import (
    FamilyBatch,
    View,
    ViewFunctionError,
    ViewStream,
    snapshot_read,
    with_values,
)

_SEQ_SUFFIX = operator.itemgetter(slice(-SEQ_BYTES, None))
_VALUE = operator.itemgetter(1)


class Query(View):
    """``Query(indexes={name: [path, ...]}, bitmaps=[path, ...], version=1)``: a path is a list
    of dict keys (``["value", "author"]``) or one key.

    ``bitmaps`` declares bitmap fields: every distinct value of each keeps a compressed bitmap of
    the seqs holding it (:mod:`flume.views.bitmaps`), and the planner answers equalities and
    ``$in`` on them, ANDed, by bitmap algebra when its cost estimate says so (a ``$count`` is
    then a cardinality).

    The index definitions are data, stored with the view: a process that opens the directory
    mounts the view without this code, and changing them rebuilds the view. Mounted methods:
    ``read(query, *, reverse=False, limit=None, live=False, old=True, seqs=False)`` (waits until
    the view has caught up with the log as it was at the call) and ``explain(query)`` (at once).

    Raises:
        InvalidTypeError / InvalidArgumentError: malformed index or bitmap definitions (more
            than 255 indexes or bitmap fields, an index without fields, a path that is not a
            list of str keys, a bitmap field declared twice).
    """

    kind = "query"
    methods = {"read": "stream", "explain": "sync"}

    def __init__(
        self, indexes: Mapping[str, Sequence[Any]], version: int = 1, bitmaps: Sequence[Any] = ()
    ) -> None:
        super().__init__(version)
        self.indexes: dict[str, tuple[Path, ...]] = normalise_indexes(indexes)
        if len(self.indexes) > 255:
            raise InvalidArgumentError(
                f"a Query view holds at most 255 indexes, not {len(self.indexes)}"
            )
        self.bitmaps: tuple[Path, ...] = normalise_bitmaps(bitmaps)
        self.chunk_bits = bitmaps_store.CHUNK_BITS
        self._prefixes = {name: bytes([i]) for i, name in enumerate(self.indexes)}
        self._plans = PlanCache(self.indexes, self.bitmaps)

    @classmethod
    def from_definition(cls, definition: dict[str, Any], version: int = 1) -> Query:
        """The Query view a stored :meth:`definition` describes."""
        indexes = definition.get("indexes")
        if not isinstance(indexes, dict):
            raise InvalidTypeError(
                f"a Query definition holds {{'indexes': {{...}}}}, not {definition!r:.80}"
            )
        return cls(indexes, version=version, bitmaps=definition.get("bitmaps", ()))

    def definition(self) -> dict[str, Any]:
        """``{"indexes": {name: [path, ...]}}``, and ``"bitmaps": [path, ...]`` when the view
        declares any (so a view without bitmaps keeps the definition, and the fingerprint, it
        had before bitmaps existed)."""
        out: dict[str, Any] = {
            "indexes": {name: [list(p) for p in paths] for name, paths in self.indexes.items()}
        }
        if self.bitmaps:
            out["bitmaps"] = [list(p) for p in self.bitmaps]
        return out

    # -- indexing ------------------------------------------------------------------------------

    def apply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> None:
        put = batch.put
        self._each_entry(entries, put)
        if self.bitmaps:
            bitmaps_store.add_entries(
                self.bitmaps, entries, self.ctx.family.get, put, self.chunk_bits
            )

    def unapply(self, entries: Sequence[tuple[int, Any]], batch: FamilyBatch) -> bool:
        """Delete ``entries``' keys from every index, and their seqs from the bitmaps."""
        delete = batch.delete
        self._each_entry(entries, lambda key, _: delete(key))
        if self.bitmaps:
            bitmaps_store.remove_entries(
                self.bitmaps, entries, self.ctx.family.get, batch.put, delete, self.chunk_bits
            )
        return True

    def _each_entry(
        self, entries: Sequence[tuple[int, Any]], write: Callable[[bytes, bytes], None]
    ) -> None:
        """``write(key, hint)`` for ``entries``' entry in every index."""
        specs = [(self._prefixes[name], paths) for name, paths in self.indexes.items()]
        seq = -1
        try:
            for seq, value in entries:
                suffix = seq_key(seq)
                for prefix, paths in specs:
                    key, hint = index_entry(paths, suffix, value)
                    write(prefix + key, hint)
        except EncodeError as e:
            raise ViewFunctionError(seq, e, "a value's indexed field cannot be encoded") from e

    # -- reading -------------------------------------------------------------------------------

    def explain(self, query: Any) -> dict[str, Any]:
        """The plan for ``query``: ``index`` (None for a full scan), ``scan``, ``covered``,
        the key bounds, the field constraints and every index's score.

        Raises:
            QueryError: a malformed query (naming the offending part).
        """
        return {"view": self.ctx.name, **self._plan(query)[1].explain()}

    def _plan(self, query: Any) -> tuple[ParsedQuery, Plan]:
        """Parse and plan ``query``, re-binding the plan of an earlier query of the same shape
        when there is one (thread-safe): an app asks the same shapes of query again and again
        with other values, and planning costs more than a small indexed read.

        Raises:
            QueryError: a malformed query.
        """
        return self._plans.plan(query)

    def read(
        self,
        query: Any = None,
        *,
        reverse: bool = False,
        limit: int | None = None,
        live: bool = False,
        old: bool = True,
        seqs: bool = False,
    ) -> ViewStream:
        """Run ``query``; a closeable iterator of the items its last stage yields (the stored
        values when it has no ``$map``), or ``Entry(seq, value)`` with ``seqs=True``.

        ``live=True`` goes on yielding matches of new appends (``$filter``/``$map`` only);
        ``old=False`` skips what is already there. The answer is consistent with one prefix of
        the log: the one the view had indexed when the read began (then live appends).

        Raises (before anything is read):
            QueryError (a ValueError): a malformed query, naming the offending part.
            InvalidTypeError / InvalidArgumentError: bad options.
        """
        for name, flag in (("reverse", reverse), ("live", live), ("old", old), ("seqs", seqs)):
            check_bool(name, flag)
        limit = check_limit(limit)
        parsed, plan = self._plan(query)
        if live:
            if reverse:
                raise InvalidArgumentError(
                    "a live read goes forwards: use reverse=False with live=True"
                )
            live_fn = compile_live(parsed)
        check_seqs(plan.query, seqs)  # now, not at the first next()
        old_part = None
        if old:

            def old_part(upto: int) -> Iterator[Any]:
                return self._old(plan, upto, reverse, limit, seqs)

        live_part = None
        if live:

            def live_part(seq: int, value: Any) -> list[Any]:
                item = live_fn(value)
                if item is MISSING:
                    return []
                return [Entry(seq, value) if seqs else item]

        return snapshot_read(self.ctx, old_part, live_part, limit, lambda: self.ctx)

    def _old(
        self, plan: Plan, upto: int, reverse: bool, limit: int | None, seqs: bool
    ) -> Iterator[Any]:
        """The answer over the entries with seq <= ``upto``."""
        if plan.count_keys and limit != 0:
            return iter([self._count(plan, upto)])
        entries = self._entries(plan, upto, reverse, limit)
        query = plan.query
        # An exact range already is the first filter.
        skip_first = plan.exact and not plan.scan and query.first_filter is not None
        if len(query.stages) == skip_first:
            # The range is the whole answer (the commonest read: the latest N of something):
            # no executor between the entries and the caller.
            pairs = entries if limit is None else islice(entries, limit)
            return starmap(Entry, pairs) if seqs else map(_VALUE, pairs)
        if skip_first:
            query = query.without_first_filter()
        items = execute(query, entries, reverse=reverse, limit=limit, seqs=seqs)
        if seqs:
            return (Entry(seq, value) for seq, value in items)
        return items

    def _range(self, plan: Plan) -> tuple[bytes, bytes | None]:
        assert plan.index is not None
        prefix = self._prefixes[plan.index]
        lower = prefix + plan.lower
        upper = prefix + plan.upper if plan.upper is not None else keys.successor(prefix)
        return lower, upper

    def _count(self, plan: Plan, upto: int) -> int:
        """The number of entries with seq <= ``upto`` in an exact plan's range: what a covered
        ``$count`` after an exactly indexed filter gives, from the keys alone, nothing decoded."""
        if upto < 0:
            return 0
        if plan.bitmap:
            return bitmaps_store.count(self.ctx.family, plan.bitmap, upto, self.chunk_bits)
        lower, upper = self._range(plan)
        # Entries indexed after the read began (seq above upto) are not counted. Built of C
        # callables (no Python frame per key): this loop is the whole cost of the count.
        seqs = map(_SEQ_SUFFIX, self.ctx.family.keys(lower, upper))
        return sum(map(seq_key(upto).__ge__, seqs))

    def _entries(
        self, plan: Plan, upto: int, reverse: bool, limit: int | None
    ) -> Iterator[tuple[int, Any]]:
        """``(seq, value)`` pairs with seq <= ``upto`` in the plan's read order."""
        if plan.bitmap:
            family, get_values = self.ctx.family, self.ctx.get_values
            matches = bitmaps_store.seqs(family, plan.bitmap, upto, reverse, self.chunk_bits)
            for seq, _, value in with_values(((s, None) for s in matches), get_values, limit):
                yield seq, value
            return
        if plan.index is None:
            yield from self.ctx.scan_log(upto, reverse)
            return
        lower, upper = self._range(plan)
        scan = self.ctx.family.scan(lower, upper, reverse)
        if plan.covered:
            paths = plan.paths
            for key, hint in scan:
                if seq_of(key) <= upto:
                    yield decode_index_key(paths, key[1:], hint)
            return
        seqs = ((seq, None) for key, _ in scan if (seq := seq_of(key)) <= upto)
        for seq, _, value in with_values(seqs, self.ctx.get_values, limit):
            yield seq, value
