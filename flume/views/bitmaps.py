"""Bitmap indexes of a Query view: for every distinct value of a declared field, the set of
seqs whose stored value holds it, as compressed ``pyroaring`` bitmaps in the view's family.

Layout. A field's bitmaps live under ``PREFIX`` (a byte no compound index uses: those are
numbered 0..254), the field's number (one byte, in declaration order) and the field value's key
encoding (:func:`flume.keys.encode`, canonical and self-delimiting: flume-equal values such as
``1`` and ``1.0`` share one bitmap, ``True`` and ``1`` do not; lists and dicts have bitmaps of
their own, and so has MISSING, so every seq is in exactly one bitmap of each field). The seq
space is cut into chunks of ``2**CHUNK_BITS`` seqs; each chunk of a value is one record::

    PREFIX + bytes([field]) + keys.encode(value) + seq_key(seq >> CHUNK_BITS)
        -> BitMap(seq & (2**CHUNK_BITS - 1) for the seqs of that chunk).serialize()

so an append rewrites one small record per bitmap field (at most 8 KiB with 65,536-seq
chunks), never a whole bitmap, and every seq up to ``2**64 - 1`` has a place. Records are
serialized after ``run_optimize()``, which makes them canonical: a view built in other batches
holds the same bytes (what ``flume verify`` compares).

Writing keeps nothing in memory across batches: :func:`add_entries` groups a batch's seqs by
record, reads each touched record once from the family (the committed state) and puts its
union once into the view's write batch, so the bitmaps commit atomically with the view's
``since`` and a discarded batch leaves nothing to undo.

Reading masks every answer to the seqs ``<= upto`` the read is consistent with: records only
ever gain seqs above the view's ``since``, so a record read later than the read began gives the
same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Protocol

from pyroaring import BitMap

from flume import keys
from flume.errors import EncodeError
from flume.keys import seq_key
from flume.query.paths import Path, get_path
from flume.views.base import ViewFunctionError

__all__ = [
    "CHUNK_BITS",
    "MAX_FIELDS",
    "PREFIX",
    "Term",
    "add_entries",
    "remove_entries",
    "count",
    "field_prefix",
    "seqs",
]

PREFIX: Final = b"\xff"
CHUNK_BITS: Final = 16
MAX_FIELDS: Final = 256


class Term(Protocol):
    """One conjunct of a bitmap plan: the union of the bitmaps of ``values`` (key encodings)
    of bitmap field number ``field``."""

    @property
    def field(self) -> int: ...

    @property
    def values(self) -> tuple[bytes, ...]: ...


class ChunkSource(Protocol):
    """What bitmap reads need of a family: an ascending range scan."""

    def scan(
        self, lower: bytes, upper: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]: ...


def field_prefix(field: int) -> bytes:
    """The key prefix of every record of bitmap field number ``field``."""
    return PREFIX + bytes([field])


def add_entries(
    paths: Sequence[Path],
    entries: Sequence[tuple[int, Any]],
    get: Callable[[bytes], bytes | None],
    put: Callable[[bytes, bytes], None],
    chunk_bits: int = CHUNK_BITS,
) -> None:
    """Add ``entries`` (``(seq, value)``, seqs new to the bitmaps) to the bitmaps of the fields
    at ``paths``: each record the batch touches is read once with ``get`` and written once with
    ``put``.

    Raises:
        ViewFunctionError: a field's value cannot be key-encoded (never for a stored value);
            nothing was put.
    """
    pending = _records_of(paths, entries, chunk_bits)
    for key, lows in pending.items():
        stored = get(key)
        bitmap = BitMap.deserialize(stored) if stored is not None else BitMap()
        bitmap.update(lows)
        put(key, _canonical(bitmap))


def remove_entries(
    paths: Sequence[Path],
    entries: Sequence[tuple[int, Any]],
    get: Callable[[bytes], bytes | None],
    put: Callable[[bytes, bytes], None],
    delete: Callable[[bytes], None],
    chunk_bits: int = CHUNK_BITS,
) -> None:
    """Remove ``entries`` (``(seq, value)``, added before) from the bitmaps of the fields at
    ``paths``; a record left empty is deleted, as a view built without those entries has none.

    Raises:
        ViewFunctionError: a field's value cannot be key-encoded; nothing was put.
    """
    pending = _records_of(paths, entries, chunk_bits)
    for key, lows in pending.items():
        stored = get(key)
        if stored is None:
            continue
        left = BitMap.deserialize(stored)
        left.difference_update(BitMap(lows))
        if left:
            put(key, _canonical(left))
        else:
            delete(key)


def _canonical(bitmap: BitMap) -> bytes:
    """The record of ``bitmap``'s seqs, the same bytes however they were gathered: built again
    from its values, as a run container that gained or lost values keeps its type where one
    built at once would hold an array."""
    fresh = BitMap(bitmap.to_array())
    fresh.run_optimize()
    data: bytes = fresh.serialize()
    return data


def _records_of(
    paths: Sequence[Path], entries: Sequence[tuple[int, Any]], chunk_bits: int
) -> dict[bytes, list[int]]:
    """The records ``entries`` touch: each key with the low bits of its seqs."""
    low_mask = (1 << chunk_bits) - 1
    fields = [(field_prefix(i), path) for i, path in enumerate(paths)]
    encode = keys.encode
    pending: dict[bytes, list[int]] = {}
    chunk = -1
    chunk_suffix = b""
    for seq, value in entries:
        if seq >> chunk_bits != chunk:
            chunk = seq >> chunk_bits
            chunk_suffix = seq_key(chunk)
        low = seq & low_mask
        for prefix, path in fields:
            try:
                encoded = encode(get_path(value, path))
            except EncodeError as e:
                raise ViewFunctionError(seq, e, "a value's bitmap field cannot be encoded") from e
            key = prefix + encoded + chunk_suffix
            lows = pending.get(key)
            if lows is None:
                pending[key] = [low]
            else:
                lows.append(low)
    return pending


def _value_chunks(
    family: ChunkSource, field: int, encoded: bytes, last_chunk: int
) -> Iterator[tuple[int, bytes]]:
    """The chunks ``<= last_chunk`` of one value's bitmap, ascending: ``(chunk, serialized
    bitmap)`` (deserialized only by a caller that keeps the chunk)."""
    prefix = field_prefix(field) + encoded
    start = len(prefix)
    # Chunks are below 2**(64 - chunk_bits): the next one always has an 8-byte key.
    for key, raw in family.scan(prefix, prefix + seq_key(last_chunk + 1)):
        yield int.from_bytes(key[start:], "big"), bytes(raw)


def _term_chunks(
    family: ChunkSource, term: Term, last_chunk: int, only: set[int] | None
) -> dict[int, BitMap]:
    """The union of a term's values' bitmaps, by chunk (only the chunks in ``only``, if given).
    A field's values hold disjoint seqs, so the union of one chunk is their sum."""
    out: dict[int, BitMap] = {}
    for encoded in term.values:
        for chunk, raw in _value_chunks(family, term.field, encoded, last_chunk):
            if only is not None and chunk not in only:
                continue
            bitmap = BitMap.deserialize(raw)
            held = out.get(chunk)
            if held is None:
                out[chunk] = bitmap
            else:
                held |= bitmap
    return out


def _matching(
    family: ChunkSource, terms: Sequence[Term], upto: int, chunk_bits: int
) -> list[tuple[int, BitMap]]:
    """The AND of the terms' bitmaps over the seqs ``<= upto``: ``(chunk, bitmap of the low
    bits)`` for each chunk holding a match, ascending."""
    if upto < 0 or not terms:
        return []
    last_chunk = upto >> chunk_bits
    result: dict[int, BitMap] | None = None
    for term in terms:
        chunks = _term_chunks(family, term, last_chunk, None if result is None else set(result))
        if result is None:
            result = chunks
        else:
            anded: dict[int, BitMap] = {}
            for chunk, bitmap in chunks.items():
                both = result[chunk] & bitmap
                if both:
                    anded[chunk] = both
            result = anded
        if not result:
            return []
    assert result is not None
    tail = result.get(last_chunk)
    high = (upto & ((1 << chunk_bits) - 1)) + 1
    if tail is not None and high < 1 << chunk_bits:
        tail = BitMap(tail)
        tail.remove_range(high, 1 << chunk_bits)
        if tail:
            result[last_chunk] = tail
        else:
            del result[last_chunk]
    return sorted(result.items())


def count(
    family: ChunkSource, terms: Sequence[Term], upto: int, chunk_bits: int = CHUNK_BITS
) -> int:
    """How many seqs ``<= upto`` are in every term's bitmap: a cardinality, nothing decoded.

    Blocks on: one range scan per term value.
    """
    return sum(len(bitmap) for _, bitmap in _matching(family, terms, upto, chunk_bits))


def seqs(
    family: ChunkSource,
    terms: Sequence[Term],
    upto: int,
    reverse: bool = False,
    chunk_bits: int = CHUNK_BITS,
) -> Iterator[int]:
    """The seqs ``<= upto`` in every term's bitmap, ascending (descending with ``reverse``).

    Blocks on: one range scan per term value, at the first ``next()``.
    """
    chunks = _matching(family, terms, upto, chunk_bits)
    if reverse:
        chunks.reverse()
    for chunk, bitmap in chunks:
        base = chunk << chunk_bits
        lows = reversed(bitmap.to_array()) if reverse else iter(bitmap)
        for low in lows:
            yield base + low
